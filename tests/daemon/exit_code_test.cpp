// The one fold from run outcomes to the process exit code (daemon/exit_code.hpp).
#include <catch2/catch.hpp>

#include "daemon/exit_code.hpp"

using namespace substrate;

TEST_CASE("exit code: the fold of every combination of outcomes", "[unit]") {
  using O = Outcome;
  struct Row {
    std::vector<Outcome> outcomes;
    int code;
  };
  const std::vector<Row> rows = {
      {{}, 2},  // nothing checked
      {{O::pass}, 0},
      {{O::fault}, 1},
      {{O::cannot_run}, 2},
      {{O::bad_config}, 78},
      {{O::pass, O::fault}, 1},
      {{O::pass, O::cannot_run}, 2},
      {{O::pass, O::bad_config}, 78},
      {{O::fault, O::cannot_run}, 1},
      {{O::fault, O::bad_config}, 1},
      {{O::cannot_run, O::bad_config}, 78},
      {{O::pass, O::fault, O::cannot_run}, 1},
      {{O::pass, O::fault, O::bad_config}, 1},
      {{O::pass, O::cannot_run, O::bad_config}, 78},
      {{O::fault, O::cannot_run, O::bad_config}, 1},
      {{O::pass, O::fault, O::cannot_run, O::bad_config}, 1},
      {{O::pass, O::pass, O::pass}, 0},
      {{O::cannot_run, O::fault, O::pass}, 1},  // order does not matter
  };
  for (const Row& row : rows) {
    INFO("outcomes: " << row.outcomes.size());
    CHECK(fold_exit_code(row.outcomes) == row.code);
  }
  CHECK(k_exit_ok == 0);
  CHECK(k_exit_fault == 1);
  CHECK(k_exit_cannot_run == 2);
  CHECK(k_exit_config == 78);
}

TEST_CASE("exit code: probe results fold by their status", "[unit]") {
  CHECK(outcome_of(RunStatus::pass) == Outcome::pass);
  CHECK(outcome_of(RunStatus::fail) == Outcome::fault);
  CHECK(outcome_of(RunStatus::error) == Outcome::cannot_run);
  auto result = [](RunStatus status) {
    ProbeResult r;
    r.status = status;
    return r;
  };
  CHECK(fold_exit_code(std::vector<ProbeResult>{result(RunStatus::pass), result(RunStatus::pass)}) == 0);
  CHECK(fold_exit_code(std::vector<ProbeResult>{result(RunStatus::pass), result(RunStatus::error)}) == 2);
  CHECK(fold_exit_code(std::vector<ProbeResult>{result(RunStatus::error), result(RunStatus::fail)}) == 1);
}
