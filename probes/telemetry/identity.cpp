#include "probes/telemetry/identity.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <utility>

#include "probes/telemetry/join.hpp"

namespace substrate::telemetry {
namespace {

bool has_prefix_ignoring_case(const std::string& text, const std::string& prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::toupper(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
  }
  return true;
}

std::string upper(std::string text) {
  for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

// The vendor a telemetry source reads: NVML knows only NVIDIA GPUs; sysfs sources are named by
// PCI address and print it the sysfs way.
std::string source_vendor(const std::string& source) { return source == kSourceNvml ? "nvidia" : ""; }

// "nvml3" -> "3": NVML's index is nvidia-smi's.
std::string nvml_index(const TelemetryDevice& device) {
  const std::string prefix = "nvml";
  if (device.source != kSourceNvml || device.local_id.rfind(prefix, 0) != 0) return "";
  const std::string digits = device.local_id.substr(prefix.size());
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return "";
  }
  return digits;
}

}  // namespace

std::string vendor_uuid(const std::string& vendor, const std::string& uuid) {
  const bool mig = has_prefix_ignoring_case(uuid, "MIG-");
  const std::string canonical = normalize_uuid(mig ? uuid.substr(4) : uuid);
  if (canonical.empty()) return "";
  if (vendor != "nvidia") return canonical;
  return (mig ? "MIG-" : "GPU-") + canonical;
}

std::string vendor_pci_bus_id(const std::string& vendor, const std::string& pci_bus_id) {
  const std::string canonical = normalize_pci_bus_id(pci_bus_id);  // "0000:3b:00.0"
  if (canonical.empty() || vendor != "nvidia") return canonical;
  return "0000" + upper(canonical);
}

DeviceIdentity device_identity(const DeviceInfo& info, const std::vector<DeviceInfo>& host_devices) {
  DeviceIdentity identity{info.id, vendor_uuid(info.vendor, info.uuid), vendor_pci_bus_id(info.vendor, info.pci_bus_id),
                          ""};
  const std::string own = normalize_pci_bus_id(info.pci_bus_id);
  if (own.empty()) return identity;
  // The same GPU may be found by two backends (cuda0 and vulkan1): count PCI addresses, not devices.
  std::set<std::string> addresses;
  for (const DeviceInfo& other : host_devices) {
    const std::string address = normalize_pci_bus_id(other.pci_bus_id);
    if (other.vendor == info.vendor && !address.empty()) addresses.insert(address);
  }
  addresses.insert(own);
  identity.index = std::to_string(std::distance(addresses.begin(), addresses.find(own)));
  return identity;
}

std::vector<DeviceIdentity> telemetry_only_identities(const Snapshot& joined,
                                                      const std::vector<DeviceIdentity>& compute) {
  std::set<std::string> claimed;
  for (const DeviceIdentity& identity : compute) claimed.insert(identity.device);
  std::vector<DeviceIdentity> out;
  std::map<std::string, std::size_t> position;
  for (const TelemetryDevice& member : joined.devices) {
    const std::string& label = member.device.empty() ? member.local_id : member.device;
    if (claimed.count(label)) continue;
    auto [it, inserted] = position.emplace(label, out.size());
    if (inserted) out.push_back(DeviceIdentity{label, "", "", ""});
    DeviceIdentity& identity = out[it->second];
    const std::string vendor = source_vendor(member.source);
    // NVML's spelling wins over a sysfs source's: NVML is the NVIDIA tools' own view.
    const bool authoritative = !vendor.empty();
    const std::string uuid = vendor_uuid(vendor, member.uuid);
    const std::string pci = vendor_pci_bus_id(vendor, member.pci_bus_id);
    if (!uuid.empty() && (identity.uuid.empty() || authoritative)) identity.uuid = uuid;
    if (!pci.empty() && (identity.pci_bus_id.empty() || authoritative)) identity.pci_bus_id = pci;
    if (identity.index.empty()) identity.index = nvml_index(member);
  }
  return out;
}

std::vector<prometheus::ClientMetric::Label> identity_labels(const DeviceIdentity& identity,
                                                             std::vector<prometheus::ClientMetric::Label> more) {
  std::vector<prometheus::ClientMetric::Label> labels{{kDeviceLabel, identity.device}};
  if (!identity.uuid.empty()) labels.push_back({kUuidLabel, identity.uuid});
  if (!identity.pci_bus_id.empty()) labels.push_back({kPciBusIdLabel, identity.pci_bus_id});
  if (!identity.index.empty()) labels.push_back({kIndexLabel, identity.index});
  labels.insert(labels.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  return labels;
}

}  // namespace substrate::telemetry
