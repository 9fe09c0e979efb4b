#pragma once
// Per-device verdicts from probe runs and telemetry, with hysteresis: a definite numerical fault
// (golden mismatch) or a telemetry finding of severity failed fails at once; softer evidence
// (fingerprint change, cross-device minority, slowdown, a run that errored) must repeat before the
// device leaves healthy, and a device returns to healthy only after several clean runs.
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "daemon/config.hpp"

namespace substrate {

enum class Health { healthy, degraded, failed, hung, unknown };
const char* to_string(Health health);
inline constexpr Health k_all_health[] = {Health::healthy, Health::degraded, Health::failed, Health::hung,
                                          Health::unknown};

// Failure reasons: the values of the `reason` label. timeout: a hung run (the worker outlived its
// deadline, or the backend's own fence timeout fired); crashed: the worker died by a signal,
// weighed like error (it must repeat before the device leaves healthy); hardware_error: the driver
// reported an uncorrectable hardware fault during a run (CUDA_ERROR_ECC_UNCORRECTABLE 214,
// CUDA_ERROR_CONTAINED 226; the code is in the detail), weighed like golden_mismatch (fails at once).
enum class Reason {
  golden_mismatch,
  fingerprint_change,
  cross_device,
  slowdown,
  timeout,
  error,
  crashed,
  hardware_error
};
inline constexpr Reason k_all_reasons[] = {Reason::golden_mismatch, Reason::fingerprint_change,
                                           Reason::cross_device,    Reason::slowdown,
                                           Reason::timeout,         Reason::error,
                                           Reason::crashed,         Reason::hardware_error};
const char* to_string(Reason reason);

struct RunFindings {
  std::set<Reason> reasons;  // empty: a clean run
  std::string detail;        // e.g. "gemm/f32/exact/256x256x256 seed 1: 1 element wrong"
};

struct TelemetryFinding {
  bool failed = false;  // severity failed (else degraded)
  std::string reason;
  // An event: a count that rose since the device's history (an XID, an ECC rise), as opposed to a
  // condition that holds while a reading shows it (a thermal slowdown, a pending remap).
  bool event = false;
};

// At most this many reasons are kept per device (run and telemetry alike), oldest dropped first.
inline constexpr std::size_t k_max_reasons = 8;

struct VerdictState {
  Health health = Health::unknown;
  std::vector<std::string> reasons;  // why the device is not healthy
  std::uint32_t consecutive_failures = 0;
  std::uint32_t consecutive_passes = 0;
  // Telemetry events by kind (see telemetry_event_kind): how often seen since the device was last
  // healthy, and the text now standing for them in `reasons`.
  struct EventRecord {
    std::uint64_t count = 0;
    std::string reason;
  };
  std::map<std::string, EventRecord> telemetry_events;
};

// Folds one run's findings into the verdict. A timeout makes the device hung; a hung device
// returns to healthy after policy.passes_to_recover consecutive clean runs (a golden mismatch
// fails it as usual). A round whose runs were all skipped (a probe the device's backend lacks)
// is not a run: the service never folds it in, so it neither fails nor recovers the device.
void apply_run(VerdictState& state, const RunFindings& run, const VerdictPolicy& policy);
// Folds telemetry findings into the verdict. Events (an XID, an ECC rise), degraded or failed,
// stay until `passes_to_recover` clean runs follow the last one: a failed event fails the
// device, a degraded one degrades a healthy (or unknown) device; each kind is one reason,
// "telemetry: <newest text> (seen N times)", and reasons stay within k_max_reasons. A failed
// condition (a failed remap, a lost GPU) fails the device the same way, without a count;
// degraded conditions are not folded here but count only while present (effective_verdict).
// A hung device is left as it is.
void apply_telemetry_events(VerdictState& state, const std::vector<TelemetryFinding>& findings);

// The kind of a telemetry finding's reason, for counting repeats: the text with its numbers
// replaced by '#', except an XID's own number ("XID 94 (contained ECC error) x# since last
// reading"), so "rose from 3 to 4" and "rose from 4 to 5" are one kind.
std::string telemetry_event_kind(const std::string& reason);

struct EffectiveVerdict {
  Health health = Health::unknown;
  std::vector<std::string> reasons;
};
// The verdict shown to users: the runs' verdict, raised to degraded while a telemetry condition
// is present.
EffectiveVerdict effective_verdict(const VerdictState& state, const std::vector<TelemetryFinding>& conditions);

// Cross-device vote among peers (same model, driver, kernel build, spec): the devices whose
// fingerprint differs from a strict majority. No majority (e.g. 1 vs 1): nobody is singled out.
std::set<std::string> fingerprint_minority(const std::map<std::string, std::string>& fingerprint_by_device);

}  // namespace substrate
