#pragma once
// What NVML says about the GPUs, applied to the discovery's device list (docs/cuda.md, "MIG" and
// "Board identity"). The board identity (VBIOS, serial, board part number) goes on every device of
// the GPU. A CUDA process sees at most one MIG instance, so a MIG GPU's CUDA slice is replaced by
// one device per instance NVML lists, each discovered and probed in workers of its own with
// CUDA_VISIBLE_DEVICES=MIG-<uuid>; a MIG GPU whose instances cannot be listed is reported
// unprobed with the reason, never silently probed through one slice.
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/expected.hpp"
#include "probes/backends/compute_device.hpp"
#include "probes/telemetry/nvml/inventory.hpp"

namespace substrate {

// A GPU (or one MIG instance) the daemon does not probe, and why. `reason` is bounded (a metric
// label): "nvml_unavailable" (a MIG slice seen through CUDA and NVML absent or failing; with NVML
// working and not listing the slice's GPU as MIG-enabled: "enumeration_failed"),
// "no_permission", "enumeration_failed", "no_instances" (nvml::GpuInventory::unlisted_reason) or
// "instance_not_visible" (CUDA did not show a listed instance under its CUDA_VISIBLE_DEVICES).
struct UnprobedGpu {
  std::string uuid;        // canonical: the parent GPU's (the instance's for instance_not_visible); may be empty
  std::string pci_bus_id;  // canonical, may be empty
  std::string name;
  std::string reason;
  std::string detail;  // one line: the NVML call and error, or what was missing
};
void to_json(nlohmann::json& out, const UnprobedGpu& gpu);
void from_json(const nlohmann::json& in, UnprobedGpu& gpu);

// What the daemon does with the MIG GPUs of a discovery: the instances to discover one by one
// (each a DeviceInfo with id, uuid, pci_bus_id, the mig_* fields and the parent's board identity
// set, the rest filled by that instance's own discovery) and the GPUs left unprobed.
struct MigPlan {
  std::vector<DeviceInfo> instances;
  std::vector<UnprobedGpu> unprobed;
};

// Applies NVML's inventory (`gpus`; an error: NVML absent or failing) to `devices`:
// - every device on the PCI bus id of a listed GPU gets its VBIOS, serial and board part number;
// - every CUDA view of a MIG-enabled GPU leaves `devices`: a CUDA device on the PCI bus id of a
//   GPU with MIG on, or whose name says " MIG " (CUDA names an instance "<GPU> MIG <profile>").
//   Each listed instance becomes an instance to discover, with id "cuda<NVML index>-mig<GPU
//   instance id>" (the NVML index is nvidia-smi's GPU number); a GPU whose instances could not be
//   listed, and a MIG slice no listed GPU accounts for, become unprobed.
MigPlan apply_inventory(std::vector<DeviceInfo>& devices, const Expected<std::vector<nvml::GpuInventory>>& gpus);

// Gives `device`, as a worker's discovery saw a MIG instance (CUDA's own id there, e.g. "cuda0"),
// the daemon's id, MIG labels and board identity from `planned` (apply_inventory's instance).
void take_planned_identity(DeviceInfo& device, const DeviceInfo& planned);

// A run request (docs/worker-protocol.md) for `device`: unchanged for a whole device; for a MIG
// instance with its own CUDA_VISIBLE_DEVICES and the labels its results carry ("mig_device").
nlohmann::json run_request_for(const DeviceInfo& device, nlohmann::json request);

// The CUDA_VISIBLE_DEVICES value that shows a worker `device` alone: "MIG-<uuid>" for an instance,
// empty for a whole device (the worker's default view).
std::string cuda_visible_devices_for(const DeviceInfo& device);

}  // namespace substrate
