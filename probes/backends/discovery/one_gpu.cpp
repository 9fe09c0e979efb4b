#include "probes/backends/discovery/one_gpu.hpp"

#include <algorithm>

namespace substrate {

bool same_physical_device(const DeviceInfo& a, const DeviceInfo& b) {
  if (a.backend == b.backend) return false;
  if (!a.uuid.empty() && a.uuid == b.uuid) return true;
  return !a.pci_bus_id.empty() && a.pci_bus_id == b.pci_bus_id;
}

std::vector<std::size_t> twins_to_drop(const std::vector<DeviceInfo>& infos, const std::vector<std::string>& preference,
                                       std::vector<std::string>& notes) {
  auto rank = [&](const DeviceInfo& info) {
    return static_cast<std::size_t>(std::find(preference.begin(), preference.end(), info.backend) - preference.begin());
  };
  std::vector<bool> dropped(infos.size(), false);
  for (std::size_t i = 0; i < infos.size(); ++i) {
    for (std::size_t j = i + 1; j < infos.size() && !dropped[i]; ++j) {
      if (dropped[j] || !same_physical_device(infos[i], infos[j])) continue;
      const std::size_t keep = rank(infos[j]) < rank(infos[i]) ? j : i;
      const std::size_t drop = keep == i ? j : i;
      dropped[drop] = true;
      notes.push_back(infos[drop].backend + ": " + infos[drop].id + " (" + infos[drop].name + ") is the GPU of " +
                      infos[keep].id + ": probed through " + infos[keep].backend + " (backend_preference)");
    }
  }
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < infos.size(); ++i) {
    if (dropped[i]) out.push_back(i);
  }
  return out;
}

}  // namespace substrate
