#pragma once
// What the daemon knows and shows: per device its verdict, probe statistics and worker counts,
// plus the daemon-wide facts /metrics and /status report. The service owns these records and
// hands a read-only DaemonView to the renderers (daemon/metrics_export.hpp, daemon/status.hpp),
// so rendering is tested without a running daemon.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/diag.hpp"
#include "daemon/gpu_inventory.hpp"
#include "daemon/kubelet/pod_resources.hpp"
#include "daemon/scheduler.hpp"
#include "daemon/verdict.hpp"
#include "probes/core/probe_result.hpp"
#include "probes/telemetry/model.hpp"

namespace substrate {

// One probe on one device, from its scheduled runs (on-demand runs are not counted here).
struct ProbeStats {
  std::uint64_t runs = 0;
  std::map<Reason, std::uint64_t> failures;
  std::uint64_t fingerprint_changes = 0;
  // Checked work of every pass of the scheduled runs (daemon/checked_work.hpp): kernel runs
  // whose check ran, their floating-point operations and the device memory bytes they tested.
  std::uint64_t checked_runs = 0;
  double checked_flops = 0.0;
  double checked_bytes = 0.0;
  double spent_seconds = 0.0;  // device seconds (kernels plus generation) of every pass: the duty cycle used
  // Of the last run, summed (or, for budget and slowdown, the maximum) over its specs.
  double budget = 0.0;
  double budget_drift = 0.0;      // daemon/error_budget.hpp: max over specs, 0 without a reference
  int guaranteed_bit = 32;        // worst (highest) stated guaranteed bit of the checked results
  double guaranteed_share = 0.0;  // least share of guaranteed elements among them
  std::uint64_t mismatched = 0;
  double device_seconds = 0.0;
  double wall_seconds = 0.0;
  double slowdown_ratio = 0.0;  // 0: no baseline yet
  double last_run = 0.0;        // unix seconds
  double last_success = 0.0;    // unix seconds
  bool drill = false;
  bool cross_device = false;
  std::vector<ProbeResult> last_results;
};

// One device as the daemon reports it.
struct DeviceStats {
  DeviceInfo info;
  VerdictState verdict;
  std::vector<TelemetryFinding> telemetry_conditions;  // degraded conditions present now
  std::map<std::string, ProbeStats> probes;            // probes that ran on the device (not only skipped)
  std::map<std::pair<std::string, SkipKind>, std::uint64_t> skipped;  // scheduled rounds, by probe and kind
  std::map<std::string, std::uint64_t> worker_exits;                  // by outcome: ok, hung, crashed, error
  std::map<std::string, std::uint64_t> baseline_resets;               // by reason label
  std::map<std::string, std::uint64_t> device_changes;                // by changed field ("what"); new_device
  nlohmann::json recorded_changes = nlohmann::json::array();          // for /status (daemon/device_changes.hpp)
  std::map<std::string, ProbeTimer> schedule;  // enabled probes: interval, next run, deferral reason
  std::optional<diag::Summary> last_diag;      // the last `substrated diag` (docs/diag.md)
};

// A device and its worker, at the moment of a scrape.
struct DeviceView {
  const DeviceStats* stats = nullptr;
  bool worker_running = false;
  int worker_pid = 0;  // 0: no worker process (none running, or it could not be spawned)
};

// Everything /metrics and /status render; pointers into the service's state, valid for one call.
struct DaemonView {
  std::vector<DeviceView> devices;
  // Every compute device discovery found, before the `devices:` selection: the identity labels
  // number GPUs among all of them (probes/telemetry/identity.hpp). A view without them numbers
  // each device among `devices`' alone.
  std::vector<DeviceInfo> host_devices;
  std::string config_source;
  bool reload_successful = true;
  double reload_timestamp = 0.0;                            // unix seconds of the last successful load
  const std::vector<std::string>* backend_notes = nullptr;  // discovery's notes, "<backend>: ..."
  const std::vector<UnprobedGpu>* unprobed = nullptr;       // GPUs found and not probed (daemon/gpu_inventory.hpp)
  const telemetry::Snapshot* telemetry = nullptr;           // the last joined telemetry snapshot
  double telemetry_read_at = 0.0;                           // unix time the last read completed; 0: none
  std::uint64_t telemetry_overruns = 0;                     // reads skipped: the previous one still ran
  std::uint32_t expected_devices = 0;                       // config: devices this host should have; 0: none
  std::string node_name;                                    // $NODE_NAME, else the host name
  std::string host_name;                                    // uname's nodename
  double max_staleness_seconds = 0.0;                       // config: the longest a busy device defers a probe
  // Pod attribution (daemon/kubelet/pod_resources.hpp): null when it is off.
  const kubelet::PodResourcesWatcher::Snapshot* pod_resources = nullptr;
  std::string pod_resources_socket;
};

}  // namespace substrate
