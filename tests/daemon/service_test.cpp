#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "daemon/control_socket.hpp"
#include "daemon/state_store.hpp"
#include "probes/backends/compute_device.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/fake_cuda.hpp"
#include "tests/support/run_command.hpp"
#include "tests/support/scrape.hpp"

using namespace substrate;
using namespace substrate::testing;
using namespace std::chrono_literals;

namespace {

const std::string k_fast_gemm =
    "  gemm:\n    interval_seconds: 1\n    timeout_seconds: 20\n    size: \"16\"\n    modes: [exact]\n    dtypes: "
    "[f32]\n"
    "  attention:\n    enabled: false\n  memory:\n    enabled: false\n";

std::string with_drill(const std::string& drill) {
  return "  gemm:\n    interval_seconds: 1\n    timeout_seconds: 20\n    size: \"16\"\n    modes: [exact]\n"
         "    dtypes: [f32]\n    drill: \"" +
         drill +
         "\"\n"
         "  attention:\n    enabled: false\n  memory:\n    enabled: false\n";
}

std::optional<double> metric(const std::string& text, const std::string& series) { return series_value(text, series); }

std::string health_series(const std::string& device, const std::string& state) {
  return "substrate_device_health{substrate_device=\"" + device + "\",state=\"" + state + "\"}";
}

bool metric_at_least(DaemonProcess& daemon, const std::string& series, double value) {
  const auto v = metric(daemon.metrics(), series);
  return v && *v >= value;
}

}  // namespace

TEST_CASE("daemon: schedules probes, a drill fails the device, reloads, and stops cleanly on SIGTERM", "[e2e]") {
  DaemonProcess daemon(k_fast_gemm);
  daemon.start();
  REQUIRE(daemon.wait_ready());
  const std::string runs = "substrate_probe_runs_total{substrate_device=\"vulkan0\",probe=\"gemm\"}";
  REQUIRE(wait_until([&] { return metric_at_least(daemon, runs, 2); }, 60s));
  CHECK(metric(daemon.metrics(), health_series("vulkan0", "healthy")) == 1.0);
  // Every scheduled result states what its check can see (issue 18): exact mode sees bit 0 of every
  // element; its budget is 0, so there is no drift reference.
  const std::string healthy = daemon.metrics();
  CHECK(metric(healthy, "substrate_probe_guaranteed_bit{substrate_device=\"vulkan0\",probe=\"gemm\"}") == 0.0);
  CHECK(metric(healthy, "substrate_probe_guaranteed_elements_ratio{substrate_device=\"vulkan0\",probe=\"gemm\"}") ==
        1.0);
  CHECK(metric(healthy, "substrate_probe_error_budget_drift_ratio{substrate_device=\"vulkan0\",probe=\"gemm\"}") ==
        0.0);

  // The operator's drill path: the config's drill key and SIGHUP.
  daemon.write_config(with_drill("bit=30,row=2,col=3"));
  daemon.signal(SIGHUP);
  INFO(daemon.log());
  REQUIRE(wait_until([&] { return metric_at_least(daemon, health_series("vulkan0", "failed"), 1); }, 60s));
  const std::string scrape = daemon.metrics();
  CHECK(metric(
            scrape,
            "substrate_probe_failures_total{substrate_device=\"vulkan0\",probe=\"gemm\",reason=\"golden_mismatch\"}") >=
        1.0);
  CHECK(metric(scrape, "substrate_probe_drill{substrate_device=\"vulkan0\",probe=\"gemm\"}") == 1.0);
  CHECK(metric(scrape, "substrate_probe_mismatched_elements{substrate_device=\"vulkan0\",probe=\"gemm\"}") == 1.0);
  // The failing run's evidence is kept for `substrated compare`.
  REQUIRE(wait_until(
      [&] {
        return std::filesystem::exists(daemon.dir() / "state" / "dumps" / "vulkan0" / "gemm-last-failure" /
                                       "output.npy");
      },
      20s));
  auto compared =
      run_substrated("compare " + (daemon.dir() / "state" / "dumps" / "vulkan0" / "gemm-last-failure").string());
  CHECK(compared.exit_code == 1);
  const auto status = nlohmann::json::parse(http_get(daemon.port(), "/status").body);
  CHECK(status.at("devices").at(0).at("health") == "failed");
  CHECK(status.at("devices").at(0).at("reasons").at(0).get<std::string>().find("golden_mismatch") != std::string::npos);

  // `substrated probe` goes through the daemon's socket and agrees.
  auto probe = run_substrated("probe --socket " + daemon.socket_path() +
                              " --kernel gemm --size 16 --mode exact --dtype f32 --inject bit=30,row=2,col=3");
  CHECK(probe.exit_code == 1);
  CHECK(probe.output.find("run by the substrated daemon") != std::string::npos);
  CHECK(probe.output.find("row 2, col 3") != std::string::npos);
  // The socket's args go through the same parser: a bad one is one line and exit 2, never a crash.
  for (const auto& [args, message] : std::vector<std::pair<nlohmann::json, std::string>>{
           {{"--frobnicate"}, "unknown option '--frobnicate'"},
           {{"--seed"}, "--seed needs a value"},
           {{"--kernel=nope"}, "unknown kernel 'nope' (see substrated probe --list)"}}) {
    auto bad = control_request(daemon.socket_path(), {{"command", "probe"}, {"args", args}}, 10.0);
    REQUIRE(bad.ok());
    CHECK(bad->at("ok") == false);
    CHECK(bad->at("exit_code") == 2);
    CHECK(bad->at("error") == message);
  }
  auto npd = run_substrated("probe --npd --socket " + daemon.socket_path());
  CHECK(npd.exit_code == 1);
  auto cli_status = run_substrated("status --socket " + daemon.socket_path());
  CHECK(cli_status.exit_code == 0);
  CHECK(cli_status.output.find("vulkan0  failed") != std::string::npos);

  // A bad file on reload: logged, the old config stays, the metric says so.
  daemon.write_raw_config("probes:\n  gemm:\n    interval_seconds: soon\n");
  daemon.signal(SIGHUP);
  REQUIRE(wait_until([&] { return metric(daemon.metrics(), "substrate_config_last_reload_successful") == 0.0; }, 20s));
  CHECK(http_get(daemon.port(), "/healthz").status == 200);

  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(20s) == 0);
  CHECK(read_checked_file(daemon.state_path().string()).ok());
}

TEST_CASE("daemon: an invalid config at start exits 78 naming line, column and key", "[e2e]") {
  DaemonProcess daemon(k_fast_gemm);
  daemon.write_raw_config("probes:\n  gemm:\n    interval_seconds: -3\n");
  daemon.start();
  CHECK(daemon.wait_exit(20s) == 78);
  CHECK(daemon.log().find(":3:") != std::string::npos);
  CHECK(daemon.log().find("probes.gemm.interval_seconds") != std::string::npos);
}

// Issue 17: a config path with invalid UTF-8 made /status answer 500 forever (json type_error 316).
TEST_CASE("daemon: a config path with invalid UTF-8 does not make /status answer 500", "[e2e]") {
  DaemonProcess daemon(k_fast_gemm, "expected_devices: 4\n");
  daemon.use_config_name("conf\xff\xfe.yaml");
  daemon.write_config(k_fast_gemm);
  daemon.start();
  REQUIRE(daemon.wait_ready());
  const auto reply = http_get(daemon.port(), "/status");
  REQUIRE(reply.status == 200);
  const auto status = nlohmann::json::parse(reply.body);
  CHECK(status.at("config").get<std::string>().find("conf\xEF\xBF\xBD") != std::string::npos);  // U+FFFD
  // Zero devices is not silent: a count per backend, 0 included, and the discovery problems.
  const std::string scrape = daemon.metrics();
  CHECK(metric(scrape, "substrate_devices{backend=\"vulkan\"}") >= 1.0);
  CHECK(metric(scrape, "substrate_devices{backend=\"cuda\"}").has_value());
  CHECK(metric(scrape, "substrate_device_discovery_errors{backend=\"discovery\"}") == 0.0);
  // ...and what the host should have, for SubstrateDevicesMissing (deploy/prometheus/tests).
  CHECK(metric(scrape, "substrate_devices_expected") == 4.0);
}

// Issue 17: a runtime_directory whose socket path exceeds 107 bytes made `serve` exit 2, which
// systemd restarts in a loop; a bad config is 78 (EX_CONFIG), which it does not.
TEST_CASE("daemon: a runtime_directory too long for the control socket exits 78", "[e2e]") {
  DaemonProcess daemon(k_fast_gemm);
  daemon.write_raw_config("listen:\n  address: 127.0.0.1\n  port: " + std::to_string(daemon.port()) +
                          "\nstate_directory: " + (daemon.dir() / "state").string() +
                          "\nruntime_directory: " + (daemon.dir() / std::string(100, 'r')).string() + "\n");
  daemon.start();
  CHECK(daemon.wait_exit(20s) == 78);
  CHECK(daemon.log().find("key 'runtime_directory': the control socket path") != std::string::npos);
}

// Issue 17: a FIFO swapped in for the config before SIGHUP blocked the loop (/healthz and the
// control socket timed out).
TEST_CASE("daemon: SIGHUP with a FIFO as the config keeps the loop answering", "[e2e]") {
  DaemonProcess daemon(k_fast_gemm);
  daemon.start();
  REQUIRE(daemon.wait_ready());
  REQUIRE(
      wait_until([&] { return metric(daemon.metrics(), "substrate_config_last_reload_successful").has_value(); }, 20s));
  std::filesystem::remove(daemon.config_path());
  REQUIRE(::mkfifo(daemon.config_path().c_str(), 0600) == 0);
  daemon.signal(SIGHUP);
  REQUIRE(wait_until([&] { return metric(daemon.metrics(), "substrate_config_last_reload_successful") == 0.0; }, 20s));
  const auto started = std::chrono::steady_clock::now();
  CHECK(http_get(daemon.port(), "/healthz").status == 200);
  auto status = control_request(daemon.socket_path(), {{"command", "status"}}, 5.0);
  CHECK(status.ok());
  CHECK(std::chrono::steady_clock::now() - started < 3s);
  INFO(daemon.log());
  CHECK(daemon.log().find("not a regular file (a FIFO)") != std::string::npos);
  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(20s) == 0);
}

TEST_CASE("daemon: kill -9 loses no state, and a driver change resets baselines", "[e2e]") {
  DaemonProcess daemon(k_fast_gemm);
  daemon.start();
  REQUIRE(daemon.wait_ready());
  const std::string runs = "substrate_probe_runs_total{substrate_device=\"vulkan0\",probe=\"gemm\"}";
  REQUIRE(wait_until([&] { return metric_at_least(daemon, runs, 2); }, 60s));
  daemon.signal(SIGKILL);
  daemon.wait_exit(10s);

  StateStore store((daemon.dir() / "state").string());
  std::string note;
  State state = store.load(&note);
  INFO("load note: " << note);
  CHECK(note.find("aside") == std::string::npos);  // loaded, not moved aside as corrupt
  REQUIRE_FALSE(state.baselines.empty());
  REQUIRE(state.devices.size() == 1);
  state.devices.begin()->second.fields["driver"] = "an older driver 1.0";
  REQUIRE(store.save(state).ok());

  daemon.start();
  REQUIRE(daemon.wait_ready());
  INFO(daemon.log());
  CHECK(metric(daemon.metrics(),
               "substrate_baseline_resets_total{substrate_device=\"vulkan0\",reason=\"driver_change\"}") == 1.0);
  CHECK(daemon.log().find("baselines reset") != std::string::npos);
  REQUIRE(wait_until([&] { return metric_at_least(daemon, runs, 2); }, 60s));
  CHECK(metric(daemon.metrics(), "substrate_fingerprint_changes_total{substrate_device=\"vulkan0\",probe=\"gemm\"}") ==
        0.0);
  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(20s) == 0);
}

TEST_CASE("daemon: a kernel that never returns marks the device hung while scrapes and signals work", "[e2e]") {
  DaemonProcess daemon(
      "  gemm:\n    interval_seconds: 1\n    timeout_seconds: 1\n    size: \"16\"\n"
      "  attention:\n    enabled: false\n  memory:\n    enabled: false\n");
  daemon.start(SUBSTRATE_TEST_DAEMON, "hang");
  REQUIRE(daemon.wait_ready());
  INFO(daemon.log());
  REQUIRE(wait_until([&] { return metric_at_least(daemon, health_series("hang0", "hung"), 1); }, 30s));
  CHECK(metric(daemon.metrics(),
               "substrate_probe_failures_total{substrate_device=\"hang0\",probe=\"gemm\",reason=\"timeout\"}") == 1.0);
  CHECK(http_get(daemon.port(), "/healthz").status == 200);
  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(20s) == 0);
  CHECK(daemon.log().find("abandoned") != std::string::npos);
}

TEST_CASE("daemon: a fingerprint that changes within the error bound degrades the device", "[e2e]") {
  DaemonProcess daemon(
      "  gemm:\n    interval_seconds: 1\n    size: \"16\"\n    modes: [random]\n    dtypes: [f32]\n"
      "  attention:\n    enabled: false\n  memory:\n    enabled: false\n");
  daemon.start(SUBSTRATE_TEST_DAEMON, "flaky");
  REQUIRE(daemon.wait_ready());
  INFO(daemon.log());
  const std::string changes = "substrate_fingerprint_changes_total{substrate_device=\"flaky0\",probe=\"gemm\"}";
  REQUIRE(wait_until([&] { return metric_at_least(daemon, changes, 2); }, 60s));
  const std::string scrape = daemon.metrics();
  CHECK(
      metric(scrape,
             "substrate_probe_failures_total{substrate_device=\"flaky0\",probe=\"gemm\",reason=\"golden_mismatch\"}") ==
      0.0);
  CHECK((metric(scrape, health_series("flaky0", "degraded")) == 1.0 ||
         metric(scrape, health_series("flaky0", "failed")) == 1.0));
  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(20s) == 0);
}

#ifdef SUBSTRATE_FAKE_LIBCUDA
TEST_CASE("daemon: the canary on a CUDA device is skipped, counted, and leaves the device healthy", "[e2e]") {
  // The real CUDA backend on the stand-in libcuda (tests/standins/fake_libcuda.cpp): its kernels do
  // nothing, so the memory probe passes, and the CUDA backend has no canary kernels.
  DaemonProcess daemon(
      "  gemm:\n    enabled: false\n  attention:\n    enabled: false\n"
      "  memory:\n    interval_seconds: 1\n    size: \"4096\"\n"
      "  canary:\n    enabled: true\n    interval_seconds: 1\n",
      "devices: [cuda0]\n");
  {
    substrate::test::FakeCuda fake;  // the daemon and its workers inherit the environment
    daemon.start();
  }
  REQUIRE(daemon.wait_ready());
  INFO(daemon.log());
  const std::string skipped =
      "substrate_probe_skipped_total{substrate_device=\"cuda0\",probe=\"canary\",reason=\"not_implemented\"}";
  const std::string memory_runs = "substrate_probe_runs_total{substrate_device=\"cuda0\",probe=\"memory\"}";
  REQUIRE(
      wait_until([&] { return metric_at_least(daemon, skipped, 4) && metric_at_least(daemon, memory_runs, 4); }, 60s));
  const std::string scrape = daemon.metrics();
  INFO(scrape);
  CHECK(metric(scrape, health_series("cuda0", "healthy")) == 1.0);
  // The image the driver took is exported (the stand-in's default driver is 13.0: the cubin).
  CHECK(metric(scrape, "substrate_kernel_image_info{substrate_device=\"cuda0\",image=\"sass sm_90\"}") == 1.0);
  // Never a failure, and no run series that could go stale for a probe that never runs here.
  CHECK_FALSE(
      metric(scrape, "substrate_probe_failures_total{substrate_device=\"cuda0\",probe=\"canary\",reason=\"error\"}"));
  CHECK_FALSE(metric(scrape, "substrate_probe_runs_total{substrate_device=\"cuda0\",probe=\"canary\"}"));
  CHECK_FALSE(
      metric(scrape, "substrate_probe_last_success_timestamp_seconds{substrate_device=\"cuda0\",probe=\"canary\"}"));
  CHECK(metric(scrape,
               "substrate_probe_failures_total{substrate_device=\"cuda0\",probe=\"memory\",reason=\"error\"}") == 0.0);
  const auto status = nlohmann::json::parse(http_get(daemon.port(), "/status").body);
  CHECK(status.at("devices").at(0).at("health") == "healthy");
  CHECK(status.at("devices").at(0).at("reasons").empty());

  // Asked through the daemon, the CLI shows the skip and exits 0: skipped alone is not a fault.
  auto probe = run_substrated("probe --socket " + daemon.socket_path() + " --kernel canary --json");
  INFO(probe.output);
  CHECK(probe.exit_code == 0);
  const auto results = nlohmann::json::parse(probe.output).at("results");
  REQUIRE(results.size() == 1);
  CHECK(results.at(0).at("status") == "skipped");
  CHECK(results.at(0).at("skip_reason") == "not implemented on the cuda backend");
  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(20s) == 0);
}

TEST_CASE(
    "daemon: a CUDA device out of memory at context, allocation or launch is skipped and stays healthy; "
    "ECC 214 fails it with the code",
    "[e2e]") {
  // The stand-in re-reads its scenario when the file changes, so it changes under the running
  // daemon (each round's worker is a fresh process that inherits the variables).
  substrate::test::FakeCuda fake;
  DaemonProcess daemon(
      "  gemm:\n    enabled: false\n  attention:\n    enabled: false\n  canary:\n    enabled: false\n"
      "  memory:\n    interval_seconds: 1\n    size: \"4096\"\n",
      "devices: [cuda0]\n");
  daemon.start();
  REQUIRE(daemon.wait_ready());
  INFO(daemon.log());
  REQUIRE(wait_until([&] { return metric_at_least(daemon, health_series("cuda0", "healthy"), 1); }, 60s));

  // A workload takes the memory, met at each place the driver reports it. Each for more rounds
  // than failures_to_fail (3): skipped every time, never an error, the device stays healthy.
  const std::string oom =
      "substrate_probe_skipped_total{substrate_device=\"cuda0\",probe=\"memory\",reason=\"out_of_memory\"}";
  double skipped = 0;
  for (const char* where : {"cuDevicePrimaryCtxRetain", "cuMemAlloc", "cuLaunchKernel"}) {
    INFO(where);
    fake.set(std::string("fail ") + where + " 2\n");
    skipped += 4;
    REQUIRE(wait_until([&] { return metric_at_least(daemon, oom, skipped); }, 60s));
    skipped = metric(daemon.metrics(), oom).value_or(skipped);
    const std::string scrape = daemon.metrics();
    CHECK(metric(scrape, health_series("cuda0", "healthy")) == 1.0);
    CHECK(metric(scrape,
                 "substrate_probe_failures_total{substrate_device=\"cuda0\",probe=\"memory\",reason=\"error\"}") ==
          0.0);
  }
  // Every worker released what it opened: as many contexts destroyed as created, and allocations
  // freed, over all processes.
  CHECK(fake.events()["ctx+"] > 0);
  CHECK(wait_until(
      [&] {
        auto events = fake.events();
        return events["ctx+"] == events["ctx-"] && events["alloc+"] == events["alloc-"];
      },
      10s));

  // An uncorrectable ECC error during a launch: failed at once, with the code named.
  fake.set("fail cuLaunchKernel 214\n");
  const std::string hardware =
      "substrate_probe_failures_total{substrate_device=\"cuda0\",probe=\"memory\",reason=\"hardware_error\"}";
  // Two rounds: the worker that met the sticky error ended, and the next round ran in a new one.
  REQUIRE(wait_until([&] { return metric_at_least(daemon, hardware, 2); }, 60s));
  const std::string scrape = daemon.metrics();
  CHECK(metric(scrape, health_series("cuda0", "failed")) == 1.0);
  const auto status = nlohmann::json::parse(http_get(daemon.port(), "/status").body);
  const std::string reasons = status.at("devices").at(0).at("reasons").dump();
  CHECK(reasons.find("hardware_error") != std::string::npos);
  CHECK(reasons.find("CUDA_ERROR_ECC_UNCORRECTABLE") != std::string::npos);
  CHECK(reasons.find("CUresult 214") != std::string::npos);
  CHECK(daemon.log().find("ended after a sticky error") != std::string::npos);
  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(20s) == 0);
}

TEST_CASE("daemon: a CUDA GPU in EXCLUSIVE_PROCESS mode with a workload is skipped and never gets a context", "[e2e]") {
  substrate::test::FakeCuda fake("device 0 compute_mode exclusive_process\ndevice 0 processes 1\n");
  for (const char* allow : {"false", "true"}) {
    INFO("probe_exclusive_gpus: " << allow);
    DaemonProcess daemon(
        "  gemm:\n    interval_seconds: 1\n    size: \"16\"\n  attention:\n    enabled: false\n"
        "  canary:\n    enabled: false\n  memory:\n    interval_seconds: 1\n    size: \"4096\"\n",
        std::string("devices: [cuda0]\nprobe_exclusive_gpus: ") + allow + "\n");
    daemon.start();
    REQUIRE(daemon.wait_ready());
    INFO(daemon.log());
    const std::string busy =
        "substrate_probe_skipped_total{substrate_device=\"cuda0\",probe=\"memory\",reason=\"device_busy\"}";
    REQUIRE(wait_until([&] { return metric_at_least(daemon, busy, 4); }, 60s));
    const std::string scrape = daemon.metrics();
    INFO(scrape);
    // Skips fold into no verdict: never degraded or failed (unknown, as nothing ran).
    CHECK(metric(scrape, health_series("cuda0", "failed")) == 0.0);
    CHECK(metric(scrape, health_series("cuda0", "degraded")) == 0.0);
    CHECK(metric(scrape,
                 "substrate_probe_skipped_total{substrate_device=\"cuda0\",probe=\"gemm\",reason=\"device_busy\"}") >=
          1.0);
    // No process of the daemon's ever had a context on the GPU: discovery, listing and every
    // round's worker asked the compute mode first (allowed, the driver refused the context).
    CHECK(fake.events()["ctx+"] == 0);
    daemon.signal(SIGTERM);
    CHECK(daemon.wait_exit(20s) == 0);
  }
}

TEST_CASE("daemon: a GPU that Vulkan and CUDA both see is one device, and three restarts change no baseline", "[e2e]") {
  // The stand-in's GPU takes the UUID of the Vulkan device here (lavapipe), so the two backends
  // see one GPU, as NVIDIA's Vulkan driver and libcuda do.
  std::string vulkan_uuid;
  for (const DevicePtr& device : discover_devices({"vulkan"}).devices) {
    if (device->info().backend == "vulkan" && !device->info().uuid.empty()) vulkan_uuid = device->info().uuid;
  }
  REQUIRE_FALSE(vulkan_uuid.empty());
  substrate::test::FakeCuda fake("device 0 uuid " + vulkan_uuid + "\n");
  DaemonProcess daemon(
      "  gemm:\n    enabled: false\n  attention:\n    enabled: false\n  canary:\n    enabled: false\n"
      "  memory:\n    interval_seconds: 1\n    size: \"4096\"\n");
  std::uint64_t runs_before = 0;
  for (int start = 1; start <= 3; ++start) {
    INFO("start " << start);
    daemon.start();
    REQUIRE(daemon.wait_ready());
    INFO(daemon.log());
    const std::string runs = "substrate_probe_runs_total{substrate_device=\"cuda0\",probe=\"memory\"}";
    REQUIRE(wait_until([&] { return metric_at_least(daemon, runs, 2); }, 60s));
    const auto status = nlohmann::json::parse(http_get(daemon.port(), "/status").body);
    REQUIRE(status.at("devices").size() == 1);  // the Vulkan view is a note, not a second device
    CHECK(status.at("devices").at(0).at("device").at("id") == "cuda0");
    CHECK(daemon.metrics().find("substrate_device_changes_total{substrate_device=\"cuda0\"") == std::string::npos);
    daemon.signal(SIGTERM);
    REQUIRE(daemon.wait_exit(20s) == 0);
    // The baseline carries on: its run count only grows (a reset would start it again).
    std::string note;
    const State state = StateStore((daemon.dir() / "state").string()).load(&note);
    INFO("load note: " << note);
    std::uint64_t runs_now = 0;
    for (const auto& [key, baseline] : state.baselines) {
      if (key.device_uuid == vulkan_uuid) runs_now = std::max(runs_now, baseline.runs);
    }
    CHECK(runs_now > runs_before);
    runs_before = runs_now;
  }
  CHECK(daemon.log().find("device changed since the last run") == std::string::npos);
}
#endif

TEST_CASE("daemon: SIGHUP re-arms only the probes whose schedule changed; a new drill shows within seconds", "[e2e]") {
  // Hour-long intervals: after the start-up round nothing is due, so any run after a reload is
  // one the reload caused.
  const std::string attention =
      "  attention:\n    interval_seconds: 3600\n    size: \"16x2x16\"\n"
      "  memory:\n    enabled: false\n";
  const std::string gemm =
      "  gemm:\n    interval_seconds: 3600\n    size: \"16\"\n    modes: [exact]\n    dtypes: [f32]\n";
  DaemonProcess daemon(gemm + attention);
  daemon.start();
  REQUIRE(daemon.wait_ready());
  INFO(daemon.log());
  const std::string gemm_runs = "substrate_probe_runs_total{substrate_device=\"vulkan0\",probe=\"gemm\"}";
  const std::string attention_runs = "substrate_probe_runs_total{substrate_device=\"vulkan0\",probe=\"attention\"}";
  REQUIRE(wait_until(
      [&] { return metric_at_least(daemon, gemm_runs, 1) && metric_at_least(daemon, attention_runs, 1); }, 60s));
  const std::string reloaded_at = "substrate_config_last_reload_success_timestamp_seconds";
  auto reload = [&] {
    const double before = metric(daemon.metrics(), reloaded_at).value_or(0);
    std::this_thread::sleep_for(50ms);  // the timestamp has a visible step
    daemon.signal(SIGHUP);
    REQUIRE(wait_until([&] { return metric(daemon.metrics(), reloaded_at).value_or(0) > before; }, 20s));
  };

  // The same file again (a fleet-wide push that changed nothing here): nothing runs early.
  daemon.write_config(gemm + attention);
  reload();
  std::this_thread::sleep_for(4s);  // a re-armed probe would have run within 2 s
  CHECK(metric(daemon.metrics(), gemm_runs) == 1.0);
  CHECK(metric(daemon.metrics(), attention_runs) == 1.0);

  // A drill on gemm: gemm runs again at once and fails the device; attention keeps its due time.
  daemon.write_config(gemm + "    drill: \"bit=30,row=2,col=3\"\n" + attention);
  reload();
  REQUIRE(wait_until([&] { return metric_at_least(daemon, health_series("vulkan0", "failed"), 1); }, 20s));
  CHECK(metric(daemon.metrics(), gemm_runs) == 2.0);
  CHECK(metric(daemon.metrics(), attention_runs) == 1.0);
  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(20s) == 0);
}
