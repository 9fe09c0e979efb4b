#pragma once
// The identity label set every per-device series carries, so a PromQL join with dcgm-exporter,
// node_exporter and kube-state-metrics needs no label_replace (docs/metrics.md#device-identity).
// Every per-device series is labelled through identity_labels(); a new per-device metric calls it
// too, so no series can miss a label.
#include <string>
#include <vector>

#include <prometheus/client_metric.h>

#include "probes/backends/compute_device.hpp"
#include "probes/telemetry/model.hpp"

namespace substrate::telemetry {

// Label names. `UUID`, `pci_bus_id` and `gpu` are dcgm-exporter's names with its value formats;
// our own device id is `substrate_device`, because dcgm-exporter's `device` means "nvidia3".
inline constexpr const char* kDeviceLabel = "substrate_device";
inline constexpr const char* kUuidLabel = "UUID";
inline constexpr const char* kPciBusIdLabel = "pci_bus_id";
inline constexpr const char* kIndexLabel = "gpu";

// One device's identity, formatted as the vendor's own tools print it. A field that is unknown is
// empty and its label is left out (Prometheus treats an empty label as absent anyway).
struct DeviceIdentity {
  std::string device;      // our id: "cuda3", "vulkan0"; a telemetry-only device: its local id ("nvml0")
  std::string uuid;        // NVIDIA: "GPU-5fd4…" / "MIG-…"; others: lower-case 8-4-4-4-12
  std::string pci_bus_id;  // NVIDIA: "00000000:3B:00.0" (nvidia-smi); others: "0000:c1:00.0" (sysfs, lspci)
  std::string index;       // "3": nvidia-smi's numbering, the position in PCI bus order among the vendor's devices
};

// `uuid` as `vendor`'s tools print it: for "nvidia" the canonical UUID behind "GPU-", or behind
// "MIG-" when `uuid` already carries that prefix (a MIG instance); for other vendors the
// lower-case 8-4-4-4-12. Empty when `uuid` is not a UUID.
std::string vendor_uuid(const std::string& vendor, const std::string& uuid);

// `pci_bus_id` (any spelling normalize_pci_bus_id reads) as `vendor`'s tools print it:
// "00000000:3B:00.0" for "nvidia" (nvidia-smi, NVML, dcgm-exporter), "0000:3b:00.0" otherwise.
// Empty when it is not a PCI address.
std::string vendor_pci_bus_id(const std::string& vendor, const std::string& pci_bus_id);

// The identity of `info`. `host_devices` is every compute device discovery found on the host,
// before the `devices:` selection, so the index counts the GPUs the configuration leaves out; the
// index is the rank of the device's PCI bus id among the distinct PCI bus ids of the same vendor,
// which is how nvidia-smi and NVML number GPUs. Equal to nvidia-smi's index when the daemon sees
// every GPU (no CUDA_VISIBLE_DEVICES narrowing, as the shipped unit and DaemonSet run it).
DeviceIdentity device_identity(const DeviceInfo& info, const std::vector<DeviceInfo>& host_devices);

// The identities of the devices of a joined snapshot that no compute device claimed (a GPU the
// daemon does not check, or telemetry on a host with no compute backend), one per `device` label:
// its fields gathered from every member of the group (NVML's local id "nvml3" gives index 3).
// Devices whose label is the id of one of `compute` are left out.
std::vector<DeviceIdentity> telemetry_only_identities(const Snapshot& joined,
                                                      const std::vector<DeviceIdentity>& compute);

// THE label builder for per-device series: the identity labels, then `more` (probe, reason, ...).
std::vector<prometheus::ClientMetric::Label> identity_labels(const DeviceIdentity& identity,
                                                             std::vector<prometheus::ClientMetric::Label> more = {});

}  // namespace substrate::telemetry
