// /metrics rendered from a DaemonView alone: every family present on an empty host, the series
// of a device that ran, bounded labels, and promtool's lint.
#include <catch2/catch.hpp>

#include "daemon/metrics_export.hpp"
#include "tests/probes/telemetry/test_support.hpp"

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
  CHECK_THAT(text, Catch::Contains("substrate_device_health{device=\"vulkan0\",state=\"degraded\"} 1"));
  CHECK_THAT(text, Catch::Contains("substrate_device_health{device=\"vulkan0\",state=\"healthy\"} 0"));
  CHECK_THAT(text, Catch::Contains("substrate_probe_runs_total{device=\"vulkan0\",probe=\"gemm\"} 4"));
  // Every reason from the first run on, zeros included.
  CHECK_THAT(text,
             Catch::Contains("substrate_probe_failures_total{device=\"vulkan0\",probe=\"gemm\",reason=\"crashed\"} 0"));
  CHECK_THAT(text, Catch::Contains("substrate_probe_failures_total{device=\"vulkan0\",probe=\"gemm\",reason="
                                   "\"fingerprint_change\"} 2"));
  CHECK_THAT(text, Catch::Contains("substrate_worker_exits_total{device=\"vulkan0\",outcome=\"hung\"} 1"));
  CHECK_THAT(text, Catch::Contains("substrate_worker_exits_total{device=\"vulkan0\",outcome=\"ok\"} 0"));
  CHECK_THAT(text,
             Catch::Contains(
                 "substrate_probe_skipped_total{device=\"vulkan0\",probe=\"canary\",reason=\"not_implemented\"} 3"));
  CHECK_THAT(text, Catch::Contains("fingerprint=\"0123456789abcdef\""));
  CHECK_THAT(text, Catch::Contains("spec=\"gemm/f32/exact/16x16x16#1\""));
  // A telemetry condition raises the shown verdict, as /status does.
  f.stats.verdict.health = Health::healthy;
  f.stats.telemetry_conditions.push_back({false, "thermal slowdown", false});
  CHECK_THAT(render_metrics(f.view()),
             Catch::Contains("substrate_device_health{device=\"vulkan0\",state=\"degraded\"} 1"));
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
  CHECK_THAT(text, Catch::Contains("substrate_mig_instance_info{device=\"cuda1-mig2\",parent_uuid=\"aaaaaaaa-0000-0000-"
                                   "0000-00000000000a\",gpu_instance=\"2\",profile=\"3g.40gb\"} 1"));
  CHECK_THAT(text, Catch::Contains("substrate_device_unprobed{uuid=\"bbbbbbbb-0000-0000-0000-00000000000b\","
                                   "pci_bus_id=\"0000:5e:00.0\",reason=\"no_permission\"} 1"));
  const auto lint = telemetry::testing::promtool_check_metrics(text);
  INFO(lint.output);
  CHECK(lint.exit_code == 0);
  // A whole device has no MIG series; a host with nothing unprobed still has the family (its TYPE).
  const std::string plain = render_metrics(ran_gemm().view());
  CHECK_THAT(plain, !Catch::Contains("substrate_mig_instance_info{"));
  CHECK_THAT(plain, Catch::Contains("# TYPE substrate_device_unprobed gauge"));
  CHECK_THAT(plain, !Catch::Contains("substrate_device_unprobed{"));
}
