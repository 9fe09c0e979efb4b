#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/file_io.hpp"
#include "tests/support/html_tree.hpp"
#include "tests/support/run_command.hpp"

using substrate::testing::HtmlElement;
using substrate::testing::parse_html;
using substrate::testing::run_substrated;

namespace {

struct ScratchDir {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("substrated-report-" + std::to_string(::getpid()));
  ScratchDir() { std::filesystem::create_directories(path); }
  ~ScratchDir() { std::filesystem::remove_all(path); }
  std::string file(const std::string& name, const std::string& contents) const {
    std::ofstream(path / name) << contents;
    return (path / name).string();
  }
};

}  // namespace

TEST_CASE("report: a real drill on lavapipe is drawn where it hit, with its bits and replay command", "[e2e]") {
  // Column 8 of rows 3..63 of a 64 x 64 output: a stuck lane, as the checker sees it on a real device.
  auto drill = run_substrated(
      "probe --local --device vulkan0 --kernel gemm --mode exact --dtype f32 --size 64 --seed 11 --inject "
      "bit=30,element=200,stride=64,count=all "
      "--json");
  INFO(drill.output);
  REQUIRE(drill.exit_code == 1);
  // A bad memory word at byte offset 4000 of 1 MiB: every pattern sees it.
  auto memory = run_substrated(
      "probe --local --device vulkan0 --kernel memory --size 1048576 --inject bit=5,element=1000 --json");
  INFO(memory.output);
  REQUIRE(memory.exit_code == 1);
  auto clean = run_substrated("probe --local --device vulkan0 --kernel attention --dtype f32 --json");
  INFO(clean.output);
  REQUIRE(clean.exit_code == 0);
  nlohmann::json document = nlohmann::json::parse(drill.output);
  for (const auto& run : {memory, clean}) {
    const nlohmann::json more = nlohmann::json::parse(run.output);
    for (const auto& r : more.at("results")) document["results"].push_back(r);
  }
  const nlohmann::json& check = document.at("results").at(0).at("check");
  REQUIRE(check.at("mismatched_elements") == 61);
  REQUIRE(check.contains("mismatch_map"));

  ScratchDir dir;
  const std::string input = dir.file("probe.json", document.dump());
  const std::string output = (dir.path / "report.html").string();
  auto report = run_substrated("report " + input + " -o " + output);
  INFO(report.output);
  REQUIRE(report.exit_code == 0);
  auto html = substrate::read_file(output);
  REQUIRE(html);
  const HtmlElement doc = parse_html(*html);
  const auto maps = doc.find_all("svg", "heatmap");
  REQUIRE(maps.size() == 1);
  std::uint64_t total = 0;
  for (const HtmlElement* cell : maps[0]->find_all("rect", "cell")) {
    const std::uint64_t count = std::stoull(cell->attribute("data-count"));
    total += count;
    // Tiles are 2 x 2 elements: column 8 is tile column 4; rows 3..63 are tile rows 1..31.
    if (cell->attribute("data-col") == "4" && cell->attribute("data-row") != "0") {
      CHECK(count == (cell->attribute("data-row") == "1" ? 1u : 2u));
    } else {
      CHECK(count == 0);
    }
  }
  CHECK(total == 61);
  const auto histograms = doc.find_all("svg", "bits");
  REQUIRE(histograms.size() == 2);
  for (const HtmlElement* bar : histograms[0]->find_all("rect", "bar")) {
    CHECK(bar->attribute("data-count") == (bar->attribute("data-bit") == "30" ? "61" : "0"));
  }
  for (const HtmlElement* bar : histograms[1]->find_all("rect", "bar")) {
    CHECK((bar->attribute("data-count") != "0") == (bar->attribute("data-bit") == "5"));
  }
  const auto replay = doc.find_all("pre", "replay");
  REQUIRE(replay.size() == 2);
  CHECK(replay[0]->text().find("substrated probe --device vulkan0 --kernel gemm") == 0);
  CHECK(replay[1]->text().find("--kernel memory --size 1048576 --seed 1 --inject bit=5,element=1000") !=
        std::string::npos);
  const auto strips = doc.find_all("svg", "offsets");
  REQUIRE(strips.size() == 1);
  const auto ticks = strips[0]->find_all("line", "bad-word");
  REQUIRE_FALSE(ticks.empty());
  for (const HtmlElement* tick : ticks) CHECK(tick->attribute("data-offset") == "4000");
  CHECK(replay[0]->text().find("--seed 11") != std::string::npos);
  CHECK(replay[0]->text().find("--inject bit=30,element=200,count=all,stride=64") != std::string::npos);
  std::vector<std::string> charts;
  for (const HtmlElement* svg : doc.find_all("svg", "chart")) charts.push_back(svg->attribute("data-chart"));
  CHECK(charts == std::vector<std::string>{"throughput:gemm", "throughput:memory", "throughput:attention"});
  CHECK(doc.text().find("Temperature: not reported by this device") != std::string::npos);
}

TEST_CASE("report: unreadable, non-JSON or misshapen input and a missing or unwritable output exit 2", "[e2e]") {
  ScratchDir dir;
  const std::string out = (dir.path / "r.html").string();
  const auto expect = [](const std::string& args, const std::string& message) {
    auto run = run_substrated("report " + args);
    INFO(args << "\n" << run.output);
    CHECK(run.exit_code == 2);
    CHECK(run.output.find(message) != std::string::npos);
    CHECK(std::count(run.output.begin(), run.output.end(), '\n') == 1);
  };
  expect((dir.path / "absent.json").string() + " -o " + out, "report: cannot open");
  expect(dir.path.string() + " -o " + out, "not a regular file");
  expect(dir.file("text.json", "{\"diag\": ") + " -o " + out, "text.json: not JSON: ");
  expect(dir.file("other.json", "{\"devices\": []}") + " -o " + out,
         "other.json: expected {\"diag\": {...}} or {\"results\": [...]}");
  expect(dir.file("verdict.json", R"({"diag": {"level": 1, "devices": [{"device": {"id": "a", "name": "b"},
         "verdict": "ok", "iterations": 1, "failed_iterations": 0, "results": [], "timeline": []}]}})") +
             " -o " + out,
         "diag.devices[0].verdict: expected pass, fail, error or skipped, got 'ok'");
  expect(dir.file("results.json", R"({"results": [{"status": "pass"}]})") + " -o " + out, "results[0]: ");
  const std::string valid = dir.file("empty.json", R"({"results": []})");
  expect(valid, "-o FILE is required");
  expect(valid + " -o " + (dir.path / "no" / "such" / "dir.html").string(), "empty.json: ");
  expect("-o " + out, "expected one INPUT file");
  CHECK_FALSE(std::filesystem::exists(out));
  auto written = run_substrated("report " + valid + " -o " + out);
  CHECK(written.exit_code == 0);
  CHECK(std::filesystem::exists(out));
}
