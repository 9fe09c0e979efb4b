// On-demand runs through a real daemon's control socket: sizes refused against the device's
// memory and the host budget before any worker starts, and a burst of fire-and-forget requests
// held to the duty cycle.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <sstream>

#include "tests/support/daemon_process.hpp"
#include "tests/support/run_command.hpp"

using namespace substrate::testing;
using namespace std::chrono_literals;

namespace {

// Worker processes the daemon has reaped, whatever their outcome.
double worker_exits(DaemonProcess& daemon, const std::string& device) {
  std::istringstream lines(daemon.metrics());
  std::string line;
  double total = 0;
  const std::string prefix = "substrate_worker_exits_total{substrate_device=\"" + device + "\",";
  while (std::getline(lines, line)) {
    if (line.rfind(prefix, 0) == 0) total += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return total;
}

// Sends one request and leaves without waiting for the reply.
bool fire_and_forget(const std::string& socket_path, const std::string& request_line) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socket_path.c_str(), sizeof address.sun_path - 1);
  bool sent =
      ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
      ::send(fd, request_line.data(), request_line.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request_line.size());
  ::close(fd);
  return sent;
}

const std::string k_no_schedule =
    "  gemm:\n    enabled: false\n  attention:\n    enabled: false\n"
    "  memory:\n    enabled: false\n";

std::size_t lines_in(const std::string& text) { return std::count(text.begin(), text.end(), '\n'); }

}  // namespace

TEST_CASE("on-demand: a size above the device's memory or the host budget is refused before a worker starts", "[e2e]") {
  DaemonProcess daemon(k_no_schedule);
  daemon.start();
  REQUIRE(daemon.wait_ready());
  INFO(daemon.log());
  const std::string socket = " --socket " + daemon.socket_path();
  // The issue's reproduction: 4096^3 OOM-killed a daemon under MemoryMax=256M.
  auto host = run_substrated("probe" + socket + " --kernel gemm --size 4096 --mode exact --dtype f32");
  INFO(host.output);
  CHECK(host.exit_code == 2);
  CHECK(lines_in(host.output) == 1);
  CHECK_THAT(host.output, Catch::Contains("gemm/f32/exact/4096x4096x4096 needs about") &&
                              Catch::Contains("above on_demand.max_host_bytes (192.0 MiB)"));
  auto device = run_substrated("probe" + socket + " --kernel gemm --size 1000000x1000000x1 --mode exact --dtype f32");
  INFO(device.output);
  CHECK(device.exit_code == 2);
  CHECK(lines_in(device.output) == 1);
  CHECK_THAT(device.output, Catch::Contains("of device memory, above vulkan0's"));
  // Nothing was started for either; a request that fits runs as before.
  CHECK(daemon.children().empty());
  CHECK(worker_exits(daemon, "vulkan0") == 0);
  auto fits = run_substrated("probe" + socket + " --kernel gemm --size 16 --mode exact --dtype f32");
  INFO(fits.output);
  CHECK(fits.exit_code == 0);
  CHECK(worker_exits(daemon, "vulkan0") == 1);
  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(20s) == 0);
}

TEST_CASE("on-demand: 60 fire-and-forget requests are held to the 1% duty cycle", "[e2e]") {
  // The test daemon's `slow` device reports a second of device time per gemm, so the budget's
  // bucket (5 device seconds at start, refilled at 1% of wall time) admits about six of them
  // whatever this machine's speed.
  DaemonProcess daemon(k_no_schedule);
  std::ostringstream config;
  config << "listen:\n  address: 127.0.0.1\n  port: " << daemon.port() << "\n"
         << "state_directory: " << (daemon.dir() / "state").string() << "\n"
         << "runtime_directory: " << (daemon.dir() / "run").string() << "\n"
         << "max_duty_cycle: 0.01\njitter_ratio: 0.0\nshutdown_grace_seconds: 5\nlog_level: debug\n"
         << "probes:\n"
         << k_no_schedule;
  daemon.write_raw_config(config.str());
  daemon.start(SUBSTRATE_TEST_DAEMON, "slow");
  REQUIRE(daemon.wait_ready());
  INFO(daemon.log());
  const std::string request =
      R"({"command":"probe","args":["--kernel","gemm","--size","16","--mode","exact","--dtype","f32"]})"
      "\n";
  for (int i = 0; i < 60; ++i) REQUIRE(fire_and_forget(daemon.socket_path(), request));
  // A client that waits is queued behind all 60 (one queue per device, first come first served):
  // its answer comes once every earlier request was run or refused, and it is refused too.
  auto last = run_substrated("probe --socket " + daemon.socket_path() +
                             " --kernel gemm --size 16 --mode exact --dtype f32 --timeout 60");
  INFO(last.output);
  CHECK(last.exit_code == 2);
  CHECK(lines_in(last.output) == 1);
  CHECK_THAT(last.output, Catch::Contains("slow0: over the duty cycle") && Catch::Contains("max_duty_cycle 0.01") &&
                              Catch::Contains("try again in"));
  const double ran = worker_exits(daemon, "slow0");
  CHECK(ran >= 5);
  CHECK(ran <= 8);
  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(20s) == 0);
}
