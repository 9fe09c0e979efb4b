#include "daemon/verdict.hpp"

#include <algorithm>

namespace substrate {

const char* to_string(Health health) {
  switch (health) {
    case Health::healthy: return "healthy";
    case Health::degraded: return "degraded";
    case Health::failed: return "failed";
    case Health::hung: return "hung";
    case Health::unknown: return "unknown";
  }
  return "unknown";
}

const char* to_string(Reason reason) {
  switch (reason) {
    case Reason::golden_mismatch: return "golden_mismatch";
    case Reason::fingerprint_change: return "fingerprint_change";
    case Reason::cross_device: return "cross_device";
    case Reason::slowdown: return "slowdown";
    case Reason::timeout: return "timeout";
    case Reason::error: return "error";
    case Reason::crashed: return "crashed";
    case Reason::hardware_error: return "hardware_error";
  }
  return "error";
}

void apply_run(VerdictState& state, const RunFindings& run, const VerdictPolicy& policy) {
  if (run.reasons.count(Reason::timeout)) {
    state.health = Health::hung;
    state.reasons = {"timeout: " + run.detail};
    state.consecutive_passes = 0;
    return;
  }
  const bool definite = run.reasons.count(Reason::golden_mismatch) || run.reasons.count(Reason::hardware_error);
  if (state.health == Health::hung && !definite) {
    // Hung is left only through passes_to_recover clean runs (retried with a backoff by the
    // daemon); other failures keep it hung and restart the count.
    if (!run.reasons.empty()) {
      state.consecutive_passes = 0;
      return;
    }
    if (++state.consecutive_passes >= policy.passes_to_recover) {
      state.health = Health::healthy;
      state.reasons.clear();
      state.consecutive_failures = 0;
    }
    return;
  }
  if (run.reasons.empty()) {
    state.consecutive_failures = 0;
    ++state.consecutive_passes;
    if (state.health == Health::unknown || state.consecutive_passes >= policy.passes_to_recover) {
      state.health = Health::healthy;
      state.reasons.clear();
    }
    return;
  }
  state.consecutive_passes = 0;
  ++state.consecutive_failures;
  std::string why;
  for (Reason r : run.reasons) why += std::string(why.empty() ? "" : ",") + to_string(r);
  why += ": " + run.detail;
  if (std::find(state.reasons.begin(), state.reasons.end(), why) == state.reasons.end()) {
    state.reasons.push_back(why);
    if (state.reasons.size() > 8) state.reasons.erase(state.reasons.begin());
  }
  if (definite) {
    state.health = Health::failed;
    return;
  }
  // Timing alone (a slowdown on a shared or throttled device) degrades but never fails: it is
  // not evidence of a wrong result, and a failed verdict drains the node.
  const bool slowdown_only = run.reasons.size() == 1 && run.reasons.count(Reason::slowdown);
  if (state.consecutive_failures >= policy.failures_to_fail && !slowdown_only) {
    state.health = Health::failed;
  } else if (state.consecutive_failures >= policy.failures_to_degrade && state.health != Health::failed) {
    state.health = Health::degraded;
  }
}

void apply_telemetry_events(VerdictState& state, const std::vector<TelemetryFinding>& findings) {
  if (state.health == Health::hung) return;
  for (const TelemetryFinding& f : findings) {
    if (!f.failed) continue;
    state.health = Health::failed;
    state.consecutive_passes = 0;
    const std::string why = "telemetry: " + f.reason;
    if (std::find(state.reasons.begin(), state.reasons.end(), why) == state.reasons.end()) state.reasons.push_back(why);
  }
}

EffectiveVerdict effective_verdict(const VerdictState& state, const std::vector<TelemetryFinding>& conditions) {
  EffectiveVerdict out{state.health, state.reasons};
  for (const TelemetryFinding& f : conditions) {
    if (f.failed) continue;
    out.reasons.push_back("telemetry: " + f.reason);
    if (out.health == Health::healthy || out.health == Health::unknown) out.health = Health::degraded;
  }
  return out;
}

std::set<std::string> fingerprint_minority(const std::map<std::string, std::string>& fingerprint_by_device) {
  std::map<std::string, std::size_t> votes;
  for (const auto& [device, print] : fingerprint_by_device) ++votes[print];
  std::set<std::string> minority;
  for (const auto& [print, count] : votes) {
    if (2 * count > fingerprint_by_device.size()) {
      for (const auto& [device, other] : fingerprint_by_device) {
        if (other != print) minority.insert(device);
      }
    }
  }
  return minority;
}

}  // namespace substrate
