// Baselines and the cross-device vote alone: what each outcome counts as, when a fingerprint
// change, a slowdown or a minority is called, and what a result does to its baseline.
#include <catch2/catch.hpp>

#include "daemon/baselines.hpp"
#include "daemon/checked_work.hpp"

using namespace substrate;

namespace {

DeviceInfo device(const std::string& id, const std::string& name = "llvmpipe") {
  DeviceInfo info;
  info.id = id;
  info.uuid = id + "-uuid";
  info.name = name;
  info.driver = "mesa 22.3";
  info.kernel_build = "k1";
  return info;
}

ProbeResult passed(const std::string& fingerprint, double device_seconds = 1.0, std::uint64_t seed = 1) {
  ProbeResult r;
  r.spec.probe = "gemm";
  r.spec.gemm = {16, 16, 16};
  r.spec.seed = seed;
  r.status = RunStatus::pass;
  r.fingerprint = fingerprint;
  r.device_seconds = device_seconds;
  return r;
}

ProbeResult with_status(RunStatus status, ErrorKind kind = ErrorKind::device_error, std::string error = "") {
  ProbeResult r = passed("");
  r.status = status;
  r.error_kind = kind;
  r.error = std::move(error);
  return r;
}

}  // namespace

TEST_CASE("baselines: each outcome counts as its reason and only a clean pass touches the baseline", "[unit]") {
  const DeviceInfo info = device("vulkan0");
  std::map<BaselineKey, Baseline> baselines;
  auto reasons = [&](const ProbeResult& r) { return assess_result(r, info, baselines, 1.5, 10.0).reasons; };
  CHECK(reasons(with_status(RunStatus::hung, ErrorKind::timeout)) == std::set<Reason>{Reason::timeout});
  CHECK(reasons(with_status(RunStatus::crashed)) == std::set<Reason>{Reason::crashed});
  CHECK(reasons(with_status(RunStatus::error, ErrorKind::timeout)) == std::set<Reason>{Reason::timeout});
  CHECK(reasons(with_status(RunStatus::error, ErrorKind::io_error)) == std::set<Reason>{Reason::error});
  CHECK(reasons(with_status(RunStatus::fail)) == std::set<Reason>{Reason::golden_mismatch});
  CHECK(reasons(with_status(RunStatus::fail, ErrorKind::hardware_fault, "CUDA_ERROR_ECC_UNCORRECTABLE (214)")) ==
        std::set<Reason>{Reason::hardware_error});
  // A hardware_fault kind without the device's own text is a check that failed.
  CHECK(reasons(with_status(RunStatus::fail, ErrorKind::hardware_fault)) == std::set<Reason>{Reason::golden_mismatch});
  // A repeated pass whose check passed and whose bits differ from the round's first pass's
  // (checked_work.hpp: mark_unrepeated_fingerprint): a fingerprint change, not a driver report.
  ProbeResult unrepeated = passed("bb");
  unrepeated.check.checked = 256;
  mark_unrepeated_fingerprint(unrepeated, false);
  CHECK(reasons(unrepeated) == std::set<Reason>{Reason::fingerprint_change});
  ProbeResult drill = passed("aa");
  drill.spec.inject.enabled = true;
  CHECK(reasons(drill).empty());
  CHECK(baselines.empty());

  CHECK(reasons(passed("aa")).empty());
  REQUIRE(baselines.size() == 1);
  const Baseline& b = baselines.begin()->second;
  CHECK(baselines.begin()->first == baseline_key(info, passed("").spec));
  CHECK(baselines.begin()->first.device_uuid == "vulkan0-uuid");
  CHECK(b.fingerprint == "aa");
  CHECK(b.runs == 1);
  CHECK(b.updated_at == 10.0);
}

TEST_CASE("baselines: a changed fingerprint is called once and becomes the new baseline", "[unit]") {
  const DeviceInfo info = device("vulkan0");
  std::map<BaselineKey, Baseline> baselines;
  CHECK(assess_result(passed("aa"), info, baselines, 1.5, 0).reasons.empty());
  const Assessment changed = assess_result(passed("bb"), info, baselines, 1.5, 0);
  CHECK(changed.reasons == std::set<Reason>{Reason::fingerprint_change});
  CHECK(changed.replaced_fingerprint == "aa");
  CHECK(assess_result(passed("bb"), info, baselines, 1.5, 0).reasons.empty());
  // Another seed is another baseline; a device without a UUID is keyed by its id.
  CHECK(assess_result(passed("cc", 1.0, 2), info, baselines, 1.5, 0).reasons.empty());
  DeviceInfo no_uuid = device("vulkan1");
  no_uuid.uuid.clear();
  CHECK(state_device_key(no_uuid) == "vulkan1");
}

TEST_CASE("baselines: a slowdown needs five runs, is judged against the EWMA, and does not move it", "[unit]") {
  const DeviceInfo info = device("vulkan0");
  std::map<BaselineKey, Baseline> baselines;
  for (int i = 0; i < 4; ++i) CHECK(assess_result(passed("aa", 1.0), info, baselines, 1.5, 0).reasons.empty());
  // Four runs: a slow one is not judged yet (and moves the baseline).
  CHECK(assess_result(passed("aa", 3.0), info, baselines, 1.5, 0).slowdown_ratio == 0.0);
  const double base = baselines.begin()->second.device_seconds;
  CHECK(base == Approx(0.8 * 1.0 + 0.2 * 3.0));
  const Assessment slow = assess_result(passed("aa", base * 2), info, baselines, 1.5, 0);
  CHECK(slow.reasons == std::set<Reason>{Reason::slowdown});
  CHECK(slow.slowdown_ratio == Approx(2.0));
  CHECK(baselines.begin()->second.device_seconds == base);
  const Assessment fine = assess_result(passed("aa", base * 1.4), info, baselines, 1.5, 0);
  CHECK(fine.reasons.empty());
  CHECK(baselines.begin()->second.device_seconds == Approx(0.8 * base + 0.2 * base * 1.4));
}

TEST_CASE("baselines: the error-budget history keeps the newest runs", "[unit]") {
  const DeviceInfo info = device("vulkan0");
  std::map<BaselineKey, Baseline> baselines;
  for (std::size_t i = 0; i < k_budget_history_runs + 10; ++i) {
    ProbeResult r = passed("aa");
    r.check.budget_used = static_cast<double>(i);
    assess_result(r, info, baselines, 1.5, 0);
  }
  const Baseline& b = baselines.begin()->second;
  CHECK(b.budget_history.size() == k_budget_history_runs);
  CHECK(b.budget_history.back() == static_cast<double>(k_budget_history_runs + 9));
  CHECK(b.budget_history.front() == 10.0);
}

TEST_CASE("baselines: a round sums its figures and names the first result with a reason", "[unit]") {
  const DeviceInfo info = device("vulkan0");
  std::map<BaselineKey, Baseline> baselines;
  ProbeStats stats;
  stats.budget = 9.0;  // from an earlier round: replaced, not kept
  ProbeResult a = passed("aa", 0.5);
  a.generate_seconds = 0.25;
  a.wall_seconds = 2.0;
  a.check.budget_used = 0.3;
  ProbeResult b = with_status(RunStatus::fail);
  b.spec.seed = 7;
  b.check.mismatched = 3;
  b.check.budget_used = 4.0;
  b.device_seconds = 1.0;
  ProbeResult c = with_status(RunStatus::hung, ErrorKind::timeout, "no result after 3.0 s");
  c.device_seconds = 0.0;  // a killed worker reports no device time
  const RoundAssessment round = assess_round({a, b, c}, info, baselines, 1.5, 0, stats);
  CHECK(round.findings.reasons == std::set<Reason>{Reason::golden_mismatch, Reason::timeout});
  CHECK(round.findings.detail == "gemm/f32/exact/16x16x16 seed 7: 3 element(s) wrong");
  CHECK(round.cost == Approx(1.75));
  CHECK(round.fingerprint_changes.empty());
  CHECK(stats.budget == 4.0);
  CHECK(stats.mismatched == 3);
  CHECK(stats.device_seconds == Approx(1.5));
  CHECK(stats.wall_seconds == Approx(2.0));
  CHECK(stats.failures[Reason::golden_mismatch] == 1);
  CHECK(stats.failures[Reason::timeout] == 1);
  CHECK(stats.runs == 0);  // the caller's

  const RoundAssessment changed = assess_round({passed("bb", 0.5)}, info, baselines, 1.5, 0, stats);
  CHECK(changed.findings.detail == "gemm/f32/exact/16x16x16 seed 1: 0 element(s) wrong");
  REQUIRE(changed.fingerprint_changes.size() == 1);
  CHECK(changed.fingerprint_changes[0] ==
        "gemm/f32/exact/16x16x16 seed 1: fingerprint changed from aa to bb without a baseline reset");
  CHECK(stats.fingerprint_changes == 1);
  CHECK(stats.failures.size() == 3);
}

TEST_CASE("baselines: the cross-device vote singles out a minority among same-model peers only", "[unit]") {
  const DeviceInfo d0 = device("vulkan0"), d1 = device("vulkan1"), d2 = device("vulkan2");
  const DeviceInfo other_model = device("vulkan3", "another GPU");
  const std::vector<ProbeResult> same{passed("aa")}, odd{passed("bb")};
  CHECK(cross_device_minority({{&d0, &same}, {&d1, &same}, {&d2, &odd}}) == std::set<std::string>{"vulkan2"});
  // No strict majority: nobody.
  CHECK(cross_device_minority({{&d0, &same}, {&d2, &odd}}).empty());
  // Another model is not a peer.
  CHECK(cross_device_minority({{&d0, &same}, {&d1, &same}, {&other_model, &odd}}).empty());
  // Another driver is not a peer either.
  DeviceInfo newer = device("vulkan2");
  newer.driver = "mesa 23.0";
  CHECK(cross_device_minority({{&d0, &same}, {&d1, &same}, {&newer, &odd}}).empty());
  // Drills and failed runs do not vote.
  std::vector<ProbeResult> drilled{passed("bb")};
  drilled[0].spec.inject.enabled = true;
  CHECK(cross_device_minority({{&d0, &same}, {&d1, &same}, {&d2, &drilled}}).empty());
  std::vector<ProbeResult> failed{passed("bb")};
  failed[0].status = RunStatus::fail;
  CHECK(cross_device_minority({{&d0, &same}, {&d1, &same}, {&d2, &failed}}).empty());
  // Each spec votes on its own: a different seed is another vote.
  const std::vector<ProbeResult> seed2{passed("bb", 1.0, 2)};
  CHECK(cross_device_minority({{&d0, &same}, {&d1, &same}, {&d2, &seed2}}).empty());
}
