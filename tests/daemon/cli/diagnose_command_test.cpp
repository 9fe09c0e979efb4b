#include <catch2/catch.hpp>

#include <unistd.h>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/support/run_command.hpp"

using substrate::testing::run_substrated;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("substrate-cli-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::vector<fs::path> results_under(const fs::path& root) {
  std::vector<fs::path> found;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.path().filename() == "result.json") found.push_back(entry.path());
  }
  return found;
}

}  // namespace

TEST_CASE("dump: probe --dump writes npy files and the result per run", "[e2e]") {
  const fs::path root = fresh_dir("dump");
  auto run = run_substrated("probe --local --kernel gemm --mode random --dtype f16 --size 16x24x8 --seed 9 --dump " +
                            root.string());
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.output, Catch::Contains("inputs regenerated on the CPU"));
  const auto results = results_under(root);
  REQUIRE(results.size() == 1);
  const fs::path dir = results[0].parent_path();
  CHECK(dir.filename() == "gemm_f16_random_16x24x8-seed9");
  for (const char* file : {"output.npy", "golden.npy", "bound.npy", "a.npy", "b.npy", "manifest.json"}) {
    INFO(file);
    CHECK(fs::exists(dir / file));
  }
  fs::remove_all(root);
}

TEST_CASE("replay: a stored result re-runs exactly and reproduces its fingerprint", "[e2e]") {
  const fs::path root = fresh_dir("replay");
  auto first = run_substrated("probe --local --kernel gemm --mode exact --dtype f32 --size 20x12x33 --seed 77 --dump " +
                              root.string());
  REQUIRE(first.exit_code == 0);
  const auto results = results_under(root);
  REQUIRE(results.size() == 1);
  std::ifstream in(results[0]);
  const auto stored = nlohmann::json::parse(in);

  auto replay = run_substrated("probe --replay " + results[0].string() + " --json");
  INFO(replay.output);
  REQUIRE(replay.exit_code == 0);
  const auto doc = nlohmann::json::parse(replay.output);
  const auto& result = doc.at("results").at(0);
  CHECK(result.at("spec").at("key") == "gemm/f32/exact/20x12x33");
  CHECK(result.at("spec").at("seed") == 77);
  CHECK(result.at("fingerprint") == stored.at("fingerprint"));
  CHECK(doc.at("replay").at(0).at("fingerprint_match") == true);
  CHECK(doc.at("replay").at(0).at("same_device") == true);

  // On a chosen device (A/B): the same device id here, named explicitly.
  const std::string device = stored.at("device").at("id");
  auto chosen = run_substrated("probe --replay " + results[0].string() + " --device " + device);
  INFO(chosen.output);
  CHECK(chosen.exit_code == 0);
  CHECK_THAT(chosen.output, Catch::Contains("IDENTICAL"));

  // A `probe --json` document replays too.
  auto json_run = run_substrated("probe --local --kernel attention --dtype f32 --size 8x1x4 --seed 5 --json");
  REQUIRE(json_run.exit_code == 0);
  std::ofstream(root / "all.json") << json_run.output;
  auto replay_all = run_substrated("probe --replay " + (root / "all.json").string());
  INFO(replay_all.output);
  CHECK(replay_all.exit_code == 0);
  CHECK_THAT(replay_all.output, Catch::Contains("attention/f32/8x1x4/causal"));
  CHECK_THAT(replay_all.output, Catch::Contains("IDENTICAL"));
  fs::remove_all(root);
}

TEST_CASE("replay: injection replays with the result, --no-inject drops it", "[e2e]") {
  const fs::path root = fresh_dir("replay-drill");
  auto drill = run_substrated(
      "probe --local --kernel gemm --mode exact --size 16 --dtype f32 --seed 2 "
      "--inject bit=27,row=1,col=2 --dump " +
      root.string());
  INFO(drill.output);
  REQUIRE(drill.exit_code == 1);
  const auto results = results_under(root);
  REQUIRE(results.size() == 1);
  CHECK(results[0].parent_path().filename() == "gemm_f32_exact_16x16x16-seed2-drill");

  auto again = run_substrated("probe --replay " + results[0].string() + " --json");
  INFO(again.output);
  REQUIRE(again.exit_code == 1);
  const auto doc = nlohmann::json::parse(again.output);
  CHECK(doc.at("results").at(0).at("drill") == true);
  CHECK(doc.at("results").at(0).at("check").at("first_mismatches").at(0).at("index") == 18);
  CHECK(doc.at("replay").at(0).at("fingerprint_match") == true);

  auto clean = run_substrated("probe --replay " + results[0].string() + " --no-inject --json");
  INFO(clean.output);
  REQUIRE(clean.exit_code == 0);
  const auto clean_doc = nlohmann::json::parse(clean.output);
  CHECK(clean_doc.at("results").at(0).at("drill") == false);
  CHECK(clean_doc.at("replay").at(0).at("fingerprint_match") == false);
  CHECK(clean_doc.at("replay").at(0).at("injection_removed") == true);
  fs::remove_all(root);
}

TEST_CASE("replay: bad replay arguments exit 2 with the cause", "[e2e]") {
  const fs::path root = fresh_dir("replay-bad");
  std::ofstream(root / "broken.json") << "{\"spec\": {\"probe\": \"gemm\"";
  auto broken = run_substrated("probe --replay " + (root / "broken.json").string());
  CHECK(broken.exit_code == 2);
  CHECK_THAT(broken.output, Catch::Contains("not a probe result"));
  auto missing = run_substrated("probe --replay " + (root / "missing.json").string());
  CHECK(missing.exit_code == 2);
  CHECK_THAT(missing.output, Catch::Contains("cannot read"));
  std::ofstream(root / "ok.json")
      << R"({"spec": {"probe": "gemm", "dtype": "f32", "mode": "exact", "seed": 3, "gemm": {"m": 4, "n": 4, "k": 4}}})";
  auto mixed = run_substrated("probe --replay " + (root / "ok.json").string() + " --seed 4");
  CHECK(mixed.exit_code == 2);
  CHECK_THAT(mixed.output, Catch::Contains("drop --seed"));
  auto nodevice = run_substrated("probe --replay " + (root / "ok.json").string() + " --device no-such-gpu");
  CHECK(nodevice.exit_code == 2);
  auto noinject = run_substrated("probe --no-inject");
  CHECK(noinject.exit_code == 2);
  CHECK_THAT(noinject.output, Catch::Contains("--no-inject only applies to --replay"));
  auto novalue = run_substrated("probe --dump");
  CHECK(novalue.exit_code == 2);
  // A bare spec without a stored device runs when a device is chosen.
  auto bare = run_substrated("probe --replay " + (root / "ok.json").string() + " --device all");
  INFO(bare.output);
  CHECK(bare.exit_code == 0);
  fs::remove_all(root);
}
