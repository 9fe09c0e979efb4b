#include "daemon/diag_report.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <functional>
#include <numeric>
#include <sstream>

#include <boost/property_tree/ptree.hpp>
#include <boost/property_tree/xml_parser.hpp>
#include <nlohmann/json.hpp>

#include "common/file_io.hpp"
#include "probes/core/probe_result.hpp"
#include "probes/core/registry.hpp"
#include "tests/support/html_tree.hpp"
#include "tests/support/run_command.hpp"

using namespace substrate;
using nlohmann::json;
using substrate::testing::HtmlElement;
using substrate::testing::parse_html;

namespace {

// A failing GEMM result, serialised the way probe --json writes it.
json failing_gemm(const std::string& device_name) {
  ProbeResult r;
  r.device.id = "vulkan0";
  r.device.backend = "vulkan";
  r.device.name = device_name;
  r.device.uuid = "GPU-1234";
  r.spec.probe = "gemm";
  r.spec.gemm = {64, 64, 64};
  r.spec.seed = 7;
  r.kernel = "vulkan.gemm.tiled16";
  r.status = RunStatus::fail;
  r.check.pass = false;
  r.check.checked = 64 * 64;
  r.check.mismatch_map = make_mismatch_map(64, 64);  // tiles of 2 x 2
  for (std::uint64_t col = 0; col < 64; ++col) count_mismatch(r.check.mismatch_map, 3, col);
  count_mismatch(r.check.mismatch_map, 63, 63);
  r.check.mismatched = 65;
  r.check.flipped_bits[30] = 65;
  r.check.first_mismatches.push_back({192, 3, 0, 2.0, 8.5e37, 0x40000000u, 0x7f800000u, 0x3f800000u, 0x3f800000u, 0});
  r.device_seconds = 0.001;
  r.finished_at = 1.8e9;
  return r;
}

json point(double t, const std::string& probe, std::uint64_t iteration, const std::string& status, json temperature,
           json clock, json power, json throttle = json::array()) {
  return {{"t_seconds", t},
          {"probe", probe},
          {"iteration", iteration},
          {"status", status},
          {"throughput", 1e9 + 1e7 * iteration},
          {"temperature_celsius", temperature},
          {"sm_clock_hertz", clock},
          {"power_watts", power},
          {"throttle_reasons", throttle}};
}

// Two devices: one with telemetry and a failure, one without telemetry (lavapipe reports none).
json sample_diag(const std::string& hostile_name) {
  json with_telemetry = {
      {"device", json(failing_gemm(hostile_name)).at("device")},
      {"verdict", "fail"},
      {"iterations", 3},
      {"failed_iterations", 1},
      {"peer_throughput_share", 0.93},
      {"results", json::array({failing_gemm(hostile_name)})},
      {"timeline", json::array({point(0.5, "gemm", 0, "pass", 61.0, 1.98e9, 350.0),
                                point(1.5, "gemm", 1, "fail", 63.0, 1.71e9, 360.0, json::array({"sw_thermal"})),
                                point(2.5, "gemm", 2, "pass", 64.0, 1.90e9, 355.0)})}};
  json device_info = with_telemetry.at("device");
  device_info["id"] = "vulkan1";
  device_info["name"] = "llvmpipe";
  json without_telemetry = {{"device", device_info},
                            {"verdict", "pass"},
                            {"iterations", 2},
                            {"failed_iterations", 0},
                            {"peer_throughput_share", nullptr},
                            {"results", json::array()},
                            {"timeline", json::array({point(0.5, "gemm", 0, "pass", nullptr, nullptr, nullptr),
                                                      point(1.0, "memory", 0, "pass", nullptr, nullptr, nullptr)})}};
  return {{"diag",
           {{"level", 2},
            {"duration_seconds", 3.0},
            {"started_at", 1.8e9},
            {"finished_at", 1.8e9 + 3},
            {"interrupted", false},
            {"exit_code", 1},
            {"devices", json::array({with_telemetry, without_telemetry})}}}};
}

}  // namespace

TEST_CASE("diag report: well-formed, one svg per chart, missing telemetry said in words", "[unit]") {
  const auto html = render_diag_report(sample_diag("NVIDIA H200"));
  REQUIRE(html);
  const HtmlElement doc = parse_html(*html);  // throws (fails the test) when not well-formed
  CHECK(doc.find_all("script").empty());
  CHECK(doc.find_all("link").empty());
  CHECK(html->find("http://") == html->find("http://www.w3.org/2000/svg"));  // no resource outside the file
  const auto sections = doc.find_all("section", "device");
  REQUIRE(sections.size() == 2);
  std::vector<std::string> charts;
  for (const HtmlElement* svg : sections[0]->find_all("svg", "chart")) charts.push_back(svg->attribute("data-chart"));
  CHECK(charts == std::vector<std::string>{"throughput:gemm", "temperature", "clock", "power"});
  charts.clear();
  for (const HtmlElement* svg : sections[1]->find_all("svg", "chart")) charts.push_back(svg->attribute("data-chart"));
  CHECK(charts == std::vector<std::string>{"throughput:gemm", "throughput:memory"});
  const std::string second = sections[1]->text();
  CHECK(second.find("Temperature: not reported by this device") != std::string::npos);
  CHECK(second.find("SM clock: not reported by this device") != std::string::npos);
  CHECK(second.find("Power: not reported by this device") != std::string::npos);
  // The failing iteration and the throttled sample are marked.
  CHECK(sections[0]->find_all("circle", "marker").size() == 2);
  CHECK(sections[0]->text().find("sw_thermal (1)") != std::string::npos);
  // Summary: a row per device with verdict, iterations, failures, peer share.
  const auto summary = doc.find_all("table", "summary");
  REQUIRE(summary.size() == 1);
  const std::string table = summary[0]->text();
  CHECK(table.find("93.0%") != std::string::npos);
  CHECK(table.find("fail") != std::string::npos);
}

TEST_CASE("diag report: heatmap cells and bit bars carry the input's counts, the replay command is there", "[unit]") {
  const json document = sample_diag("NVIDIA H200");
  const auto html = render_diag_report(document);
  REQUIRE(html);
  const HtmlElement doc = parse_html(*html);
  const ProbeResult result = document.at("diag").at("devices").at(0).at("results").at(0).get<ProbeResult>();
  const auto maps = doc.find_all("svg", "heatmap");
  REQUIRE(maps.size() == 1);
  const auto cells = maps[0]->find_all("rect", "cell");
  REQUIRE(cells.size() == result.check.mismatch_map.counts.size());
  for (const HtmlElement* cell : cells) {
    const std::uint64_t row = std::stoull(cell->attribute("data-row")), col = std::stoull(cell->attribute("data-col"));
    CHECK(std::stoull(cell->attribute("data-count")) == result.check.mismatch_map.counts.at(row * 32 + col));
  }
  const auto bars = doc.find_all("svg", "bits").at(0)->find_all("rect", "bar");
  REQUIRE(bars.size() == 32);
  for (const HtmlElement* bar : bars) {
    CHECK(std::stoull(bar->attribute("data-count")) ==
          result.check.flipped_bits.at(std::stoi(bar->attribute("data-bit"))));
  }
  const auto replay = doc.find_all("pre", "replay");
  REQUIRE(replay.size() == 1);
  CHECK(replay[0]->text() == replay_command(result));
}

TEST_CASE("diag report: a hostile device name is text, never markup", "[unit]") {
  const std::string hostile = "<script>alert(\"x\")</script><img src=x onerror='y'> & </svg>";
  const auto html = render_diag_report(sample_diag(hostile));
  REQUIRE(html);
  const HtmlElement doc = parse_html(*html);
  CHECK(doc.find_all("script").empty());
  CHECK(doc.find_all("img").empty());
  CHECK(html->find("<script") == std::string::npos);
  CHECK(doc.text().find(hostile) != std::string::npos);  // shown as it is, after unescaping
}

TEST_CASE("diag report: a field of the wrong shape is named with its path", "[unit]") {
  json document = sample_diag("x");
  document["diag"]["devices"][0]["verdict"] = "maybe";
  auto bad_verdict = render_diag_report(document);
  REQUIRE_FALSE(bad_verdict);
  CHECK(bad_verdict.error().message == "diag.devices[0].verdict: expected pass, fail, error or skipped, got 'maybe'");
  document = sample_diag("x");
  document["diag"]["devices"][1]["timeline"][1]["t_seconds"] = "soon";
  auto bad_time = render_diag_report(document);
  REQUIRE_FALSE(bad_time);
  CHECK(bad_time.error().message == "diag.devices[1].timeline[1].t_seconds: expected a number, got \"soon\"");
  document = sample_diag("x");
  document["diag"]["devices"][0]["results"][0].erase("spec");
  auto bad_result = render_diag_report(document);
  REQUIRE_FALSE(bad_result);
  CHECK(bad_result.error().message.find("diag.devices[0].results[0]: not a probe result: key 'spec' not found") == 0);
  document = sample_diag("x");
  document["diag"]["devices"][0]["results"][0]["check"]["mismatch_map"]["counts"] = json::array({1, 2});
  auto bad_map = render_diag_report(document);
  REQUIRE_FALSE(bad_map);
  CHECK(bad_map.error().message.find("mismatch_map") != std::string::npos);
  document = sample_diag("x");
  document["diag"]["devices"][0]["results"][0]["check"]["mismatch_map"] = {
      {"rows", 0}, {"cols", 0}, {"tile_rows", 1}, {"tile_cols", 1}, {"counts", json::array()}};
  CHECK_FALSE(render_diag_report(document));
  CHECK_FALSE(render_diag_report(json{{"diag", {{"level", 9}, {"devices", json::array()}}}}));
  // Times no run had are shown as numbers, not converted (a cast out of time_t's range).
  const auto far =
      render_diag_report(json{{"diag", {{"level", 1}, {"started_at", 1e300}, {"devices", json::array()}}}});
  REQUIRE(far);
  CHECK(far->find("Started 1e+300") != std::string::npos);
  CHECK_FALSE(render_diag_report(json::array()));
}

TEST_CASE("diag report: probe --json results wrap into one entry per device with a timeline", "[unit]") {
  json later = failing_gemm("dev");
  later["finished_at"] = 1.8e9 + 2;
  later["status"] = "pass";
  const json results = {{"results", json::array({failing_gemm("dev"), later})}};
  const auto wrapped = diag_from_probe_results(results);
  REQUIRE(wrapped);
  const json& device = wrapped->at("diag").at("devices").at(0);
  CHECK(wrapped->at("diag").at("devices").size() == 1);
  CHECK(device.at("verdict") == "fail");
  CHECK(device.at("iterations") == 2);
  CHECK(device.at("failed_iterations") == 1);
  CHECK(device.at("timeline").at(1).at("t_seconds") == 2.0);
  CHECK(device.at("timeline").at(1).at("iteration") == 1);
  CHECK(device.at("timeline").at(0).at("throughput").get<double>() == Approx(2.0 * 64 * 64 * 64 / 0.001));
  CHECK(render_diag_report(*wrapped));
  CHECK_FALSE(diag_from_probe_results(json{{"results", json::array({json{{"status", "pass"}}})}}));
  CHECK_FALSE(diag_from_probe_results(json{{"something", 1}}));
}

TEST_CASE("diag report: many failures keep every replay command; runs that could not run and a stop are said",
          "[unit]") {
  json document = sample_diag("dev");
  json& device = document["diag"]["devices"][0];
  device["results"] = json::array();
  for (int i = 0; i < 14; ++i) {
    json r = failing_gemm("dev");
    r["spec"]["seed"] = 100 + i;
    device["results"].push_back(r);
  }
  json broken = failing_gemm("dev");
  broken["status"] = "error";
  broken["error"] = "vkQueueSubmit: VK_ERROR_DEVICE_LOST";
  device["results"].push_back(broken);
  document["diag"]["interrupted"] = true;
  const auto html = render_diag_report(document);
  REQUIRE(html);
  const HtmlElement doc = parse_html(*html);
  CHECK(doc.find_all("svg", "heatmap").size() == 12);
  const auto replay = doc.find_all("pre", "replay");
  REQUIRE(replay.size() == 13);  // 12 drawn, then one block with the other two
  const std::string rest = replay[12]->text();
  CHECK(rest.find("--seed 112\n") != std::string::npos);
  CHECK(rest.find("--seed 113\n") != std::string::npos);
  CHECK(doc.text().find("Failures (14)") != std::string::npos);
  CHECK(doc.text().find("error: vkQueueSubmit: VK_ERROR_DEVICE_LOST") != std::string::npos);
  CHECK(doc.find_all("p", "banner").size() == 1);
}
