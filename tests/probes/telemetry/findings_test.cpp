// The finding table (probes/telemetry/findings.hpp) walked against the three places that must
// agree with it: the verdict code, the shipped alert rules (deploy/prometheus/substrated-rules.yml,
// generated from deploy/mixin) and docs/findings.md. Issue 17: XIDs 61, 62 and 140 were critical
// in the rules and the runbook but left the verdict healthy.
#include <catch2/catch.hpp>

#include <prometheus/text_serializer.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "probes/telemetry/findings.hpp"
#include "probes/telemetry/metrics.hpp"
#include "probes/telemetry/verdict.hpp"
#include "tests/probes/telemetry/nvml/standin_support.hpp"
#include "tests/support/scrape.hpp"

using namespace substrate;
using namespace substrate::telemetry;
namespace support = substrate::telemetry::testing;

namespace {

std::filesystem::path source_file(const char* relative) {
  return std::filesystem::path(SUBSTRATE_SOURCE_DIR) / relative;
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct Alert {
  std::string severity;
  std::string expr;
};

// Every alerting rule of the shipped rules file by name.
std::map<std::string, Alert> shipped_alerts() {
  std::map<std::string, Alert> alerts;
  const YAML::Node rules = YAML::LoadFile(source_file("deploy/prometheus/substrated-rules.yml").string());
  for (const auto& group : rules["groups"]) {
    for (const auto& rule : group["rules"]) {
      if (!rule["alert"]) continue;
      alerts[rule["alert"].as<std::string>()] = {rule["labels"]["severity"].as<std::string>(),
                                                 rule["expr"].as<std::string>()};
    }
  }
  return alerts;
}

// The XIDs an alert's expression selects with xid=~"a|b|c" (or excludes with xid!~).
std::set<std::uint32_t> xids_in(const std::string& expr, const char* op) {
  const std::regex pattern(std::string("xid") + op + "\"([0-9|]+)\"");
  std::smatch match;
  std::set<std::uint32_t> xids;
  if (!std::regex_search(expr, match, pattern)) return xids;
  std::stringstream list(match[1].str());
  for (std::string xid; std::getline(list, xid, '|');) xids.insert(static_cast<std::uint32_t>(std::stoul(xid)));
  return xids;
}

TelemetryDevice nvml_device() {
  TelemetryDevice device;
  device.source = kSourceNvml;
  device.local_id = "nvml0";
  return device;
}

// A previous and a current reading that produce exactly the finding of `kind`.
std::pair<TelemetryDevice, TelemetryDevice> trigger(Kind kind) {
  TelemetryDevice before = nvml_device(), now = nvml_device();
  Readings& r = now.readings;
  switch (kind) {
    case Kind::gpu_lost:
      r.gpu_lost = true;
      break;
    case Kind::ecc_uncorrected_rise:
      before.readings.ecc = {{"uncorrected", "volatile", "total", 1}};
      r.ecc = {{"uncorrected", "volatile", "total", 2}};
      break;
    case Kind::row_remap_failed:
      r.remapped_rows_failure = true;
      break;
    case Kind::row_remap_pending:
      r.remapped_rows_pending = true;
      break;
    case Kind::page_retirement_pending:
      r.retired_pages_pending = true;
      break;
    case Kind::xid:
      r.xids = {{79, 1, 0.0}};
      break;
    case Kind::clock_slowdown:
      r.clock_event_reasons["hw_thermal_slowdown"] = true;
      break;
    case Kind::temperature_threshold:
      r.temperatures = {{"gpu", 93}};
      r.temperature_thresholds = {{"gpu", "slowdown", 92}};
      break;
    case Kind::recovery_reset:
      r.recovery_action = "node_reboot";
      break;
    case Kind::recovery_drain:
      r.recovery_action = "drain_p2p";
      break;
  }
  return {before, now};
}

Effect effect_of(const std::vector<Finding>& findings) {
  Effect effect = Effect::none;
  for (const Finding& f : findings) {
    effect = f.severity == Severity::failed ? Effect::failed : std::max(effect, Effect::degraded);
  }
  return effect;
}

}  // namespace

TEST_CASE("findings: the verdict code gives each finding kind the effect of the table", "[unit]") {
  for (const FindingKind& kind : finding_kinds()) {
    INFO("finding kind " << kind.name);
    const auto [before, now] = trigger(kind.id);
    const auto findings = telemetry_findings(&before, now);
    REQUIRE(findings.size() == 1);
    const Effect expected = kind.id == Kind::xid ? find_xid(79)->effect : kind.effect;
    CHECK(to_string(effect_of(findings)) == std::string(to_string(expected)));
  }
}

TEST_CASE("findings: the verdict code gives each XID the effect of the table", "[unit]") {
  for (const XidEntry& entry : xid_table()) {
    INFO("XID " << entry.xid);
    TelemetryDevice before = nvml_device(), now = nvml_device();
    now.readings.xids = {{entry.xid, 1, 0.0}};
    const auto findings = telemetry_findings(&before, now);
    CHECK(to_string(effect_of(findings)) == std::string(to_string(entry.effect)));
    if (entry.effect != Effect::none) {
      REQUIRE(findings.size() == 1);
      CHECK_THAT(findings[0].reason, Catch::StartsWith("XID " + std::to_string(entry.xid) + " (" + entry.meaning));
    }
  }
  // An XID the table does not list has no effect.
  TelemetryDevice before = nvml_device(), now = nvml_device();
  now.readings.xids = {{9999, 1, 0.0}};
  CHECK(telemetry_findings(&before, now).empty());
}

TEST_CASE("findings: the shipped alert rules agree with the table", "[unit]") {
  const auto alerts = shipped_alerts();
  for (const FindingKind& kind : finding_kinds()) {
    INFO("finding kind " << kind.name << " -> " << kind.alert);
    REQUIRE(alerts.count(kind.alert) == 1);
    CHECK(alerts.at(kind.alert).severity == kind.alert_severity);
    // A finding that fails the device pages; one that degrades it at least warns.
    if (kind.id != Kind::xid) {
      CHECK((kind.effect == Effect::failed ? std::set<std::string>{"critical"}
                                           : std::set<std::string>{"critical", "warning"})
                .count(kind.alert_severity) == 1);
    }
  }
  // XIDs: exactly those with an effect are SubstrateCriticalXid's (critical), every other one
  // SubstrateXid's (info).
  REQUIRE(alerts.count(kCriticalXidAlert) == 1);
  REQUIRE(alerts.count(kOtherXidAlert) == 1);
  CHECK(alerts.at(kCriticalXidAlert).severity == "critical");
  CHECK(alerts.at(kOtherXidAlert).severity == "info");
  std::set<std::uint32_t> with_effect;
  for (const XidEntry& entry : xid_table()) {
    if (entry.effect != Effect::none) with_effect.insert(entry.xid);
  }
  CHECK(xids_in(alerts.at(kCriticalXidAlert).expr, "=~") == with_effect);
  CHECK(xids_in(alerts.at(kOtherXidAlert).expr, "!~") == with_effect);
}

TEST_CASE("findings: docs/findings.md shows the table", "[unit]") {
  const std::string doc = read_text(source_file("docs/findings.md"));
  REQUIRE_FALSE(doc.empty());
  for (const FindingKind& kind : finding_kinds()) {
    const std::string effect = kind.id == Kind::xid ? "per XID" : to_string(kind.effect);
    const std::string row = "| `" + std::string(kind.name) + "` | " + effect + " | " + kind.alert + " (" +
                            kind.alert_severity + ") | " + kind.what + " |";
    INFO(row);
    CHECK(doc.find(row) != std::string::npos);
  }
  for (const XidEntry& entry : xid_table()) {
    const bool critical = entry.effect != Effect::none;
    const std::string row = "| " + std::to_string(entry.xid) + " | " + to_string(entry.effect) + " | " +
                            (critical ? kCriticalXidAlert : kOtherXidAlert) + " (" + (critical ? "critical" : "info") +
                            ") | " + entry.meaning + " |";
    INFO(row);
    CHECK(doc.find(row) != std::string::npos);
  }
}

// Issues 15 and 17: XIDs 61, 62, 140 and 154 arriving through NVML's event set (the stand-in,
// loaded by the production dlopen path) fail the compute device they belong to.
TEST_CASE("findings: XIDs 61, 62, 140 and 154 from NVML fail the device", "[unit]") {
  for (const std::uint32_t xid : {61u, 62u, 140u, 154u}) {
    INFO("XID " << xid);
    const std::string gpu = "devices 1\n0 uuid GPU-8E8F1C2A-1B2C-3D4E-5F60-718293A4B5C6\n0 pci 0000:65:00.0\n";
    support::StandinEnvironment environment(SUBSTRATE_NVML_STANDIN_DIR, gpu);
    TelemetryReader reader({"/nonexistent/substrate-sysfs", true, {}, std::chrono::milliseconds(50)});
    support::VerdictPath path;
    path.compute.id = "cuda0";
    path.compute.uuid = "8e8f1c2a-1b2c-3d4e-5f60-718293a4b5c6";
    path.verdict.health = Health::healthy;
    CHECK(path.fold(reader).health == Health::healthy);

    environment.rewrite(gpu + "0 xid " + std::to_string(xid) + "\n");  // the XID arrives
    EffectiveVerdict verdict;
    CHECK(support::eventually([&] {
      verdict = path.fold(reader);
      return verdict.health != Health::healthy;
    }));
    CHECK(verdict.health == Health::failed);
    REQUIRE_FALSE(verdict.reasons.empty());
    CHECK_THAT(verdict.reasons.back(), Catch::Contains("XID " + std::to_string(xid)));
  }
}

// A MIG-enabled GPU: its parent answers NOT_SUPPORTED for volatile ECC and remapped rows, and its
// MIG instances are compute devices of their own that share the parent's PCI bus id. An aggregate
// uncorrectable ECC rise of the parent must still fail both instances.
TEST_CASE("findings: under MIG an aggregate ECC rise of the parent fails every instance", "[unit]") {
  const std::string gpu = R"(devices 1
0 uuid GPU-8E8F1C2A-1B2C-3D4E-5F60-718293A4B5C6
0 pci 0000:65:00.0
0 mig.mode 1
0 ecc.uncorrected.volatile.total 0
0 remapped_rows 0 0 0 0
)";
  support::StandinEnvironment environment(SUBSTRATE_NVML_STANDIN_DIR, gpu + "0 ecc.uncorrected.aggregate.total 3\n");
  TelemetryReader reader({"/nonexistent/substrate-sysfs", true, {}, std::chrono::milliseconds(50)});
  std::vector<DeviceInfo> instances(2);
  instances[0].id = "cuda0";
  instances[0].uuid = "MIG-11111111-2222-3333-4444-555555555555";
  instances[1].id = "cuda1";
  instances[1].uuid = "MIG-66666666-7777-8888-9999-000000000000";
  for (DeviceInfo& instance : instances) instance.pci_bus_id = "00000000:65:00.0";

  const Snapshot before = join_devices(reader.read(), instances);
  REQUIRE(before.devices.size() == 1);
  const Readings& r = before.devices[0].readings;
  CHECK(r.remapped_rows.empty());  // NOT_SUPPORTED under MIG: absent, not an error
  CHECK(std::none_of(r.ecc.begin(), r.ecc.end(), [](const EccCount& e) { return e.scope == "volatile"; }));
  CHECK(std::any_of(r.ecc.begin(), r.ecc.end(), [](const EccCount& e) { return e.scope == "aggregate"; }));
  for (const DeviceInfo& instance : instances) CHECK(findings_for(instance, nullptr, before).empty());

  environment.rewrite(gpu + "0 ecc.uncorrected.aggregate.total 4\n");
  const Snapshot after = join_devices(reader.read(), instances);
  for (const DeviceInfo& instance : instances) {
    INFO(instance.id);
    const auto findings = findings_for(instance, &before, after);
    REQUIRE(findings.size() == 1);
    CHECK(findings[0].severity == Severity::failed);
    CHECK_THAT(findings[0].reason, Catch::Contains("rose from 3 to 4 (aggregate"));
  }
}

// What XID 154 announces, read as NVML's recovery-action field: a reset or reboot the driver asks
// for fails the device while it stands; the metric says which action.
TEST_CASE("findings: NVML's GPU recovery action fails the device while the driver asks for it", "[unit]") {
  const std::string gpu = "devices 1\n0 uuid GPU-8E8F1C2A-1B2C-3D4E-5F60-718293A4B5C6\n0 pci 0000:65:00.0\n";
  support::StandinEnvironment environment(SUBSTRATE_NVML_STANDIN_DIR, gpu + "0 recovery_action 0\n");
  TelemetryReader reader({"/nonexistent/substrate-sysfs", true, {}, std::chrono::milliseconds(50)});
  DeviceInfo cuda0;
  cuda0.id = "cuda0";
  cuda0.uuid = "8e8f1c2a-1b2c-3d4e-5f60-718293a4b5c6";
  const Snapshot none = join_devices(reader.read(), {cuda0});
  CHECK(findings_for(cuda0, nullptr, none).empty());

  environment.rewrite(gpu + "0 recovery_action 2\n");  // NODE_REBOOT
  const Snapshot reboot = join_devices(reader.read(), {cuda0});
  const auto findings = findings_for(cuda0, &none, reboot);
  REQUIRE(findings.size() == 1);
  CHECK(findings[0].severity == Severity::failed);
  CHECK(findings[0].reason == "the driver asks for a recovery action: node_reboot");
  std::ostringstream scrape;
  prometheus::TextSerializer().Serialize(scrape, to_metric_families(reboot, {device_identity(cuda0, {cuda0})}));
  CHECK(substrate::testing::series_value(
            scrape.str(), "substrate_gpu_recovery_action{substrate_device=\"cuda0\",action=\"node_reboot\"}") == 1);
  const auto lint = support::promtool_check_metrics(scrape.str());
  INFO(lint.output);
  CHECK(lint.exit_code == 0);

  environment.rewrite(gpu + "0 recovery_action 3\n");  // DRAIN_P2P
  const Snapshot drain = join_devices(reader.read(), {cuda0});
  REQUIRE(findings_for(cuda0, &reboot, drain).size() == 1);
  CHECK(findings_for(cuda0, &reboot, drain)[0].severity == Severity::degraded);
}
