// Per-source telemetry deadlines against a real blocking read: a FUSE mount that never answers
// (tests/support/dead_mount.hpp) in place of one GPU's hwmon directory in a copy of the sysfs
// fixture tree, read by the real collectors on the reader's threads and by a real daemon process.
// (A FIFO in place of a sysfs file no longer blocks: common/file_io refuses it at once, see
// worker_e2e_test.cpp.)
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "daemon/telemetry_reader.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/dead_mount.hpp"
#include "tests/support/scrape.hpp"

using namespace substrate;
using namespace substrate::telemetry;
using namespace substrate::testing;
using namespace std::chrono_literals;

namespace {

// A copy of tests/fixtures/sysfs under the temp directory, removed on exit.
class SysfsCopy {
 public:
  SysfsCopy()
      : root_(std::filesystem::temp_directory_path() /
              ("substrate-sysfs-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++))) {
    std::filesystem::remove_all(root_);
    std::filesystem::copy(SUBSTRATE_SOURCE_DIR "/tests/fixtures/sysfs", root_,
                          std::filesystem::copy_options::recursive | std::filesystem::copy_options::copy_symlinks);
  }
  ~SysfsCopy() {
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }
  const std::filesystem::path& root() const { return root_; }
  // The hwmon directory of the amdgpu GPU at 0000:65:00.0 (class/drm/card0).
  std::filesystem::path gpu_hwmon() const { return gpu() / "hwmon" / "hwmon0"; }
  // Sets that GPU's corrected UMC (memory controller) error count.
  void set_umc_corrected(int count) const {
    std::ofstream(gpu() / "ras" / "umc_err_count") << "ue: 0\nce: " << count << "\n";
  }

 private:
  std::filesystem::path gpu() const { return root_ / "devices" / "pci0000:00" / "0000:65:00.0"; }
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::filesystem::path root_;
};

const SourceStatus& status_of(const Snapshot& snapshot, const std::string& source) {
  const auto it = std::find_if(snapshot.sources.begin(), snapshot.sources.end(),
                               [&](const SourceStatus& s) { return s.source == source; });
  REQUIRE(it != snapshot.sources.end());
  return *it;
}

bool has_source(const Snapshot& snapshot, const std::string& source) {
  return std::any_of(snapshot.devices.begin(), snapshot.devices.end(),
                     [&](const TelemetryDevice& d) { return d.source == source; });
}

std::optional<std::uint64_t> umc_corrected(const Snapshot& snapshot) {
  for (const TelemetryDevice& d : snapshot.devices) {
    if (d.source != kSourceAmdgpu || d.local_id != "drm-card0") continue;
    for (const EccCount& e : d.readings.ecc) {
      if (e.location == "umc" && e.kind == "corrected") return e.count;
    }
  }
  return std::nullopt;
}

// The value of the first series in `text` whose line starts with `prefix` and contains `part`.
std::optional<double> series(const std::string& text, const std::string& prefix, const std::string& part = "") {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(prefix, 0) != 0 || line.find(part) == std::string::npos) continue;
    return std::stod(line.substr(line.rfind(' ') + 1));
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("telemetry reader: a source whose read never returns is left out and counted, the others keep reading",
          "[e2e]") {
  SysfsCopy sysfs;
  DeadMount dead(sysfs.gpu_hwmon());
  if (!dead.error().empty()) {
    WARN("skipped: a blocking read needs a FUSE mount: " << dead.error());
    return;
  }
  TelemetryReader reader({sysfs.root(), false, {}, nvml::kDefaultXidWait});
  const auto asked = std::chrono::steady_clock::now();
  const Snapshot first = reader.read(300ms);
  CHECK(std::chrono::steady_clock::now() - asked < 3s);
  CHECK(status_of(first, kSourceHwmon).timed_out);
  CHECK(status_of(first, kSourceHwmon).timeouts == 1);
  CHECK(status_of(first, kSourceHwmon).last_success_seconds == 0.0);
  CHECK_FALSE(has_source(first, kSourceHwmon));  // no frozen values shown as current
  CHECK_FALSE(status_of(first, kSourceAmdgpu).timed_out);
  CHECK(status_of(first, kSourceAmdgpu).last_success_seconds > 0.0);
  CHECK(has_source(first, kSourceAccel));
  CHECK(umc_corrected(first) == 3u);

  // The blocked read is not started again; it counts once per snapshot it misses, and a change
  // in another source shows in the next snapshot.
  sysfs.set_umc_corrected(9);
  const Snapshot second = reader.read(300ms);
  CHECK(status_of(second, kSourceHwmon).timeouts == 2);
  CHECK(umc_corrected(second) == 9u);

  // Once the blocked read returns (the mount's connection ends, so it fails), hwmon is read again.
  dead.release();
  // (A read returns at once while hwmon's old read is still unwinding, so poll for a while.)
  std::optional<Snapshot> recovered;
  REQUIRE(wait_until(
      [&] {
        Snapshot s = reader.read(1s);
        if (!status_of(s, kSourceHwmon).timed_out) recovered = std::move(s);
        return recovered.has_value();
      },
      20s));
  CHECK(status_of(*recovered, kSourceHwmon).last_success_seconds > 0.0);
  CHECK(has_source(*recovered, kSourceHwmon));
}

TEST_CASE("telemetry reader: destroying it does not wait for a read that never returns", "[e2e]") {
  SysfsCopy sysfs;
  DeadMount dead(sysfs.gpu_hwmon());
  if (!dead.error().empty()) {
    WARN("skipped: a blocking read needs a FUSE mount: " << dead.error());
    return;
  }
  auto reader = std::make_unique<TelemetryReader>(TelemetryOptions{sysfs.root(), false, {}, nvml::kDefaultXidWait});
  CHECK(status_of(reader->read(100ms), kSourceHwmon).timed_out);
  const auto asked = std::chrono::steady_clock::now();
  reader.reset();
  CHECK(std::chrono::steady_clock::now() - asked < 1s);
}

TEST_CASE("serve: a telemetry source whose reads block is reported late, the others update, SIGTERM is prompt",
          "[e2e]") {
  SysfsCopy sysfs;
  DeadMount dead(sysfs.gpu_hwmon());
  if (!dead.error().empty()) {
    WARN("skipped: a blocking read needs a FUSE mount: " << dead.error());
    return;
  }
  DaemonProcess daemon(
      "  gemm:\n    enabled: false\n  attention:\n    enabled: false\n  memory:\n    enabled: false\n"
      "  canary:\n    enabled: false\n",
      "sysfs_root: " + sysfs.root().string() + "\ntelemetry:\n  interval_seconds: 1\n  timeout_seconds: 0.5\n");
  daemon.start();
  REQUIRE(daemon.wait_ready());
  INFO(daemon.log());
  const std::string timeouts = "substrate_telemetry_source_timeouts_total{source=\"hwmon\"}";
  REQUIRE(wait_until([&] { return series(daemon.metrics(), timeouts).value_or(0) >= 2; }, 30s));
  const std::string success = "substrate_telemetry_source_last_success_timestamp_seconds";
  const std::string metrics = daemon.metrics();
  CHECK(series(metrics, success, "source=\"hwmon\"") == 0.0);
  CHECK(series(metrics, success, "source=\"amdgpu\"").value_or(0) > 0);
  CHECK(series(metrics, "substrate_telemetry_source_info", "source=\"hwmon\"") == std::nullopt);
  CHECK(series(metrics, "substrate_telemetry_source_timeouts_total", "source=\"amdgpu\"") == 0.0);
  // A change in a source that answers shows on /metrics while hwmon stays blocked.
  sysfs.set_umc_corrected(9);
  const std::string umc =
      "substrate_ecc_errors_total{substrate_device=\"drm-card0\",kind=\"corrected\",scope=\"volatile\",location="
      "\"umc\"}";
  CHECK(series_value(metrics, umc) == 3.0);
  CHECK(wait_until([&] { return series_value(daemon.metrics(), umc) == 9.0; }, 30s));
  CHECK(http_get(daemon.port(), "/healthz").status == 200);
  CHECK(daemon.log().find("hwmon read did not return") != std::string::npos);
  // The blocked read holds no exit: within shutdown_grace_seconds (5 s in DaemonProcess).
  const auto asked = std::chrono::steady_clock::now();
  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(10s) == 0);
  CHECK(std::chrono::steady_clock::now() - asked < 5s);
}
