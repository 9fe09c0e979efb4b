#include "daemon/device_changes.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace substrate {
namespace {

// The reason labels of substrate_baseline_resets_total (docs/metrics.md).
std::string reset_reason(const std::string& field) {
  // The VBIOS is the board's firmware: part of the stack below the kernels, like the driver.
  if (field == "driver" || field == "api_version" || field == "vbios_version") return "driver_change";
  if (field == "kernel_build") return "kernel_change";
  return "device_change";
}

}  // namespace

const std::vector<std::string>& recorded_device_fields() {
  static const std::vector<std::string> fields{
      "name", "backend",    "vendor",       "device_type",   "driver",        "api_version", "kernel_build",
      "uuid", "pci_bus_id", "memory_bytes", "compute_units", "vbios_version", "serial",      "board_part_number"};
  return fields;
}

bool field_resets_baselines(const std::string& field) {
  return field == "driver" || field == "kernel_build" || field == "api_version" || field == "name" ||
         field == "vbios_version" || field == "serial" || field == "board_part_number";
}

DeviceRecord device_record(const DeviceInfo& info, double now) {
  DeviceRecord record;
  record.fields = {{"name", info.name},
                   {"backend", info.backend},
                   {"vendor", info.vendor},
                   {"device_type", info.device_type},
                   {"driver", info.driver},
                   {"api_version", info.api_version},
                   {"kernel_build", info.kernel_build},
                   {"uuid", info.uuid},
                   {"pci_bus_id", info.pci_bus_id},
                   {"memory_bytes", std::to_string(info.memory_bytes)},
                   {"compute_units", std::to_string(info.compute_units)}};
  // Recorded only where NVML gave them: a start without NVML (or a board that does not say) is
  // no change, and a later start that reads them again compares with what was last recorded.
  for (const auto& [field, value] : {std::pair<const char*, const std::string&>{"vbios_version", info.vbios_version},
                                     {"serial", info.serial},
                                     {"board_part_number", info.board_part_number}}) {
    if (!value.empty()) record.fields[field] = value;
  }
  // The instances of a MIG GPU share its PCI bus id: the GPU instance id is part of the slot
  // (detect_device_changes), not a compared field.
  if (info.is_mig()) record.fields["mig_gpu_instance"] = std::to_string(info.mig_gpu_instance);
  record.updated_at = now;
  return record;
}

std::vector<std::string> DeviceChanges::what() const {
  std::vector<std::string> labels;
  if (replaced_key) labels.push_back("new_device");
  for (const FieldChange& c : changed) labels.push_back(c.field);
  return labels;
}

DeviceChanges detect_device_changes(const std::map<std::string, DeviceRecord>& known, const std::string& key,
                                    const DeviceRecord& current) {
  DeviceChanges changes;
  auto field = [](const DeviceRecord& r, const std::string& name) -> std::optional<std::string> {
    auto it = r.fields.find(name);
    if (it == r.fields.end()) return std::nullopt;
    return it->second;
  };
  auto previous = known.find(key);
  if (previous == known.end()) {
    const auto pci = field(current, "pci_bus_id");
    const auto uuid = field(current, "uuid");
    if (pci && !pci->empty()) {
      for (const auto& [other_key, record] : known) {
        const auto other_pci = field(record, "pci_bus_id");
        const auto other_uuid = field(record, "uuid");
        if (other_pci == pci && field(record, "mig_gpu_instance") == field(current, "mig_gpu_instance") &&
            other_uuid.value_or("") != uuid.value_or("")) {
          changes.replaced_key = other_key;
          changes.replaced_uuid = other_uuid.value_or("");
          changes.reset_baselines = true;
          changes.reset_reasons.push_back("device_change");
          return changes;
        }
      }
    }
    changes.first_seen = true;
    return changes;
  }
  for (const std::string& name : recorded_device_fields()) {
    const auto before = field(previous->second, name);
    const auto after = field(current, name);
    if (!before || !after || *before == *after) continue;  // not recorded then (older state), or equal
    changes.changed.push_back({name, *before, *after});
    if (field_resets_baselines(name)) {
      changes.reset_baselines = true;
      const std::string reason = reset_reason(name);
      if (std::find(changes.reset_reasons.begin(), changes.reset_reasons.end(), reason) ==
          changes.reset_reasons.end()) {
        changes.reset_reasons.push_back(reason);
      }
    }
  }
  return changes;
}

std::string describe(const DeviceChanges& changes) {
  std::string out;
  if (changes.replaced_key) {
    out = "a different device is in this slot (was uuid '" + changes.replaced_uuid + "', state key '" +
          *changes.replaced_key + "'): new device";
  }
  for (const FieldChange& c : changes.changed) {
    out += (out.empty() ? "" : ", ") + c.field + " '" + c.before + "' -> '" + c.after + "'";
  }
  if (out.empty()) out = changes.first_seen ? "first seen" : "unchanged";
  if (changes.reset_baselines) out += "; baselines reset";
  return out;
}

void to_json(nlohmann::json& out, const DeviceChanges& changes) {
  nlohmann::json fields = nlohmann::json::array();
  for (const FieldChange& c : changes.changed) {
    fields.push_back({{"field", c.field},
                      {"before", c.before},
                      {"after", c.after},
                      {"resets_baselines", field_resets_baselines(c.field)}});
  }
  out = {{"first_seen", changes.first_seen},
         {"changed", fields},
         {"new_device", changes.replaced_key.has_value()},
         {"replaced_uuid", changes.replaced_uuid},
         {"reset_baselines", changes.reset_baselines},
         {"reset_reasons", changes.reset_reasons}};
}

}  // namespace substrate
