#include "probes/backends/cuda/identity.hpp"

#include <cstdio>
#include <optional>

namespace substrate::cuda {

std::string kernel_driver_version(std::string_view text) {
  const std::string_view line = text.substr(0, text.find('\n'));
  if (line.rfind("NVRM version:", 0) != 0) return {};
  const std::size_t module = line.find("Kernel Module");
  if (module == std::string_view::npos) return {};
  // The first token after "Kernel Module" (and "for <arch>" on the open modules) made of digits
  // and dots with at least one dot.
  std::size_t at = module + 13;
  while (at < line.size()) {
    while (at < line.size() && line[at] == ' ') ++at;
    std::size_t end = at;
    while (end < line.size() && line[end] != ' ') ++end;
    const std::string_view token = line.substr(at, end - at);
    if (!token.empty() && token.find_first_not_of("0123456789.") == std::string_view::npos &&
        token.find('.') != std::string_view::npos) {
      return std::string(token);
    }
    at = end;
  }
  return {};
}

std::string format_uuid(const std::array<unsigned char, 16>& bytes) {
  static constexpr char k_hex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += k_hex[bytes[i] >> 4];
    out += k_hex[bytes[i] & 0xF];
  }
  return out;
}

namespace {

std::optional<unsigned long> parse_hex(std::string_view field, std::size_t max_digits) {
  if (field.empty() || field.size() > max_digits) return std::nullopt;
  unsigned long value = 0;
  for (char c : field) {
    int digit;
    if (c >= '0' && c <= '9')
      digit = c - '0';
    else if (c >= 'a' && c <= 'f')
      digit = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      digit = c - 'A' + 10;
    else
      return std::nullopt;
    value = value * 16 + static_cast<unsigned long>(digit);
  }
  return value;
}

}  // namespace

std::string canonical_pci_bus_id(std::string_view text) {
  // [domain:]bus:device.function
  const std::size_t dot = text.rfind('.');
  if (dot == std::string_view::npos) return "";
  const std::string_view head = text.substr(0, dot);
  const auto function = parse_hex(text.substr(dot + 1), 1);
  const std::size_t last_colon = head.rfind(':');
  if (last_colon == std::string_view::npos) return "";
  const auto device = parse_hex(head.substr(last_colon + 1), 2);
  const std::string_view rest = head.substr(0, last_colon);
  const std::size_t first_colon = rest.rfind(':');
  const auto bus = parse_hex(first_colon == std::string_view::npos ? rest : rest.substr(first_colon + 1), 2);
  const auto domain = first_colon == std::string_view::npos ? std::optional<unsigned long>{0}
                                                            : parse_hex(rest.substr(0, first_colon), 8);
  if (!function || !device || !bus || !domain || *domain > 0xFFFF || *device > 0x1F || *function > 7) return "";
  char out[32];
  std::snprintf(out, sizeof out, "%04lx:%02lx:%02lx.%lx", *domain, *bus, *device, *function);
  return out;
}

std::string cuda_version_text(int version) {
  if (version <= 0) return "unknown";
  return std::to_string(version / 1000) + "." + std::to_string((version % 1000) / 10);
}

}  // namespace substrate::cuda
