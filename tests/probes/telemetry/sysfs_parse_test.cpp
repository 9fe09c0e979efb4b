// Parsing of sysfs attribute text, on strings: no files involved.
#include <catch2/catch.hpp>

#include "probes/telemetry/accel.hpp"
#include "probes/telemetry/amdgpu_ras.hpp"
#include "probes/telemetry/hwmon.hpp"
#include "probes/telemetry/sysfs.hpp"

using namespace substrate;
using namespace substrate::telemetry;

TEST_CASE("telemetry: integers parse with surrounding whitespace and reject junk", "[unit]") {
  CHECK(*sysfs::parse_integer("45000\n") == 45000);
  CHECK(*sysfs::parse_integer("  -5 ") == -5);
  CHECK_FALSE(sysfs::parse_integer("").ok());
  CHECK_FALSE(sysfs::parse_integer("12abc").ok());
  CHECK(sysfs::parse_integer("n/a").error().kind == ErrorKind::corrupt);
}

TEST_CASE("telemetry: amdgpu RAS error counts parse ue and ce, ignore other keys", "[unit]") {
  auto counts = parse_ras_error_count("ue: 2\nce: 7\n");
  REQUIRE(counts.ok());
  CHECK(counts->uncorrected == 2);
  CHECK(counts->corrected == 7);

  auto with_deferred = parse_ras_error_count("ue: 0\nce: 1\nde: 5\n");
  REQUIRE(with_deferred.ok());
  CHECK(with_deferred->corrected == 1);

  CHECK(parse_ras_error_count("ue: many\nce: 0").error().kind == ErrorKind::corrupt);
  CHECK_FALSE(parse_ras_error_count("ue: 1").ok());
  CHECK_FALSE(parse_ras_error_count("").ok());
  CHECK_FALSE(parse_ras_error_count("ue: -1\nce: 0").ok());
}

TEST_CASE("telemetry: amdgpu bad pages count well-formed entries and skip the rest", "[unit]") {
  const auto parsed = parse_vram_bad_pages(
      "0x00000010 : 0x00001000 : R\n0x00000020 : 0x00001000 : P\n0x00000030 : 0x00001000 : F\ngarbage\n\n");
  CHECK(parsed.pages == 3);
  CHECK(parsed.malformed_lines == 1);
  CHECK(parse_vram_bad_pages("").pages == 0);
  CHECK(parse_vram_bad_pages("0x1 : 0x1000 : X").malformed_lines == 1);
}

TEST_CASE("telemetry: hwmon attributes become temperatures, thresholds and power in base units", "[unit]") {
  const auto parsed = parse_hwmon_attributes({
      {"temp1_input", "45000"},
      {"temp1_label", "edge"},
      {"temp1_crit", "100000"},
      {"temp1_emergency", "105000"},
      {"temp2_input", "48000"},
      {"temp2_label", "mem"},
      {"temp3_input", "-2000"},  // no label: named after the file
      {"power1_average", "85000000"},
      {"power1_input", "90000000"},
      {"power1_cap", "300000000"},
  });
  CHECK(parsed.malformed.empty());
  const auto& r = parsed.readings;
  REQUIRE(r.temperatures.size() == 3);
  CHECK(r.temperatures[0].sensor == "edge");
  CHECK(r.temperatures[0].celsius == Approx(45.0));
  CHECK(r.temperatures[1].sensor == "memory");
  CHECK(r.temperatures[2].sensor == "temp3");
  CHECK(r.temperatures[2].celsius == Approx(-2.0));
  REQUIRE(r.temperature_thresholds.size() == 2);
  CHECK(r.temperature_thresholds[0].threshold == "crit");
  CHECK(r.temperature_thresholds[0].celsius == Approx(100.0));
  CHECK(r.temperature_thresholds[1].threshold == "emergency");
  CHECK(*r.power_watts == Approx(90.0));  // power1_input wins over power1_average
  CHECK(*r.power_limit_watts == Approx(300.0));
}

TEST_CASE("telemetry: hwmon malformed values are skipped and named", "[unit]") {
  const auto parsed = parse_hwmon_attributes({
      {"temp1_input", "abc"},
      {"temp1_label", "Edge Sensor"},
      {"temp1_crit", "100000"},
      {"power1_max", "35000000"},  // i915/xe spelling of the limit
  });
  REQUIRE(parsed.malformed == std::vector<std::string>{"temp1_input"});
  CHECK(parsed.readings.temperatures.empty());
  REQUIRE(parsed.readings.temperature_thresholds.size() == 1);
  CHECK(parsed.readings.temperature_thresholds[0].sensor == "edge_sensor");
  CHECK_FALSE(parsed.readings.power_watts.has_value());
  CHECK(*parsed.readings.power_limit_watts == Approx(35.0));
}

TEST_CASE("telemetry: accel NPU attributes convert to base units", "[unit]") {
  const auto parsed = parse_accel_attributes({{"npu_busy_time_us", "1500000"},
                                              {"npu_memory_utilization", "4096"},
                                              {"npu_current_frequency_mhz", "1400"},
                                              {"npu_max_frequency_mhz", "n/a"},
                                              {"npu_unknown", "7"}});
  CHECK(parsed.npu.at("busy_seconds") == Approx(1.5));
  CHECK(parsed.npu.at("memory_used_bytes") == Approx(4096));
  CHECK(parsed.npu.at("current_frequency_hertz") == Approx(1.4e9));
  CHECK(parsed.npu.count("max_frequency_hertz") == 0);
  CHECK(parsed.malformed == std::vector<std::string>{"npu_max_frequency_mhz"});
}
