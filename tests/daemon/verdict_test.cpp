#include <catch2/catch.hpp>

#include "daemon/verdict.hpp"

using namespace substrate;

namespace {
RunFindings clean() { return {}; }
RunFindings failing(Reason reason) { return RunFindings{{reason}, "gemm/f32/exact/8x8x8 seed 1"}; }
}  // namespace

TEST_CASE("verdict: a golden mismatch fails at once and needs clean runs to recover", "[unit]") {
  VerdictPolicy policy;
  VerdictState state;
  apply_run(state, clean(), policy);
  CHECK(state.health == Health::healthy);
  apply_run(state, failing(Reason::golden_mismatch), policy);
  CHECK(state.health == Health::failed);
  REQUIRE_FALSE(state.reasons.empty());
  CHECK(state.reasons[0].find("golden_mismatch") != std::string::npos);
  for (std::uint32_t i = 1; i < policy.passes_to_recover; ++i) {
    apply_run(state, clean(), policy);
    CHECK(state.health == Health::failed);
  }
  apply_run(state, clean(), policy);
  CHECK(state.health == Health::healthy);
  CHECK(state.reasons.empty());
}

TEST_CASE("verdict: soft evidence must repeat before the device degrades, then fails", "[unit]") {
  VerdictPolicy policy;  // degrade after 2, fail after 3
  VerdictState state;
  apply_run(state, clean(), policy);
  apply_run(state, failing(Reason::fingerprint_change), policy);
  CHECK(state.health == Health::healthy);
  apply_run(state, failing(Reason::fingerprint_change), policy);
  CHECK(state.health == Health::degraded);
  apply_run(state, failing(Reason::cross_device), policy);
  CHECK(state.health == Health::failed);
}

TEST_CASE("verdict: one transient between clean runs does not flap", "[unit]") {
  VerdictPolicy policy;
  VerdictState state;
  for (int i = 0; i < 5; ++i) {
    apply_run(state, clean(), policy);
    apply_run(state, failing(Reason::slowdown), policy);
    CHECK(state.health == Health::healthy);
  }
}

TEST_CASE("verdict: a timeout marks the device hung until passes_to_recover clean runs", "[unit]") {
  VerdictPolicy policy;
  VerdictState state;
  apply_run(state, failing(Reason::timeout), policy);
  CHECK(state.health == Health::hung);
  for (std::uint32_t i = 0; i + 1 < policy.passes_to_recover; ++i) apply_run(state, clean(), policy);
  CHECK(state.health == Health::hung);
  apply_run(state, failing(Reason::crashed), policy);  // restarts the count
  for (std::uint32_t i = 0; i + 1 < policy.passes_to_recover; ++i) apply_run(state, clean(), policy);
  CHECK(state.health == Health::hung);
  apply_run(state, clean(), policy);
  CHECK(state.health == Health::healthy);
  CHECK(state.reasons.empty());
}

TEST_CASE("verdict: telemetry events fail, conditions degrade only while present", "[unit]") {
  VerdictPolicy policy;
  VerdictState state;
  apply_run(state, clean(), policy);
  const std::vector<TelemetryFinding> thermal{{false, "hw_thermal_slowdown active"}};
  CHECK(effective_verdict(state, thermal).health == Health::degraded);
  CHECK(effective_verdict(state, {}).health == Health::healthy);
  apply_telemetry_events(state, {{true, "uncorrectable ECC +1"}});
  CHECK(state.health == Health::failed);
  CHECK(effective_verdict(state, {}).reasons.at(0).find("uncorrectable ECC") != std::string::npos);
  for (std::uint32_t i = 0; i < policy.passes_to_recover; ++i) apply_run(state, clean(), policy);
  CHECK(state.health == Health::healthy);
}

TEST_CASE("verdict: the cross-device vote singles out only a strict minority", "[unit]") {
  CHECK(fingerprint_minority({{"a", "x"}, {"b", "x"}, {"c", "y"}}) == std::set<std::string>{"c"});
  CHECK(fingerprint_minority({{"a", "x"}, {"b", "y"}}).empty());
  CHECK(fingerprint_minority({{"a", "x"}}).empty());
  CHECK(fingerprint_minority({{"a", "x"}, {"b", "x"}, {"c", "y"}, {"d", "z"}}).empty());  // 2 of 4 is no majority
  CHECK(fingerprint_minority({{"a", "x"}, {"b", "x"}, {"c", "x"}, {"d", "z"}, {"e", "y"}}) == std::set<std::string>{"d", "e"});
}
