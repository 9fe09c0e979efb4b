#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "daemon/scheduler.hpp"

using namespace substrate;
using namespace std::chrono_literals;

TEST_CASE("scheduler: delays are clamped into what a timer can hold", "[unit]") {
  CHECK(clamped_delay(-1.0) == 0ns);
  CHECK(clamped_delay(std::nan("")) == 0ns);
  CHECK(clamped_delay(1.5) == 1500ms);
  const auto most = clamped_delay(k_max_delay_seconds);
  CHECK(clamped_delay(1e300) == most);
  CHECK(clamped_delay(std::numeric_limits<double>::infinity()) == most);
  CHECK(most > 0ns);
}

TEST_CASE("scheduler: the duty-cycle budget starts full, runs dry, and refills with wall time", "[unit]") {
  DutyCycleBudget budget;
  const auto t0 = DutyCycleBudget::Clock::now();
  CHECK(budget.defer(4.0, 4.0, 0.01, t0) == 0.0);  // starts full: max(5, 3 x 4) = 12 s
  budget.spend(4.0);
  budget.spend(4.0);
  budget.spend(4.0);
  const double wait = budget.defer(4.0, 4.0, 0.01, t0);
  CHECK(wait == Approx(400.0));  // 4 s of device time at 1%
  CHECK(budget.defer(4.0, 4.0, 0.01, t0 + 400s) == 0.0);
  CHECK(budget.defer(0.0, 4.0, 0.01, t0 + 400s) == 0.0);  // no cost known yet: run
}

TEST_CASE("scheduler: a max_duty_cycle of 1e-12 defers for the longest delay, never overflowing", "[unit]") {
  DutyCycleBudget budget;
  const auto t0 = DutyCycleBudget::Clock::now();
  REQUIRE(budget.defer(1.0, 1.0, 1e-12, t0) == 0.0);
  budget.spend(10.0);
  const double wait = budget.defer(1.0, 1.0, 1e-12, t0 + 1s);
  CHECK(wait == k_max_delay_seconds);
  CHECK(clamped_delay(wait) > 24h);  // not wrapped around to a negative (immediate) timer
}

TEST_CASE("scheduler: a round repeats for its probes' share of the duty cycle, within the cap and the budget",
          "[unit]") {
  // The defaults: max_duty_cycle 1%, duty_share 0.5, three enabled probes, gemm and attention
  // every 300 s, memory every 900 s.
  const std::vector<double> gemm{300.0};
  CHECK(round_repeat_seconds(gemm, 3, 0.01, 0.5, 2.0, 5.0) == Approx(0.5));
  const std::vector<double> start_up{300.0, 300.0, 900.0};  // every probe due at once
  CHECK(round_repeat_seconds(start_up, 3, 0.01, 0.5, 10.0, 5.0) == Approx(2.5));
  CHECK(round_repeat_seconds(start_up, 3, 0.01, 0.5, 2.0, 5.0) == 2.0);   // cut to max_round_seconds
  CHECK(round_repeat_seconds(start_up, 3, 0.01, 0.5, 10.0, 1.2) == 1.2);  // never past the budget's tokens
  CHECK(round_repeat_seconds(gemm, 3, 0.01, 0.0, 2.0, 5.0) == 0.0);       // duty_share 0: one pass
  CHECK(round_repeat_seconds(gemm, 0, 0.01, 0.5, 2.0, 5.0) == 0.0);
  CHECK(round_repeat_seconds(gemm, 3, 0.01, 0.5, 2.0, -3.0) == 0.0);  // a budget in debt repeats nothing
  // Over an interval the passes spend duty_share of the budget: 3 probes' shares sum to 0.5 * 1%.
  const double per_hour = 3600.0 / 300.0 * (2 * round_repeat_seconds(gemm, 3, 0.01, 0.5, 2.0, 5.0)) +
                          3600.0 / 900.0 * round_repeat_seconds(std::vector<double>{900.0}, 3, 0.01, 0.5, 2.0, 5.0);
  CHECK(per_hour == Approx(0.5 * 0.01 * 3600.0));
}
