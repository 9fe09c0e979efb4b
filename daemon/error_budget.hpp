#pragma once
// The error-budget signal, made to mean the same at every shape (issue 18, finding 6). The budget
// used (max error / rigorous bound) of a healthy device depends on the shape: about 0.01 at
// K = 256 but 0.93 for an f32 random GEMM with K = 1, where the bound (gamma_1 |a||b| = u|ab|)
// is as tight as one rounding. A fixed share such as 0.5 therefore fires on healthy shapes. What
// does mean the same everywhere is the budget against the device's own history of that spec
// (device, driver, kernel build, spec and seed: the baseline key), which is 1 on a healthy device
// (a fixed seed gives the same output bits, so the same budget) and grows when it degrades.
#include <deque>

namespace substrate {

// Runs a spec needs in its history before its drift is stated (the slowdown baseline uses 5 too).
inline constexpr std::size_t k_budget_drift_min_history = 5;

// `budget` (this run's budget used, >= 0) divided by the median of `history` (the spec's earlier
// budgets, this run not included). 0 when there is no reference yet: fewer than
// k_budget_drift_min_history entries, or a median of 0 (exact mode, or a bit-exact random run),
// where a ratio would say nothing; a check that leaves its bound fails on its own anyway. The
// median, not the mean, so one odd run in the history does not move the reference.
double budget_drift_ratio(const std::deque<double>& history, double budget);

}  // namespace substrate
