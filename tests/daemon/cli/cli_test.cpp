#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "daemon/control_socket.hpp"
#include "tests/support/run_command.hpp"
#include "tests/support/server_test_support.hpp"

using substrate::testing::run_substrated;

TEST_CASE("cli: a clean probe exits 0 and prints the seed and a fingerprint", "[e2e]") {
  auto run = run_substrated("probe --kernel gemm --size 32x48x64 --seed 5");
  INFO(run.output);
  CHECK(run.exit_code == 0);
  CHECK(run.output.find("gemm/f32/exact/32x48x64") != std::string::npos);
  CHECK(run.output.find(" 5 ") != std::string::npos);
}

TEST_CASE("cli: an injected fault exits 1 and names element and bit as a drill", "[e2e]") {
  auto run = run_substrated("probe --kernel gemm --mode exact --dtype f32 --size 16 --inject bit=30,row=3,col=5");
  INFO(run.output);
  CHECK(run.exit_code == 1);
  CHECK(run.output.find("row 3, col 5") != std::string::npos);
  CHECK(run.output.find("bits 30") != std::string::npos);
  CHECK(run.output.find("DRILL") != std::string::npos);
}

TEST_CASE("cli: --json carries spec, seed, drill flag and mismatch evidence", "[e2e]") {
  auto run =
      run_substrated("probe --kernel gemm --mode exact --dtype f16 --size 8 --seed 3 --inject bit=2,element=9 --json");
  REQUIRE(run.exit_code == 1);
  const auto doc = nlohmann::json::parse(run.output);
  const auto& result = doc.at("results").at(0);
  CHECK(result.at("spec").at("seed") == 3);
  CHECK(result.at("drill") == true);
  CHECK(result.at("status") == "fail");
  CHECK(result.at("check").at("first_mismatches").at(0).at("index") == 9);
  CHECK(result.at("check").at("first_mismatches").at(0).at("xor") == "0x00000004");
  CHECK(result.at("device").at("backend") == "vulkan");
}

TEST_CASE("cli: no matching device or bad arguments exit 2 with the cause", "[e2e]") {
  auto none = run_substrated("probe --device no-such-gpu");
  CHECK(none.exit_code == 2);
  CHECK(none.output.find("no device matches 'no-such-gpu'") != std::string::npos);
  auto bad_mode = run_substrated("probe --mode sloppy");
  CHECK(bad_mode.exit_code == 2);
  CHECK(bad_mode.output.find("--mode must be exact or random") != std::string::npos);
  auto bad_inject = run_substrated("probe --kernel gemm --inject bit=40");
  CHECK(bad_inject.exit_code == 2);
  CHECK(bad_inject.output.find("0..31") != std::string::npos);
  auto unknown = run_substrated("frobnicate");
  CHECK(unknown.exit_code == 2);
  auto size_without_kernel = run_substrated("probe --size 64");
  CHECK(size_without_kernel.exit_code == 2);
  CHECK(size_without_kernel.output.find("--size needs exactly one --kernel") != std::string::npos);
  auto missing_value = run_substrated("probe --seed");
  CHECK(missing_value.exit_code == 2);
  CHECK(missing_value.output.find("--seed needs a value") != std::string::npos);
}

TEST_CASE("cli: --help works on every command and --list shows the probes", "[e2e]") {
  for (const char* command : {"--help", "probe --help", "devices --help"}) {
    auto run = run_substrated(command);
    CHECK(run.exit_code == 0);
    CHECK(run.output.find("usage:") != std::string::npos);
  }
  auto list = run_substrated("probe --list");
  CHECK(list.exit_code == 0);
  for (const char* id : {"gemm", "attention", "memory"}) CHECK(list.output.find(id) != std::string::npos);
}

TEST_CASE("cli: devices lists lavapipe with its identity", "[e2e]") {
  auto run = run_substrated("devices --json");
  REQUIRE(run.exit_code == 0);
  const auto doc = nlohmann::json::parse(run.output);
  REQUIRE_FALSE(doc.at("devices").empty());
  CHECK(doc.at("devices").at(0).at("uuid").get<std::string>().size() == 36);
}

TEST_CASE("cli: devices joins telemetry from a sysfs root and says NVML is absent", "[e2e]") {
  auto run =
      run_substrated(std::string("devices --json --path.sysfs ") + SUBSTRATE_SOURCE_DIR + "/tests/fixtures/sysfs");
  REQUIRE(run.exit_code == 0);
  // The fixture's malformed values are logged on stderr (merged here) before the JSON document.
  const auto start = run.output.find("\n{");
  const auto doc = nlohmann::json::parse(run.output[0] == '{' ? run.output : run.output.substr(start + 1));
  CHECK(doc.at("devices").at(0).contains("telemetry_sources"));
  bool nvml_note = false;
  for (const auto& note : doc.at("notes")) nvml_note = nvml_note || note.get<std::string>().find("NVML absent") == 0;
  CHECK(nvml_note);
  CHECK(run_substrated("devices --path.sysfs").exit_code == 2);
}

TEST_CASE("cli: --kernel=gemm runs exactly what --kernel gemm runs", "[e2e]") {
  auto adjacent = run_substrated("probe --local --kernel=gemm --size=16 --seed=4 --mode=exact --dtype=f32 --json");
  auto next = run_substrated("probe --local --kernel gemm --size 16 --seed 4 --mode exact --dtype f32 --json");
  INFO(adjacent.output);
  REQUIRE(adjacent.exit_code == 0);
  REQUIRE(next.exit_code == 0);
  const auto a = nlohmann::json::parse(adjacent.output).at("results");
  const auto b = nlohmann::json::parse(next.output).at("results");
  REQUIRE(a.size() == 1);
  REQUIRE(b.size() == 1);
  CHECK(a.at(0).at("spec") == b.at(0).at("spec"));
  CHECK(a.at(0).at("spec").at("seed") == 4);
  CHECK(a.at(0).at("fingerprint") == b.at(0).at("fingerprint"));
}

TEST_CASE("cli: an unknown option exits 2 with one line naming it, on every command", "[e2e]") {
  for (const char* command : {"probe", "devices", "serve", "status", "compare", "config"}) {
    auto run = run_substrated(std::string(command) + " --frobnicate");
    INFO(command << ": " << run.output);
    CHECK(run.exit_code == 2);
    CHECK(run.output == std::string("substrated: ") + command + ": unknown option '--frobnicate' (see substrated " +
                            command + " --help)\n");
  }
  auto abbreviated = run_substrated("probe --kern gemm");
  CHECK(abbreviated.exit_code == 2);
  CHECK_THAT(abbreviated.output, Catch::Contains("unknown option '--kern'"));
  auto unknown_command = run_substrated("frobnicate");
  CHECK(unknown_command.exit_code == 2);
  CHECK(unknown_command.output == "substrated: unknown command 'frobnicate' (see substrated --help)\n");
}

TEST_CASE("cli: a missing value exits 2 and names the option", "[e2e]") {
  for (const char* args : {"probe --kernel", "probe --kernel=", "probe --local --device", "probe --socket",
                           "devices --path.sysfs", "serve --config", "compare --atol", "status --socket"}) {
    auto run = run_substrated(args);
    INFO(args << ": " << run.output);
    CHECK(run.exit_code == 2);
    const std::string option = std::string(args).substr(std::string(args).rfind(" --") + 1);
    const std::string name = option.substr(0, option.find('='));
    CHECK_THAT(run.output, Catch::Contains(name + " needs a value"));
    CHECK(std::count(run.output.begin(), run.output.end(), '\n') == 1);
  }
  auto flag_with_value = run_substrated("probe --json=yes");
  CHECK(flag_with_value.exit_code == 2);
  CHECK_THAT(flag_with_value.output, Catch::Contains("--json takes no value"));
}

TEST_CASE("cli: repeated options behave as before: kernels add up, the last value wins", "[e2e]") {
  auto run = run_substrated("probe --local --kernel gemm --kernel memory --size 16 --seed 2 --seed 6 --json");
  CHECK(run.exit_code == 2);  // --size still needs exactly one kernel: both were taken
  CHECK_THAT(run.output, Catch::Contains("--size needs exactly one --kernel"));
  auto seeds =
      run_substrated("probe --local --kernel gemm --size 16 --mode exact --dtype f32 --seed 2 --seed=6 --json");
  INFO(seeds.output);
  REQUIRE(seeds.exit_code == 0);
  const auto results = nlohmann::json::parse(seeds.output).at("results");
  REQUIRE(results.size() == 1);
  CHECK(results.at(0).at("spec").at("seed") == 6);
}

TEST_CASE("cli: --version and version print the version; --help lists them", "[e2e]") {
  const std::string expected = std::string("substrated ") + SUBSTRATE_VERSION + "\n";
  for (const char* command : {"--version", "version"}) {
    auto run = run_substrated(command);
    CHECK(run.exit_code == 0);
    CHECK(run.output == expected);
  }
  for (const char* command : {"--help", "-h", "help"}) {
    auto help = run_substrated(command);
    CHECK(help.exit_code == 0);
    CHECK_THAT(help.output, Catch::Contains("  version ") && Catch::Contains("--version"));
  }
}

TEST_CASE("cli: every command's --help lists each option it accepts", "[e2e]") {
  struct Help {
    const char* command;
    std::vector<const char*> options;
  };
  const std::vector<Help> helps = {
      {"probe",
       {"--device SEL", "--kernel ID", "--mode M", "--dtype T", "--size SIZE", "--seed N", "--inject SPEC",
        "--timeout S", "--json", "--list", "--local", "--dump DIR", "--replay FILE", "--no-inject", "--socket PATH",
        "--npd", "--help", "exit: 0"}},
      {"devices", {"--json", "--path.sysfs DIR", "--help"}},
      {"serve", {"--config FILE", "78", "SIGHUP", "--help"}},
      {"status", {"--socket PATH", "--json", "--help"}},
      {"compare", {"--atol X", "--rtol X", "--json", "--help", "exit: 0"}},
      {"config", {"config check FILE", "--help"}},
  };
  for (const Help& h : helps) {
    for (const char* form : {" --help", " -h"}) {
      auto run = run_substrated(std::string(h.command) + form);
      INFO(h.command << form << ":\n" << run.output);
      CHECK(run.exit_code == 0);
      CHECK(run.output.rfind(std::string("usage: substrated ") + h.command, 0) == 0);
      for (const char* option : h.options) CHECK_THAT(run.output, Catch::Contains(option));
    }
  }
}

// Issue 17: `config check` on a FIFO hung; a runtime_directory too long for the control socket
// passed `config check` (and made `serve` exit 2).
TEST_CASE("cli: config check refuses a FIFO at once and a runtime_directory too long for the socket", "[e2e]") {
  const auto dir = std::filesystem::temp_directory_path() / ("substrated-cli-config-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string fifo = (dir / "fifo.yaml").string();
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const auto started = std::chrono::steady_clock::now();
  auto check = run_substrated("config check " + fifo);
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));
  CHECK(check.exit_code == 1);
  CHECK(check.output == "cannot read config " + fifo + ": not a regular file (a FIFO)\n");

  const std::string long_dir = "/run/" + std::string(100, 'd');
  const std::string path = (dir / "long.yaml").string();
  std::ofstream(path) << "runtime_directory: " << long_dir << "\n";
  auto too_long = run_substrated("config check " + path);
  CHECK(too_long.exit_code == 1);
  CHECK(too_long.output.find(path + ":1:20: key 'runtime_directory': the control socket path") == 0);
  std::filesystem::remove_all(dir);
}

// A config whose web configuration the daemon would refuse at start passed `config check`.
TEST_CASE("cli: config check reads the web configuration the config names", "[e2e]") {
  const auto dir = std::filesystem::temp_directory_path() / ("substrated-cli-web-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string config = (dir / "substrated.yaml").string();
  const std::string web = (dir / "web.yml").string();
  std::ofstream(config) << "listen:\n  web_config_file: " << web << "\n";

  std::ofstream(web) << "basic_auth_users:\n  prometheus: not-a-bcrypt-hash\n";
  auto bad_hash = run_substrated("config check " + config);
  CHECK(bad_hash.exit_code == 1);
  CHECK(bad_hash.output.find(web) == 0);
  CHECK(bad_hash.output.find("prometheus") != std::string::npos);

  std::ofstream(web) << "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n";
  auto missing_cert = run_substrated("config check " + config);
  CHECK(missing_cert.exit_code == 1);
  CHECK(missing_cert.output.find("missing.crt") != std::string::npos);

  std::ofstream(web) << "basic_auth_users: {}\n";
  auto good = run_substrated("config check " + config);
  CHECK(good.exit_code == 0);
  CHECK(good.output == config + ": valid\n");
  std::filesystem::remove_all(dir);
}

namespace {
// `probe --npd` against a stand-in daemon whose status reply is `status`.
substrate::testing::CommandOutput npd_against(const nlohmann::json& status) {
  substrate::testing::LoopThread loop;
  const std::string socket =
      (std::filesystem::temp_directory_path() / ("substrated-npd-" + std::to_string(::getpid()) + ".sock")).string();
  std::unique_ptr<substrate::ControlServer> server;
  loop.on_loop([&] {
    auto started = substrate::ControlServer::start(
        loop.io(), socket, [status](const nlohmann::json&, std::function<void(nlohmann::json)> reply) {
          reply({{"ok", true}, {"status", status}});
        });
    if (started) server = std::move(started.value());
  });
  REQUIRE(server);
  auto run = run_substrated("probe --npd --socket " + socket);
  loop.on_loop([&] { server.reset(); });
  return run;
}
}  // namespace

// Issue 17: a reply without `reasons` printed a library exception; a shortened message dropped
// the newest reason.
TEST_CASE("cli: probe --npd says in one line what is wrong with a malformed reply", "[e2e]") {
  auto run = npd_against({{"devices", {{{"device", {{"id", "vulkan0"}}}, {"health", "failed"}}}}});
  CHECK(run.exit_code == 2);
  CHECK(run.output.find("malformed status reply from the daemon: device 0 has no 'reasons' list\n") !=
        std::string::npos);
  CHECK(run.output.find("json") == std::string::npos);                 // no library exception text
  CHECK(std::count(run.output.begin(), run.output.end(), '\n') == 2);  // one line each on stderr and stdout
}

TEST_CASE("cli: probe --npd keeps the newest reason when it shortens its message", "[e2e]") {
  auto run = npd_against(
      {{"devices",
        {{{"device", {{"id", "vulkan0"}}},
          {"health", "failed"},
          {"reasons", {"slowdown: " + std::string(200, 'o'), "telemetry: XID 48 (double-bit ECC error)"}}}}}});
  CHECK(run.exit_code == 1);
  CHECK(run.output == "vulkan0 failed: telemetry: XID 48 (double-bit ECC error)\n");
}

// Issue 21: the node condition names every failing device (cordon or taint on it), then the
// newest reason of the first, within NPD's 80 characters.
TEST_CASE("cli: probe --npd names every failed or hung device before any reason", "[e2e]") {
  auto device = [](const std::string& id, const std::string& health, const std::string& reason) {
    return nlohmann::json{{"device", {{"id", id}}}, {"health", health}, {"reasons", {reason}}};
  };
  auto two = npd_against({{"devices",
                           {device("cuda0", "failed", "gemm: golden mismatch at 3 of 1048576 elements, bit 30"),
                            device("cuda1", "healthy", "gemm: pass"), device("cuda3", "hung", "attention: hung")}}});
  CHECK(two.exit_code == 1);
  CHECK(two.output == "cuda0 failed, cuda3 hung; cuda0: gemm: golden mismatch at 3 of 1048576 element\n");

  nlohmann::json eight = nlohmann::json::array();
  for (int i = 0; i < 8; ++i) eight.push_back(device("cuda" + std::to_string(i), "failed", "XID 79"));
  auto all = npd_against({{"devices", eight}});
  CHECK(all.exit_code == 1);
  CHECK(all.output == "8 devices failed or hung: cuda0,cuda1,cuda2,cuda3,cuda4,cuda5,cuda6,cuda7\n");
}

// Issue 18: every reproduction at the edges of what the CLI accepts passes, or is refused with
// exit 2 and a message naming the reason; none exits 0 with a wrong output.
namespace {

void expect_refused(const std::string& args, const std::string& reason) {
  auto run = run_substrated(args);
  INFO(args << "\n" << run.output);
  CHECK(run.exit_code == 2);
  CHECK(run.output.find(reason) != std::string::npos);
}

}  // namespace

TEST_CASE("cli: loose sizes and a wrapped-around drill row are refused (issue 18, finding 7)", "[e2e]") {
  for (const char* size : {"8x", "8x8x8x", "' 8'", "+8"}) {
    expect_refused(std::string("probe --local --kernel gemm --size ") + size, "is not an integer in 1..1048576");
  }
  expect_refused("probe --local --kernel gemm --mode exact --size 16 --inject bit=30,row=1152921504606846976,col=3",
                 "row 1152921504606846976 is outside the output");
  expect_refused("probe --local --kernel gemm --mode exact --size 16 --inject bit=30,row=16,col=0",
                 "injected element 256 is outside the output (256 elements)");
  // 8192x8192 f32 inputs need 256 MiB each: lavapipe binds at most 128 MiB.
  expect_refused("probe --local --kernel gemm --mode exact --dtype f32 --size 8192", "maxStorageBufferRange");
}

TEST_CASE("cli: shapes past lavapipe's limits are refused, not run wrongly (issue 18, finding 2)", "[e2e]") {
  expect_refused("probe --local --kernel gemm --mode exact --dtype f32 --size 1x1x1048561 --seed 5",
                 "above the 65535 that vulkan0 runs");
  expect_refused("probe --local --kernel attention --dtype f32 --size 512x1x4096", "loop iterations");
  expect_refused("probe --local --kernel attention --dtype f32 --size 2x1x65534", "loop iterations");
  expect_refused("probe --local --kernel gemm --mode exact --dtype f32 --size 1x1048576x1",
                 "maxComputeWorkGroupCount[0]");
  expect_refused("probe --local --kernel gemm --mode exact --dtype f32 --size 1048576x1x1",
                 "maxComputeWorkGroupCount[1]");
  expect_refused("probe --local --kernel attention --dtype f32 --size 1x65536x1", "maxComputeWorkGroupCount[1]");
  // The last K below the limit still runs and is right.
  auto edge = run_substrated("probe --local --kernel gemm --mode exact --dtype f32 --size 1x1x1048560 --seed 5");
  INFO(edge.output);
  CHECK(edge.exit_code == 0);
}

TEST_CASE("cli: random mode refuses shapes whose bound hides sign flips (issue 18, findings 1 and 3)", "[e2e]") {
  expect_refused(
      "probe --local --kernel gemm --mode random --dtype f32 --size 4x4x131072 --seed 1 "
      "--inject bit=31,element=0",
      "--mode exact");
  // lavapipe cannot run it at all (loop limit); a device that can is refused by the guarantee.
  auto wide = run_substrated("probe --local --kernel attention --dtype f32 --size 2x1x63488 --seed 1");
  INFO(wide.output);
  CHECK(wide.exit_code == 2);
}

TEST_CASE("cli: every result states its guaranteed bit (issue 18)", "[e2e]") {
  auto exact = run_substrated("probe --local --kernel gemm --mode exact --dtype f32 --size 16 --json");
  REQUIRE(exact.exit_code == 0);
  const auto exact_check = nlohmann::json::parse(exact.output).at("results").at(0).at("check");
  CHECK(exact_check.at("guaranteed_bit") == 0);
  CHECK(exact_check.at("guaranteed_elements") == 256);
  auto random = run_substrated("probe --local --kernel gemm --mode random --dtype f32 --size 64 --json");
  REQUIRE(random.exit_code == 0);
  const auto random_check = nlohmann::json::parse(random.output).at("results").at(0).at("check");
  CHECK(random_check.at("guaranteed_bit").get<int>() <= 23);
  CHECK(random_check.at("guaranteed_elements").get<std::uint64_t>() >= 4055);  // 99% of 4096
  // The table states it too: the guaranteed bit and the share of elements where it holds.
  auto table = run_substrated("probe --local --kernel gemm --mode exact --dtype f32 --size 16");
  INFO(table.output);
  REQUIRE(table.exit_code == 0);
  CHECK_THAT(table.output, Catch::Contains("GUARANTEED"));
  CHECK_THAT(table.output, Catch::Contains("bit 0, 100%"));
}
