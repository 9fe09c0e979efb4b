// /metrics rendered from a DaemonView alone: every family present on an empty host, the series
// of a device that ran, bounded labels, and promtool's lint.
#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <sstream>

#include "daemon/metrics_export.hpp"
#include "probes/telemetry/join.hpp"
#include "tests/probes/telemetry/test_support.hpp"
#include "tests/support/scrape.hpp"

using namespace substrate;

namespace {

struct Fixture {
  std::vector<std::string> notes;
  telemetry::Snapshot telemetry;
  DeviceStats stats;
  DaemonView view() {
    DaemonView v;
    v.devices.push_back({&stats, false, 0});
    v.config_source = "/etc/substrated/config.yaml";
    v.reload_timestamp = 1700000000.0;
    v.backend_notes = &notes;
    v.telemetry = &telemetry;
    v.telemetry_read_at = 1700000015.0;
    v.telemetry_overruns = 2;
    return v;
  }
};

Fixture ran_gemm() {
  Fixture f;
  f.stats.info.id = "vulkan0";
  f.stats.info.uuid = "00000000-0000-0000-0000-000000000001";
  f.stats.info.name = "llvmpipe";
  f.stats.info.backend = "vulkan";
  f.stats.info.driver = "mesa 22.3";
  f.stats.info.kernel_build = "k1";
  f.stats.verdict.health = Health::degraded;
  ProbeStats& gemm = f.stats.probes["gemm"];
  gemm.runs = 4;
  gemm.failures[Reason::fingerprint_change] = 2;
  gemm.budget = 0.25;
  gemm.last_run = 1700000010.0;
  gemm.checked_runs = 40;  // 4 rounds of 10 passes (coverage)
  gemm.checked_flops = 40 * 2.0 * 16 * 16 * 16;
  gemm.spent_seconds = 1.5;
  ProbeResult r;
  r.spec.probe = "gemm";
  r.spec.gemm = {16, 16, 16};
  r.status = RunStatus::pass;
  r.fingerprint = "0123456789abcdef";
  gemm.last_results.push_back(r);
  f.stats.worker_exits["hung"] = 1;
  f.stats.skipped[{"canary", SkipKind::not_implemented}] = 3;
  f.notes = {"cuda: libcuda.so.1 not found", "vulkan: device 1 unusable", "discovery failed: timeout"};
  return f;
}

}  // namespace

TEST_CASE("metrics export: a host with no device still has every family and says why", "[unit]") {
  Fixture f;
  f.notes = {"vulkan: no devices"};
  DaemonView v = f.view();
  v.devices.clear();
  const std::string text = render_metrics(v);
  for (const char* family :
       {"substrate_build_info", "substrate_probe_failures_total", "substrate_probe_skipped_total",
        "substrate_baseline_resets_total", "substrate_device_changes_total", "substrate_worker_exits_total"}) {
    CHECK_THAT(text, Catch::Contains(std::string("# TYPE ") + family));
  }
  CHECK_THAT(text, Catch::Contains("substrate_devices{backend=\"vulkan\"} 0"));
  CHECK_THAT(text, Catch::Contains("substrate_devices{backend=\"cuda\"} 0"));
  CHECK_THAT(text, Catch::Contains("substrate_device_discovery_errors{backend=\"vulkan\"} 1"));
  CHECK_THAT(text, Catch::Contains("substrate_telemetry_read_overruns_total 2"));
  CHECK_THAT(text, Catch::Contains("substrate_config_last_reload_successful 1"));
  CHECK_THAT(text, !Catch::Contains("substrate_device_health"));
}

TEST_CASE("metrics export: a device's verdict, runs, reasons and worker exits", "[unit]") {
  Fixture f = ran_gemm();
  const std::string text = render_metrics(f.view());
  CHECK_THAT(text, Catch::Contains("substrate_devices{backend=\"vulkan\"} 1"));
  // Discovery notes by the backend they name; anything else is the discovery worker's own.
  CHECK_THAT(text, Catch::Contains("substrate_device_discovery_errors{backend=\"cuda\"} 1"));
  CHECK_THAT(text, Catch::Contains("substrate_device_discovery_errors{backend=\"discovery\"} 1"));
  CHECK_THAT(text, Catch::Contains("substrate_device_health{substrate_device=\"vulkan0\",UUID=\"00000000-0000-0000-"
                                   "0000-000000000001\",state=\"degraded\"} 1"));
  CHECK_THAT(text, Catch::Contains("substrate_device_health{substrate_device=\"vulkan0\",UUID=\"00000000-0000-0000-"
                                   "0000-000000000001\",state=\"healthy\"} 0"));
  CHECK_THAT(text, Catch::Contains("substrate_probe_runs_total{substrate_device=\"vulkan0\",UUID=\"00000000-0000-0000-"
                                   "0000-000000000001\",probe=\"gemm\"} 4"));
  // Checked work: every pass; bytes only for a probe that tests memory.
  const std::string gemm_labels =
      "{substrate_device=\"vulkan0\",UUID=\"00000000-0000-0000-0000-000000000001\",probe=\"gemm\"} ";
  CHECK_THAT(text, Catch::Contains("substrate_checked_runs_total" + gemm_labels + "40"));
  CHECK_THAT(text, Catch::Contains("substrate_checked_flops_total" + gemm_labels + "327680"));
  CHECK_THAT(text, Catch::Contains("substrate_probe_device_seconds_total" + gemm_labels + "1.5"));
  CHECK_THAT(text, !Catch::Contains("substrate_checked_bytes_total{"));
  // Every reason from the first run on, zeros included.
  CHECK_THAT(text, Catch::Contains("substrate_probe_failures_total{substrate_device=\"vulkan0\",UUID=\"00000000-0000-"
                                   "0000-0000-000000000001\",probe=\"gemm\",reason=\"crashed\"} 0"));
  CHECK_THAT(text, Catch::Contains("substrate_probe_failures_total{substrate_device=\"vulkan0\",UUID=\"00000000-0000-"
                                   "0000-0000-000000000001\",probe=\"gemm\",reason="
                                   "\"fingerprint_change\"} 2"));
  CHECK_THAT(text, Catch::Contains("substrate_worker_exits_total{substrate_device=\"vulkan0\",UUID=\"00000000-0000-"
                                   "0000-0000-000000000001\",outcome=\"hung\"} 1"));
  CHECK_THAT(text, Catch::Contains("substrate_worker_exits_total{substrate_device=\"vulkan0\",UUID=\"00000000-0000-"
                                   "0000-0000-000000000001\",outcome=\"ok\"} 0"));
  CHECK_THAT(text, Catch::Contains("substrate_probe_skipped_total{substrate_device=\"vulkan0\",UUID=\"00000000-0000-"
                                   "0000-0000-000000000001\",probe=\"canary\",reason=\"not_implemented\"} 3"));
  CHECK_THAT(text, Catch::Contains("fingerprint=\"0123456789abcdef\""));
  CHECK_THAT(text, Catch::Contains("spec=\"gemm/f32/exact/16x16x16#1\""));
  // A telemetry condition raises the shown verdict, as /status does.
  f.stats.verdict.health = Health::healthy;
  f.stats.telemetry_conditions.push_back({false, "thermal slowdown", false});
  CHECK_THAT(render_metrics(f.view()),
             Catch::Contains("substrate_device_health{substrate_device=\"vulkan0\",UUID=\"00000000-0000-0000-0000-"
                             "000000000001\",state=\"degraded\"} 1"));
}

TEST_CASE("metrics export: a drill's fingerprint is not exported and the text passes promtool", "[unit]") {
  Fixture f = ran_gemm();
  f.stats.probes["gemm"].last_results[0].spec.inject.enabled = true;
  const std::string text = render_metrics(f.view());
  CHECK_THAT(text, !Catch::Contains("substrate_kernel_fingerprint_info{"));
  const auto lint = telemetry::testing::promtool_check_metrics(render_metrics(ran_gemm().view()));
  INFO(lint.output);
  CHECK(lint.exit_code == 0);
}

TEST_CASE("metrics export: every per-device series carries the identity that joins dcgm-exporter's", "[unit]") {
  Fixture f = ran_gemm();
  f.stats.info.id = "cuda1";
  f.stats.info.vendor = "nvidia";
  f.stats.info.backend = "cuda";
  f.stats.info.uuid = "5fd4a1b2-0c3d-4e5f-8a9b-0c1d2e3f4a5b";
  f.stats.info.pci_bus_id = "0000:3b:00.0";
  f.stats.info.kernel_image = "sass sm_90";
  f.stats.baseline_resets["driver_change"] = 1;
  f.stats.device_changes["driver"] = 1;
  ProbeResult memory;
  memory.spec.probe = "memory";
  memory.memory = MemoryDetails{};
  f.stats.probes["memory"].last_results.push_back(memory);
  // Telemetry from NVML joined to cuda1, and a GPU the daemon does not check (nvml0).
  telemetry::TelemetryDevice nvml;
  nvml.source = telemetry::kSourceNvml;
  nvml.local_id = "nvml1";
  nvml.pci_bus_id = "00000000:3B:00.0";
  nvml.readings.temperatures.push_back({"gpu", 50.0});
  nvml.readings.ecc.push_back({"uncorrected", "volatile", "total", 0});
  nvml.readings.xids.push_back({79, 1, 1700000000.0});
  telemetry::TelemetryDevice other = nvml;
  other.local_id = "nvml0";
  other.pci_bus_id = "00000000:1A:00.0";
  f.telemetry.devices = {nvml, other};
  DeviceInfo unselected = f.stats.info;
  unselected.id = "cuda0";
  unselected.pci_bus_id = "0000:1a:00.0";
  f.telemetry = telemetry::join_devices(f.telemetry, {f.stats.info});
  kubelet::PodResourcesWatcher::Snapshot pods;
  pods.up = true;
  pods.assignments.push_back({"nvidia.com/gpu", "GPU-5FD4A1B2-0C3D-4E5F-8A9B-0C1D2E3F4A5B", "trainer-0", "ml", "main"});
  DaemonView view = f.view();
  view.host_devices = {unselected, f.stats.info};
  view.pod_resources = &pods;
  const std::string text = render_metrics(view);

  const std::map<std::string, std::string> cuda1{
      {"UUID", "GPU-5fd4a1b2-0c3d-4e5f-8a9b-0c1d2e3f4a5b"}, {"pci_bus_id", "00000000:3B:00.0"}, {"gpu", "1"}};
  std::set<std::string> families;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto series = testing::parse_series(line.substr(0, line.rfind(' ')));
    REQUIRE(series);
    INFO(line);
    // dcgm-exporter's `device` ("nvidia3") must survive a join untouched: we never export one.
    CHECK(series->second.count("device") == 0);
    const auto id = series->second.find("substrate_device");
    if (id == series->second.end()) continue;
    families.insert(series->first);
    if (id->second == "nvml0") {
      CHECK(series->second.at("gpu") == "0");
      CHECK(series->second.at("pci_bus_id") == "00000000:1A:00.0");
      continue;
    }
    CHECK(id->second == "cuda1");
    for (const auto& [name, value] : cuda1) CHECK((series->second.count(name) && series->second.at(name) == value));
  }
  // The families this check covered, probe, daemon and telemetry ones alike.
  for (const char* family :
       {"substrate_device_info", "substrate_device_pod_info", "substrate_device_health", "substrate_probe_runs_total",
        "substrate_probe_failures_total", "substrate_probe_skipped_total", "substrate_worker_exits_total",
        "substrate_baseline_resets_total", "substrate_device_changes_total", "substrate_kernel_fingerprint_info",
        "substrate_kernel_image_info", "substrate_memory_bad_words", "substrate_gpu_temperature_celsius",
        "substrate_ecc_errors_total", "substrate_xid_events_total", "substrate_telemetry_source_info"}) {
    CHECK(families.count(family) == 1);
  }
  const auto lint = telemetry::testing::promtool_check_metrics(text);
  INFO(lint.output);
  CHECK(lint.exit_code == 0);
}

TEST_CASE("metrics export: a MIG instance's labels and an unprobed GPU, one series each, promtool-clean", "[unit]") {
  Fixture f = ran_gemm();
  f.stats.info.id = "cuda1-mig2";
  f.stats.info.backend = "cuda";
  f.stats.info.mig_parent_uuid = "aaaaaaaa-0000-0000-0000-00000000000a";
  f.stats.info.mig_gpu_instance = 2;
  f.stats.info.mig_profile = "3g.40gb";
  const std::vector<UnprobedGpu> unprobed = {
      {"bbbbbbbb-0000-0000-0000-00000000000b", "0000:5e:00.0", "NVIDIA H100", "no_permission", "detail"}};
  DaemonView view = f.view();
  view.unprobed = &unprobed;
  const std::string text = render_metrics(view);
  // The instance's series carry its identity labels; the parent's UUID is in NVIDIA's form, as
  // dcgm-exporter prints it, and so is the unprobed GPU's identity.
  CHECK(testing::series_value(text,
                              "substrate_mig_instance_info{substrate_device=\"cuda1-mig2\",parent_uuid=\"GPU-"
                              "aaaaaaaa-0000-0000-0000-00000000000a\",gpu_instance=\"2\",profile=\"3g.40gb\"}") == 1.0);
  CHECK_THAT(text, Catch::Contains("substrate_device_unprobed{UUID=\"GPU-bbbbbbbb-0000-0000-0000-00000000000b\","
                                   "pci_bus_id=\"00000000:5E:00.0\",reason=\"no_permission\"} 1"));
  const auto lint = telemetry::testing::promtool_check_metrics(text);
  INFO(lint.output);
  CHECK(lint.exit_code == 0);
  // A whole device has no MIG series; a host with nothing unprobed still has the family (its TYPE).
  const std::string plain = render_metrics(ran_gemm().view());
  CHECK_THAT(plain, !Catch::Contains("substrate_mig_instance_info{"));
  CHECK_THAT(plain, Catch::Contains("# TYPE substrate_device_unprobed gauge"));
  CHECK_THAT(plain, !Catch::Contains("substrate_device_unprobed{"));
}
