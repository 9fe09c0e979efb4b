#pragma once
// What NVML says about each GPU once, at start: the board's identity (VBIOS, serial number, board
// part number: for joins and RMAs) and its MIG instances. A CUDA process sees at most one MIG
// instance (CUDA_VISIBLE_DEVICES picks which), so the daemon needs NVML to know which instances
// exist, and probes each in workers of its own (docs/cuda.md, "MIG").
#include <string>
#include <vector>

#include "common/expected.hpp"

namespace substrate::nvml {

struct MigInstance {
  std::string uuid;               // canonical 8-4-4-4-12 of the instance (NVML's "MIG-<uuid>")
  unsigned int gpu_instance = 0;  // nvmlDeviceGetGpuInstanceId
  std::string profile;            // e.g. "1g.10gb": nvmlDeviceGetName of the instance after "MIG "
};

struct GpuInventory {
  unsigned int index = 0;  // NVML index: nvidia-smi's GPU number (PCI bus order)
  std::string uuid;        // canonical; empty when NVML did not say
  std::string pci_bus_id;  // canonical "0000:65:00.0"; empty when NVML did not say
  std::string name;        // nvmlDeviceGetName
  // nvmlDeviceGetVbiosVersion, nvmlDeviceGetSerial, nvmlDeviceGetBoardPartNumber; empty where NVML
  // does not give them (NOT_SUPPORTED on consumer boards, or any error).
  std::string vbios_version, serial, board_part_number;
  bool mig_enabled = false;  // nvmlDeviceGetMigMode, current mode (NOT_SUPPORTED: false)
  // With mig_enabled: every instance, or none and why they could not be listed (bounded:
  // "no_permission", "enumeration_failed", "no_instances") with the NVML call and error.
  std::vector<MigInstance> instances;
  std::string unlisted_reason;
  std::string detail;
};

// Loads NVML, initialises it, reads every GPU it lists, shuts NVML down. A GPU whose handle NVML
// refuses is left out. Errors: ErrorKind::unavailable when the library is absent or unusable, or
// nvmlInit / nvmlDeviceGetCount fails (the message names the NVML error).
Expected<std::vector<GpuInventory>> read_inventory();

// How many compute processes NVML lists on the GPU at `pci_bus_id` (canonical), counted without
// reading their details (docs/cuda.md, "Compute modes"). Errors: ErrorKind::unavailable when NVML
// is absent or failing, or lists no GPU at that bus id, or cannot count (the NVML error named).
Expected<unsigned int> count_compute_processes(const std::string& pci_bus_id);

// "1g.10gb" from an instance's NVML name "NVIDIA H100 80GB HBM3 MIG 1g.10gb"; the whole name
// when it has no " MIG " part.
std::string mig_profile_of(const std::string& name);

}  // namespace substrate::nvml
