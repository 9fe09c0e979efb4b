#pragma once
// Pure judgement of scheduled results against what came before (no I/O, no clock, no logging):
// a device's baselines (fingerprint, device time, error-budget history per device UUID +
// driver + kernel build + spec, kept in daemon/state_store.hpp's State) and the cross-device
// vote among same-model peers on this host.
#include <set>
#include <string>
#include <vector>

#include "daemon/daemon_view.hpp"
#include "daemon/state_store.hpp"
#include "daemon/verdict.hpp"

namespace substrate {

// The state's key for a device: its UUID, or its id when the backend reports none.
std::string state_device_key(const DeviceInfo& info);
// The baseline of one spec (seed included) on one device, driver and kernel build.
BaselineKey baseline_key(const DeviceInfo& info, const ProbeSpec& spec);

// Runs a baseline needs before a slowdown is judged against its device time.
inline constexpr std::uint64_t k_baseline_min_runs = 5;
// Error budgets kept per baseline (newest last).
inline constexpr std::size_t k_budget_history_runs = 64;

struct Assessment {
  std::set<Reason> reasons;  // empty: nothing wrong with this result
  // Set when the fingerprint differs from the baseline's: the baseline's (older) fingerprint.
  std::string replaced_fingerprint;
  double slowdown_ratio = 0.0;  // device time / baseline device time; 0 until the baseline has k_baseline_min_runs
  double budget_drift = 0.0;    // budget used / median of the baseline's history (daemon/error_budget.hpp); 0: none
};

// Judges one result and folds it into its baseline. hung is timeout, crashed is crashed, error is
// timeout (the backend's own fence timeout) or error; fail is hardware_error when the device
// itself reported an uncorrectable fault (an error text with kind hardware_fault), else
// golden_mismatch. Only a pass without a drill touches the baseline: a different fingerprint is
// fingerprint_change; device time above `slowdown_limit` times the baseline (an EWMA, weight 0.2,
// of runs that were not slow) is slowdown; the budget history keeps k_budget_history_runs.
// `now` (unix seconds) stamps the baseline.
Assessment assess_result(const ProbeResult& result, const DeviceInfo& info, std::map<BaselineKey, Baseline>& baselines,
                         double slowdown_limit, double now);

// One scheduled round of a probe on a device, judged result by result.
struct RoundAssessment {
  RunFindings findings;                          // every result's reasons; detail names the first result with any
  double cost = 0.0;                             // device seconds the round used (kernels plus input generation)
  std::vector<std::string> fingerprint_changes;  // one line per changed fingerprint, for the log
};

// assess_result over `results`, and the round's figures into `stats` (budget, budget drift and
// slowdown: the maximum; mismatched elements, device and wall seconds: the sum; drill: any;
// guaranteed bit: the highest, guaranteed share: the least over checked results, 32 and 0 when
// none was checked; failures counted by reason). stats.runs, timestamps, last_results and cross_device are the
// caller's.
RoundAssessment assess_round(const std::vector<ProbeResult>& results, const DeviceInfo& info,
                             std::map<BaselineKey, Baseline>& baselines, double slowdown_limit, double now,
                             ProbeStats& stats);

// One device's last results of a probe, for the vote.
struct Ballot {
  const DeviceInfo* info = nullptr;
  const std::vector<ProbeResult>* results = nullptr;
};

// The ids of devices whose fingerprint, for some spec, differs from a strict majority of their
// peers (same model name, driver, kernel build, spec and seed; fingerprint_minority in
// daemon/verdict.hpp). Only passing results without a drill vote.
std::set<std::string> cross_device_minority(const std::vector<Ballot>& ballots);

}  // namespace substrate
