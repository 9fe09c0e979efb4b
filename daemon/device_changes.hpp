#pragma once
// "Did the machine change?": the identity and environment recorded per device in the state, and
// the pure comparison of a device's recorded fields with what it reports now. The daemon logs
// every change, counts it (substrate_device_changes_total{device,what}), shows it in /status,
// and resets the device's baselines when a change makes its fingerprints incomparable.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "daemon/state_store.hpp"
#include "probes/backends/compute_device.hpp"

namespace substrate {

// The recorded fields, in a fixed order: name, backend, vendor, device_type, driver,
// api_version, kernel_build, uuid, pci_bus_id, memory_bytes, compute_units, and where NVML gives
// them vbios_version, serial, board_part_number.
const std::vector<std::string>& recorded_device_fields();
// Fields whose change resets baselines: the driver, the kernel binaries, the API runtime, the
// device name (lavapipe's name carries its LLVM version, i.e. its code generator), the VBIOS
// (firmware: reason driver_change), and the board's serial or part number (under one UUID: the
// board was reworked or its InfoROM rewritten; reason device_change).
bool field_resets_baselines(const std::string& field);

DeviceRecord device_record(const DeviceInfo& info, double now);

struct FieldChange {
  std::string field;
  std::string before, after;
};

struct DeviceChanges {
  bool first_seen = false;           // nothing recorded for this device (or its slot)
  std::vector<FieldChange> changed;  // recorded field that differs, in recorded order
  // A different device in a recorded slot: same PCI bus id, different UUID. Its key in state.
  std::optional<std::string> replaced_key;
  std::string replaced_uuid;
  bool reset_baselines = false;
  // Labels for substrate_baseline_resets_total{reason}, each once: driver_change (driver or API
  // version), kernel_change, device_change (name changed, or a new device in the slot).
  std::vector<std::string> reset_reasons;
  bool any() const { return !changed.empty() || replaced_key.has_value(); }
  // Labels for substrate_device_changes_total{what}: each changed field, or "new_device".
  std::vector<std::string> what() const;
};

// Compares the device's current record with what `known` (the state's devices, by key) holds.
// `key` is the device's state key (its UUID, or its id when it has none). A record absent under
// `key` but present under another key with the same non-empty PCI bus id (and, for a MIG
// instance, the same GPU instance id: the instances of one GPU share its bus id) and a different
// UUID means the GPU in that slot was swapped: a new device (replaced_key set, baselines reset).
// A device never seen anywhere is first_seen with no changes. Fields absent from an older record
// (written before they were recorded) are not reported as changes.
DeviceChanges detect_device_changes(const std::map<std::string, DeviceRecord>& known, const std::string& key,
                                    const DeviceRecord& current);

// One log line: "driver 'A' -> 'B', kernel_build ...; baselines reset".
std::string describe(const DeviceChanges& changes);
void to_json(nlohmann::json& out, const DeviceChanges& changes);

}  // namespace substrate
