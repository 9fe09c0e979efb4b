#pragma once
// Pure scheduling arithmetic of the daemon (no timers, no I/O), tested alone.
#include <chrono>
#include <span>
#include <string>

namespace substrate {

// The longest delay the daemon ever sets a timer for (30 days): chrono nanoseconds overflow
// near 292 years, and a tiny max_duty_cycle asks for far more than that.
inline constexpr double k_max_delay_seconds = 30.0 * 86400.0;

// `seconds` as a timer duration: NaN and negatives become 0, huge values k_max_delay_seconds.
std::chrono::nanoseconds clamped_delay(double seconds);

// A device's duty-cycle budget: a bucket of device seconds that refills at max_duty_cycle per
// second of wall time. It holds a few rounds of every probe (at least 5 s) and starts full, so
// the start-up round does not put later runs into debt.
class DutyCycleBudget {
 public:
  using Clock = std::chrono::steady_clock;
  // Refills up to `now`; returns 0 when a run costing `cost` device seconds may start, else the
  // seconds to wait for the tokens, clamped to [1, k_max_delay_seconds]. `round_cost` is the
  // device time of one run of every probe (it sizes the bucket).
  double defer(double cost, double round_cost, double max_duty_cycle, Clock::time_point now);
  // Takes the device time a finished run used (the bucket may go into debt).
  void spend(double cost) { tokens_ -= cost; }
  double tokens() const { return tokens_; }

 private:
  double tokens_ = 0.0;
  bool started_ = false;
  Clock::time_point updated_{};
};

// Coverage (docs/configuration.md, `coverage`): seconds a scheduled round repeats its specs so
// that the duty cycle buys checked work, not idle time. Each enabled probe may spend `duty_share`
// of the device's duty cycle, split evenly among the `enabled_probes`: a probe with interval T
// gets duty_share * max_duty_cycle * T / enabled_probes seconds of each of its rounds. A round's
// repeat time is the sum over the probes it runs (`round_intervals`, seconds), at most
// `max_round_seconds` (the longest burst a workload sharing the device should feel) and at most
// the budget's `tokens` (device seconds). 0: one pass, as without coverage. The worker measures
// the time in wall seconds, so the device time spent stays below it.
double round_repeat_seconds(std::span<const double> round_intervals, std::size_t enabled_probes, double max_duty_cycle,
                            double duty_share, double max_round_seconds, double tokens);

// Why a probe's timer was set later than its interval: the exported deferral reason
// (substrate_probe_deferred), which SubstrateProbeStale reads. busy: the device's GPU utilisation
// was above busy_utilization, deferred at most max_staleness_seconds after the probe's last run;
// duty_cycle: the device's duty-cycle budget had no device time for it; hung_backoff: the device
// is hung and waits for its retry.
enum class Deferral { none, busy, duty_cycle, hung_backoff };
inline constexpr Deferral k_all_deferrals[] = {Deferral::busy, Deferral::duty_cycle, Deferral::hung_backoff};
const char* to_string(Deferral deferral);

// What the scheduler last decided for one probe on one device, as /metrics shows it.
struct ProbeTimer {
  double interval_seconds = 0.0;  // the configured interval (each run is re-armed at it, jittered)
  double next_run = 0.0;          // unix seconds the timer fires next; in the past while due or running
  Deferral deferral = Deferral::none;
};

}  // namespace substrate
