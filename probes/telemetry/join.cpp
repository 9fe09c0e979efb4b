#include "probes/telemetry/join.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <optional>

namespace substrate::telemetry {

namespace {

std::optional<unsigned long> parse_hex(std::string_view text, std::size_t max_digits) {
  if (text.empty() || text.size() > max_digits) return std::nullopt;
  unsigned long value = 0;
  for (char c : text) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return std::nullopt;
    value = value * 16 + static_cast<unsigned long>(std::isdigit(static_cast<unsigned char>(c))
                                                        ? c - '0'
                                                        : std::tolower(static_cast<unsigned char>(c)) - 'a' + 10);
  }
  return value;
}

int source_rank(const std::string& source) {
  static const std::vector<std::string> order = {kSourceNvml, kSourceAmdgpu, kSourceAccel, kSourceHwmon};
  return static_cast<int>(std::find(order.begin(), order.end(), source) - order.begin());
}

}  // namespace

std::string normalize_pci_bus_id(std::string_view text) {
  // [domain:]bus:device.function
  const std::size_t dot = text.rfind('.');
  if (dot == std::string_view::npos) return {};
  const std::string_view head = text.substr(0, dot);
  const std::size_t last_colon = head.rfind(':');
  if (last_colon == std::string_view::npos) return {};
  const std::string_view front = head.substr(0, last_colon);
  const std::size_t first_colon = front.rfind(':');
  const std::string_view domain_text = first_colon == std::string_view::npos ? "0" : front.substr(0, first_colon);
  const std::string_view bus_text = first_colon == std::string_view::npos ? front : front.substr(first_colon + 1);
  const auto domain = parse_hex(domain_text, 8);
  const auto bus = parse_hex(bus_text, 2);
  const auto device = parse_hex(head.substr(last_colon + 1), 2);
  const auto function = parse_hex(text.substr(dot + 1), 1);
  if (!domain || !bus || !device || !function || *device > 0x1f || *function > 7) return {};
  char out[32];
  std::snprintf(out, sizeof out, "%04lx:%02lx:%02lx.%lx", *domain, *bus, *device, *function);
  return out;
}

std::string normalize_uuid(std::string_view text) {
  if (text.size() >= 4 && (text.substr(0, 4) == "GPU-" || text.substr(0, 4) == "gpu-")) text.remove_prefix(4);
  std::string hex;
  for (char c : text) {
    if (c == '-') continue;
    if (!std::isxdigit(static_cast<unsigned char>(c))) return {};
    hex.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  if (hex.size() != 32) return {};
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" + hex.substr(16, 4) + "-" +
         hex.substr(20);
}

bool same_device(const TelemetryDevice& telemetry, const DeviceInfo& compute) {
  const std::string telemetry_pci = normalize_pci_bus_id(telemetry.pci_bus_id);
  const std::string compute_pci = normalize_pci_bus_id(compute.pci_bus_id);
  if (!telemetry_pci.empty() && !compute_pci.empty()) return telemetry_pci == compute_pci;
  const std::string telemetry_uuid = normalize_uuid(telemetry.uuid);
  return !telemetry_uuid.empty() && telemetry_uuid == normalize_uuid(compute.uuid);
}

Snapshot join_devices(Snapshot snapshot, const std::vector<DeviceInfo>& compute_devices) {
  auto& devices = snapshot.devices;
  // Group key: the PCI bus id, or the device's own position when it has none.
  auto group_of = [&](std::size_t index) {
    const std::string pci = normalize_pci_bus_id(devices[index].pci_bus_id);
    return pci.empty() ? "#" + std::to_string(index) : pci;
  };
  std::map<std::string, std::string> matched;    // group -> compute device id
  std::map<std::string, std::size_t> preferred;  // group -> index of the member naming the group
  for (std::size_t i = 0; i < devices.size(); ++i) {
    const std::string group = group_of(i);
    auto [it, inserted] = preferred.emplace(group, i);
    if (!inserted && source_rank(devices[i].source) < source_rank(devices[it->second].source)) it->second = i;
    if (matched.count(group)) continue;
    for (const DeviceInfo& compute : compute_devices) {
      if (same_device(devices[i], compute)) {
        matched.emplace(group, compute.id);
        break;
      }
    }
  }
  for (std::size_t i = 0; i < devices.size(); ++i) {
    const std::string group = group_of(i);
    const auto match = matched.find(group);
    devices[i].device = match != matched.end() ? match->second : devices[preferred.at(group)].local_id;
  }
  return snapshot;
}

std::vector<std::string> telemetry_sources(const Snapshot& joined, const std::string& device_id) {
  std::vector<std::string> sources;
  for (const TelemetryDevice& device : joined.devices) {
    if (device.device == device_id && std::find(sources.begin(), sources.end(), device.source) == sources.end()) {
      sources.push_back(device.source);
    }
  }
  return sources;
}

}  // namespace substrate::telemetry
