// The pure parts of `substrated diag`: levels, sizes per level, throughput, what a device record
// keeps, the peer comparison, verdicts and the JSON contract with the report.
#include "daemon/diag.hpp"

#include <catch2/catch.hpp>

#include <algorithm>

using namespace substrate;
using namespace substrate::diag;

namespace {

DeviceInfo gpu(const std::string& id, std::uint64_t memory) {
  DeviceInfo info;
  info.id = id;
  info.backend = "cuda";
  info.name = "NVIDIA H100 80GB HBM3";
  info.device_type = "discrete";
  info.memory_bytes = memory;
  return info;
}

ProbeResult gemm_result(const DeviceInfo& device, double device_seconds, RunStatus status = RunStatus::pass,
                        const std::string& fingerprint = "abc") {
  ProbeResult result;
  result.device = device;
  result.spec.probe = "gemm";
  result.spec.gemm = {1024, 1024, 1024};
  result.status = status;
  result.check.pass = status == RunStatus::pass;
  result.fingerprint = fingerprint;
  result.device_seconds = device_seconds;
  return result;
}

}  // namespace

TEST_CASE("diag: levels by number and alias, bad ones named", "[unit]") {
  CHECK(parse_level("1").value() == 1);
  CHECK(parse_level("quick").value() == 1);
  CHECK(parse_level("medium").value() == 2);
  CHECK(parse_level("long").value() == 3);
  CHECK(parse_level("extended").value() == 4);
  CHECK(parse_level("4").value() == 4);
  auto bad = parse_level("5");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.find("'5'") != std::string::npos);
  CHECK(default_duration_seconds(1) == 0.0);
  CHECK(default_duration_seconds(2) == 120.0);
  CHECK(default_duration_seconds(3) == 900.0);
  CHECK(default_duration_seconds(4) > 900.0);
}

TEST_CASE("diag: level sizes grow, and halve to fit half of the device's memory", "[unit]") {
  const auto gemm_size = [](const std::vector<ProbeSpec>& specs) {
    for (const ProbeSpec& s : specs)
      if (s.probe == "gemm") return s.gemm.m;
    return 0u;
  };
  const DeviceInfo big = gpu("cuda0", 80ull << 30);
  CHECK(gemm_size(level_specs(2, big)) == 4096);
  CHECK(gemm_size(level_specs(3, big)) == 8192);
  // 8192 cubed f32 needs (2·8192² inputs · 4 + 8192² outputs · 8) = 1 GiB; 1 GiB of memory fits 4096.
  CHECK(gemm_size(level_specs(3, gpu("cuda1", 1ull << 30))) == 4096);
  DeviceInfo cpu = big;
  cpu.device_type = "cpu";
  CHECK(gemm_size(level_specs(4, cpu)) == 128);
  bool memory = false;
  for (const ProbeSpec& s : level_specs(2, big)) {
    if (s.probe != "memory") continue;
    memory = true;
    CHECK(s.memory.free_share >= 0.8);  // most of the free memory
  }
  CHECK(memory);
  // Level 1 is the probe's default set: the 1024-cubed GEMMs of a GPU.
  CHECK(gemm_size(level_specs(1, big)) == 1024);
}

TEST_CASE("diag: throughput is FLOP/s for compute and bytes/s for memory", "[unit]") {
  const ProbeResult r = gemm_result(gpu("cuda0", 1), 0.5);
  CHECK(throughput_of(r).value() == Approx(2.0 * 1024 * 1024 * 1024 / 0.5));
  ProbeResult memory;
  memory.spec.probe = "memory";
  memory.memory = MemoryDetails{};
  memory.memory->bandwidth_bytes_per_second = 3e9;
  CHECK(throughput_of(memory).value() == 3e9);
  CHECK_FALSE(throughput_of(gemm_result(gpu("cuda0", 1), 0.0)));
}

TEST_CASE("diag: a changed fingerprint fails the iteration; kept are first, failing and last", "[unit]") {
  DeviceRecord record;
  record.device = gpu("cuda0", 1);
  for (std::uint64_t pass = 0; pass < 5; ++pass) {
    const bool bad = pass == 2;
    record.add(gemm_result(record.device, 0.1, RunStatus::pass, bad ? "zzz" : "abc"), 0, pass,
               pass == 0 ? std::optional<bool>() : std::optional<bool>(!bad), pass * 1.0, {});
  }
  CHECK(record.iterations == 5);
  CHECK(record.failed_iterations == 1);
  CHECK(record.fail_results == 1);
  REQUIRE(record.results.size() == 3);  // the first, the failing third, the last
  const auto failing = std::find_if(record.results.begin(), record.results.end(),
                                    [](const ProbeResult& r) { return r.status == RunStatus::fail; });
  REQUIRE(failing != record.results.end());
  CHECK(failing->error_kind == ErrorKind::hardware_fault);
  CHECK(failing->error.find("differs from the first") != std::string::npos);
  CHECK(std::count_if(record.results.begin(), record.results.end(),
                      [](const ProbeResult& r) { return r.fingerprint == "abc"; }) == 2);
  CHECK(failing == record.results.begin() + 1);  // in the order the runs finished
  REQUIRE(record.timeline.size() == 5);
  CHECK(record.timeline[2].status == "fail");
  CHECK(record.timeline[4].iteration == 4);
  std::vector<DeviceRecord> records{record};
  decide_verdicts(records, 0.9, false);
  CHECK(records[0].verdict == "fail");
  CHECK(exit_code_of(records) == 1);
}

TEST_CASE("diag: a device below the share of its best identical peer fails; lone devices have none", "[unit]") {
  std::vector<DeviceRecord> records(3);
  records[0].device = gpu("cuda0", 1);
  records[1].device = gpu("cuda1", 1);
  records[2].device = gpu("cuda2", 1);
  records[2].device.name = "NVIDIA A100";  // no peer of its model
  for (std::uint64_t pass = 0; pass < 3; ++pass) {
    records[0].add(gemm_result(records[0].device, 1.0), 0, pass, std::nullopt, 0, {});
    records[1].add(gemm_result(records[1].device, 1.25), 0, pass, std::nullopt, 0, {});  // 80% of cuda0
    records[2].add(gemm_result(records[2].device, 9.0), 0, pass, std::nullopt, 0, {});
  }
  compare_peers(records);
  const ThroughputSpread spread = throughput_spread(records[1]).at("gemm/f32/exact/1024x1024x1024");
  CHECK(spread.samples == 3);
  CHECK(spread.min == Approx(spread.max));
  CHECK(records[0].peer_throughput_share.value() == Approx(1.0));
  CHECK(records[1].peer_throughput_share.value() == Approx(0.8));
  CHECK_FALSE(records[2].peer_throughput_share);
  decide_verdicts(records, 0.9, false);
  CHECK(records[0].verdict == "pass");
  CHECK(records[1].verdict == "fail");
  CHECK(records[2].verdict == "pass");
  decide_verdicts(records, 0.75, false);
  CHECK(records[1].verdict == "pass");
  decide_verdicts(records, 0.75, /*interrupted=*/true);
  CHECK(records[0].verdict == "error");  // an interrupted run passes nothing
  CHECK(exit_code_of(records) == 2);
}

TEST_CASE("diag: telemetry readings become a sample", "[unit]") {
  telemetry::Readings readings;
  readings.temperatures = {{"memory", 70.0}, {"gpu", 61.0}};
  readings.clock_hertz["sm"] = 1.41e9;
  readings.power_watts = 250.0;
  readings.clock_event_reasons = {{"sw_thermal_slowdown", true}, {"sw_power_cap", false}};
  readings.ecc = {{"uncorrected", "volatile", "total", 2},
                  {"corrected", "volatile", "total", 7},
                  {"uncorrected", "aggregate", "total", 9}};
  readings.xids = {{79, 1, 0.0}};
  const TelemetrySample s = sample_of(readings, 3.5);
  CHECK(s.t_seconds == 3.5);
  CHECK(s.temperature_celsius.value() == 61.0);
  CHECK(s.sm_clock_hertz.value() == 1.41e9);
  CHECK(s.power_watts.value() == 250.0);
  CHECK(s.throttle_reasons == std::vector<std::string>{"sw_thermal_slowdown"});
  CHECK(s.ecc_uncorrected == 2);
  CHECK(s.ecc_corrected == 7);
  CHECK(s.xid_events == 1);
}

TEST_CASE("diag: the JSON document has the report's shape", "[unit]") {
  Report report;
  report.level = 2;
  report.duration_seconds = 3;
  report.started_at = 100;
  report.finished_at = 104;
  DeviceRecord record;
  record.device = gpu("cuda0", 1);
  TelemetrySample sample;
  sample.temperature_celsius = 55.0;
  record.add(gemm_result(record.device, 0.5), 0, 0, std::nullopt, 1.5, sample);
  report.devices.push_back(record);
  decide_verdicts(report.devices, 0.9, false);
  const nlohmann::json doc = to_json(report).at("diag");
  CHECK(doc.at("level") == 2);
  CHECK(doc.at("duration_seconds") == 3.0);
  CHECK(doc.at("started_at") == 100.0);
  CHECK(doc.at("finished_at") == 104.0);
  CHECK(doc.at("interrupted") == false);
  CHECK(doc.at("exit_code") == 0);
  const auto& device = doc.at("devices").at(0);
  CHECK(device.at("device").at("id") == "cuda0");
  CHECK(device.at("verdict") == "pass");
  CHECK(device.at("iterations") == 1);
  CHECK(device.at("failed_iterations") == 0);
  CHECK(device.at("peer_throughput_share").is_null());
  CHECK(device.at("results").size() == 1);
  const auto& entry = device.at("timeline").at(0);
  CHECK(entry.at("t_seconds") == 1.5);
  CHECK(entry.at("probe") == "gemm");
  CHECK(entry.at("iteration") == 0);
  CHECK(entry.at("status") == "pass");
  CHECK(entry.at("throughput").get<double>() > 0);
  CHECK(entry.at("temperature_celsius") == 55.0);
  CHECK(entry.at("sm_clock_hertz").is_null());
  CHECK(entry.at("power_watts").is_null());
  CHECK(entry.at("throttle_reasons").is_array());
}

TEST_CASE("diag: a summary for the daemon round-trips, and a malformed one is named", "[unit]") {
  Report report;
  report.level = 3;
  report.started_at = 10;
  report.finished_at = 20;
  DeviceRecord record;
  record.device = gpu("cuda0", 1);
  record.device.uuid = "0f0e0d0c-0b0a-0908-0706-050403020100";
  record.add(gemm_result(record.device, 0.1, RunStatus::fail), 0, 0, std::nullopt, 1, {});
  DeviceRecord refused;
  refused.device = gpu("cuda1", 1);
  refused.refused = "device busy";
  report.devices = {record, refused};
  decide_verdicts(report.devices, 0.9, false);
  const std::vector<Summary> all = summaries(report);
  REQUIRE(all.size() == 1);  // the refused device ran nothing
  CHECK(all[0].device == record.device.uuid);
  CHECK(all[0].verdict == "fail");
  CHECK(all[0].reason == "golden_mismatch");
  CHECK(all[0].detail.find("diag level 3") != std::string::npos);
  auto back = parse_summary(to_json(all[0]));
  REQUIRE(back);
  CHECK(to_json(*back) == to_json(all[0]));

  nlohmann::json bad = to_json(all[0]);
  bad["level"] = 9;
  CHECK(parse_summary(bad).error().message.find("'level'") != std::string::npos);
  bad = to_json(all[0]);
  bad["reason"] = "";
  CHECK(parse_summary(bad).error().message.find("needs a 'reason'") != std::string::npos);
  bad = to_json(all[0]);
  bad.erase("iterations");
  CHECK(parse_summary(bad).error().message.find("'iterations'") != std::string::npos);
  CHECK_FALSE(parse_summary(nlohmann::json::array()));
}

TEST_CASE("diag: a summary's reason is the verdict's: changed bits, the driver's report, a failed check", "[unit]") {
  const auto reason_of = [](ProbeResult result, std::optional<bool> matches_first) {
    Report report;
    report.level = 2;
    DeviceRecord record;
    record.device = gpu("cuda0", 1);
    record.add(std::move(result), 0, 1, matches_first, 1, {});
    report.devices = {record};
    decide_verdicts(report.devices, 0.9, false);
    return summaries(report).at(0).reason;
  };
  ProbeResult checked = gemm_result(gpu("cuda0", 1), 0.1, RunStatus::pass, "changed");
  checked.check.checked = 1024;
  CHECK(reason_of(checked, false) == "fingerprint_change");  // the check passed, the bits moved
  ProbeResult reported = gemm_result(gpu("cuda0", 1), 0.1, RunStatus::fail);
  reported.check.pass = false;  // registry.cpp: a driver-reported fault, no check ran
  reported.error_kind = ErrorKind::hardware_fault;
  reported.error = "CUDA_ERROR_ECC_UNCORRECTABLE (214)";
  CHECK(reason_of(reported, std::nullopt) == "hardware_error");
  ProbeResult mismatched = gemm_result(gpu("cuda0", 1), 0.1, RunStatus::fail);
  mismatched.check.checked = 1024;
  mismatched.check.pass = false;
  CHECK(reason_of(mismatched, std::nullopt) == "golden_mismatch");
}
