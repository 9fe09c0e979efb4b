// nvmlInit retried with a backoff (probes/telemetry/nvml/source.hpp), through the TEST-ONLY NVML
// stand-in loaded by the production dlopen path. The scenario file changes under the running
// reader, as a driver that loads late would.
#include <catch2/catch.hpp>

#include <algorithm>
#include <sstream>

#include <prometheus/text_serializer.h>

#include "daemon/telemetry_reader.hpp"
#include "probes/telemetry/metrics.hpp"
#include "probes/telemetry/nvml/source.hpp"
#include "tests/probes/telemetry/nvml/standin_support.hpp"

using namespace substrate;
using namespace substrate::telemetry;
namespace support = substrate::telemetry::testing;

namespace {

constexpr const char* kGpu = R"(devices 1
0 uuid GPU-8E8F1C2A-1B2C-3D4E-5F60-718293A4B5C6
0 pci 0000:65:00.0
0 temperature.gpu 57
)";

std::string scrape(const Snapshot& snapshot) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, to_metric_families(snapshot, {}));
  return out.str();
}

}  // namespace

TEST_CASE("telemetry: nvmlInit failing then succeeding: telemetry appears without a restart", "[unit]") {
  support::StandinEnvironment environment(SUBSTRATE_NVML_STANDIN_DIR, std::string("init 9\n") + kGpu);
  TelemetryReader reader({"/nonexistent/substrate-sysfs", true, {}, std::chrono::milliseconds(50)});
  const Snapshot failing = reader.read();
  CHECK(failing.devices.empty());
  CHECK(failing.nvml_up == false);
  CHECK_THAT(scrape(failing), Catch::Contains("substrate_nvml_up 0"));
  REQUIRE(failing.notes.size() == 1);
  CHECK_THAT(failing.notes[0], Catch::Contains("NVML init failed (driver_not_loaded)") && Catch::Contains("retrying"));

  environment.rewrite(kGpu);  // the driver is loaded now
  Snapshot up;
  CHECK(support::eventually(
      [&] {
        up = reader.read();
        return !up.devices.empty();
      },
      std::chrono::seconds(4)));  // the first retry comes 1 s after the failure
  CHECK(up.nvml_up == true);
  REQUIRE(up.devices.size() == 1);
  CHECK(up.devices[0].readings.temperatures.at(0).celsius == 57);
  CHECK(up.notes.empty());
  const std::string text = scrape(up);
  CHECK_THAT(text, Catch::Contains("substrate_nvml_up 1"));
  CHECK_THAT(text, Catch::Contains("substrate_telemetry_errors_total{source=\"nvml\",cause=\"init_failed\"} 1"));
  const auto lint = support::promtool_check_metrics(text);
  INFO(lint.output);
  CHECK(lint.exit_code == 0);
}

TEST_CASE("telemetry: nvmlInit is retried with a doubling backoff, not at every read", "[unit]") {
  support::StandinEnvironment environment(SUBSTRATE_NVML_STANDIN_DIR, std::string("init 9\n") + kGpu);
  auto source = nvml::Source::open(std::chrono::milliseconds(50),
                                   {std::chrono::milliseconds(100), std::chrono::milliseconds(400)});
  REQUIRE(source.ok());
  // Reads every 10 ms for 1.2 s: tries at about 0, 0.1, 0.3, 0.7 and 1.1 s, not 120.
  std::size_t tries = 0, reads = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1200);
  while (std::chrono::steady_clock::now() < until) {
    const SourceResult result = (*source)->read();
    ++reads;
    CHECK(result.nvml_up == false);
    tries += std::count_if(result.errors.begin(), result.errors.end(),
                           [](const ReadError& e) { return e.cause == "init_failed"; });
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  INFO(reads << " reads, " << tries << " failed nvmlInit tries");
  CHECK(tries >= 2);
  CHECK(tries <= 6);
}
