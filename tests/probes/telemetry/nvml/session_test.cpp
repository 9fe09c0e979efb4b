// NVML through the TEST-ONLY STAND-IN for libnvidia-ml.so.1 (tests/nvml_standin), loaded by the
// production dlopen path: SUBSTRATE_NVML_LIBRARY points the loader at the stand-in. Nothing here
// touches NVIDIA hardware; the values are the stand-in's script.
#include <catch2/catch.hpp>

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <sstream>
#include <thread>

#include <prometheus/text_serializer.h>

#include "daemon/telemetry_reader.hpp"
#include "probes/telemetry/join.hpp"
#include "probes/telemetry/metrics.hpp"
#include "probes/telemetry/nvml/session.hpp"
#include "probes/telemetry/verdict.hpp"
#include "tests/probes/telemetry/nvml/standin_support.hpp"
#include "tests/probes/telemetry/test_support.hpp"
#include "tests/support/scrape.hpp"

using namespace substrate;
using namespace substrate::telemetry;
using substrate::testing::series_value;
namespace support = substrate::telemetry::testing;
using support::ScopedEnv;

namespace {

// Device 0 looks like a data-centre GPU, device 1 like a consumer card (no ECC, no remapping,
// no memory temperature) whose power read is refused.
constexpr const char* kScript = R"(# stand-in script for the telemetry tests
devices 2
0 uuid GPU-8E8F1C2A-1B2C-3D4E-5F60-718293A4B5C6
0 pci 0000:65:00.0
0 ecc.corrected.volatile.total 5
0 ecc.uncorrected.volatile.total 1
0 ecc.corrected.aggregate.total 12
0 ecc.uncorrected.aggregate.total 2
0 ecc.uncorrected.volatile.device_memory 1
0 ecc.corrected.volatile.l2 not_supported
0 retired_pages.single_bit 3
0 retired_pages.double_bit 1
0 retired_pages_pending 0
0 remapped_rows 4 1 1 0
0 temperature.gpu 64
0 temperature.memory 71
0 threshold.shutdown 95
0 threshold.slowdown 92
0 threshold.mem_max 95
0 clocks_event_reasons 0x21
0 violation.0 2500000000
0 violation.1 1000000000
0 power_usage 312500
0 power_limit 700000
0 clock.sm 1980
0 clock.memory 2619
0 utilization 87 43
0 pcie_replay 6
0 nvlink.0.state 1
0 nvlink.0.0 2
0 nvlink.0.2 0
0 nvlink.1.state 0
0 xid 79
0 xid 79
0 xid 48
1 uuid GPU-11111111-2222-3333-4444-555555555555
1 pci 00000000:0A:00.0
1 temperature.gpu 41
1 power_usage error:4
1 clocks_event_reasons 0x1
1 xid 13
)";

struct StandinEnvironment : support::StandinEnvironment {
  explicit StandinEnvironment(const char* directory, const std::string& script = kScript)
      : support::StandinEnvironment(directory, script) {}
};

std::unique_ptr<nvml::Session> open_session() {
  auto session = nvml::Session::open(std::chrono::milliseconds(50));
  if (!session) FAIL("stand-in did not open: " << session.error().message);
  return std::move(*session);
}

// Reads until the XID watcher has delivered `events` events in total, or two seconds passed.
SourceResult read_after_events(nvml::Session& session, std::uint64_t events) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (;;) {
    SourceResult result = session.read();
    std::uint64_t seen = 0;
    for (const auto& device : result.devices) {
      for (const auto& xid : device.readings.xids) seen += xid.count;
    }
    if (seen >= events || std::chrono::steady_clock::now() > deadline) return result;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::optional<std::uint64_t> ecc(const Readings& r, const char* kind, const char* scope, const char* location) {
  for (const auto& e : r.ecc) {
    if (e.kind == kind && e.scope == scope && e.location == location) return e.count;
  }
  return std::nullopt;
}

std::string serialize(const Snapshot& snapshot) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, to_metric_families(snapshot, {}));
  return out.str();
}

}  // namespace

TEST_CASE("telemetry: NVML stand-in values are read through the dlopen path", "[unit]") {
  StandinEnvironment environment(SUBSTRATE_NVML_STANDIN_DIR);
  auto session = open_session();
  const SourceResult result = read_after_events(*session, 4);
  REQUIRE(result.devices.size() == 2);

  const TelemetryDevice& gpu = result.devices[0];
  CHECK(gpu.source == "nvml");
  CHECK(gpu.local_id == "nvml0");
  CHECK(gpu.pci_bus_id == "0000:65:00.0");
  CHECK(gpu.uuid == "8e8f1c2a-1b2c-3d4e-5f60-718293a4b5c6");
  const Readings& r = gpu.readings;
  CHECK(ecc(r, "corrected", "volatile", "total") == 5u);
  CHECK(ecc(r, "uncorrected", "aggregate", "total") == 2u);
  CHECK(ecc(r, "uncorrected", "volatile", "device_memory") == 1u);
  CHECK_FALSE(ecc(r, "corrected", "volatile", "l2").has_value());  // NOT_SUPPORTED: absent
  CHECK_FALSE(ecc(r, "corrected", "volatile", "sram").has_value());
  CHECK(r.retired_pages.at("single_bit") == 3);
  CHECK(r.retired_pages.at("double_bit") == 1);
  CHECK(r.retired_pages_pending == false);
  CHECK(r.remapped_rows.at("correctable") == 4);
  CHECK(r.remapped_rows.at("uncorrectable") == 1);
  CHECK(r.remapped_rows_pending == true);
  CHECK(r.remapped_rows_failure == false);
  REQUIRE(r.temperatures.size() == 2);
  CHECK(r.temperatures[0].sensor == "gpu");
  CHECK(r.temperatures[0].celsius == 64);
  CHECK(r.temperatures[1].sensor == "memory");
  CHECK(r.temperatures[1].celsius == 71);
  CHECK(r.temperature_thresholds.size() == 3);  // gpu_max not scripted: absent
  CHECK(r.clock_event_reasons.at("gpu_idle"));
  CHECK(r.clock_event_reasons.at("sw_thermal_slowdown"));
  CHECK_FALSE(r.clock_event_reasons.at("hw_slowdown"));
  CHECK(r.throttle_seconds.at("power") == Approx(2.5));
  CHECK(r.throttle_seconds.at("thermal") == Approx(1.0));
  CHECK(r.throttle_seconds.count("sync_boost") == 0);
  CHECK(*r.power_watts == Approx(312.5));
  CHECK(*r.power_limit_watts == Approx(700.0));
  CHECK(r.clock_hertz.at("sm") == Approx(1.98e9));
  CHECK(r.clock_hertz.at("memory") == Approx(2.619e9));
  CHECK(r.utilization_ratio.at("gpu") == Approx(0.87));
  CHECK(r.utilization_ratio.at("memory") == Approx(0.43));
  CHECK(r.pcie_replays == 6u);
  REQUIRE(r.nvlink_errors.size() == 2);  // link 0 up with two counters scripted; link 1 down
  CHECK(r.nvlink_errors[0].kind == "replay");
  CHECK(r.nvlink_errors[0].count == 2);
  CHECK(r.nvlink_errors[1].kind == "crc_flit");

  const TelemetryDevice& consumer = result.devices[1];
  CHECK(consumer.pci_bus_id == "0000:0a:00.0");
  CHECK(consumer.readings.ecc.empty());
  CHECK(consumer.readings.remapped_rows.empty());
  CHECK_FALSE(consumer.readings.remapped_rows_pending.has_value());
  CHECK(consumer.readings.temperatures.size() == 1);
  CHECK_FALSE(consumer.readings.power_watts.has_value());
  CHECK(consumer.readings.nvlink_errors.empty());

  // Only the refused power read is an error; NOT_SUPPORTED never is.
  REQUIRE(result.errors.size() == 1);
  CHECK(result.errors[0].source == "nvml");
  CHECK(result.errors[0].cause == "no_permission");
  CHECK(result.errors[0].detail.find("nvmlDeviceGetPowerUsage (device 1)") != std::string::npos);
}

TEST_CASE("telemetry: NVML stand-in XID events are counted per XID with the last timestamp", "[unit]") {
  StandinEnvironment environment(SUBSTRATE_NVML_STANDIN_DIR);
  const double before = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  auto session = open_session();
  const SourceResult result = read_after_events(*session, 4);
  const double after = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  REQUIRE(result.devices.size() == 2);
  const auto& xids = result.devices[0].readings.xids;
  REQUIRE(xids.size() == 2);
  CHECK(xids[0].xid == 48);
  CHECK(xids[0].count == 1);
  CHECK(xids[1].xid == 79);
  CHECK(xids[1].count == 2);  // the repeat is visible
  CHECK(xids[1].last_timestamp_seconds >= before);
  CHECK(xids[1].last_timestamp_seconds <= after);
  REQUIRE(result.devices[1].readings.xids.size() == 1);
  CHECK(result.devices[1].readings.xids[0].xid == 13);

  const auto findings = telemetry_findings(nullptr, result.devices[0]);
  CHECK(std::any_of(findings.begin(), findings.end(), [](const Finding& f) {
    return f.severity == Severity::failed && f.reason.find("XID 79") != std::string::npos;
  }));
  CHECK(telemetry_findings(nullptr, result.devices[1]).empty());  // XID 13 is not critical
}

TEST_CASE("telemetry: NVML stand-in scrape names and promtool lint", "[unit]") {
  StandinEnvironment environment(SUBSTRATE_NVML_STANDIN_DIR);
  TelemetryReader reader({"/nonexistent/substrate-sysfs", true, {}, std::chrono::milliseconds(50)});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  std::string scrape;
  DeviceInfo cuda0;
  cuda0.id = "cuda0";
  cuda0.uuid = "8e8f1c2a-1b2c-3d4e-5f60-718293a4b5c6";
  do {
    scrape = serialize(join_devices(reader.read(), {cuda0}));
  } while (scrape.find("xid=\"79\"} 2") == std::string::npos && std::chrono::steady_clock::now() < deadline);
  CHECK(series_value(scrape, "substrate_xid_events_total{substrate_device=\"cuda0\",xid=\"79\"}") == 2);
  // NVML's UUID as nvidia-smi prints it, so dcgm-exporter's DCGM_FI_DEV_XID_ERRORS joins on UUID.
  CHECK(series_value(scrape,
                     "substrate_xid_events_total{UUID=\"GPU-8e8f1c2a-1b2c-3d4e-5f60-718293a4b5c6\",xid=\"79\"}") == 2);
  CHECK(series_value(scrape, "substrate_xid_last_timestamp_seconds{substrate_device=\"cuda0\",xid=\"79\"}"));
  CHECK(series_value(scrape, "substrate_remapped_rows_pending{substrate_device=\"cuda0\"}") == 1);
  CHECK(series_value(scrape,
                     "substrate_clock_event_reasons{substrate_device=\"cuda0\",reason=\"sw_thermal_slowdown\"}") == 1);
  CHECK(series_value(scrape, "substrate_throttle_seconds_total{substrate_device=\"cuda0\",reason=\"power\"}") == 2.5);
  CHECK(series_value(scrape, "substrate_nvlink_errors_total{substrate_device=\"cuda0\",link=\"0\",kind=\"replay\"}") ==
        2);
  CHECK(series_value(scrape, "substrate_telemetry_source_info{substrate_device=\"nvml1\",source=\"nvml\"}") == 1);
  CHECK_THAT(scrape, Catch::Contains("substrate_telemetry_errors_total{source=\"nvml\",cause=\"no_permission\"}"));
  CHECK_FALSE(series_value(scrape, "substrate_power_watts{substrate_device=\"nvml1\"}"));
  const auto lint = support::promtool_check_metrics(scrape);
  INFO(lint.output);
  CHECK(lint.exit_code == 0);
}

TEST_CASE("telemetry: NVML loader prefers versioned entry points", "[unit]") {
  StandinEnvironment environment(SUBSTRATE_NVML_STANDIN_DIR);
  {
    auto session = open_session();
    read_after_events(*session, 4);
  }
  const std::string calls = environment.log_file.text();
  for (const char* name : {"nvmlInit_v2", "nvmlDeviceGetCount_v2", "nvmlDeviceGetHandleByIndex_v2",
                           "nvmlDeviceGetPciInfo_v3", "nvmlEventSetWait_v2", "nvmlDeviceGetTemperatureV",
                           "nvmlDeviceGetCurrentClocksEventReasons", "nvmlEventSetFree", "nvmlShutdown"}) {
    CHECK_THAT(calls, Catch::Contains(std::string(name) + "\n"));
  }
  CHECK_THAT(calls, !Catch::Contains("nvmlInit\n"));
  CHECK_THAT(calls, !Catch::Contains("nvmlDeviceGetTemperature\n"));
  CHECK_THAT(calls, !Catch::Contains("nvmlDeviceGetCurrentClocksThrottleReasons\n"));
}

TEST_CASE("telemetry: NVML loader falls back to unversioned entry points of older drivers", "[unit]") {
  StandinEnvironment environment(SUBSTRATE_NVML_STANDIN_LEGACY_DIR);
  SourceResult result;
  {
    auto session = open_session();
    result = read_after_events(*session, 4);
  }
  REQUIRE(result.devices.size() == 2);
  CHECK(result.devices[0].pci_bus_id == "0000:65:00.0");
  REQUIRE_FALSE(result.devices[0].readings.temperatures.empty());
  CHECK(result.devices[0].readings.temperatures[0].celsius == 64);
  CHECK(result.devices[0].readings.clock_event_reasons.at("sw_thermal_slowdown"));
  CHECK(result.devices[0].readings.xids.size() == 2);
  const std::string calls = environment.log_file.text();
  for (const char* name :
       {"nvmlInit", "nvmlDeviceGetCount", "nvmlDeviceGetHandleByIndex", "nvmlDeviceGetPciInfo", "nvmlEventSetWait",
        "nvmlDeviceGetTemperature", "nvmlDeviceGetCurrentClocksThrottleReasons"}) {
    CHECK_THAT(calls, Catch::Contains(std::string(name) + "\n"));
  }
}

TEST_CASE("telemetry: NVML session stops its XID thread promptly", "[unit]") {
  StandinEnvironment environment(SUBSTRATE_NVML_STANDIN_DIR, "devices 1\n0 pci 0000:65:00.0\n");
  auto session = nvml::Session::open(std::chrono::milliseconds(200));
  REQUIRE(session.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the thread is inside a wait
  const auto start = std::chrono::steady_clock::now();
  session->reset();
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(600));
}

TEST_CASE("telemetry: NVML init failure is a note and one counted error", "[unit]") {
  StandinEnvironment environment(SUBSTRATE_NVML_STANDIN_DIR, "init 9\n");
  const auto session = nvml::Session::open();
  REQUIRE_FALSE(session.ok());
  CHECK(session.error().kind == ErrorKind::device_error);
  CHECK_THAT(session.error().message, Catch::Contains("driver_not_loaded"));

  TelemetryReader reader({"/nonexistent/substrate-sysfs", true, {}, std::chrono::milliseconds(50)});
  const Snapshot snapshot = reader.read();
  REQUIRE(snapshot.notes.size() == 1);
  CHECK_THAT(snapshot.notes[0], Catch::Contains("NVML init failed"));
  REQUIRE(snapshot.error_totals.size() == 1);
  CHECK(snapshot.error_totals[0].cause == "init_failed");
  CHECK(snapshot.nvml_up == false);
}

TEST_CASE("telemetry: NVML absent is a clear note, not an error", "[unit]") {
  {
    ScopedEnv library(nvml::kLibraryEnv, "/nonexistent/libnvidia-ml.so.1");
    const auto session = nvml::Session::open();
    REQUIRE_FALSE(session.ok());
    CHECK(session.error().kind == ErrorKind::unavailable);
    CHECK(session.error().message == "NVML absent: /nonexistent/libnvidia-ml.so.1 not found");

    TelemetryReader reader({"/nonexistent/substrate-sysfs", true, {}, std::chrono::milliseconds(50)});
    const Snapshot snapshot = reader.read();
    CHECK(snapshot.devices.empty());
    CHECK(snapshot.error_totals.empty());
    REQUIRE(snapshot.notes.size() == 1);
    CHECK_THAT(snapshot.notes[0], Catch::StartsWith("NVML absent"));
  }
  // The default library name, on a host without the NVIDIA driver (this one, in CI).
  ScopedEnv library(nvml::kLibraryEnv, std::nullopt);
  if (void* real = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL)) {
    dlclose(real);
    WARN("libnvidia-ml.so.1 is installed here: the default-name absence check does not apply");
    return;
  }
  const auto session = nvml::Session::open();
  REQUIRE_FALSE(session.ok());
  CHECK(session.error().message == "NVML absent: libnvidia-ml.so.1 not found");
}

namespace {

constexpr const char* kHealthyGpu = R"(devices 2
0 uuid GPU-8E8F1C2A-1B2C-3D4E-5F60-718293A4B5C6
0 pci 0000:65:00.0
0 temperature.gpu 50
0 power_usage 100000
1 uuid GPU-11111111-2222-3333-4444-555555555555
1 pci 0000:0a:00.0
1 temperature.gpu 41
)";

support::VerdictPath cuda0_path() {
  support::VerdictPath path;
  path.compute.id = "cuda0";
  path.compute.uuid = "8e8f1c2a-1b2c-3d4e-5f60-718293a4b5c6";
  path.compute.pci_bus_id = "0000:65:00.0";
  path.verdict.health = Health::healthy;
  return path;
}

}  // namespace

// Issue 15/17: a GPU that got lost and whose identity calls then failed showed up as an unjoined
// nvml0 with gpu_lost set, and the compute device it belongs to stayed healthy.
TEST_CASE("telemetry: a lost GPU whose identity calls fail is failed under its last identity", "[unit]") {
  StandinEnvironment environment(SUBSTRATE_NVML_STANDIN_DIR, kHealthyGpu);
  TelemetryReader reader({"/nonexistent/substrate-sysfs", true, {}, std::chrono::milliseconds(50)});
  support::VerdictPath path = cuda0_path();
  CHECK(path.fold(reader).health == Health::healthy);

  // The GPU is lost: every call on it, the identity calls included, answers GPU_IS_LOST.
  environment.rewrite(std::string(kHealthyGpu) + "0 fail * 15\n");
  const EffectiveVerdict lost = path.fold(reader);
  CHECK(lost.health == Health::failed);
  REQUIRE_FALSE(lost.reasons.empty());
  CHECK_THAT(lost.reasons.back(), Catch::Contains("GPU is lost"));
  const auto joined = std::find_if(path.last.devices.begin(), path.last.devices.end(),
                                   [](const TelemetryDevice& d) { return d.local_id == "nvml0"; });
  REQUIRE(joined != path.last.devices.end());
  CHECK(joined->device == "cuda0");
  CHECK(joined->uuid == "8e8f1c2a-1b2c-3d4e-5f60-718293a4b5c6");
  CHECK(joined->pci_bus_id == "0000:65:00.0");

  // Still failed, and still joined, at the next reads; the other GPU is unaffected.
  CHECK(path.fold(reader).health == Health::failed);
  const auto other = std::find_if(path.last.devices.begin(), path.last.devices.end(),
                                  [](const TelemetryDevice& d) { return d.local_id == "nvml1"; });
  REQUIRE(other != path.last.devices.end());
  CHECK_FALSE(other->readings.gpu_lost);
  CHECK(other->readings.temperatures.size() == 1);
}

TEST_CASE("telemetry: NVML makes no call on a device after its first GPU_IS_LOST", "[unit]") {
  StandinEnvironment environment(SUBSTRATE_NVML_STANDIN_DIR, kHealthyGpu);
  auto session = open_session();
  session->read();
  const auto healthy_calls = environment.counter("substrate_standin_device_calls", 0);
  CHECK(healthy_calls > 10);  // a healthy read makes many calls
  const auto other_before = environment.counter("substrate_standin_device_calls", 1);

  environment.rewrite(std::string(kHealthyGpu) + "0 fail * 15\n");
  const auto before = environment.counter("substrate_standin_device_calls", 0);
  const SourceResult lost = session->read();
  // The first call (the PCI info) answered GPU_IS_LOST; an XID re-registration may add one more.
  const auto after_lost = environment.counter("substrate_standin_device_calls", 0);
  CHECK(after_lost - before <= 2);
  REQUIRE(lost.devices.size() == 2);
  CHECK(lost.devices[0].readings.gpu_lost);
  CHECK(std::count_if(lost.errors.begin(), lost.errors.end(),
                      [](const ReadError& e) { return e.cause == "gpu_is_lost"; }) >= 1);

  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let the XID thread rebuild
  const auto settled = environment.counter("substrate_standin_device_calls", 0);
  for (int i = 0; i < 3; ++i) {
    const SourceResult again = session->read();
    REQUIRE(again.devices.size() == 2);
    CHECK(again.devices[0].readings.gpu_lost);
    CHECK(again.devices[0].uuid == "8e8f1c2a-1b2c-3d4e-5f60-718293a4b5c6");
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(environment.counter("substrate_standin_device_calls", 0) == settled);
  // The other GPU is still read in full at each of the four reads.
  CHECK(environment.counter("substrate_standin_device_calls", 1) - other_before >= 4 * (healthy_calls - 1));
}

TEST_CASE("telemetry: per-call NVML errors of one device leave it readable and not lost", "[unit]") {
  StandinEnvironment environment(SUBSTRATE_NVML_STANDIN_DIR, kHealthyGpu);
  auto session = open_session();
  REQUIRE(session->read().errors.empty());

  // Under the running session: device 0 refuses its power reads, device 1 times out on one ECC call.
  environment.rewrite(std::string(kHealthyGpu) +
                      "0 fail nvmlDeviceGetPowerUsage 4\n1 fail nvmlDeviceGetTotalEccErrors 10\n");
  const SourceResult result = session->read();
  REQUIRE(result.devices.size() == 2);
  CHECK_FALSE(result.devices[0].readings.power_watts.has_value());
  CHECK(result.devices[0].readings.temperatures.at(0).celsius == 50);
  CHECK_FALSE(result.devices[0].readings.gpu_lost);
  CHECK_FALSE(result.devices[1].readings.gpu_lost);
  CHECK(result.devices[1].readings.temperatures.at(0).celsius == 41);
  CHECK(std::count_if(result.errors.begin(), result.errors.end(), [](const ReadError& e) {
          return e.cause == "no_permission" && e.detail.find("nvmlDeviceGetPowerUsage (device 0)") != std::string::npos;
        }) == 1);
  // Four total-ECC queries (2 kinds x 2 scopes), each timing out.
  CHECK(std::count_if(result.errors.begin(), result.errors.end(), [](const ReadError& e) {
          return e.cause == "timeout" && e.detail.find("nvmlDeviceGetTotalEccErrors (device 1)") != std::string::npos;
        }) == 4);

  // The failures end with the next scenario.
  environment.rewrite(kHealthyGpu);
  const SourceResult healed = session->read();
  CHECK(healed.errors.empty());
  CHECK(healed.devices[0].readings.power_watts == Approx(100.0));
}
