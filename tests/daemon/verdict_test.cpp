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
  CHECK(fingerprint_minority({{"a", "x"}, {"b", "x"}, {"c", "x"}, {"d", "z"}, {"e", "y"}}) ==
        std::set<std::string>{"d", "e"});
}

// Issue 17: one XID 94 made the device degraded for one telemetry read, then healthy again.
TEST_CASE("verdict: a degraded telemetry event stays until passes_to_recover clean runs after the last one", "[unit]") {
  VerdictPolicy policy;
  VerdictState state;
  apply_run(state, clean(), policy);
  for (std::uint32_t xid : {94u, 63u, 74u, 92u}) {
    INFO("XID " << xid);
    const std::string reason = "XID " + std::to_string(xid) + " (test) x1 since last reading";
    apply_telemetry_events(state, {{false, reason, true}});
    CHECK(state.health == Health::degraded);
    // Later reads without the event change nothing: neither the health nor the reason.
    for (int read = 0; read < 5; ++read) apply_telemetry_events(state, {});
    CHECK(effective_verdict(state, {}).health == Health::degraded);
    CHECK(effective_verdict(state, {}).reasons.back() == "telemetry: " + reason);
    for (std::uint32_t i = 1; i < policy.passes_to_recover; ++i) apply_run(state, clean(), policy);
    CHECK(state.health == Health::degraded);
    // A new event restarts the count.
    apply_telemetry_events(state, {{false, reason, true}});
    apply_run(state, clean(), policy);
    CHECK(state.health == Health::degraded);
    for (std::uint32_t i = 1; i < policy.passes_to_recover; ++i) apply_run(state, clean(), policy);
    CHECK(state.health == Health::healthy);
    CHECK(state.reasons.empty());
  }
  // A degraded event never lightens a failed verdict.
  apply_telemetry_events(state, {{true, "uncorrectable ECC errors rose from 0 to 1 (volatile, total, nvml)", true}});
  apply_telemetry_events(state, {{false, "XID 94 (contained ECC error) x1 since last reading", true}});
  CHECK(state.health == Health::failed);
}

// Issue 17: twelve ECC rises left twelve reasons on the device, and the list kept growing.
TEST_CASE("verdict: repeated telemetry events are one reason with a count; reasons are bounded", "[unit]") {
  VerdictPolicy policy;
  VerdictState state;
  apply_run(state, clean(), policy);
  for (int i = 0; i < 12; ++i) {
    apply_telemetry_events(state, {{true,
                                    "uncorrectable ECC errors rose from " + std::to_string(i) + " to " +
                                        std::to_string(i + 1) + " (volatile, total, nvml)",
                                    true}});
  }
  REQUIRE(state.reasons.size() == 1);
  CHECK(state.reasons[0] ==
        "telemetry: uncorrectable ECC errors rose from 11 to 12 (volatile, total, nvml) (seen 12 times)");
  apply_telemetry_events(state, {{false, "XID 94 (contained ECC error) x2 since last reading", true}});
  apply_telemetry_events(state, {{false, "XID 92 (high single-bit ECC error rate) x1 since last reading", true}});
  CHECK(state.reasons.size() == 3);  // XIDs are kinds of their own
  // Many distinct kinds still stay within the bound, the newest kept.
  for (std::uint32_t xid = 200; xid < 230; ++xid)
    apply_telemetry_events(state, {{true, "XID " + std::to_string(xid) + " (test) x1 since last reading", true}});
  CHECK(state.reasons.size() == k_max_reasons);
  CHECK(state.reasons.back() == "telemetry: XID 229 (test) x1 since last reading");
  CHECK(telemetry_event_kind("XID 94 (contained ECC error) x3 since last reading") ==
        "XID 94 (contained ECC error) x# since last reading");
}
