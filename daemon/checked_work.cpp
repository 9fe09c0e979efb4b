#include "daemon/checked_work.hpp"

namespace substrate {

double flops_of(const ProbeSpec& spec) {
  if (spec.probe == "gemm") return 2.0 * spec.gemm.m * spec.gemm.n * spec.gemm.k;
  if (spec.probe == "attention") {
    const AttentionShape& s = spec.attention;
    const double full = 4.0 * s.heads * double(s.seq_len) * s.seq_len * s.head_dim;
    return s.causal ? full / 2.0 : full;
  }
  return 0.0;
}

CheckedWork checked_work_of(const ProbeResult& result) {
  const bool checked = result.status == RunStatus::pass || result.status == RunStatus::fail;
  if (!checked || result.check.checked == 0) return {};
  CheckedWork work;
  work.runs = 1;
  work.flops = flops_of(result.spec);
  if (result.memory) work.bytes = static_cast<double>(result.memory->bytes_tested);
  return work;
}

void mark_unrepeated_fingerprint(ProbeResult& result, std::optional<bool> fingerprint_matches_first) {
  if (fingerprint_matches_first != false || result.status != RunStatus::pass) return;
  result.status = RunStatus::fail;
  result.error_kind = ErrorKind::hardware_fault;
  result.error = "fingerprint " + result.fingerprint + " differs from the first iteration's";
}

bool is_unrepeated_fingerprint(const ProbeResult& result) {
  return result.status == RunStatus::fail && result.error_kind == ErrorKind::hardware_fault && !result.error.empty() &&
         result.check.checked > 0 && result.check.pass;
}

namespace {

int severity(RunStatus status) {
  switch (status) {
    case RunStatus::skipped:
      return 0;
    case RunStatus::pass:
      return 1;
    case RunStatus::error:
      return 2;
    case RunStatus::hung:
    case RunStatus::crashed:
      return 3;
    case RunStatus::fail:
      return 4;
  }
  return 2;
}

}  // namespace

void keep_standing_result(std::optional<ProbeResult>& standing, ProbeResult result) {
  if (!standing || severity(result.status) > severity(standing->status)) standing = std::move(result);
}

}  // namespace substrate
