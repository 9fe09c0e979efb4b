#pragma once
// `substrated diag`: the pure parts of a diagnostic run (docs/diag.md): levels and their
// durations, the specs each level runs on a device, the work and throughput of one result, the
// per-device record that iteration results and telemetry samples fold into, the peer
// comparison, the verdicts, and the JSON document the HTML report reads. Running it (workers,
// telemetry thread, signals, progress) is daemon/diag_run.hpp.
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/expected.hpp"
#include "probes/backends/compute_device.hpp"
#include "probes/core/probe_result.hpp"
#include "probes/telemetry/model.hpp"

namespace substrate::diag {

inline constexpr int k_min_level = 1;
inline constexpr int k_max_level = 4;
// Default of --min-peer-throughput-share: gpu-fryer's rule (a GPU more than 10% below the best
// identical GPU of the host fails).
inline constexpr double k_default_min_peer_share = 0.9;
// Results a device record keeps at most (beyond the first of each spec): a fault that fails
// every iteration of an hour-long run would otherwise keep thousands of alike results.
inline constexpr std::size_t k_max_kept_results = 1000;

// "1".."4" or the aliases quick, medium, long, extended; invalid_argument naming the text.
Expected<int> parse_level(const std::string& text);
// Seconds a level repeats its specs for (dcgmi diag's -r 1..4 orders of magnitude): 1: one pass
// (0), 2: 120, 3: 900, 4: 3600.
double default_duration_seconds(int level);

// The specs a level runs on `device`, each repeated for the duration (docs/diag.md, "Sizes per
// level", says which and why): level 1 is `substrated probe`'s default set; levels 2-4 run GEMM
// in exact mode in every dtype at a size that fills the device, attention at a longer sequence,
// and the memory probe over most of the free memory. GEMM and attention sizes are halved until
// their device buffers take at most half of the device's memory (DeviceInfo::memory_bytes).
std::vector<ProbeSpec> level_specs(int level, const DeviceInfo& device);

// What one result achieved: FLOP/s (gemm, attention: flops_of in daemon/checked_work.hpp /
// device_seconds) or bytes/s
// (memory: the probe's measured bandwidth); nullopt when the run produced no timing.
std::optional<double> throughput_of(const ProbeResult& result);

// One telemetry reading of a device during the run; absent fields: the source gave none.
struct TelemetrySample {
  double t_seconds = 0.0;  // since the diag started
  std::optional<double> temperature_celsius;
  std::optional<double> sm_clock_hertz;
  std::optional<double> power_watts;
  std::vector<std::string> throttle_reasons;  // the active clock-event reasons
  std::uint64_t ecc_uncorrected = 0;          // volatile uncorrected ECC errors, every location
  std::uint64_t ecc_corrected = 0;
  std::uint64_t xid_events = 0;  // XID events the watcher saw since it started
};
// The sample of a joined telemetry device's readings at `t_seconds`.
TelemetrySample sample_of(const telemetry::Readings& readings, double t_seconds);

struct TimelineEntry {
  double t_seconds = 0.0;
  std::string probe;
  std::string spec_key;
  std::uint64_t iteration = 0;
  std::string status;
  std::optional<double> throughput;
  TelemetrySample telemetry;  // the newest sample at the time (fields null without telemetry)
};

// Everything the diag learns about one device.
struct DeviceRecord {
  DeviceInfo device;
  std::string refused;                  // non-empty: not run (busy device, no specs), and why
  std::string error;                    // the worker's own error, or how it ended without finishing
  std::uint64_t iterations = 0;         // passes over the spec list with at least one result
  std::uint64_t failed_iterations = 0;  // passes with a fail (check, fingerprint change)
  std::uint64_t error_results = 0;      // results that could not run (error, hung, crashed)
  std::uint64_t fail_results = 0;
  std::uint64_t checked_results = 0;   // results that ran their check (pass or fail)
  std::vector<ProbeResult> results;    // every failing one, the first and last of each spec
  std::uint64_t results_left_out = 0;  // failing results beyond k_max_kept_results
  std::vector<TimelineEntry> timeline;
  std::vector<TelemetrySample> telemetry;  // every sample taken of this device
  std::vector<std::string> telemetry_notes;
  std::optional<double> peer_throughput_share;  // set by compare_peers
  std::string verdict;                          // set by decide_verdicts

  // Folds the result of spec `index`, pass `iteration`. `fingerprint_matches_first` false (the
  // worker compared the output's fingerprint with the first pass's) turns a passing check into
  // a fail with error_kind hardware_fault: fixed-order kernels must repeat their bits.
  void add(ProbeResult result, std::size_t index, std::uint64_t iteration,
           std::optional<bool> fingerprint_matches_first, double t_seconds, const TelemetrySample& newest);

 private:
  std::set<std::size_t> seen_;                 // spec indexes with a result
  std::map<std::size_t, std::size_t> newest_;  // spec index -> position of its newest passing result
  std::optional<std::uint64_t> failed_pass_;   // the newest pass counted as failed
};

// Iteration-to-iteration consistency of one spec's throughput over its passing iterations.
struct ThroughputSpread {
  double min = 0.0, median = 0.0, max = 0.0;
  std::uint64_t samples = 0;
};
// The spread of a device's throughput for each spec key (FLOP/s or bytes/s, throughput_of).
std::map<std::string, ThroughputSpread> throughput_spread(const DeviceRecord& record);

// Peer comparison: devices of the same name (model) and backend are peers; for each spec key
// both ran, a device's median throughput over the best peer's; a device's share is the lowest
// of these. Left unset for a device without a peer or without timings.
void compare_peers(std::vector<DeviceRecord>& records);

// Sets each record's verdict: "skipped" (refused, or every run skipped: a probe the backend
// lacks, a device whose memory or compute a workload holds), "fail" (a failed check or fingerprint, or a
// peer share below `min_peer_share`), "error" (nothing failed but a run or the worker could not
// run), "pass"; an interrupted run passes nothing: a device that would pass is "error".
void decide_verdicts(std::vector<DeviceRecord>& records, double min_peer_share, bool interrupted);

// 0 every device passed, 1 one failed, 2 otherwise (docs/diag.md).
int exit_code_of(const std::vector<DeviceRecord>& records);

struct Report {
  int level = 1;
  double duration_seconds = 0.0;
  double started_at = 0.0;  // unix seconds
  double finished_at = 0.0;
  bool interrupted = false;
  double min_peer_share = k_default_min_peer_share;
  std::vector<DeviceRecord> devices;
};

// What the daemon keeps of a device's last diag (its state and /status, docs/diag.md "The
// daemon knows"), sent by `diag` over the control socket as {"command": "diag_result", "diag":
// SUMMARY}.
struct Summary {
  std::string device;  // the device's UUID, else its id (a selector as `probe --device`)
  int level = 1;
  std::string verdict;  // pass, fail, error, skipped
  // For a fail, the verdict reason it stands for (daemon/verdict.hpp's labels): golden_mismatch
  // (a failed check), fingerprint_change (bits differed from the first iteration's), slowdown
  // (below the peer share), hardware_error (the driver reported a fault); empty otherwise.
  std::string reason;
  std::string detail;  // one line: what failed, for the verdict's reasons
  double started_at = 0.0, finished_at = 0.0;
  std::uint64_t iterations = 0, failed_iterations = 0;
  bool interrupted = false;
};
nlohmann::json to_json(const Summary& summary);
// invalid_argument naming the first missing or mistyped field, or a level, verdict or reason
// outside its set.
Expected<Summary> parse_summary(const nlohmann::json& in);
// One summary per device of the report that ran (refused devices are left out).
std::vector<Summary> summaries(const Report& report);

// {"diag": {...}}: the contract with the HTML report (docs/diag.md).
nlohmann::json to_json(const Report& report);
// One line per device, then its failing results' replay commands: the text output.
std::string render_text(const Report& report);

}  // namespace substrate::diag
