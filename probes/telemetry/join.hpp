#pragma once
// Joining telemetry devices to compute devices, so the same GPU carries the same `device` label in
// telemetry and probe metrics and gets one verdict.
#include <string>
#include <string_view>
#include <vector>

#include "probes/backends/compute_device.hpp"
#include "probes/telemetry/model.hpp"

namespace substrate::telemetry {

// "0000:65:00.0" from any common spelling (NVML's "00000000:65:00.0", upper case, no domain);
// empty when `text` is not a PCI address.
std::string normalize_pci_bus_id(std::string_view text);

// Lower-case 8-4-4-4-12 from NVML's "GPU-..." or any 32-hex-digit spelling; empty otherwise.
std::string normalize_uuid(std::string_view text);

// True when both know the same PCI bus id, or, failing that, the same UUID.
bool same_device(const TelemetryDevice& telemetry, const DeviceInfo& compute);

// Sets TelemetryDevice::device for every device. Telemetry devices that share a PCI bus id form
// one physical device and get one label: the id of the first compute device matching any of them
// (by PCI bus id, then UUID), otherwise the local id of the preferred member (nvml, amdgpu, accel,
// hwmon in that order), e.g. "nvml0" or "drm-card0".
Snapshot join_devices(Snapshot snapshot, const std::vector<DeviceInfo>& compute_devices);

// The sources joined to `device_id` in a joined snapshot, in snapshot order without repeats, e.g.
// {"nvml"} or {"amdgpu", "hwmon"}; what `substrated devices` lists per device.
std::vector<std::string> telemetry_sources(const Snapshot& joined, const std::string& device_id);

}  // namespace substrate::telemetry
