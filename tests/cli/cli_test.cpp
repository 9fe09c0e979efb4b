#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "tests/cli/run_command.hpp"

using substrate::testing::run_substrated;

TEST_CASE("cli: a clean probe exits 0 and prints the seed and a fingerprint", "[cli]") {
  auto run = run_substrated("probe --kernel gemm --size 32x48x64 --seed 5");
  INFO(run.output);
  CHECK(run.exit_code == 0);
  CHECK(run.output.find("gemm/f32/exact/32x48x64") != std::string::npos);
  CHECK(run.output.find(" 5 ") != std::string::npos);
}

TEST_CASE("cli: an injected fault exits 1 and names element and bit as a drill", "[cli]") {
  auto run = run_substrated("probe --kernel gemm --mode exact --dtype f32 --size 16 --inject bit=30,row=3,col=5");
  INFO(run.output);
  CHECK(run.exit_code == 1);
  CHECK(run.output.find("row 3, col 5") != std::string::npos);
  CHECK(run.output.find("bits 30") != std::string::npos);
  CHECK(run.output.find("DRILL") != std::string::npos);
}

TEST_CASE("cli: --json carries spec, seed, drill flag and mismatch evidence", "[cli]") {
  auto run = run_substrated("probe --kernel gemm --mode exact --dtype f16 --size 8 --seed 3 --inject bit=2,element=9 --json");
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

TEST_CASE("cli: no matching device or bad arguments exit 2 with the cause", "[cli]") {
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

TEST_CASE("cli: --help works on every command and --list shows the probes", "[cli]") {
  for (const char* command : {"--help", "probe --help", "devices --help"}) {
    auto run = run_substrated(command);
    CHECK(run.exit_code == 0);
    CHECK(run.output.find("usage:") != std::string::npos);
  }
  auto list = run_substrated("probe --list");
  CHECK(list.exit_code == 0);
  for (const char* id : {"gemm", "attention", "memory"}) CHECK(list.output.find(id) != std::string::npos);
}

TEST_CASE("cli: devices lists lavapipe with its identity", "[cli]") {
  auto run = run_substrated("devices --json");
  REQUIRE(run.exit_code == 0);
  const auto doc = nlohmann::json::parse(run.output);
  REQUIRE_FALSE(doc.at("devices").empty());
  CHECK(doc.at("devices").at(0).at("uuid").get<std::string>().size() == 36);
}

TEST_CASE("cli: devices joins telemetry from a sysfs root and says NVML is absent", "[cli]") {
  auto run = run_substrated(std::string("devices --json --path.sysfs ") + SUBSTRATE_SOURCE_DIR +
                            "/tests/fixtures/sysfs");
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
