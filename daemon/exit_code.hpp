#pragma once
// Exit codes shared by every command, and the one fold from run outcomes to an exit code.
#include <vector>

#include "probes/core/probe_result.hpp"

namespace substrate {

inline constexpr int k_exit_ok = 0;          // every check passed
inline constexpr int k_exit_fault = 1;       // a check found a fault
inline constexpr int k_exit_cannot_run = 2;  // bad arguments, no device, backend error
inline constexpr int k_exit_config = 78;     // EX_CONFIG: the daemon's configuration is invalid

// What one run (a probe, a comparison, a device's verdict) came to.
enum class Outcome { pass, fault, cannot_run, bad_config };

// The outcome of one probe result: fail is a fault; error, hung and crashed could not run (as a
// kernel timeout always did); skipped (a probe the device does not implement) passes.
Outcome outcome_of(RunStatus status);

// Folds outcomes into the process exit code. A found fault wins (1: the hardware claim matters
// most), then an invalid configuration (78), then anything that could not run (2); 0 when every
// outcome passed. No outcome at all is 2: nothing was checked.
int fold_exit_code(const std::vector<Outcome>& outcomes);

// fold_exit_code over the outcomes of `results`.
int fold_exit_code(const std::vector<ProbeResult>& results);

}  // namespace substrate
