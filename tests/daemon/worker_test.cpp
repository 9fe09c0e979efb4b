// The worker protocol (frames), the ProbeResult JSON round trip it carries, and real worker
// processes started by the supervisor (the substrated binary in worker mode, on lavapipe).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "daemon/supervisor.hpp"
#include "daemon/worker_protocol.hpp"
#include "probes/core/probe_result.hpp"

using namespace substrate;
using json = nlohmann::json;

TEST_CASE("worker protocol: frames survive any split and carry the version", "[unit]") {
  auto first = worker::encode({{"type", "started"}, {"index", 0}});
  auto second = worker::encode({{"type", "done"}});
  REQUIRE(first);
  REQUIRE(second);
  const std::string stream = *first + *second;
  for (std::size_t split = 0; split <= stream.size(); ++split) {
    worker::FrameDecoder decoder;
    REQUIRE(decoder.feed(stream.data(), split));
    REQUIRE(decoder.feed(stream.data() + split, stream.size() - split));
    REQUIRE(decoder.has_frame());
    const json a = decoder.take();
    CHECK(a.at("type") == "started");
    CHECK(a.at("v") == worker::k_protocol_version);
    REQUIRE(decoder.has_frame());
    CHECK(decoder.take().at("type") == "done");
    CHECK_FALSE(decoder.has_frame());
    CHECK(decoder.pending_bytes() == 0);
  }
}

TEST_CASE("worker protocol: oversized lengths, other versions and non-objects are refused", "[unit]") {
  worker::FrameDecoder huge;
  const char length[4] = {'\x7f', '\0', '\0', '\0'};
  CHECK(huge.feed(length, 4).error().kind == ErrorKind::corrupt);
  CHECK_FALSE(huge.feed("x", 1));  // stays broken

  auto framed = [](const std::string& payload) {
    const auto n = static_cast<std::uint32_t>(payload.size());
    return std::string{static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
                       static_cast<char>(n)} +
           payload;
  };
  for (const std::string& payload : {std::string(R"({"v":2,"type":"done"})"), std::string("[1,2]"),
                                     std::string("not json"), std::string(R"({"v":1})")}) {
    worker::FrameDecoder decoder;
    const std::string bytes = framed(payload);
    CHECK_FALSE(decoder.feed(bytes.data(), bytes.size()));
  }
  json big = {{"type", "result"}, {"blob", std::string(worker::k_max_frame_bytes, 'x')}};
  CHECK(worker::encode(big).error().kind == ErrorKind::invalid_argument);
}

TEST_CASE("probe result JSON: from_json gives back everything to_json wrote", "[unit]") {
  ProbeResult r;
  r.device.id = "vulkan0";
  r.device.backend = "vulkan";
  r.device.uuid = "00000000-0000-0000-0000-000000000001";
  r.device.memory_bytes = 1ull << 33;
  r.device.compute_units = 7;
  r.spec.probe = "gemm";
  r.spec.gemm = {16, 16, 16};
  r.spec.seed = 9;
  r.spec.inject = {true, 35, 1u << 30, false, 0};
  r.kernel = "vulkan.gemm.tiled16";
  r.status = RunStatus::fail;
  r.check.pass = false;
  r.check.checked = 256;
  r.check.mismatched = 1;
  r.check.max_abs_error = std::numeric_limits<double>::infinity();
  r.check.budget_used = 0.25;
  r.check.first_mismatches.push_back({35, 2, 3, 1.5, -2.0, 0x3fc00000u, 0xc0000000u, 0xffc00000u, 0xc0000000u, 0.0});
  r.check.flipped_bits[30] = 1;
  r.check.mismatch_map = make_mismatch_map(16, 16);
  count_mismatch(r.check.mismatch_map, 2, 3);
  r.fingerprint = "0123456789abcdef";
  r.device_seconds = 0.001;
  r.wall_seconds = 0.5;
  r.finished_at = 1.7e9;
  MemoryDetails memory;
  memory.bytes_tested = 4096;
  memory.bad_words = 1;
  memory.first_bad.push_back({64, 0xffffffffu, 0xfffffffeu, 0xfffffffeu, MemoryPattern::moving_inversions});
  memory.flipped_bits[0] = 1;
  memory.retention_bytes = 1024;
  r.memory = memory;
  CanaryDetails canary;
  canary.layers.push_back({"embed", 4, 8, 0, 0.0, 0.0, 1.0});
  canary.tokens = 4;
  canary.input_tokens = {1, 2, 3, 4};
  r.canary = canary;

  const json written = r;
  const ProbeResult back = written.get<ProbeResult>();
  CHECK(json(back) == written);
  CHECK(back.fingerprint == r.fingerprint);
  CHECK(back.check.first_mismatches.at(0).row == 2);
  CHECK(back.check.mismatch_map.counts == r.check.mismatch_map.counts);
  CHECK(back.check.mismatch_map.tile_rows == 1);
  json broken_map = written;
  broken_map["check"]["mismatch_map"]["counts"].erase(0);  // one tile short
  CHECK_THROWS_WITH(broken_map.get<ProbeResult>(), Catch::Contains("mismatch_map"));

  ProbeResult hung;
  hung.status = RunStatus::hung;
  hung.error = "no result after 2.5 s";
  hung.error_kind = ErrorKind::timeout;
  const ProbeResult hung_back = json(hung).get<ProbeResult>();
  CHECK(hung_back.status == RunStatus::hung);
  CHECK(hung_back.error_kind == ErrorKind::timeout);
  CHECK(hung_back.error == hung.error);
}

namespace {

struct Outcome {
  std::vector<json> frames;
  std::optional<WorkerExit> exit;
};

// Runs one real worker (the substrated binary) to its end on a private loop.
Outcome run_worker(const json& request, double deadline_seconds) {
  boost::asio::io_context io;
  Outcome out;
  auto worker = WorkerProcess::spawn(
      io, SUBSTRATE_BINARY, request,
      {[&](const json& frame) { out.frames.push_back(frame); }, [&](const WorkerExit& exit) { out.exit = exit; }});
  REQUIRE(worker);
  (*worker)->set_deadline(deadline_seconds);
  io.run_for(std::chrono::seconds(60));
  return out;
}

std::vector<std::string> types(const Outcome& out) {
  std::vector<std::string> t;
  for (const json& f : out.frames) t.push_back(f.at("type").get<std::string>());
  return t;
}

json gemm_run(const std::string& drill) {
  ProbeSpec spec;
  spec.probe = "gemm";
  spec.gemm = {16, 16, 16};
  return {{"type", "run"},
          {"device", "vulkan0"},
          {"specs", json::array({{{"spec", spec}, {"drill", drill}, {"timeout_seconds", 20.0}}})}};
}

}  // namespace

TEST_CASE("worker process: discovers devices and runs a spec, then exits 0", "[e2e]") {
  const Outcome found = run_worker({{"type", "discover"}}, 30);
  REQUIRE(found.exit);
  CHECK(found.exit->exit_code == 0);
  REQUIRE(types(found) == std::vector<std::string>{"devices"});
  REQUIRE_FALSE(found.frames[0].at("devices").empty());
  CHECK(found.frames[0]["devices"][0]["id"] == "vulkan0");

  const Outcome ran = run_worker(gemm_run(""), 30);
  REQUIRE(ran.exit);
  CHECK(ran.exit->exit_code == 0);
  CHECK(types(ran) == std::vector<std::string>{"opened", "started", "result", "done"});
  const ProbeResult result = ran.frames[2].at("result").get<ProbeResult>();
  CHECK(result.status == RunStatus::pass);
  CHECK(result.fingerprint.size() == 16);
}

TEST_CASE("worker process: the crash drill dies by SIGSEGV after the device opened", "[e2e]") {
  const Outcome out = run_worker(gemm_run("crash"), 30);
  REQUIRE(out.exit);
  CHECK(out.exit->signal == SIGSEGV);
  CHECK_FALSE(out.exit->killed);
  CHECK(types(out) == std::vector<std::string>{"opened", "started"});
  CHECK(signal_name(SIGSEGV) == "SIGSEGV");
}

TEST_CASE("worker process: past its deadline a hanging worker is killed and reaped", "[e2e]") {
  const auto started = std::chrono::steady_clock::now();
  const Outcome out = run_worker(gemm_run("hang"), 2.0);
  REQUIRE(out.exit);
  CHECK(out.exit->deadline_passed);
  CHECK(out.exit->signal == SIGKILL);
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(10));
}

TEST_CASE("worker process: a request of an unknown kind or device is an error frame and exit 2", "[e2e]") {
  const Outcome unknown = run_worker({{"type", "format-disk"}}, 30);
  REQUIRE(unknown.exit);
  CHECK(unknown.exit->exit_code == 2);
  REQUIRE(types(unknown) == std::vector<std::string>{"error"});
  json missing = gemm_run("");
  missing["device"] = "vulkan7";
  const Outcome absent = run_worker(missing, 30);
  REQUIRE(absent.exit);
  CHECK(absent.exit->exit_code == 2);
  REQUIRE(types(absent) == std::vector<std::string>{"error"});
  CHECK(absent.frames[0]["message"].get<std::string>().find("vulkan7") != std::string::npos);
}

TEST_CASE("worker process: a repeat runs the specs pass after pass, comparing fingerprints with the first", "[e2e]") {
  json request = gemm_run("");
  request["repeat"] = {{"duration_seconds", 3600}, {"max_iterations", 3}};
  const Outcome out = run_worker(request, 30);
  REQUIRE(out.exit);
  CHECK(out.exit->exit_code == 0);
  CHECK(types(out) ==
        std::vector<std::string>{"opened", "started", "result", "started", "result", "started", "result", "done"});
  for (std::uint64_t pass = 0; pass < 3; ++pass) {
    const json& result = out.frames[2 + 2 * pass];
    CHECK(result.at("iteration") == pass);
    CHECK(out.frames[1 + 2 * pass].at("iteration") == pass);
    CHECK(result.at("fingerprint_matches_first") == true);
    CHECK(result.at("result").at("status") == "pass");
  }
  // A duration of 0 still makes one pass; without repeat there is no fingerprint comparison.
  request["repeat"] = {{"duration_seconds", 0}};
  CHECK(types(run_worker(request, 30)).size() == 4);
  CHECK_FALSE(run_worker(gemm_run(""), 30).frames.at(2).contains("fingerprint_matches_first"));
  // A malformed repeat is refused before the device opens.
  request["repeat"] = {{"duration_seconds", -1}};
  const Outcome bad = run_worker(request, 30);
  REQUIRE(bad.exit);
  CHECK(bad.exit->exit_code == 2);
  REQUIRE(types(bad) == std::vector<std::string>{"error"});
  CHECK(bad.frames[0]["message"].get<std::string>().find("repeat.duration_seconds") != std::string::npos);
}

TEST_CASE("worker process: a fault that fails every pass of a repeat is dumped once, from its first pass", "[e2e]") {
  const auto root = std::filesystem::temp_directory_path() / ("substrate-dump-once-" + std::to_string(::getpid()));
  json request = gemm_run("");
  ProbeSpec drilled = request["specs"][0]["spec"].get<ProbeSpec>();
  drilled.inject.enabled = true;
  drilled.inject.element = 7;
  drilled.inject.xor_mask = 1u << 30;
  request["specs"][0]["spec"] = drilled;
  request["repeat"] = {{"duration_seconds", 3600}, {"max_iterations", 3}};
  request["dump_root"] = root.string();
  request["dump_max_bytes"] = 1 << 20;
  const Outcome out = run_worker(request, 30);
  REQUIRE(out.exit);
  CHECK(out.exit->exit_code == 0);
  std::vector<double> finished;
  for (const json& frame : out.frames) {
    if (frame.at("type") != "result") continue;
    CHECK(frame.at("result").at("status") == "fail");
    finished.push_back(frame.at("result").at("finished_at").get<double>());
  }
  REQUIRE(finished.size() == 3);
  std::vector<std::filesystem::path> dumps;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (entry.path().filename() == "result.json") dumps.push_back(entry.path());
  }
  REQUIRE(dumps.size() == 1);
  const json dumped = json::parse(std::ifstream(dumps[0]));
  CHECK(dumped.at("finished_at").get<double>() == finished[0]);  // the first pass's, not overwritten
  std::filesystem::remove_all(root);
}
