// What a checked run verified, and how a spec's repeated passes fold into one standing result.
#include "daemon/checked_work.hpp"

#include <catch2/catch.hpp>

using namespace substrate;

namespace {

ProbeResult result_of(const std::string& probe, RunStatus status, const std::string& fingerprint = "f1") {
  ProbeResult result;
  result.spec.probe = probe;
  result.spec.gemm = {64, 32, 16};
  result.spec.attention = {128, 2, 64, false};
  result.status = status;
  result.fingerprint = fingerprint;
  if (status == RunStatus::pass || status == RunStatus::fail) result.check.checked = 64;  // the check ran
  if (probe == "memory") {
    result.memory = MemoryDetails{};
    result.memory->bytes_tested = 8 << 20;
  }
  return result;
}

}  // namespace

TEST_CASE("checked_work: operations of GEMM and attention, bytes of memory, nothing for what did not check", "[unit]") {
  CHECK(flops_of(result_of("gemm", RunStatus::pass).spec) == 2.0 * 64 * 32 * 16);
  ProbeSpec attention = result_of("attention", RunStatus::pass).spec;
  CHECK(flops_of(attention) == 4.0 * 2 * 128 * 128 * 64);  // QKᵀ and PV, 2 FLOPs per multiply-add
  attention.attention.causal = true;
  CHECK(flops_of(attention) == 2.0 * 2 * 128 * 128 * 64);
  CHECK(flops_of(result_of("memory", RunStatus::pass).spec) == 0.0);

  CHECK(checked_work_of(result_of("gemm", RunStatus::pass)).flops == 2.0 * 64 * 32 * 16);
  CHECK(checked_work_of(result_of("gemm", RunStatus::fail)).flops == 2.0 * 64 * 32 * 16);  // the check ran
  CHECK(checked_work_of(result_of("memory", RunStatus::pass)).bytes == 8 << 20);
  CHECK(checked_work_of(result_of("memory", RunStatus::pass)).flops == 0.0);
  CHECK(checked_work_of(result_of("gemm", RunStatus::pass)).runs == 1);
  for (RunStatus status : {RunStatus::error, RunStatus::hung, RunStatus::crashed, RunStatus::skipped}) {
    INFO(to_string(status));
    CHECK(checked_work_of(result_of("gemm", status)).runs == 0);
    CHECK(checked_work_of(result_of("gemm", status)).flops == 0.0);
    CHECK(checked_work_of(result_of("memory", status)).bytes == 0.0);
  }
  // A fault the driver reported (registry.cpp: a fail with no check): nothing was verified.
  ProbeResult reported = result_of("gemm", RunStatus::fail);
  reported.check.checked = 0;
  reported.error_kind = ErrorKind::hardware_fault;
  reported.error = "CUDA_ERROR_ECC_UNCORRECTABLE";
  CHECK(checked_work_of(reported).runs == 0);
  CHECK(checked_work_of(reported).flops == 0.0);
}

TEST_CASE("checked_work: a pass whose bits differ from the first pass's is a hardware fault", "[unit]") {
  ProbeResult differs = result_of("gemm", RunStatus::pass, "f2");
  mark_unrepeated_fingerprint(differs, false);
  CHECK(differs.status == RunStatus::fail);
  CHECK(differs.error_kind == ErrorKind::hardware_fault);
  CHECK(differs.error == "fingerprint f2 differs from the first iteration's");
  for (std::optional<bool> same : {std::optional<bool>(true), std::optional<bool>()}) {
    ProbeResult result = result_of("gemm", RunStatus::pass);
    mark_unrepeated_fingerprint(result, same);
    CHECK(result.status == RunStatus::pass);
  }
  ProbeResult failed = result_of("gemm", RunStatus::fail);  // its own check's message stays
  failed.error = "golden mismatch";
  mark_unrepeated_fingerprint(failed, false);
  CHECK(failed.error == "golden mismatch");
}

TEST_CASE("checked_work: a fault in any pass stands, whatever came before or after it", "[unit]") {
  const auto standing_after = [](std::initializer_list<RunStatus> passes) {
    std::optional<ProbeResult> standing;
    int pass = 0;
    for (RunStatus status : passes) keep_standing_result(standing, result_of("gemm", status, std::to_string(++pass)));
    return std::pair{standing->status, standing->fingerprint};
  };
  // A skipped first pass (memory short for a moment) does not hide a later fail, nor a later pass.
  CHECK(standing_after({RunStatus::skipped, RunStatus::fail}) == std::pair{RunStatus::fail, std::string("2")});
  CHECK(standing_after({RunStatus::skipped, RunStatus::pass}) == std::pair{RunStatus::pass, std::string("2")});
  // A transient error does not hide a later fail; a hang after a fail does not replace it.
  CHECK(standing_after({RunStatus::error, RunStatus::pass, RunStatus::fail}) ==
        std::pair{RunStatus::fail, std::string("3")});
  CHECK(standing_after({RunStatus::pass, RunStatus::fail, RunStatus::crashed}) ==
        std::pair{RunStatus::fail, std::string("2")});
  CHECK(standing_after({RunStatus::pass, RunStatus::error, RunStatus::pass}) ==
        std::pair{RunStatus::error, std::string("2")});
  CHECK(standing_after({RunStatus::pass, RunStatus::pass}) == std::pair{RunStatus::pass, std::string("1")});
}

TEST_CASE("checked_work: the first pass stands until a later pass does not pass, which then stays", "[unit]") {
  std::optional<ProbeResult> standing;
  keep_standing_result(standing, result_of("gemm", RunStatus::pass, "first"));
  keep_standing_result(standing, result_of("gemm", RunStatus::pass, "second"));
  CHECK(standing->fingerprint == "first");
  keep_standing_result(standing, result_of("gemm", RunStatus::fail, "third"));  // an intermittent fault in pass 3
  CHECK(standing->status == RunStatus::fail);
  CHECK(standing->fingerprint == "third");
  keep_standing_result(standing, result_of("gemm", RunStatus::pass, "fourth"));
  keep_standing_result(standing, result_of("gemm", RunStatus::hung, "fifth"));
  CHECK(standing->fingerprint == "third");  // the first fault stays, later passes do not hide it
}
