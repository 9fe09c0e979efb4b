#pragma once
// Checked work: what the repeated passes of a run request (docs/worker-protocol.md, `repeat`)
// verified, and how one spec's passes fold into the result that stands for them. Shared by the
// daemon's scheduled rounds (coverage, docs/configuration.md) and `substrated diag`.
#include <optional>

#include "probes/core/probe_result.hpp"

namespace substrate {

// Floating-point operations of one GEMM or attention run of `spec` (2·M·N·K; attention: the
// QKᵀ and PV products, 4·heads·seq²·head_dim, halved when causal), 0 for other probes.
double flops_of(const ProbeSpec& spec);

// What one result verified: the operations of a GEMM or attention run, or the bytes of device
// memory a memory run tested. Zero unless the check ran (pass or fail): an error, a hang, a crash
// or a skip verified nothing.
struct CheckedWork {
  double flops = 0.0;
  double bytes = 0.0;
};
CheckedWork checked_work_of(const ProbeResult& result);

// A pass of a repeated spec whose fingerprint differs from the first pass's (the worker's
// `fingerprint_matches_first` false) and whose check passed becomes a fail with error_kind
// hardware_fault: the kernels run in a fixed order, so the same spec and seed must give the same
// bits every time. nullopt (no fingerprint, or no repeat) and true change nothing.
void mark_unrepeated_fingerprint(ProbeResult& result, std::optional<bool> fingerprint_matches_first);

// The result that stands for one spec's passes in a round: the first pass's, replaced by the
// first later pass that did not pass (a fail, error, hang or crash), which then stays.
void keep_standing_result(std::optional<ProbeResult>& standing, ProbeResult result);

}  // namespace substrate
