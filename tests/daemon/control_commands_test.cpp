// The control socket's commands alone, with the service's hooks recorded: refusals, fan-out to
// the matching devices, and one reply once every device has answered.
#include <catch2/catch.hpp>

#include <optional>

#include "daemon/control_commands.hpp"

using namespace substrate;
using json = nlohmann::json;

namespace {

struct Call {
  std::size_t device;
  std::vector<ProbeSpec> specs;
  double timeout;
  ControlCommands::RunDone done;
};

struct Harness {
  std::vector<Call> calls;
  std::optional<json> reply;
  ControlCommands commands;

  explicit Harness(std::vector<DeviceInfo> devices, std::uint64_t max_host_bytes = 192ull << 20)
      : commands(
            std::move(devices),
            {[] {
               return json{{"devices", json::array()}};
             },
             [this](std::size_t device, std::vector<ProbeSpec> specs, double timeout, ControlCommands::RunDone done) {
               calls.push_back({device, std::move(specs), timeout, std::move(done)});
             },
             {}},
            max_host_bytes) {}

  void send(const json& request) {
    reply.reset();
    commands.handle(request, [this](json r) { reply = std::move(r); });
  }
};

DeviceInfo device(const std::string& id) {
  DeviceInfo info;
  info.id = id;
  info.backend = "vulkan";
  info.device_type = "cpu";
  info.memory_bytes = 1ull << 30;
  return info;
}

std::vector<ProbeResult> results_for(const Call& call, RunStatus status) {
  std::vector<ProbeResult> out;
  for (const ProbeSpec& spec : call.specs) {
    ProbeResult r;
    r.spec = spec;
    r.status = status;
    out.push_back(r);
  }
  return out;
}

json probe(std::vector<std::string> args) { return {{"command", "probe"}, {"args", args}}; }

}  // namespace

TEST_CASE("control commands: status, unknown commands and malformed probe requests", "[unit]") {
  Harness h({device("vulkan0")});
  h.send({{"command", "status"}});
  REQUIRE(h.reply);
  CHECK((*h.reply)["ok"] == true);
  CHECK((*h.reply)["status"].contains("devices"));
  h.send({{"command", "reboot"}});
  CHECK((*h.reply)["error"] == "unknown command 'reboot' (use probe or status)");
  h.send({{"command", "probe"}});
  CHECK((*h.reply)["error"] == "probe needs \"args\": an array of strings");
  h.send({{"command", "probe"}, {"args", {1, 2}}});
  CHECK((*h.reply)["error"] == "probe args must be strings");
  for (const std::string bad : {"inf", "nan", "0", "1e300"}) {
    h.send(probe({"--kernel", "gemm", "--timeout", bad}));
    INFO(bad);
    CHECK((*h.reply)["ok"] == false);
    CHECK((*h.reply)["exit_code"] == 2);
    CHECK((*h.reply)["error"].get<std::string>().find("--timeout") != std::string::npos);
  }
  h.send(probe({"--device", "cuda7"}));
  CHECK((*h.reply)["error"] == "no device matches 'cuda7'");
  CHECK((*h.reply)["exit_code"] == 2);
  h.send(probe({"--kernel", "gemm", "--size", "12x"}));
  CHECK((*h.reply)["exit_code"] == 2);
  CHECK(h.calls.empty());  // nothing was started for any of them
}

TEST_CASE("control commands: a probe runs on every matching device and answers once all did", "[unit]") {
  Harness h({device("vulkan0"), device("vulkan1")});
  h.send(probe({"--kernel", "gemm", "--size", "16", "--mode", "exact", "--dtype", "f32", "--timeout", "7.5"}));
  CHECK_FALSE(h.reply);
  REQUIRE(h.calls.size() == 2);
  CHECK(h.calls[0].device == 0);
  CHECK(h.calls[1].device == 1);
  CHECK(h.calls[0].timeout == 7.5);
  REQUIRE(h.calls[0].specs.size() == 1);
  CHECK(h.calls[0].specs[0].probe == "gemm");
  CHECK(h.calls[0].specs[0].gemm.m == 16);
  h.calls[1].done(results_for(h.calls[1], RunStatus::pass));
  CHECK_FALSE(h.reply);
  h.calls[0].done(results_for(h.calls[0], RunStatus::fail));
  REQUIRE(h.reply);
  CHECK((*h.reply)["ok"] == true);
  CHECK((*h.reply)["exit_code"] == 1);  // a fault on one device wins
  CHECK((*h.reply)["results"].size() == 2);
  CHECK_THAT((*h.reply)["text"].get<std::string>(), Catch::Contains("gemm"));

  // One device named: only it runs; a hung run is the client's exit 2.
  h.calls.clear();
  h.send(probe({"--device", "vulkan1", "--kernel", "gemm", "--size", "16", "--mode", "exact", "--dtype", "f32"}));
  REQUIRE(h.calls.size() == 1);
  CHECK(h.calls[0].device == 1);
  CHECK(h.calls[0].timeout == 120.0);  // the CLI's default
  h.calls[0].done(results_for(h.calls[0], RunStatus::hung));
  CHECK((*h.reply)["exit_code"] == 2);
}

TEST_CASE("control commands: a run the service refuses is the client's one-line exit 2", "[unit]") {
  Harness h({device("vulkan0"), device("vulkan1")});
  h.send(probe({"--kernel", "gemm", "--size", "16", "--mode", "exact", "--dtype", "f32"}));
  REQUIRE(h.calls.size() == 2);
  h.calls[0].done(Error{ErrorKind::unavailable, "over the duty cycle"});
  h.calls[1].done(results_for(h.calls[1], RunStatus::pass));
  REQUIRE(h.reply);
  CHECK((*h.reply)["ok"] == false);
  CHECK((*h.reply)["exit_code"] == 2);
  CHECK((*h.reply)["error"] == "vulkan0: over the duty cycle");
}

TEST_CASE("control commands: a spec too large for the device or the host budget is refused before any run", "[unit]") {
  DeviceInfo gpu = device("cuda0");
  gpu.backend = "cuda";
  gpu.device_type = "discrete";
  gpu.memory_bytes = 1ull << 30;
  Harness h({gpu, device("vulkan0")});
  // 4096^3 exact: 128 MiB of A and B as float, 16 Mi outputs of 12 bytes: 320 MiB on the host.
  h.send(probe({"--device", "cuda0", "--kernel", "gemm", "--size", "4096", "--mode", "exact", "--dtype", "f32"}));
  REQUIRE(h.reply);
  CHECK((*h.reply)["exit_code"] == 2);
  CHECK((*h.reply)["error"] ==
        "gemm/f32/exact/4096x4096x4096 needs about 320.0 MiB of host memory, above on_demand.max_host_bytes "
        "(192.0 MiB)");
  // Device memory is checked first: 16384^3 needs 3 GiB of buffers on a 1 GiB device.
  h.send(probe({"--device", "cuda0", "--kernel", "gemm", "--size", "16384", "--mode", "exact", "--dtype", "f32"}));
  CHECK((*h.reply)["error"] ==
        "gemm/f32/exact/16384x16384x16384 needs about 4.0 GiB of device memory, above "
        "cuda0's 1.0 GiB");
  // On a CPU device the device's buffers are host memory: 2048^3 needs 80 MiB in the worker and
  // 64 MiB of buffers.
  Harness small({device("vulkan0")}, 100ull << 20);
  small.send(probe({"--kernel", "gemm", "--size", "2048", "--mode", "exact", "--dtype", "f32"}));
  REQUIRE(small.reply);
  CHECK((*small.reply)["error"] ==
        "gemm/f32/exact/2048x2048x2048 needs about 144.0 MiB of host memory (vulkan0's memory is host memory), "
        "above on_demand.max_host_bytes (100.0 MiB)");
  CHECK(h.calls.empty());
  CHECK(small.calls.empty());
  // Within the budget it runs; a larger budget (a reload) admits what was refused.
  small.commands.set_max_host_bytes(200ull << 20);
  small.send(probe({"--kernel", "gemm", "--size", "2048", "--mode", "exact", "--dtype", "f32"}));
  CHECK(small.calls.size() == 1);
  // The memory probe's region is bounded by the device's memory; sizes past 2^64 saturate.
  CHECK(memory_refusal(gpu, {}, 1) == std::nullopt);
  ProbeSpec huge;
  huge.probe = "gemm";
  huge.gemm = {4294967295u, 4294967295u, 4294967295u};
  CHECK(memory_refusal(gpu, {huge}, UINT64_MAX).value_or("").find("of device memory") != std::string::npos);
}

TEST_CASE("control: diag_result is handed to the service, a malformed one refused by name", "[unit]") {
  std::vector<diag::Summary> recorded;
  ControlCommands::Hooks hooks;
  hooks.status = [] { return json::object(); };
  hooks.record_diag = [&](const diag::Summary& summary) -> Expected<std::string> {
    if (summary.device != "vulkan0") return Error{ErrorKind::invalid_argument, "no device matches 'x'"};
    recorded.push_back(summary);
    return std::string("vulkan0");
  };
  ControlCommands commands({device("vulkan0")}, hooks, 192ull << 20);
  std::optional<json> reply;
  const auto send = [&](const json& request) { commands.handle(request, [&](json r) { reply = std::move(r); }); };
  diag::Summary summary;
  summary.device = "vulkan0";
  summary.level = 2;
  summary.verdict = "pass";
  send({{"command", "diag_result"}, {"diag", diag::to_json(summary)}});
  REQUIRE(reply);
  CHECK(reply->at("ok") == true);
  CHECK(reply->at("device") == "vulkan0");
  REQUIRE(recorded.size() == 1);
  CHECK(recorded[0].level == 2);

  json bad = diag::to_json(summary);
  bad["verdict"] = "great";
  send({{"command", "diag_result"}, {"diag", bad}});
  CHECK(reply->at("ok") == false);
  CHECK(reply->at("error").get<std::string>().find("'verdict'") != std::string::npos);
  send({{"command", "diag_result"}});
  CHECK(reply->at("ok") == false);
  summary.device = "other";
  send({{"command", "diag_result"}, {"diag", diag::to_json(summary)}});
  CHECK(reply->at("error") == "no device matches 'x'");
  CHECK(recorded.size() == 1);
}
