// Telemetry findings against durable per-device history (issue 17: one XID 94 degraded a device
// for one read, then it was healthy again; a missing read in between hid or replayed events).
#include <catch2/catch.hpp>

#include <signal.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "daemon/telemetry_history.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/run_command.hpp"
#include "tests/support/scrape.hpp"

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

TEST_CASE("telemetry history: the durable part round-trips, XID counts left out", "[unit]") {
  telemetry::Snapshot history = snapshot({nvml(2, 7)});
  const auto records = durable_counters(history);
  REQUIRE(records.size() == 1);
  const telemetry::Snapshot restored = restore_counters(records);
  REQUIRE(restored.devices.size() == 1);
  CHECK(restored.devices[0].local_id == "nvml0");
  CHECK(restored.devices[0].readings.xids.empty());  // each process counts XIDs from zero
  REQUIRE(restored.devices[0].readings.ecc.size() == 1);
  CHECK(restored.devices[0].readings.ecc[0].count == 7);
  // Judged against the restored history, the same count is no event and a higher one is.
  CHECK(classify_telemetry(compute(), &restored, snapshot({nvml(0, 7)})).empty());
  CHECK(classify_telemetry(compute(), &restored, snapshot({nvml(0, 8)})).size() == 1);
  // An XID after the restart counts from zero, and is seen.
  CHECK(classify_telemetry(compute(), &restored, snapshot({nvml(1, 7)})).size() == 1);

  VerdictState verdict;
  CHECK_FALSE(durable_verdict(verdict));  // nothing standing: nothing kept
  apply_telemetry_events(verdict, {{true, "uncorrectable ECC errors rose from 7 to 8", true}});
  const auto kept = durable_verdict(verdict);
  REQUIRE(kept);
  const VerdictState back = restore_verdict(*kept);
  CHECK(back.health == Health::failed);
  CHECK(back.reasons == verdict.reasons);
  CHECK(back.telemetry_events.size() == 1);
}

namespace {

using namespace substrate::testing;
using namespace std::chrono_literals;

// nvml::kLibraryEnv (probes/telemetry/nvml/library.hpp): where the loader finds libnvidia-ml.
constexpr const char* k_nvml_library_env = "SUBSTRATE_NVML_LIBRARY";

std::optional<double> series(const std::string& text, const std::string& name) { return series_value(text, name); }

// The reasons /status gives for vulkan0.
std::vector<std::string> reasons(DaemonProcess& daemon) {
  const auto status = nlohmann::json::parse(http_get(daemon.port(), "/status").body, nullptr, false);
  if (status.is_discarded()) return {};
  for (const auto& device : status["devices"]) {
    if (device["device"]["id"] == "vulkan0") return device["reasons"].get<std::vector<std::string>>();
  }
  return {};
}

}  // namespace

TEST_CASE("telemetry history: kill -9 and restart neither forget an ECC event nor count it again", "[e2e]") {
  // lavapipe's UUID, so the NVML stand-in's GPU joins vulkan0 (join_devices matches UUIDs).
  const std::string uuid = device_uuid("vulkan0");
  REQUIRE_FALSE(uuid.empty());
  const auto script = std::filesystem::temp_directory_path() / ("substrate-nvml-" + std::to_string(::getpid()));
  auto write_script = [&](int uncorrected) {
    std::ofstream(script) << "devices 1\n0 uuid GPU-" << uuid << "\n0 ecc.uncorrected.volatile.total " << uncorrected
                          << "\n";
  };
  ::setenv(k_nvml_library_env, SUBSTRATE_NVML_STANDIN_DIR "/libnvidia-ml.so.1", 1);
  ::setenv("SUBSTRATE_NVML_STANDIN_SCRIPT", script.c_str(), 1);
  // No probe runs, so nothing recovers the device: what the verdict shows is telemetry's.
  DaemonProcess daemon(
      "  gemm:\n    enabled: false\n  attention:\n    enabled: false\n  memory:\n    enabled: false\n"
      "  canary:\n    enabled: false\n",
      "telemetry:\n  interval_seconds: 1\n  timeout_seconds: 0.5\n");
  const std::string ecc =
      "substrate_ecc_errors_total{substrate_device=\"vulkan0\",kind=\"uncorrected\",scope=\"volatile\",location="
      "\"total\"}";
  const std::string failed = "substrate_device_health{substrate_device=\"vulkan0\",state=\"failed\"}";
  auto restart = [&] {
    daemon.signal(SIGKILL);
    REQUIRE(daemon.wait_exit(10s) == 128 + SIGKILL);
    daemon.start();
    REQUIRE(daemon.wait_ready());
  };

  write_script(0);
  daemon.start();
  REQUIRE(daemon.wait_ready());
  INFO(daemon.log());
  REQUIRE(wait_until([&] { return series(daemon.metrics(), ecc) == 0.0; }, 30s));
  // Written when the counters first arrive; give the write its moment before the kill.
  std::this_thread::sleep_for(1500ms);

  // Two uncorrectable errors while the daemon is down: the first reading after the restart is
  // judged against the counters from before it.
  write_script(2);
  restart();
  REQUIRE(wait_until([&] { return series(daemon.metrics(), failed) == 1.0; }, 30s));
  auto now = reasons(daemon);
  REQUIRE(now.size() == 1);
  CHECK(now[0].find("uncorrectable ECC errors rose from 0 to 2") != std::string::npos);
  std::this_thread::sleep_for(1500ms);

  // Killed again, same counters: the event is still there and counted once.
  restart();
  REQUIRE(wait_until([&] { return series(daemon.metrics(), ecc) == 2.0; }, 30s));
  std::this_thread::sleep_for(2500ms);  // a few more readings
  CHECK(series(daemon.metrics(), failed) == 1.0);
  now = reasons(daemon);
  REQUIRE(now.size() == 1);
  CHECK(now[0].find("rose from 0 to 2") != std::string::npos);
  CHECK(now[0].find("seen") == std::string::npos);
  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(10s) == 0);
  ::unsetenv(k_nvml_library_env);
  ::unsetenv("SUBSTRATE_NVML_STANDIN_SCRIPT");
  std::filesystem::remove(script);
}
