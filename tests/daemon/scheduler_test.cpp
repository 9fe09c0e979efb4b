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
