#include "daemon/status.hpp"

#include <map>

#include "probes/core/registry.hpp"
#include "probes/telemetry/join.hpp"

namespace substrate {

using json = nlohmann::json;

std::string status_line(const DaemonView& view) {
  std::map<Health, int> counts;
  for (const DeviceView& d : view.devices) {
    ++counts[effective_verdict(d.stats->verdict, d.stats->telemetry_conditions).health];
  }
  std::string line;
  for (Health h : k_all_health) {
    if (counts[h]) line += (line.empty() ? "" : ", ") + std::to_string(counts[h]) + " " + to_string(h);
  }
  return line.empty() ? "no devices" : line;
}

json status_json(const DaemonView& view) {
  json devices = json::array();
  for (const DeviceView& d : view.devices) {
    const DeviceStats& slot = *d.stats;
    const EffectiveVerdict verdict = effective_verdict(slot.verdict, slot.telemetry_conditions);
    json probes = json::object();
    for (const auto& [probe, stats] : slot.probes) {
      json results = json::array();
      for (const ProbeResult& r : stats.last_results) {
        results.push_back({{"spec", spec_key(r.spec)},
                           {"seed", r.spec.seed},
                           {"status", to_string(r.status)},
                           {"fingerprint", r.fingerprint},
                           {"error_budget_used", r.check.budget_used},
                           {"mismatched_elements", r.check.mismatched},
                           {"drill", r.drill()},
                           {"error", r.error}});
      }
      probes[probe] = {{"runs", stats.runs},         {"checked_runs", stats.checked_runs},
                       {"last_run", stats.last_run}, {"last_success", stats.last_success},
                       {"drill", stats.drill},       {"cross_device_mismatch", stats.cross_device},
                       {"results", results}};
    }
    json worker = {{"running", d.worker_running}, {"exits", slot.worker_exits}};
    if (d.worker_pid != 0) worker["pid"] = d.worker_pid;
    devices.push_back({{"device", slot.info},
                       {"health", to_string(verdict.health)},
                       {"reasons", verdict.reasons},
                       {"telemetry_sources", telemetry::telemetry_sources(*view.telemetry, slot.info.id)},
                       {"device_changes", slot.recorded_changes},
                       {"worker", worker},
                       {"probes", probes},
                       {"last_diag", slot.last_diag ? diag::to_json(*slot.last_diag) : json(nullptr)}});
  }
  nlohmann::json pod_resources = nullptr;  // pod attribution off
  if (view.pod_resources) {
    pod_resources = {{"socket", view.pod_resources_socket},
                     {"up", view.pod_resources->up},
                     {"assignments", view.pod_resources->assignments.size()},
                     {"last_error", view.pod_resources->last_error}};
  }
  return {{"version", SUBSTRATE_VERSION},
          {"config", view.config_source},
          {"config_last_reload_successful", view.reload_successful},
          {"devices", devices},
          {"backend_notes", *view.backend_notes},
          // GPUs found and not probed, with the reason (a MIG GPU whose instances are unknown).
          {"unprobed", view.unprobed ? nlohmann::json(*view.unprobed) : nlohmann::json::array()},
          {"telemetry_notes", view.telemetry->notes},
          {"pod_resources", pod_resources}};
}

}  // namespace substrate
