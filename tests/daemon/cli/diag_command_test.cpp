// `substrated diag` against the real binary on lavapipe: every level with a short --duration,
// the JSON contract, a drill found and located, busy refusal through the real NVML loader (the
// stand-in scripted with lavapipe's UUID, so telemetry joins the device), and Ctrl-C.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/file_io.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/html_tree.hpp"
#include "tests/support/run_command.hpp"

extern char** environ;

namespace {

using json = nlohmann::json;

struct Diag {
  int exit_code = -1;
  std::string out;  // stdout only: progress goes to stderr
  std::string err;
  json doc;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("substrated-diag-" + std::to_string(::getpid()) + "-" + name))
      .string();
}

Diag run_diag(const std::string& arguments, const std::string& environment = "") {
  Diag result;
  const std::string err = temp_path("stderr");
  FILE* pipe = popen((environment + " " + SUBSTRATE_BINARY + " diag " + arguments + " 2>" + err).c_str(), "r");
  REQUIRE(pipe);
  char buffer[4096];
  std::size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) result.out.append(buffer, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.err = slurp(err);
  std::filesystem::remove(err);
  result.doc = json::parse(result.out, nullptr, false);
  return result;
}

// Environment that makes the real NVML loader open the test-only stand-in, scripted as one GPU
// with lavapipe's UUID: telemetry joins lavapipe through its UUID, as it joins a real GPU.
std::string nvml_standin(const std::string& script_body, const std::string& script_path) {
  std::ofstream(script_path) << script_body;
  return "SUBSTRATE_NVML_LIBRARY=" + std::string(SUBSTRATE_NVML_STANDIN_DIR) +
         "/libnvidia-ml.so.1 SUBSTRATE_NVML_STANDIN_SCRIPT=" + script_path;
}

bool has_worker_of(pid_t parent) {
  const std::string needle = std::string("__worker") + '\0' + "--parent" + '\0' + std::to_string(parent);
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string cmdline = slurp(entry.path().string() + "/cmdline");
    if (cmdline.find(needle) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("diag: level 1 runs the probe set once and prints the report's JSON", "[e2e]") {
  const Diag run = run_diag("--level quick --device vulkan0 --json");
  INFO(run.out << run.err);
  CHECK(run.exit_code == 0);
  REQUIRE_FALSE(run.doc.is_discarded());
  const json& diag = run.doc.at("diag");
  CHECK(diag.at("level") == 1);
  CHECK(diag.at("interrupted") == false);
  CHECK(diag.at("exit_code") == 0);
  CHECK(diag.at("finished_at").get<double>() >= diag.at("started_at").get<double>());
  REQUIRE(diag.at("devices").size() == 1);
  const json& device = diag.at("devices").at(0);
  CHECK(device.at("device").at("id") == "vulkan0");
  CHECK(device.at("verdict") == "pass");
  CHECK(device.at("iterations") == 1);
  CHECK(device.at("failed_iterations") == 0);
  CHECK(device.at("peer_throughput_share").is_null());  // lavapipe has no peer
  bool probes[3] = {};
  for (const json& entry : device.at("timeline")) {
    CHECK(entry.at("iteration") == 0);
    CHECK(entry.at("temperature_celsius").is_null());  // lavapipe has no telemetry
    probes[0] = probes[0] || entry.at("probe") == "gemm";
    probes[1] = probes[1] || entry.at("probe") == "attention";
    probes[2] = probes[2] || entry.at("probe") == "memory";
  }
  CHECK((probes[0] && probes[1] && probes[2]));
  CHECK(device.at("results").size() == device.at("timeline").size());  // one pass: every result is a first
  CHECK(device.at("telemetry_notes").at(0).get<std::string>().find("lavapipe") != std::string::npos);
}

TEST_CASE("diag: levels 2, 3 and 4 repeat for the --duration, checking every iteration", "[e2e]") {
  for (const char* level : {"2", "long", "4"}) {
    const Diag run = run_diag(std::string("--level ") + level + " --duration 2 --device vulkan0 --json");
    INFO(level << ": " << run.out << run.err);
    CHECK(run.exit_code == 0);
    REQUIRE_FALSE(run.doc.is_discarded());
    const json& device = run.doc.at("diag").at("devices").at(0);
    CHECK(device.at("verdict") == "pass");
    CHECK(device.at("iterations").get<int>() >= 2);
    CHECK(run.doc.at("diag").at("duration_seconds") == 2.0);
    bool big_gemm = false;
    for (const json& result : device.at("results")) {
      if (result.at("spec").at("probe") == "gemm") big_gemm = result.at("spec").at("gemm").at("m") == 128;
      CHECK(result.at("status") == "pass");
    }
    CHECK(big_gemm);
    // Every iteration is in the timeline with its throughput.
    std::size_t with_throughput = 0;
    for (const json& entry : device.at("timeline")) with_throughput += entry.at("throughput").is_number();
    CHECK(with_throughput == device.at("timeline").size());
  }
}

TEST_CASE("diag: a drill during a diag is found in every iteration and located", "[e2e]") {
  const Diag run = run_diag("--level 2 --duration 1 --device vulkan0 --json --inject bit=30,row=3,col=5");
  INFO(run.out << run.err);
  CHECK(run.exit_code == 1);
  REQUIRE_FALSE(run.doc.is_discarded());
  const json& device = run.doc.at("diag").at("devices").at(0);
  CHECK(device.at("verdict") == "fail");
  CHECK(device.at("failed_iterations") == device.at("iterations"));
  bool located = false;
  for (const json& result : device.at("results")) {
    if (result.at("status") != "fail") continue;
    CHECK(result.at("spec").at("probe") == "gemm");
    const json& first = result.at("check").at("first_mismatches").at(0);
    located = located || (first.at("row") == 3 && first.at("col") == 5);
  }
  CHECK(located);
  // The text output carries the replay command of the failing run, and --report draws the fault
  // where it is: one mismatched element in every failing GEMM's heatmap.
  const std::string report =
      (std::filesystem::temp_directory_path() / ("substrated-diag-" + std::to_string(::getpid()) + ".html")).string();
  const Diag text = run_diag("--level 1 --device vulkan0 --inject bit=30,row=3,col=5 --report " + report);
  CHECK(text.exit_code == 1);
  CHECK(text.out.find("replay: substrated probe") != std::string::npos);
  auto html = substrate::read_file(report);
  REQUIRE(html);
  std::filesystem::remove(report);
  const substrate::testing::HtmlElement doc = substrate::testing::parse_html(*html);
  const auto maps = doc.find_all("svg", "heatmap");
  REQUIRE_FALSE(maps.empty());
  for (const auto* map : maps) {
    std::uint64_t total = 0;
    for (const auto* cell : map->find_all("rect", "cell")) total += std::stoull(cell->attribute("data-count"));
    CHECK(total == 1);
  }
  CHECK(html->find("substrated probe") != std::string::npos);
  // A report that cannot be written is refused before the run, not after it.
  const Diag unwritable = run_diag("--level 1 --device vulkan0 --report /nonexistent/dir/report.html");
  CHECK(unwritable.exit_code == 2);
  CHECK(unwritable.err.find("/nonexistent/dir is not a directory") != std::string::npos);
}

TEST_CASE("diag: bad arguments and no device exit 2 with the cause", "[e2e]") {
  CHECK(run_diag("--level 7").err.find("--level must be") != std::string::npos);
  CHECK(run_diag("--level 7").exit_code == 2);
  CHECK(run_diag("--duration -3").err.find("--duration") != std::string::npos);
  CHECK(run_diag("--min-peer-throughput-share 2").exit_code == 2);
  const Diag none = run_diag("--device nosuch");
  CHECK(none.exit_code == 2);
  CHECK(none.err.find("no device matches 'nosuch'") != std::string::npos);
}

TEST_CASE("diag: a busy device is refused unless --force; telemetry is sampled during the run", "[e2e]") {
  const std::string uuid = substrate::testing::device_uuid("vulkan0");
  REQUIRE_FALSE(uuid.empty());
  const std::string script = temp_path("nvml");
  const std::string env = nvml_standin("devices 1\n0 uuid GPU-" + uuid +
                                           "\n0 utilization 97 40\n0 temperature.gpu 61\n0 clock.sm 1410\n"
                                           "0 power_usage 250000\n0 clocks_event_reasons 0x20\n",
                                       script);
  const Diag refused = run_diag("--level 1 --device vulkan0 --json", env);
  INFO(refused.out << refused.err);
  CHECK(refused.exit_code == 2);
  REQUIRE_FALSE(refused.doc.is_discarded());
  const json& device = refused.doc.at("diag").at("devices").at(0);
  CHECK(device.at("verdict") == "skipped");
  CHECK(device.at("refused").get<std::string>().find("busy: 97%") != std::string::npos);
  CHECK(device.at("timeline").empty());

  const Diag forced = run_diag("--level 2 --duration 1 --telemetry-period 0.2 --device vulkan0 --json --force", env);
  INFO(forced.out << forced.err);
  CHECK(forced.exit_code == 0);
  REQUIRE_FALSE(forced.doc.is_discarded());
  const json& ran = forced.doc.at("diag").at("devices").at(0);
  CHECK(ran.at("verdict") == "pass");
  REQUIRE_FALSE(ran.at("telemetry").empty());
  const json& entry = ran.at("timeline").at(0);
  CHECK(entry.at("temperature_celsius") == 61.0);
  CHECK(entry.at("sm_clock_hertz") == 1.41e9);
  CHECK(entry.at("power_watts") == 250.0);
  CHECK(entry.at("throttle_reasons").size() == 1);
  std::filesystem::remove(script);
}

TEST_CASE("diag: Ctrl-C stops the workers and prints the partial report as interrupted", "[e2e]") {
  const std::string out = temp_path("sigint-out");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  const char* argv[] = {SUBSTRATE_BINARY, "diag",     "--level", "2",    "--duration", "120",
                        "--json",         "--device", "vulkan0", nullptr};
  pid_t pid = -1;
  REQUIRE(posix_spawn(&pid, SUBSTRATE_BINARY, &actions, nullptr, const_cast<char* const*>(argv), environ) == 0);
  posix_spawn_file_actions_destroy(&actions);
  // Interrupted once its worker has run at least one spec (the partial report then has some).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  bool worker_seen = false;
  while (std::chrono::steady_clock::now() < deadline && !worker_seen) {
    worker_seen = has_worker_of(pid);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(worker_seen);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const auto sent = std::chrono::steady_clock::now();
  ::kill(pid, SIGINT);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(std::chrono::steady_clock::now() - sent < std::chrono::seconds(10));
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 2);
  CHECK_FALSE(has_worker_of(pid));  // nothing left behind
  const json doc = json::parse(slurp(out), nullptr, false);
  std::filesystem::remove(out);
  REQUIRE_FALSE(doc.is_discarded());
  CHECK(doc.at("diag").at("interrupted") == true);
  CHECK(doc.at("diag").at("exit_code") == 2);
  const json& device = doc.at("diag").at("devices").at(0);
  CHECK(device.at("verdict") == "error");
  CHECK(device.at("iterations").get<int>() >= 1);
  CHECK(doc.at("diag").at("finished_at").get<double>() - doc.at("diag").at("started_at").get<double>() < 60);
}

TEST_CASE("diag: a running daemon keeps each device's last diag, and a failed diag fails the device", "[e2e]") {
  substrate::testing::DaemonProcess daemon(
      "  gemm:\n    enabled: false\n  attention:\n    enabled: false\n"
      "  memory:\n    enabled: false\n");
  daemon.start();
  REQUIRE(daemon.wait_ready());
  INFO(daemon.log());
  const auto vulkan0 = [&] {
    const json status = json::parse(substrate::testing::http_get(daemon.port(), "/status").body);
    for (const json& device : status.at("devices"))
      if (device.at("device").at("id") == "vulkan0") return device;
    return json();
  };
  CHECK(vulkan0().at("last_diag").is_null());
  const Diag clean = run_diag("--level 1 --device vulkan0 --socket " + daemon.socket_path());
  CHECK(clean.exit_code == 0);
  CHECK(vulkan0().at("last_diag").at("verdict") == "pass");
  CHECK(vulkan0().at("last_diag").at("level") == 1);
  const auto status = substrate::testing::run_substrated("status --socket " + daemon.socket_path());
  CHECK(status.output.find("last diag: level 1, pass") != std::string::npos);

  const Diag drill =
      run_diag("--level 2 --duration 1 --device vulkan0 --inject bit=30,row=3,col=5 --socket " + daemon.socket_path());
  CHECK(drill.exit_code == 1);
  const json device = vulkan0();
  const json& last = device.at("last_diag");
  CHECK(last.at("verdict") == "fail");
  CHECK(last.at("level") == 2);
  CHECK(last.at("reason") == "golden_mismatch");
  CHECK(last.at("finished_at").get<double>() >= last.at("started_at").get<double>());
  CHECK(device.at("health") == "failed");
  CHECK(device.at("reasons").dump().find("diag level 2") != std::string::npos);
  // Kept in the state, so a restarted daemon still shows it.
  const std::string state = slurp((daemon.dir() / "state" / "state.json").string());
  CHECK(state.find("\"diags\"") != std::string::npos);
  CHECK(state.find("gemm/f32/exact/128x128x128 failed") != std::string::npos);
}
