// The XID event thread against event-set failures, a GPU reset and a wedged wait, through the
// TEST-ONLY NVML stand-in loaded by the production dlopen path; the scenario changes under the
// running session. nvml.h: after nvmlDeviceRegisterEvents returns UNKNOWN the set is undefined,
// and a reset drops the registrations.
#include <catch2/catch.hpp>

#include <algorithm>

#include "probes/telemetry/nvml/session.hpp"
#include "tests/probes/telemetry/nvml/standin_support.hpp"

using namespace substrate;
using namespace substrate::telemetry;
namespace support = substrate::telemetry::testing;

namespace {

constexpr const char* kGpu = R"(devices 1
0 uuid GPU-8E8F1C2A-1B2C-3D4E-5F60-718293A4B5C6
0 pci 0000:65:00.0
0 temperature.gpu 50
)";

std::unique_ptr<nvml::Session> open_session() {
  auto session = nvml::Session::open(std::chrono::milliseconds(50));
  if (!session) FAIL("stand-in did not open: " << session.error().message);
  return std::move(*session);
}

std::uint64_t xid_count(const SourceResult& result, std::uint32_t xid) {
  for (const auto& device : result.devices) {
    for (const auto& x : device.readings.xids) {
      if (x.xid == xid) return x.count;
    }
  }
  return 0;
}

bool has_error(const std::vector<ReadError>& errors, const std::string& cause, const std::string& text) {
  return std::any_of(errors.begin(), errors.end(),
                     [&](const ReadError& e) { return e.cause == cause && e.detail.find(text) != std::string::npos; });
}

// Reads until XID `xid` was counted `count` times; collects the errors seen on the way.
bool read_until_xid(nvml::Session& session, std::uint32_t xid, std::uint64_t count, std::vector<ReadError>& errors) {
  return support::eventually([&] {
    SourceResult result = session.read();
    errors.insert(errors.end(), result.errors.begin(), result.errors.end());
    return xid_count(result, xid) >= count;
  });
}

}  // namespace

TEST_CASE("telemetry: after RegisterEvents answers UNKNOWN the event set is freed and built again", "[unit]") {
  support::StandinEnvironment environment(SUBSTRATE_NVML_STANDIN_DIR,
                                          std::string(kGpu) + "0 fail nvmlDeviceRegisterEvents 999\n0 xid 79\n");
  auto session = open_session();
  std::vector<ReadError> errors;
  auto failures = [&] {
    return std::count_if(errors.begin(), errors.end(), [](const ReadError& e) {
      return e.cause == "unknown" && e.detail.find("nvmlDeviceRegisterEvents") != std::string::npos;
    });
  };
  CHECK(support::eventually([&] {
    SourceResult result = session->read();
    errors.insert(errors.end(), result.errors.begin(), result.errors.end());
    return failures() >= 3;
  }));
  CHECK(xid_count(session->read(), 79) == 0);
  // Each undefined set was freed: three failed builds do not leave three sets behind.
  CHECK(environment.counter("substrate_standin_live_event_sets") <= 1);

  environment.rewrite(std::string(kGpu) + "0 xid 79\n");  // registration works again
  CHECK(read_until_xid(*session, 79, 1, errors));
  CHECK(environment.counter("substrate_standin_live_event_sets") == 1);
  session.reset();
  CHECK(environment.counter("substrate_standin_live_event_sets") == 0);
}

TEST_CASE("telemetry: a failing nvmlEventSetWait rebuilds the event set with a backoff", "[unit]") {
  support::StandinEnvironment environment(SUBSTRATE_NVML_STANDIN_DIR, std::string(kGpu) + "event_wait 999\n");
  auto session = open_session();
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  const SourceResult failing = session->read();
  const auto failures = std::count_if(failing.errors.begin(), failing.errors.end(), [](const ReadError& e) {
    return e.detail.find("nvmlEventSetWait") != std::string::npos;
  });
  // Backoff 50, 100, 200 ms...: a handful of tries in 600 ms, not one per millisecond.
  CHECK(failures >= 2);
  CHECK(failures <= 6);
  CHECK(environment.counter("substrate_standin_live_event_sets") <= 1);

  environment.rewrite(std::string(kGpu) + "0 xid 48\n");
  std::vector<ReadError> errors;
  CHECK(read_until_xid(*session, 48, 1, errors));
  CHECK(environment.counter("substrate_standin_registrations", 0) >= 2);
}

TEST_CASE("telemetry: after a GPU reset the device is registered for XID events again", "[unit]") {
  support::StandinEnvironment environment(SUBSTRATE_NVML_STANDIN_DIR, kGpu);
  auto session = open_session();
  session->read();
  REQUIRE(support::eventually([&] { return environment.counter("substrate_standin_registrations", 0) == 1; }));

  // The reset: calls answer RESET_REQUIRED, then the GPU is back and the driver has dropped the
  // registration; an XID after the reset must still arrive.
  environment.rewrite(std::string(kGpu) + "0 fail * 16\n");
  const SourceResult resetting = session->read();
  CHECK(has_error(resetting.errors, "reset_required", "device 0"));
  environment.rewrite(std::string(kGpu) + "0 reset 1\n0 xid 48\n");
  std::vector<ReadError> errors;
  CHECK(read_until_xid(*session, 48, 1, errors));
  CHECK(environment.counter("substrate_standin_registrations", 0) == 2);
  CHECK(environment.counter("substrate_standin_live_event_sets") == 1);
}

TEST_CASE("telemetry: a wedged XID thread is abandoned and a new one started", "[unit]") {
  support::StandinEnvironment environment(SUBSTRATE_NVML_STANDIN_DIR, std::string(kGpu) + "event_wait hang\n");
  auto session = open_session();
  // With a 50 ms wait the thread counts as wedged after 1.5 s without coming back.
  std::vector<ReadError> errors;
  CHECK(support::eventually(
      [&] {
        SourceResult result = session->read();
        errors.insert(errors.end(), result.errors.begin(), result.errors.end());
        return has_error(errors, "timeout", "XID event thread was restarted");
      },
      std::chrono::seconds(4)));

  // The driver comes back: the old thread frees its set and ends; the new one delivers events.
  environment.rewrite(std::string(kGpu) + "0 xid 62\n");
  CHECK(read_until_xid(*session, 62, 1, errors));
  CHECK(support::eventually([&] { return environment.counter("substrate_standin_live_event_sets") == 1; }));
  session.reset();
  CHECK(environment.counter("substrate_standin_live_event_sets") == 0);
}
