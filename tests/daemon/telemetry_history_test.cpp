// Telemetry findings against durable per-device history (issue 17: one XID 94 degraded a device
// for one read, then it was healthy again; a missing read in between hid or replayed events).
#include <catch2/catch.hpp>

#include "daemon/telemetry_history.hpp"

using namespace substrate;

namespace {

DeviceInfo compute() {
  DeviceInfo info;
  info.id = "cuda0";
  info.backend = "cuda";
  return info;
}

telemetry::TelemetryDevice nvml(std::uint64_t xid94, std::optional<std::uint64_t> ecc_uncorrected) {
  telemetry::TelemetryDevice device;
  device.source = telemetry::kSourceNvml;
  device.local_id = "nvml0";
  device.device = "cuda0";
  if (xid94 > 0) device.readings.xids.push_back({94, xid94, 1000.0});
  if (ecc_uncorrected) device.readings.ecc.push_back({"uncorrected", "volatile", "total", *ecc_uncorrected});
  return device;
}

telemetry::Snapshot snapshot(std::vector<telemetry::TelemetryDevice> devices) {
  telemetry::Snapshot s;
  s.devices = std::move(devices);
  return s;
}

}  // namespace

TEST_CASE("telemetry history: an XID is an event once; a missing read neither hides nor replays it", "[unit]") {
  telemetry::Snapshot history;
  remember_telemetry(history, snapshot({nvml(0, 0)}));

  const auto first = snapshot({nvml(1, 0)});
  auto findings = classify_telemetry(compute(), &history, first);
  REQUIRE(findings.size() == 1);
  CHECK(findings[0].event);
  CHECK_FALSE(findings[0].failed);  // XID 94: degraded
  CHECK(findings[0].reason.rfind("XID 94", 0) == 0);
  remember_telemetry(history, first);

  // A read without the device, then the same count again: no new event.
  remember_telemetry(history, snapshot({}));
  CHECK(classify_telemetry(compute(), &history, snapshot({nvml(1, 0)})).empty());

  // A read whose ECC and XID lists failed, then a rise: judged against the history, not the gap.
  remember_telemetry(history, snapshot({nvml(0, std::nullopt)}));
  findings = classify_telemetry(compute(), &history, snapshot({nvml(1, 3)}));
  REQUIRE(findings.size() == 1);
  CHECK(findings[0].event);
  CHECK(findings[0].failed);
  CHECK(findings[0].reason.find("rose from 0 to 3") != std::string::npos);
}

TEST_CASE("telemetry history: a condition the reading shows on its own is not an event", "[unit]") {
  telemetry::Snapshot history;
  auto pending = nvml(0, 0);
  pending.readings.retired_pages_pending = true;
  remember_telemetry(history, snapshot({pending}));
  const auto findings = classify_telemetry(compute(), &history, snapshot({pending}));
  REQUIRE(findings.size() == 1);
  CHECK_FALSE(findings[0].event);
  CHECK_FALSE(findings[0].failed);
  CHECK(findings[0].reason.find("page retirement pending") != std::string::npos);
}

// End to end through the verdict: an XID 94 read once keeps the device degraded across later
// reads until passes_to_recover clean runs (it used to be healthy again at the next read).
TEST_CASE("telemetry history: XID 94 keeps the verdict degraded across reads until the clean runs", "[unit]") {
  VerdictPolicy policy;
  VerdictState state;
  apply_run(state, {}, policy);
  telemetry::Snapshot history;
  remember_telemetry(history, snapshot({nvml(0, 0)}));
  for (int read = 0; read < 4; ++read) {
    const auto reading = snapshot({nvml(1, 0)});
    std::vector<TelemetryFinding> events, conditions;
    for (auto& f : classify_telemetry(compute(), &history, reading))
      (f.failed || f.event ? events : conditions).push_back(f);
    apply_telemetry_events(state, events);
    remember_telemetry(history, reading);
    CHECK(effective_verdict(state, conditions).health == Health::degraded);
  }
  for (std::uint32_t i = 0; i < policy.passes_to_recover; ++i) apply_run(state, {}, policy);
  CHECK(state.health == Health::healthy);
}
