#include "probes/backends/cuda/fatbin.hpp"

#include <cctype>
#include <cstring>

namespace substrate::cuda {

namespace {

template <class T>
T read_le(std::span<const unsigned char> bytes, std::size_t at) {
  T value = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) value |= static_cast<T>(bytes[at + i]) << (8 * i);
  return value;
}

constexpr std::uint32_t k_fatbin_magic = 0xBA55ED50u;
constexpr std::size_t k_entry_min_header = 32;

}  // namespace

std::string FatbinEntry::target() const {
  const char* prefix = kind == Kind::ptx ? "compute_" : kind == Kind::elf ? "sm_" : "unknown_";
  return prefix + std::to_string(arch);
}

Expected<std::vector<FatbinEntry>> list_fatbin(std::span<const unsigned char> bytes) {
  auto corrupt = [](const std::string& why) { return Error{ErrorKind::corrupt, "fatbin: " + why}; };
  if (bytes.size() < 16) return corrupt("shorter than its header");
  if (read_le<std::uint32_t>(bytes, 0) != k_fatbin_magic) return corrupt("bad magic");
  const std::uint16_t header = read_le<std::uint16_t>(bytes, 6);
  const std::uint64_t payload = read_le<std::uint64_t>(bytes, 8);
  if (header < 16 || header > bytes.size() || payload > bytes.size() - header) return corrupt("sizes exceed the data");
  std::vector<FatbinEntry> entries;
  std::uint64_t at = header;
  const std::uint64_t end = header + payload;
  while (at < end) {
    if (end - at < k_entry_min_header) return corrupt("truncated entry header");
    FatbinEntry entry;
    const std::uint16_t kind = read_le<std::uint16_t>(bytes, at);
    entry.kind = kind == 1 ? FatbinEntry::Kind::ptx : kind == 2 ? FatbinEntry::Kind::elf : FatbinEntry::Kind::other;
    const std::uint32_t entry_header = read_le<std::uint32_t>(bytes, at + 4);
    entry.payload_bytes = read_le<std::uint64_t>(bytes, at + 8);
    entry.arch = read_le<std::uint32_t>(bytes, at + 28);
    if (entry_header < k_entry_min_header || entry_header > end - at || entry.payload_bytes > end - at - entry_header) {
      return corrupt("entry sizes exceed the data");
    }
    entries.push_back(entry);
    at += entry_header + entry.payload_bytes;
  }
  return entries;
}

namespace {

// The "X.Y" after `directive` at the start of a line, or empty.
std::string version_after(std::string_view text, std::string_view directive) {
  for (std::size_t at = text.find(directive); at != std::string_view::npos; at = text.find(directive, at + 1)) {
    if (at != 0 && text[at - 1] != '\n') continue;
    std::size_t end = at + directive.size();
    while (end < text.size() && (std::isdigit(static_cast<unsigned char>(text[end])) || text[end] == '.')) ++end;
    return std::string(text.substr(at + directive.size(), end - at - directive.size()));
  }
  return {};
}

}  // namespace

std::string ptx_isa_version(std::string_view ptx) { return version_after(ptx, ".version "); }

std::string native_ptx_isa_version(std::string_view ptx) {
  return version_after(ptx, "// substrate: nvcc wrote .version ");
}

}  // namespace substrate::cuda
