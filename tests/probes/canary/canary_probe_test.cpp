#include <catch2/catch.hpp>

#include <unistd.h>
#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "daemon/probe_command.hpp"
#include "kernels/golden/canary_golden.hpp"
#include "probes/core/probe_result.hpp"
#include "probes/core/registry.hpp"
#include "probes/diagnosis/compare.hpp"
#include "probes/diagnosis/dump.hpp"
#include "tests/support/run_command.hpp"
#include "tests/support/test_device.hpp"

using namespace substrate;
using substrate::testing::vulkan_device;
namespace fs = std::filesystem;

namespace {

ProbeSpec canary_spec(std::uint64_t seed = 1) {
  ProbeSpec spec;
  spec.probe = "canary";
  spec.dtype = Dtype::f32;
  spec.mode = Mode::random;
  spec.canary = {16, 64, 4, 128, 2, 128};
  spec.seed = seed;
  return spec;
}

GoldenCache& goldens() {
  static GoldenCache cache;
  return cache;
}

}  // namespace

TEST_CASE("canary: the golden names every checkpoint and is deterministic", "[unit]") {
  const CanaryShape shape{8, 32, 2, 64, 3, 50};
  const auto names = canary::layers(shape);
  REQUIRE(names.size() == 1 + 2 * 3 + 1);
  CHECK(names.front().name == "embedding");
  CHECK(names[1].name == "block0.attention");
  CHECK(names[2].name == "block0.mlp");
  CHECK(names.back().name == "logits");
  CHECK(names.back().cols == 50);
  const auto a = golden::canary(shape, 3), b = golden::canary(shape, 3);
  REQUIRE(a.layers.size() == names.size());
  for (std::size_t i = 0; i < a.layers.size(); ++i) {
    CHECK(a.layers[i].value == b.layers[i].value);
    CHECK(a.layers[i].value.size() == std::size_t{names[i].rows} * names[i].cols);
    for (double bound : a.layers[i].bound) REQUIRE(bound > 0.0);
  }
  CHECK(golden::canary(shape, 4).layers.back().value != a.layers.back().value);
  CHECK(canary::weight_scale(64) == 0.0625f);
  CHECK_FALSE(canary::validate({8, 30, 4, 64, 1, 10}).empty());  // d_model not a multiple of heads
  auto inject = parse_injection("bit=3,element=7,layer=2", 0);
  REQUIRE(inject.ok());
  CHECK(inject->layer == 2);
  // The canary is beta and not run by default.
  const ProbeDescriptor* d = probe_registry().find("canary");
  REQUIRE(d);
  CHECK(d->maturity == Maturity::beta);
  CHECK_FALSE(d->enabled_by_default);
}

TEST_CASE("canary: passes clean on the device with every layer well within its bound", "[vulkan]") {
  const ProbeResult result = run_probe(vulkan_device(), canary_spec(), goldens());
  INFO(result.error);
  REQUIRE(result.status == RunStatus::pass);
  REQUIRE(result.canary);
  const CanaryDetails& c = *result.canary;
  REQUIRE(c.layers.size() == 6);
  for (const CanaryLayerReport& l : c.layers) {
    INFO(l.name << " budget " << l.budget_used << " cosine " << l.cosine);
    CHECK(l.mismatched == 0);
    CHECK(l.budget_used < 0.1);
    CHECK(l.cosine > 0.999999);
  }
  CHECK(c.first_diverging_layer.empty());
  CHECK(c.argmax_agreeing_tokens == c.tokens);
  // Deterministic on the device: the same fingerprint run to run.
  const ProbeResult again = run_probe(vulkan_device(), canary_spec(), goldens());
  CHECK(again.fingerprint == result.fingerprint);
  const nlohmann::json doc = result;
  CHECK(doc.at("canary").at("layers").size() == 6);
  CHECK(doc.at("canary").at("first_diverging_layer").is_null());
}

TEST_CASE("canary: a fault injected into any layer is detected and attributed to that layer", "[vulkan]") {
  ProbeSpec small = canary_spec(2);
  small.canary = {8, 32, 2, 64, 2, 64};  // every layer kind, a fraction of the cost
  const auto layers = canary::layers(small.canary);
  for (std::uint32_t layer = 0; layer < layers.size(); ++layer) {
    for (std::uint32_t bit : {30u, 27u, 22u}) {
      ProbeSpec spec = small;
      spec.inject = {true, 37, 1u << bit, false, layer};
      const ProbeResult result = run_probe(vulkan_device(), spec, goldens());
      INFO(layers[layer].name << " bit " << bit << " " << result.error);
      REQUIRE(result.status == RunStatus::fail);
      REQUIRE(result.canary);
      CHECK(result.canary->first_diverging_layer == layers[layer].name);
      for (std::uint32_t before = 0; before < layer; ++before) CHECK(result.canary->layers[before].mismatched == 0);
      REQUIRE_FALSE(result.check.first_mismatches.empty());
      CHECK(result.check.first_mismatches[0].index == 37);
      CHECK((result.check.first_mismatches[0].xor_bits & (1u << bit)) != 0);  // plus rounding differences
      // The mismatch map is the first diverging layer's, element 37 in it.
      const MismatchMap& map = result.check.mismatch_map;
      CHECK(map.rows == layers[layer].rows);
      CHECK(map.cols == layers[layer].cols);
      REQUIRE(map.grid_cols() > 0);
      CHECK(map.counts.at((37 / map.cols / map.tile_rows) * map.grid_cols() + (37 % map.cols) / map.tile_cols) > 0);
    }
  }
}

TEST_CASE("canary: its replay command reproduces the run, size and drill layer included", "[vulkan]") {
  ComputeDevice& device = vulkan_device();
  ProbeSpec drill = canary_spec(4);
  drill.canary = {8, 32, 2, 64, 2, 64};  // not the default size: the command must carry it
  drill.inject = *parse_drill(*probe_registry().find("canary"), "bit=27,row=2,col=5,layer=3", drill);
  for (const ProbeSpec& spec : {drill, canary_spec(4)}) {
    const ProbeResult first = run_probe(device, spec, goldens());
    REQUIRE(first.status == (spec.inject.enabled ? RunStatus::fail : RunStatus::pass));
    const std::string command = replay_command(first);
    INFO(command);
    std::vector<std::string> args;
    std::istringstream words(command.substr(std::string("substrated probe ").size()));
    for (std::string word; words >> word;) args.push_back(word);
    auto request = parse_probe_request(args);
    REQUIRE(request.ok());
    auto specs = specs_for(*request, device.info());
    REQUIRE(specs.ok());
    REQUIRE(specs->size() == 1);
    const ProbeResult replayed = run_probe(device, specs->front(), goldens());
    CHECK(replayed.status == first.status);
    CHECK(spec_key(replayed.spec) == spec_key(first.spec));
    CHECK(replayed.fingerprint == first.fingerprint);
    REQUIRE(replayed.canary);
    CHECK(replayed.canary->first_diverging_layer == first.canary->first_diverging_layer);
    CHECK(replayed.check.first_mismatches.size() == first.check.first_mismatches.size());
  }
}

TEST_CASE("canary: a layered dump compares layer by layer and names the first diverging layer", "[vulkan]") {
  ProbeSpec spec = canary_spec(5);
  spec.inject = {true, 100, 1u << 29, false, 3};
  const ProbeResult result = run_probe(vulkan_device(), spec, goldens(), true);
  REQUIRE(result.status == RunStatus::fail);
  const fs::path root = fs::temp_directory_path() / ("substrate-canary-" + std::to_string(::getpid()));
  fs::remove_all(root);
  auto dir = write_dump(root.string(), result);
  REQUIRE(dir.ok());
  CHECK(fs::exists(fs::path(*dir) / "layer03_block1.attention.output.npy"));
  CHECK(fs::exists(fs::path(*dir) / "tokens.npy"));
  auto report = compare_paths(*dir, "", {});
  REQUIRE(report.ok());
  REQUIRE(report->tensors.size() == 7);  // six layers, then output (= logits) vs golden
  REQUIRE(report->first_diverging);
  CHECK(report->tensors[*report->first_diverging].name == "block1.attention");
  CHECK(report->tensors[3].pattern.kind == MismatchPattern::single_element);
  CHECK(report->tensors[3].first_divergence->index == 100);
  CHECK(report->tensors[0].mismatched == 0);

  // A clean run of the same spec against the drill: the dumps diverge first at that layer too.
  const ProbeResult clean = run_probe(vulkan_device(), canary_spec(5), goldens(), true);
  REQUIRE(clean.status == RunStatus::pass);
  auto clean_dir = write_dump((root / "clean").string(), clean);
  REQUIRE(clean_dir.ok());
  auto ab = compare_paths(*clean_dir, *dir, {});
  REQUIRE(ab.ok());
  REQUIRE(ab->first_diverging);
  CHECK(ab->tensors[*ab->first_diverging].name == "block1.attention");
  fs::remove_all(root);
}

TEST_CASE("canary: the CLI runs it on request and names the diverging layer", "[e2e]") {
  auto clean = substrate::testing::run_substrated("probe --local --kernel canary");
  INFO(clean.output);
  CHECK(clean.exit_code == 0);
  CHECK_THAT(clean.output, Catch::Contains("every layer within its bound"));
  auto drill = substrate::testing::run_substrated("probe --local --kernel canary --inject bit=28,element=3,layer=2");
  INFO(drill.output);
  CHECK(drill.exit_code == 1);
  CHECK_THAT(drill.output, Catch::Contains("first diverging layer: block0.mlp"));
  auto list = substrate::testing::run_substrated("probe --list");
  CHECK_THAT(list.output, Catch::Contains("canary"));
  auto bad = substrate::testing::run_substrated("probe --local --kernel canary --inject bit=3,layer=99");
  CHECK(bad.exit_code == 2);

  // The printed replay command, run as printed, fails the same way.
  const auto at = drill.output.find("replay: substrated probe ");
  REQUIRE(at != std::string::npos);
  const std::string replay = drill.output.substr(at + 19, drill.output.find('\n', at) - at - 19);
  CHECK_THAT(replay, Catch::Contains("--size 16x64x4x128x2x128"));
  CHECK_THAT(replay, Catch::Contains("layer=2"));
  auto replayed = substrate::testing::run_substrated(replay + " --local");
  INFO(replayed.output);
  CHECK(replayed.exit_code == 1);
  CHECK_THAT(replayed.output, Catch::Contains("first diverging layer: block0.mlp"));
}
