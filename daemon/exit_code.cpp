#include "daemon/exit_code.hpp"

#include <algorithm>

namespace substrate {

Outcome outcome_of(RunStatus status) {
  switch (status) {
    case RunStatus::pass:
      return Outcome::pass;
    case RunStatus::fail:
      return Outcome::fault;
    case RunStatus::skipped:  // nothing was checked, and nothing is wrong with the device
      return Outcome::pass;
    case RunStatus::error:
    case RunStatus::hung:     // no result: the worker was killed at its deadline
    case RunStatus::crashed:  // no result: the worker died by a signal
      return Outcome::cannot_run;
  }
  return Outcome::cannot_run;
}

int fold_exit_code(const std::vector<Outcome>& outcomes) {
  auto any = [&](Outcome o) { return std::find(outcomes.begin(), outcomes.end(), o) != outcomes.end(); };
  if (any(Outcome::fault)) return k_exit_fault;
  if (any(Outcome::bad_config)) return k_exit_config;
  if (any(Outcome::cannot_run) || outcomes.empty()) return k_exit_cannot_run;
  return k_exit_ok;
}

int fold_exit_code(const std::vector<ProbeResult>& results) {
  std::vector<Outcome> outcomes;
  for (const ProbeResult& r : results) outcomes.push_back(outcome_of(r.status));
  return fold_exit_code(outcomes);
}

}  // namespace substrate
