#include "daemon/error_budget.hpp"

#include <algorithm>
#include <vector>

namespace substrate {

double budget_drift_ratio(const std::deque<double>& history, double budget) {
  if (history.size() < k_budget_drift_min_history) return 0.0;
  std::vector<double> sorted(history.begin(), history.end());
  const auto middle = sorted.begin() + static_cast<std::ptrdiff_t>(sorted.size() / 2);
  std::nth_element(sorted.begin(), middle, sorted.end());
  double median = *middle;
  if (sorted.size() % 2 == 0) median = (median + *std::max_element(sorted.begin(), middle)) / 2.0;
  if (!(median > 0.0)) return 0.0;
  return budget / median;
}

}  // namespace substrate
