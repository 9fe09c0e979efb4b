#include "daemon/verdict.hpp"

#include <algorithm>
#include <cctype>

namespace substrate {

const char* to_string(Health health) {
  switch (health) {
    case Health::healthy:
      return "healthy";
    case Health::degraded:
      return "degraded";
    case Health::failed:
      return "failed";
    case Health::hung:
      return "hung";
    case Health::unknown:
      return "unknown";
  }
  return "unknown";
}

const char* to_string(Reason reason) {
  switch (reason) {
    case Reason::golden_mismatch:
      return "golden_mismatch";
    case Reason::fingerprint_change:
      return "fingerprint_change";
    case Reason::cross_device:
      return "cross_device";
    case Reason::slowdown:
      return "slowdown";
    case Reason::timeout:
      return "timeout";
    case Reason::error:
      return "error";
    case Reason::crashed:
      return "crashed";
    case Reason::hardware_error:
      return "hardware_error";
  }
  return "error";
}

namespace {

// Back to healthy: no reason and no event history stand any more.
void clear_reasons(VerdictState& state) {
  state.reasons.clear();
  state.telemetry_events.clear();
}

// Appends `why` (newest last), dropping the oldest reasons beyond k_max_reasons.
void add_reason(VerdictState& state, const std::string& why) {
  state.reasons.push_back(why);
  while (state.reasons.size() > k_max_reasons) state.reasons.erase(state.reasons.begin());
}

}  // namespace

std::string telemetry_event_kind(const std::string& reason) {
  std::string kind;
  std::size_t i = 0;
  if (reason.rfind("XID ", 0) == 0) {  // keep "XID <n>"
    i = 4;
    while (i < reason.size() && std::isdigit(static_cast<unsigned char>(reason[i]))) ++i;
    kind = reason.substr(0, i);
  }
  while (i < reason.size()) {
    if (std::isdigit(static_cast<unsigned char>(reason[i]))) {
      kind += '#';
      while (i < reason.size() && std::isdigit(static_cast<unsigned char>(reason[i]))) ++i;
    } else {
      kind += reason[i++];
    }
  }
  return kind;
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
      clear_reasons(state);
      state.consecutive_failures = 0;
    }
    return;
  }
  if (run.reasons.empty()) {
    state.consecutive_failures = 0;
    ++state.consecutive_passes;
    if (state.health == Health::unknown || state.consecutive_passes >= policy.passes_to_recover) {
      state.health = Health::healthy;
      clear_reasons(state);
    }
    return;
  }
  state.consecutive_passes = 0;
  ++state.consecutive_failures;
  std::string why;
  for (Reason r : run.reasons) why += std::string(why.empty() ? "" : ",") + to_string(r);
  why += ": " + run.detail;
  if (std::find(state.reasons.begin(), state.reasons.end(), why) == state.reasons.end()) add_reason(state, why);
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
    if (!f.failed && !f.event) continue;  // a degraded condition: effective_verdict, while present
    if (f.failed)
      state.health = Health::failed;
    else if (state.health == Health::healthy || state.health == Health::unknown)
      state.health = Health::degraded;
    state.consecutive_passes = 0;
    if (!f.event) {
      const std::string why = "telemetry: " + f.reason;
      if (std::find(state.reasons.begin(), state.reasons.end(), why) == state.reasons.end()) add_reason(state, why);
      continue;
    }
    // One reason per kind: the newest text with how often the kind was seen.
    VerdictState::EventRecord& record = state.telemetry_events[telemetry_event_kind(f.reason)];
    ++record.count;
    auto old = std::find(state.reasons.begin(), state.reasons.end(), record.reason);
    if (!record.reason.empty() && old != state.reasons.end()) state.reasons.erase(old);
    record.reason = "telemetry: " + f.reason;
    if (record.count > 1) record.reason += " (seen " + std::to_string(record.count) + " times)";
    add_reason(state, record.reason);
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
