#include "daemon/error_budget.hpp"

#include <catch2/catch.hpp>

using namespace substrate;

TEST_CASE("error budget: drift is the budget against the spec's own median history (issue 18)", "[unit]") {
  // A healthy f32 random GEMM with K = 1 uses 0.93 of its bound on every run: no drift.
  const std::deque<double> k1(10, 0.93);
  CHECK(budget_drift_ratio(k1, 0.93) == Approx(1.0));
  // The default 256³ spec sits near 0.01; a device whose error grows eightfold drifts by 8.
  CHECK(budget_drift_ratio({0.010, 0.012, 0.011, 0.010, 0.012}, 0.088) == Approx(8.0));
  // One odd run in the history does not move the reference (median, even count: mean of the middle two).
  CHECK(budget_drift_ratio({0.01, 0.01, 0.5, 0.01, 0.02, 0.02}, 0.03) == Approx(0.03 / 0.015));
  // No reference yet, or nothing to compare with (exact mode: budget 0).
  CHECK(budget_drift_ratio({0.01, 0.01, 0.01, 0.01}, 0.5) == 0.0);
  CHECK(budget_drift_ratio(std::deque<double>(8, 0.0), 0.0) == 0.0);
}
