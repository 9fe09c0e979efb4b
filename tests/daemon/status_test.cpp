// /status and the systemd status line rendered from a DaemonView alone.
#include <catch2/catch.hpp>

#include "daemon/status.hpp"

using namespace substrate;

namespace {

DeviceStats device(const std::string& id, Health health) {
  DeviceStats s;
  s.info.id = id;
  s.info.name = "llvmpipe";
  s.verdict.health = health;
  return s;
}

DaemonView view_of(std::vector<DeviceStats>& devices, const std::vector<std::string>& notes,
                   const telemetry::Snapshot& telemetry) {
  DaemonView v;
  for (DeviceStats& d : devices) v.devices.push_back({&d, false, 0});
  v.config_source = "/etc/substrated/config.yaml";
  v.backend_notes = &notes;
  v.telemetry = &telemetry;
  return v;
}

}  // namespace

TEST_CASE("status: the line counts effective verdicts in a fixed order", "[unit]") {
  const std::vector<std::string> notes;
  telemetry::Snapshot telemetry;
  std::vector<DeviceStats> none;
  CHECK(status_line(view_of(none, notes, telemetry)) == "no devices");
  std::vector<DeviceStats> devices{device("vulkan0", Health::hung), device("vulkan1", Health::healthy),
                                   device("vulkan2", Health::healthy)};
  CHECK(status_line(view_of(devices, notes, telemetry)) == "2 healthy, 1 hung");
  devices[1].telemetry_conditions.push_back({false, "thermal slowdown", false});
  CHECK(status_line(view_of(devices, notes, telemetry)) == "1 healthy, 1 degraded, 1 hung");
}

TEST_CASE("status: the document carries each device's verdict, worker and last results", "[unit]") {
  const std::vector<std::string> notes{"cuda: libcuda.so.1 not found"};
  telemetry::Snapshot telemetry;
  telemetry.notes = {"NVML absent"};
  std::vector<DeviceStats> devices{device("vulkan0", Health::failed)};
  devices[0].verdict.reasons = {"gemm/f32/exact/16x16x16 seed 1: 1 element(s) wrong"};
  devices[0].worker_exits["crashed"] = 2;
  ProbeStats& gemm = devices[0].probes["gemm"];
  gemm.runs = 3;
  gemm.checked_runs = 40;  // repeated passes (coverage)
  ProbeResult r;
  r.spec.probe = "gemm";
  r.spec.gemm = {16, 16, 16};
  r.spec.seed = 5;
  r.status = RunStatus::fail;
  r.check.mismatched = 1;
  gemm.last_results.push_back(r);
  DaemonView v = view_of(devices, notes, telemetry);
  v.devices[0].worker_running = true;
  v.devices[0].worker_pid = 4242;
  v.reload_successful = false;
  const nlohmann::json status = status_json(v);
  CHECK(status["config"] == "/etc/substrated/config.yaml");
  CHECK(status["config_last_reload_successful"] == false);
  CHECK(status["backend_notes"] == nlohmann::json(notes));
  CHECK(status["telemetry_notes"] == nlohmann::json({"NVML absent"}));
  REQUIRE(status["devices"].size() == 1);
  const nlohmann::json& d = status["devices"][0];
  CHECK(d["device"]["id"] == "vulkan0");
  CHECK(d["health"] == "failed");
  CHECK(d["reasons"][0] == "gemm/f32/exact/16x16x16 seed 1: 1 element(s) wrong");
  CHECK(d["worker"]["running"] == true);
  CHECK(d["worker"]["pid"] == 4242);
  CHECK(d["worker"]["exits"]["crashed"] == 2);
  CHECK(d["probes"]["gemm"]["runs"] == 3);
  CHECK(d["probes"]["gemm"]["checked_runs"] == 40);
  const nlohmann::json& result = d["probes"]["gemm"]["results"][0];
  CHECK(result["spec"] == "gemm/f32/exact/16x16x16");
  CHECK(result["seed"] == 5);
  CHECK(result["status"] == "fail");
  CHECK(result["mismatched_elements"] == 1);
  // No worker: no pid.
  v.devices[0].worker_running = false;
  v.devices[0].worker_pid = 0;
  CHECK_FALSE(status_json(v)["devices"][0]["worker"].contains("pid"));
}
