#include "daemon/scheduler.hpp"

#include <algorithm>

namespace substrate {

std::chrono::nanoseconds clamped_delay(double seconds) {
  if (!(seconds > 0.0)) seconds = 0.0;  // NaN too
  seconds = std::min(seconds, k_max_delay_seconds);
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(seconds));
}

double DutyCycleBudget::defer(double cost, double round_cost, double max_duty_cycle, Clock::time_point now) {
  const double cap = std::max(5.0, 3.0 * round_cost);
  if (!started_) {
    tokens_ = cap;
    started_ = true;
    updated_ = now;
  }
  tokens_ = std::min(cap, tokens_ + max_duty_cycle * std::chrono::duration<double>(now - updated_).count());
  updated_ = now;
  if (cost <= 0.0 || tokens_ >= cost) return 0.0;
  const double wait = max_duty_cycle > 0.0 ? (cost - tokens_) / max_duty_cycle : k_max_delay_seconds;
  return std::clamp(wait, 1.0, k_max_delay_seconds);
}

double round_repeat_seconds(std::span<const double> round_intervals, std::size_t enabled_probes, double max_duty_cycle,
                            double duty_share, double max_round_seconds, double tokens) {
  if (enabled_probes == 0 || !(duty_share > 0.0) || !(max_duty_cycle > 0.0)) return 0.0;
  double seconds = 0.0;
  for (double interval : round_intervals) {
    seconds += duty_share * max_duty_cycle * std::max(0.0, interval) / static_cast<double>(enabled_probes);
  }
  return std::max(0.0, std::min({seconds, max_round_seconds, tokens}));
}

const char* to_string(Deferral deferral) {
  switch (deferral) {
    case Deferral::none:
      return "none";
    case Deferral::busy:
      return "busy";
    case Deferral::duty_cycle:
      return "duty_cycle";
    case Deferral::hung_backoff:
      return "hung_backoff";
  }
  return "none";
}

}  // namespace substrate
