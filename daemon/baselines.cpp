#include "daemon/baselines.hpp"

#include <algorithm>
#include <map>

#include "daemon/checked_work.hpp"
#include "daemon/error_budget.hpp"
#include "probes/core/registry.hpp"

namespace substrate {
namespace {

bool is_error_status(RunStatus status) {
  return status == RunStatus::error || status == RunStatus::hung || status == RunStatus::crashed;
}

std::string seeded_key(const ProbeSpec& spec) { return spec_key(spec) + "#" + std::to_string(spec.seed); }

}  // namespace

std::string state_device_key(const DeviceInfo& info) { return info.uuid.empty() ? info.id : info.uuid; }

BaselineKey baseline_key(const DeviceInfo& info, const ProbeSpec& spec) {
  return {state_device_key(info), info.driver, info.kernel_build, seeded_key(spec)};
}

Assessment assess_result(const ProbeResult& result, const DeviceInfo& info, std::map<BaselineKey, Baseline>& baselines,
                         double slowdown_limit, double now) {
  Assessment out;
  if (result.status == RunStatus::hung) return {{Reason::timeout}, {}, 0.0};
  if (result.status == RunStatus::crashed) return {{Reason::crashed}, {}, 0.0};
  if (result.status == RunStatus::error) {
    out.reasons.insert(result.error_kind == ErrorKind::timeout ? Reason::timeout : Reason::error);
    return out;
  }
  if (result.status == RunStatus::fail) {
    // A fail with a hardware_fault error: the device's own report of an uncorrectable fault when no
    // check ran; when the check ran and passed, a repeated pass whose bits differ from the round's
    // first pass (daemon/checked_work.hpp: mark_unrepeated_fingerprint), a fingerprint change.
    const bool reported = result.error_kind == ErrorKind::hardware_fault && !result.error.empty();
    out.reasons.insert(is_unrepeated_fingerprint(result) ? Reason::fingerprint_change
                       : reported                        ? Reason::hardware_error
                                                         : Reason::golden_mismatch);
  }
  if (result.drill() || result.status != RunStatus::pass) return out;
  Baseline& baseline = baselines[baseline_key(info, result.spec)];
  if (!result.fingerprint.empty() && !baseline.fingerprint.empty() && baseline.fingerprint != result.fingerprint) {
    out.reasons.insert(Reason::fingerprint_change);
    out.replaced_fingerprint = baseline.fingerprint;
  }
  if (!result.fingerprint.empty()) baseline.fingerprint = result.fingerprint;
  const double cost = result.device_seconds;
  if (baseline.runs >= k_baseline_min_runs && baseline.device_seconds > 0) {
    out.slowdown_ratio = cost / baseline.device_seconds;
    if (out.slowdown_ratio > slowdown_limit) out.reasons.insert(Reason::slowdown);
  }
  // A slow run does not move the baseline, or a device slowing down step by step would never
  // look slow.
  if (!out.reasons.count(Reason::slowdown)) {
    baseline.device_seconds = baseline.runs == 0 ? cost : 0.8 * baseline.device_seconds + 0.2 * cost;
  }
  ++baseline.runs;
  out.budget_drift = budget_drift_ratio(baseline.budget_history, result.check.budget_used);
  baseline.budget_history.push_back(result.check.budget_used);
  while (baseline.budget_history.size() > k_budget_history_runs) baseline.budget_history.pop_front();
  baseline.updated_at = now;
  return out;
}

RoundAssessment assess_round(const std::vector<ProbeResult>& results, const DeviceInfo& info,
                             std::map<BaselineKey, Baseline>& baselines, double slowdown_limit, double now,
                             ProbeStats& stats) {
  RoundAssessment round;
  stats.budget = 0.0;
  stats.budget_drift = 0.0;
  stats.guaranteed_bit = 0;
  stats.guaranteed_share = 1.0;
  bool checked = false;
  stats.mismatched = 0;
  stats.device_seconds = 0.0;
  stats.wall_seconds = 0.0;
  stats.slowdown_ratio = 0.0;
  stats.drill = false;
  for (const ProbeResult& result : results) {
    const Assessment assessed = assess_result(result, info, baselines, slowdown_limit, now);
    if (!assessed.replaced_fingerprint.empty()) {
      ++stats.fingerprint_changes;
      round.fingerprint_changes.push_back(spec_key(result.spec) + " seed " + std::to_string(result.spec.seed) +
                                          ": fingerprint changed from " + assessed.replaced_fingerprint + " to " +
                                          result.fingerprint + " without a baseline reset");
    }
    stats.slowdown_ratio = std::max(stats.slowdown_ratio, assessed.slowdown_ratio);
    stats.budget = std::max(stats.budget, result.check.budget_used);
    stats.budget_drift = std::max(stats.budget_drift, assessed.budget_drift);
    if ((result.status == RunStatus::pass || result.status == RunStatus::fail) && result.check.checked > 0) {
      checked = true;
      stats.guaranteed_bit = std::max(stats.guaranteed_bit, result.check.guaranteed_bit);
      stats.guaranteed_share = std::min(stats.guaranteed_share, static_cast<double>(result.check.guaranteed_elements) /
                                                                    static_cast<double>(result.check.checked));
    }
    stats.mismatched += result.check.mismatched;
    stats.device_seconds += result.device_seconds;
    stats.wall_seconds += result.wall_seconds;
    stats.drill = stats.drill || result.drill();
    round.cost += result.device_seconds + result.generate_seconds;
    for (Reason r : assessed.reasons) {
      ++stats.failures[r];
      round.findings.reasons.insert(r);
    }
    if (!assessed.reasons.empty() && round.findings.detail.empty()) {
      round.findings.detail = spec_key(result.spec) + " seed " + std::to_string(result.spec.seed) +
                              (result.drill() ? " (drill)" : "") +
                              (is_error_status(result.status) || !result.error.empty()
                                   ? ": " + result.error
                                   : ": " + std::to_string(result.check.mismatched) + " element(s) wrong");
    }
  }
  if (!checked) {  // no result was checked (all errors): nothing is guaranteed
    stats.guaranteed_bit = 32;
    stats.guaranteed_share = 0.0;
  }
  return round;
}

std::set<std::string> cross_device_minority(const std::vector<Ballot>& ballots) {
  std::map<std::string, std::map<std::string, std::string>> groups;  // peer group + spec -> device -> print
  for (const Ballot& ballot : ballots) {
    const DeviceInfo& info = *ballot.info;
    for (const ProbeResult& r : *ballot.results) {
      if (r.status != RunStatus::pass || r.drill() || r.fingerprint.empty()) continue;
      groups[info.name + "|" + info.driver + "|" + info.kernel_build + "|" + seeded_key(r.spec)][info.id] =
          r.fingerprint;
    }
  }
  std::set<std::string> minority;
  for (const auto& [group, prints] : groups) {
    for (const std::string& device : fingerprint_minority(prints)) minority.insert(device);
  }
  return minority;
}

}  // namespace substrate
