// The scheduler's decisions on /metrics from a real daemon: a busy GPU (the NVML stand-in's
// utilisation, joined to lavapipe by UUID) defers its probes for the reason "busy", within
// max_staleness_seconds, and the interval and next run are exported for SubstrateProbeStale.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tests/support/daemon_process.hpp"
#include "tests/support/run_command.hpp"
#include "tests/support/scrape.hpp"

using namespace substrate::testing;
using namespace std::chrono_literals;

namespace {

// nvml::kLibraryEnv (probes/telemetry/nvml/library.hpp): where the loader finds libnvidia-ml.
constexpr const char* k_nvml_library_env = "SUBSTRATE_NVML_LIBRARY";

double unix_now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

}  // namespace

TEST_CASE("scheduler: a busy device's probe is deferred for reason busy, within max_staleness_seconds", "[e2e]") {
  const std::string uuid = device_uuid("vulkan0");
  REQUIRE_FALSE(uuid.empty());
  const auto script = std::filesystem::temp_directory_path() / ("substrate-busy-" + std::to_string(::getpid()));
  auto write_script = [&](int gpu_percent) {
    const auto aside = script.string() + ".new";
    std::ofstream(aside) << "devices 1\n0 uuid GPU-" << uuid << "\n0 utilization " << gpu_percent << " 10\n";
    std::filesystem::rename(aside, script);
  };
  write_script(90);
  ::setenv(k_nvml_library_env, SUBSTRATE_NVML_STANDIN_DIR "/libnvidia-ml.so.1", 1);
  ::setenv("SUBSTRATE_NVML_STANDIN_SCRIPT", script.c_str(), 1);
  DaemonProcess daemon(
      "  gemm:\n    interval_seconds: 1\n    size: \"16\"\n    modes: [exact]\n    dtypes: [f32]\n"
      "  attention:\n    enabled: false\n  memory:\n    enabled: false\n  canary:\n    enabled: false\n",
      "busy_utilization: 0.5\nmax_staleness_seconds: 4\ntelemetry:\n  interval_seconds: 1\n  timeout_seconds: 0.5\n");
  daemon.start();
  ::unsetenv(k_nvml_library_env);
  ::unsetenv("SUBSTRATE_NVML_STANDIN_SCRIPT");
  REQUIRE(daemon.wait_ready());

  const std::string gemm = "{substrate_device=\"vulkan0\",probe=\"gemm\"}";
  const std::string busy = "substrate_probe_deferred{substrate_device=\"vulkan0\",probe=\"gemm\",reason=\"busy\"}";
  const std::string runs = "substrate_probe_runs_total" + gemm;
  // The first run is never deferred (no last run yet); after it the busy GPU defers the next.
  std::string scrape;
  REQUIRE(wait_until(
      [&] {
        scrape = daemon.metrics();
        return series_value(scrape, busy) == 1.0;
      },
      30s));
  CHECK(series_value(scrape, "substrate_probe_interval_seconds" + gemm) == 1.0);
  CHECK(series_value(scrape, "substrate_max_staleness_seconds") == 4.0);
  CHECK(series_value(scrape, "substrate_probe_deferred{substrate_device=\"vulkan0\",reason=\"duty_cycle\"}") == 0.0);
  // Deferred a quarter interval at a time: the next run is ahead, within seconds.
  const double next = series_value(scrape, "substrate_probe_next_run_timestamp_seconds" + gemm).value_or(0);
  CHECK(next > unix_now() - 1.0);
  CHECK(next < unix_now() + 5.0);
  // Deferral ends at max_staleness_seconds after the last run: the busy device still gets runs.
  const double before = series_value(scrape, runs).value_or(0);
  REQUIRE(before >= 1.0);
  CHECK(wait_until([&] { return series_value(daemon.metrics(), runs).value_or(0) >= before + 1; }, 30s));

  // An idle GPU is not deferred.
  write_script(0);
  CHECK(wait_until([&] { return series_value(daemon.metrics(), busy) == 0.0; }, 30s));
  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(15s) == 0);
  std::filesystem::remove(script);
}

TEST_CASE("scheduler: coverage repeats each round's specs within its share of the duty cycle", "[e2e]") {
  // gemm alone, every 4 s: duty_share 0.25 of max_duty_cycle 1 gives each round 1 s of passes.
  const std::string probes =
      "  gemm:\n    interval_seconds: 4\n    size: \"64\"\n    modes: [exact]\n    dtypes: [f32]\n"
      "  attention:\n    enabled: false\n  memory:\n    enabled: false\n  canary:\n    enabled: false\n";
  const std::string gemm = "{substrate_device=\"vulkan0\",probe=\"gemm\"}";
  const double flops_per_run = 2.0 * 64 * 64 * 64;
  auto run_rounds = [&](const std::string& coverage) {
    DaemonProcess daemon(probes, coverage);
    daemon.start();
    REQUIRE(daemon.wait_ready());
    const std::string scrape = daemon.metrics_when_at_least("substrate_probe_runs_total" + gemm, 2, 60s);
    REQUIRE(series_value(scrape, "substrate_probe_runs_total" + gemm).value_or(0) >= 2);
    daemon.signal(SIGTERM);
    CHECK(daemon.wait_exit(15s) == 0);
    return scrape;
  };

  SECTION("on: many checked passes per round, each counted, all agreeing") {
    const std::string scrape = run_rounds("coverage:\n  duty_share: 0.25\n  max_round_seconds: 1.5\n");
    const double runs = series_value(scrape, "substrate_probe_runs_total" + gemm).value_or(0);
    const double checked = series_value(scrape, "substrate_checked_runs_total" + gemm).value_or(0);
    INFO(scrape);
    CHECK(checked >= 5 * runs);  // a 64-cubed pass takes milliseconds; the round repeats for 1 s
    CHECK(series_value(scrape, "substrate_checked_flops_total" + gemm) == checked * flops_per_run);
    // Charged every pass, and no more device time than the rounds' wall time of passes (1 s each
    // plus the pass that crosses it).
    const double spent = series_value(scrape, "substrate_probe_device_seconds_total" + gemm).value_or(0);
    CHECK(spent > 0.0);
    CHECK(spent <= runs * 1.5);
    // Fixed-order kernels: every pass matched the first pass's bits and the golden.
    CHECK(series_value(scrape,
                       "substrate_probe_failures_total{substrate_device=\"vulkan0\",probe=\"gemm\","
                       "reason=\"fingerprint_change\"}") == 0.0);
    CHECK(series_value(scrape,
                       "substrate_probe_failures_total{substrate_device=\"vulkan0\",probe=\"gemm\","
                       "reason=\"golden_mismatch\"}") == 0.0);
    CHECK(series_value(scrape, "substrate_device_health{substrate_device=\"vulkan0\",state=\"healthy\"}") == 1.0);
  }
  SECTION("off: one checked run per spec and round") {
    const std::string scrape = run_rounds("coverage:\n  duty_share: 0\n");
    const double runs = series_value(scrape, "substrate_probe_runs_total" + gemm).value_or(0);
    INFO(scrape);
    CHECK(series_value(scrape, "substrate_checked_runs_total" + gemm) == runs);
    CHECK(series_value(scrape, "substrate_checked_flops_total" + gemm) == runs * flops_per_run);
  }
}
