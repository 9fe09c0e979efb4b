// The daemon's process model against real daemon processes: hangs and crashes in workers,
// on-demand timeouts, children that never outlive the daemon, the state-directory lock, signals
// that must not kill it, and no GPU driver in the daemon's address space.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "daemon/control_socket.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/run_command.hpp"
#include "tests/support/scrape.hpp"

using namespace substrate;
using namespace substrate::testing;
using namespace std::chrono_literals;

namespace {

std::optional<double> metric(const std::string& text, const std::string& series) { return series_value(text, series); }

bool metric_at_least(DaemonProcess& daemon, const std::string& series, double value) {
  const auto v = metric(daemon.metrics(), series);
  return v && *v >= value;
}

std::string health(const std::string& state) {
  return "substrate_device_health{substrate_device=\"vulkan0\",state=\"" + state + "\"}";
}

// Every default probe enabled, at sizes that take milliseconds on lavapipe; `gemm_extra` adds
// keys to gemm (a drill, a timeout).
std::string all_probes(const std::string& gemm_extra) {
  return "  gemm:\n    interval_seconds: 1\n    size: \"16\"\n" + gemm_extra +
         "  attention:\n    interval_seconds: 1\n    size: \"16x2x16\"\n"
         "  memory:\n    interval_seconds: 1\n    size: \"1M\"\n";
}

const std::string k_gemm_only =
    "  gemm:\n    interval_seconds: 1\n    timeout_seconds: 20\n    size: \"16\"\n    modes: [exact]\n    dtypes: "
    "[f32]\n"
    "  attention:\n    enabled: false\n  memory:\n    enabled: false\n";

bool gone(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  const auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z';
}

bool all_gone(const std::vector<pid_t>& pids) { return std::all_of(pids.begin(), pids.end(), gone); }

}  // namespace

TEST_CASE("workers: a hang with every default probe enabled is detected every time", "[e2e]") {
  // Odd trials: a kernel that never returns inside the device call (the test daemon's stand-in
  // around lavapipe); even trials: the documented `drill: hang` of the real binary.
  for (int trial = 0; trial < 4; ++trial) {
    const bool stand_in = trial % 2 == 1;
    const std::string device = stand_in ? "hang0" : "vulkan0";
    DaemonProcess daemon(
        all_probes(stand_in ? "    timeout_seconds: 1\n" : "    timeout_seconds: 1\n    drill: hang\n"));
    if (stand_in) {
      daemon.start(SUBSTRATE_TEST_DAEMON, "hang");
    } else {
      daemon.start();
    }
    REQUIRE(daemon.wait_ready());
    INFO("trial " << trial << "\n" << daemon.log());
    const std::string hung = "substrate_device_health{substrate_device=\"" + device + "\",state=\"hung\"}";
    REQUIRE(wait_until([&] { return metric_at_least(daemon, hung, 1); }, 30s));
    const std::string scrape = daemon.metrics();
    CHECK(metric(scrape, "substrate_probe_failures_total{substrate_device=\"" + device +
                             "\",probe=\"gemm\",reason=\"timeout\"}") >= 1.0);
    CHECK(metric(scrape, "substrate_worker_exits_total{substrate_device=\"" + device + "\",outcome=\"hung\"}") >= 1.0);
    CHECK(http_get(daemon.port(), "/healthz").status == 200);
    const auto status = nlohmann::json::parse(http_get(daemon.port(), "/status").body);
    bool reported = false;
    for (const auto& r : status["devices"][0]["probes"]["gemm"]["results"]) {
      reported =
          reported || (r["status"] == "hung" && r["error"].get<std::string>().find("killed") != std::string::npos);
    }
    CHECK(reported);
    auto npd = run_substrated("probe --npd --socket " + daemon.socket_path());
    CHECK(npd.exit_code == 1);
    daemon.signal(SIGTERM);
    CHECK(daemon.wait_exit(10s) == 0);
  }
}

TEST_CASE("workers: a hung device is retried after a backoff and recovers through clean runs", "[e2e]") {
  DaemonProcess daemon(all_probes("    timeout_seconds: 1\n    drill: hang\n"));
  daemon.start();
  REQUIRE(daemon.wait_ready());
  INFO(daemon.log());
  REQUIRE(wait_until([&] { return metric_at_least(daemon, health("hung"), 1); }, 30s));
  daemon.write_config(all_probes("    timeout_seconds: 1\n"));
  daemon.signal(SIGHUP);
  REQUIRE(wait_until([&] { return metric_at_least(daemon, health("healthy"), 1); }, 40s));
  CHECK(daemon.log().find("probes resume in") != std::string::npos);
  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(10s) == 0);
}

TEST_CASE("workers: a worker that dies by SIGSEGV is a crashed run and the daemon carries on", "[e2e]") {
  DaemonProcess daemon(all_probes("    drill: crash\n"));
  daemon.start();
  REQUIRE(daemon.wait_ready());
  INFO(daemon.log());
  const std::string crashed =
      "substrate_probe_failures_total{substrate_device=\"vulkan0\",probe=\"gemm\",reason=\"crashed\"}";
  REQUIRE(wait_until([&] { return metric_at_least(daemon, crashed, 2); }, 30s));
  CHECK(metric_at_least(daemon, "substrate_worker_exits_total{substrate_device=\"vulkan0\",outcome=\"crashed\"}", 2));
  // The other probes of the device still run in later rounds.
  REQUIRE(wait_until(
      [&] {
        return metric_at_least(daemon, "substrate_probe_runs_total{substrate_device=\"vulkan0\",probe=\"memory\"}", 1);
      },
      30s));
  const auto status = nlohmann::json::parse(http_get(daemon.port(), "/status").body);
  const auto& gemm = status["devices"][0]["probes"]["gemm"]["results"][0];
  CHECK(gemm["status"] == "crashed");
  CHECK(gemm["error"].get<std::string>().find("SIGSEGV") != std::string::npos);
  CHECK(daemon.log().find("SIGSEGV") != std::string::npos);
  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(10s) == 0);
}

TEST_CASE("workers: on-demand timeouts are checked, and a request's own timeout never marks the device hung", "[e2e]") {
  DaemonProcess daemon(k_gemm_only);
  daemon.start();
  REQUIRE(daemon.wait_ready());
  INFO(daemon.log());
  const std::string socket = " --socket " + daemon.socket_path();
  for (const std::string bad : {"inf", "nan", "1e300", "-1", "0", "-inf"}) {
    auto probe = run_substrated("probe" + socket + " --kernel gemm --size 64 --timeout " + bad);
    INFO(bad << ": " << probe.output);
    CHECK(probe.exit_code == 2);
    CHECK(std::count(probe.output.begin(), probe.output.end(), '\n') == 1);
    CHECK(probe.output.find("--timeout") != std::string::npos);
    // The daemon refuses it too when a client skips the CLI's check.
    auto reply = control_request(daemon.socket_path(),
                                 {{"command", "probe"}, {"args", {"--kernel", "gemm", "--timeout", bad}}}, 10);
    REQUIRE(reply);
    CHECK((*reply)["ok"] == false);
  }
  auto tiny = run_substrated("probe" + socket + " --kernel gemm --size 64 --timeout 0.000001");
  INFO(tiny.output);
  CHECK(tiny.exit_code == 2);
  CHECK(tiny.output.find("run by the substrated daemon") != std::string::npos);
  CHECK(tiny.output.find("within 0.000001 s") != std::string::npos);
  // Scheduled runs after it stay healthy.
  const std::string runs = "substrate_probe_runs_total{substrate_device=\"vulkan0\",probe=\"gemm\"}";
  const double before = metric(daemon.metrics(), runs).value_or(0);
  REQUIRE(wait_until([&] { return metric_at_least(daemon, runs, before + 2); }, 30s));
  CHECK(metric(daemon.metrics(), health("healthy")) == 1.0);
  CHECK(metric(daemon.metrics(),
               "substrate_probe_failures_total{substrate_device=\"vulkan0\",probe=\"gemm\",reason=\"timeout\"}") ==
        0.0);
  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(10s) == 0);
}

namespace {

// The daemon's worker processes once at least one runs (empty after 20 s without one).
std::vector<pid_t> running_workers(DaemonProcess& daemon) {
  std::vector<pid_t> workers;
  wait_until(
      [&] {
        workers = daemon.children();
        return !workers.empty();
      },
      20s);
  return workers;
}

}  // namespace

TEST_CASE("workers: kill -9 of the daemon leaves no worker behind", "[e2e]") {
  DaemonProcess daemon(all_probes("    timeout_seconds: 60\n    drill: hang\n"));
  daemon.start();
  REQUIRE(daemon.wait_ready());
  INFO(daemon.log());
  const std::vector<pid_t> workers = running_workers(daemon);
  REQUIRE_FALSE(workers.empty());
  daemon.signal(SIGKILL);
  daemon.wait_exit(10s);
  CHECK(wait_until([&] { return all_gone(workers); }, 5s));
}

TEST_CASE("workers: SIGTERM exits within the grace period while a worker hangs", "[e2e]") {
  DaemonProcess daemon(all_probes("    timeout_seconds: 60\n    drill: hang\n"));
  daemon.start();
  REQUIRE(daemon.wait_ready());
  INFO(daemon.log());
  const std::vector<pid_t> workers = running_workers(daemon);
  REQUIRE_FALSE(workers.empty());
  const auto asked = std::chrono::steady_clock::now();
  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(10s) == 0);
  CHECK(std::chrono::steady_clock::now() - asked < 6s);  // shutdown_grace_seconds: 5
  CHECK(wait_until([&] { return all_gone(workers); }, 5s));
}

TEST_CASE("workers: a second daemon on the same state directory exits with a clear message", "[e2e]") {
  DaemonProcess first(k_gemm_only);
  first.start();
  REQUIRE(first.wait_ready());
  DaemonProcess second(k_gemm_only);
  second.write_raw_config("listen:\n  address: 127.0.0.1\n  port: " + std::to_string(second.port()) +
                          "\nstate_directory: " + (first.dir() / "state").string() +
                          "\nruntime_directory: " + (second.dir() / "run").string() + "\nprobes:\n" + k_gemm_only);
  second.start();
  CHECK(second.wait_exit(20s) == 2);
  INFO(second.log());
  CHECK(second.log().find("another substrated (pid " + std::to_string(first.pid()) + ") uses the state directory") !=
        std::string::npos);
  CHECK(first.alive());
  first.signal(SIGTERM);
  CHECK(first.wait_exit(10s) == 0);
}

TEST_CASE("workers: SIGPIPE on a closed log pipe, SIGUSR1 and SIGUSR2 do not stop the daemon", "[e2e]") {
  DaemonProcess daemon(k_gemm_only);
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  daemon.start(SUBSTRATE_BINARY, "serve", fds[1]);
  ::close(fds[1]);
  char first[64];
  REQUIRE(::read(fds[0], first, sizeof first) > 0);  // like `| head -c 64`
  ::close(fds[0]);
  REQUIRE(daemon.wait_ready());
  const std::string runs = "substrate_probe_runs_total{substrate_device=\"vulkan0\",probe=\"gemm\"}";
  REQUIRE(wait_until([&] { return metric_at_least(daemon, runs, 3); }, 30s));  // each run logs
  daemon.signal(SIGUSR1);
  daemon.signal(SIGUSR2);
  std::this_thread::sleep_for(500ms);
  CHECK(daemon.alive());
  CHECK(http_get(daemon.port(), "/healthz").status == 200);
  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(10s) == 0);
}

TEST_CASE("workers: after rounds the daemon's address space holds no GPU driver", "[e2e]") {
  DaemonProcess daemon(k_gemm_only);
  daemon.start();
  REQUIRE(daemon.wait_ready());
  const std::string runs = "substrate_probe_runs_total{substrate_device=\"vulkan0\",probe=\"gemm\"}";
  REQUIRE(wait_until([&] { return metric_at_least(daemon, runs, 2); }, 30s));
  std::ifstream maps("/proc/" + std::to_string(daemon.pid()) + "/maps");
  const std::string text((std::istreambuf_iterator<char>(maps)), {});
  REQUIRE_FALSE(text.empty());
  CHECK(text.find("libvulkan_lvp") == std::string::npos);
  CHECK(text.find("libLLVM") == std::string::npos);
  CHECK(text.find("libcuda") == std::string::npos);
  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(10s) == 0);
}

TEST_CASE("control socket: connections beyond the session cap are refused, not queued", "[e2e]") {
  DaemonProcess daemon(k_gemm_only);
  daemon.start();
  REQUIRE(daemon.wait_ready());
  std::vector<int> idle;
  for (int i = 0; i < 80; ++i) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", daemon.socket_path().c_str());
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    idle.push_back(fd);
  }
  // The 65th and later got "busy" at once.
  timeval timeout{5, 0};
  ::setsockopt(idle.back(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  char reply[256] = {};
  CHECK(::recv(idle.back(), reply, sizeof reply - 1, 0) > 0);
  CHECK(std::string(reply).find("busy") != std::string::npos);
  for (int fd : idle) ::close(fd);
  auto status = run_substrated("status --socket " + daemon.socket_path());
  CHECK(status.exit_code == 0);
  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(10s) == 0);
}

TEST_CASE("workers: a FIFO in place of a sysfs file is refused at once; telemetry stays fresh, SIGTERM prompt",
          "[e2e]") {
  const auto sysfs = std::filesystem::temp_directory_path() / ("substrated-fifo-" + std::to_string(::getpid()));
  std::filesystem::remove_all(sysfs);
  // The fixture tree with one GPU's PCI class file replaced by a FIFO nobody writes.
  std::filesystem::copy(SUBSTRATE_SOURCE_DIR "/tests/fixtures/sysfs", sysfs,
                        std::filesystem::copy_options::recursive | std::filesystem::copy_options::copy_symlinks);
  const auto blocked = std::filesystem::canonical(sysfs / "class/drm/card1/device") / "class";
  std::filesystem::remove(blocked);
  REQUIRE(::mkfifo(blocked.c_str(), 0600) == 0);
  DaemonProcess daemon(k_gemm_only, "sysfs_root: " + sysfs.string() + "\n");
  daemon.start();
  REQUIRE(daemon.wait_ready());
  INFO(daemon.log());
  const std::string runs = "substrate_probe_runs_total{substrate_device=\"vulkan0\",probe=\"gemm\"}";
  REQUIRE(wait_until([&] { return metric_at_least(daemon, runs, 2); }, 30s));
  CHECK(http_get(daemon.port(), "/healthz").status == 200);
  // The FIFO is never opened for a blocking read (common/file_io refuses it), so reads go on.
  REQUIRE(
      wait_until([&] { return metric(daemon.metrics(), "substrate_telemetry_last_read_timestamp_seconds") > 0; }, 30s));
  const auto asked = std::chrono::steady_clock::now();
  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(10s) == 0);
  CHECK(std::chrono::steady_clock::now() - asked < 6s);
  std::filesystem::remove_all(sysfs);
}
