#pragma once
// Checked work: what the repeated passes of a run request (docs/worker-protocol.md, `repeat`)
// verified, and how one spec's passes fold into the result that stands for them. Shared by the
// daemon's scheduled rounds (coverage, docs/configuration.md) and `substrated diag`.
#include <cstdint>
#include <optional>

#include "probes/core/probe_result.hpp"

namespace substrate {

// Floating-point operations of one GEMM or attention run of `spec` (2·M·N·K; attention: the
// QKᵀ and PV products, 4·heads·seq²·head_dim, halved when causal), 0 for other probes.
double flops_of(const ProbeSpec& spec);

// What one result verified: one checked run, and the operations of a GEMM or attention run or the
// bytes of device memory a memory run tested. All zero unless a check ran (check.checked > 0; a
// pass or a fail): an error, a hang, a crash, a skip or a driver-reported fault verified nothing.
struct CheckedWork {
  std::uint64_t runs = 0;
  double flops = 0.0;
  double bytes = 0.0;
};
CheckedWork checked_work_of(const ProbeResult& result);

// A pass of a repeated spec whose fingerprint differs from the first pass's (the worker's
// `fingerprint_matches_first` false) and whose check passed becomes a fail with error_kind
// hardware_fault: the kernels run in a fixed order, so the same spec and seed must give the same
// bits every time. nullopt (no fingerprint, or no repeat) and true change nothing.
void mark_unrepeated_fingerprint(ProbeResult& result, std::optional<bool> fingerprint_matches_first);

// Whether `result` is a pass marked so by mark_unrepeated_fingerprint (its check ran and passed,
// its bits differ from the first pass's), as opposed to a fault the driver reported (no check ran)
// or a failed check: the verdict's and diag's fingerprint_change.
bool is_unrepeated_fingerprint(const ProbeResult& result);

// The result that stands for one spec's passes in a round: the most severe of them, the earliest
// among equals. From least to most severe: skipped (nothing was checked), pass, error, hung or
// crashed, fail (a check or the driver saw a fault). So a fault in any pass stands, and a later
// pass cannot hide it.
void keep_standing_result(std::optional<ProbeResult>& standing, ProbeResult result);

}  // namespace substrate
