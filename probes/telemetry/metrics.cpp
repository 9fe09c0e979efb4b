#include "probes/telemetry/metrics.hpp"

#include <map>
#include <set>
#include <string>
#include <utility>

#include "probes/telemetry/identity.hpp"

namespace substrate::telemetry {

namespace {

using Labels = std::vector<prometheus::ClientMetric::Label>;

// Appends samples to one family, skipping label sets it already has.
class FamilyBuilder {
 public:
  FamilyBuilder(const char* name, const char* help, prometheus::MetricType type) {
    family_.name = name;
    family_.help = help;
    family_.type = type;
  }

  void add(Labels labels, double value) {
    if (!seen_.insert(labels).second) return;
    prometheus::ClientMetric metric;
    metric.label = std::move(labels);
    if (family_.type == prometheus::MetricType::Counter) {
      metric.counter.value = value;
    } else {
      metric.gauge.value = value;
    }
    family_.metric.push_back(std::move(metric));
  }

  bool empty() const { return family_.metric.empty(); }
  prometheus::MetricFamily take() { return std::move(family_); }

 private:
  prometheus::MetricFamily family_;
  std::set<Labels> seen_;
};

constexpr auto kGauge = prometheus::MetricType::Gauge;
constexpr auto kCounter = prometheus::MetricType::Counter;

}  // namespace

std::vector<prometheus::MetricFamily> to_metric_families(const Snapshot& snapshot,
                                                         const std::vector<DeviceIdentity>& compute_devices) {
  std::map<std::string, DeviceIdentity> identities;
  for (const DeviceIdentity& identity : compute_devices) identities.emplace(identity.device, identity);
  for (DeviceIdentity& identity : telemetry_only_identities(snapshot, compute_devices)) {
    identities.emplace(identity.device, std::move(identity));
  }
  FamilyBuilder source_info("substrate_telemetry_source_info",
                            "1 per telemetry source joined to a device (nvml, amdgpu, hwmon, accel).", kGauge);
  FamilyBuilder errors("substrate_telemetry_errors_total",
                       "Telemetry read errors other than \"not supported\", by source and cause, since start.",
                       kCounter);
  FamilyBuilder source_success(
      "substrate_telemetry_source_last_success_timestamp_seconds",
      "End of the last read of the source that returned within telemetry.timeout_seconds (0: none yet); its age is "
      "how stale that source's series are (a late source's series are left out, not repeated).",
      kGauge);
  FamilyBuilder source_timeouts("substrate_telemetry_source_timeouts_total",
                                "Telemetry reads of the source that did not return within telemetry.timeout_seconds "
                                "(a read still blocked counts once per snapshot it misses).",
                                kCounter);
  FamilyBuilder temperature(
      "substrate_gpu_temperature_celsius",
      "Device temperature per sensor; from the last telemetry snapshot (one every telemetry.interval_seconds).",
      kGauge);
  FamilyBuilder threshold("substrate_gpu_temperature_threshold_celsius",
                          "Temperature thresholds per sensor (slowdown, shutdown, max, crit, emergency); from the last "
                          "telemetry snapshot (one every telemetry.interval_seconds).",
                          kGauge);
  FamilyBuilder ecc("substrate_ecc_errors_total",
                    "ECC errors by kind, scope and location (NVML memory locations or amdgpu RAS blocks); from the "
                    "last telemetry snapshot (one every telemetry.interval_seconds).",
                    kCounter);
  FamilyBuilder retired(
      "substrate_retired_pages",
      "Retired device memory pages by cause; from the last telemetry snapshot (one every telemetry.interval_seconds).",
      kGauge);
  FamilyBuilder retired_pending("substrate_retired_pages_pending",
                                "1 when a page retirement waits for a reset; from the last telemetry snapshot (one "
                                "every telemetry.interval_seconds).",
                                kGauge);
  FamilyBuilder remapped(
      "substrate_remapped_rows",
      "Remapped memory rows by kind; from the last telemetry snapshot (one every telemetry.interval_seconds).", kGauge);
  FamilyBuilder remapped_pending(
      "substrate_remapped_rows_pending",
      "1 when a row remap waits for a reset; from the last telemetry snapshot (one every telemetry.interval_seconds).",
      kGauge);
  FamilyBuilder remapped_failure(
      "substrate_remapped_rows_failure",
      "1 when a row remap failed; from the last telemetry snapshot (one every telemetry.interval_seconds).", kGauge);
  FamilyBuilder bad_pages(
      "substrate_vram_bad_pages",
      "Entries of amdgpu gpu_vram_bad_pages; from the last telemetry snapshot (one every telemetry.interval_seconds).",
      kGauge);
  FamilyBuilder xid_events("substrate_xid_events_total",
                           "XID critical-error events per XID since start, counted by a background NVML event thread.",
                           kCounter);
  FamilyBuilder xid_last("substrate_xid_last_timestamp_seconds",
                         "Unix time of the last event of that XID, recorded by a background NVML event thread.",
                         kGauge);
  FamilyBuilder reasons("substrate_clock_event_reasons",
                        "1 when the clock-event (throttle) reason is active; from the last telemetry snapshot (one "
                        "every telemetry.interval_seconds).",
                        kGauge);
  FamilyBuilder throttle("substrate_throttle_seconds_total",
                         "Cumulative time clocks were held below target per reason; from the last telemetry snapshot "
                         "(one every telemetry.interval_seconds).",
                         kCounter);
  FamilyBuilder power("substrate_power_watts",
                      "Power draw; from the last telemetry snapshot (one every telemetry.interval_seconds).", kGauge);
  FamilyBuilder power_limit(
      "substrate_power_limit_watts",
      "Enforced power limit; from the last telemetry snapshot (one every telemetry.interval_seconds).", kGauge);
  FamilyBuilder clock(
      "substrate_clock_hertz",
      "Current clock per domain (sm, memory); from the last telemetry snapshot (one every telemetry.interval_seconds).",
      kGauge);
  FamilyBuilder utilization("substrate_utilization_ratio",
                            "Fraction of the last sample period the unit was busy (gpu, memory); from the last "
                            "telemetry snapshot (one every telemetry.interval_seconds).",
                            kGauge);
  FamilyBuilder pcie_replays(
      "substrate_pcie_replays_total",
      "PCIe replay counter; from the last telemetry snapshot (one every telemetry.interval_seconds).", kCounter);
  FamilyBuilder nvlink("substrate_nvlink_errors_total",
                       "NVLink error counters per link and kind; from the last telemetry snapshot (one every "
                       "telemetry.interval_seconds).",
                       kCounter);
  FamilyBuilder recovery("substrate_gpu_recovery_action",
                         "1 for the recovery action NVML's driver asks for (none, gpu_reset, node_reboot, drain_p2p, "
                         "...); sampled every 15 s.",
                         kGauge);
  FamilyBuilder nvml_up("substrate_nvml_up",
                        "1 when nvmlInit succeeded, 0 while it fails and is retried; absent without libnvidia-ml.",
                        kGauge);
  if (snapshot.nvml_up) nvml_up.add({}, *snapshot.nvml_up ? 1 : 0);

  for (const TelemetryDevice& device : snapshot.devices) {
    const DeviceIdentity& identity = identities.at(device.device.empty() ? device.local_id : device.device);
    const Readings& r = device.readings;
    auto with = [&identity](Labels more = {}) { return identity_labels(identity, std::move(more)); };
    source_info.add(with({{"source", device.source}}), 1);
    for (const auto& t : r.temperatures) temperature.add(with({{"sensor", t.sensor}}), t.celsius);
    for (const auto& t : r.temperature_thresholds) {
      threshold.add(with({{"sensor", t.sensor}, {"threshold", t.threshold}}), t.celsius);
    }
    for (const auto& e : r.ecc) {
      ecc.add(with({{"kind", e.kind}, {"scope", e.scope}, {"location", e.location}}), static_cast<double>(e.count));
    }
    for (const auto& [cause, pages] : r.retired_pages)
      retired.add(with({{"cause", cause}}), static_cast<double>(pages));
    if (r.retired_pages_pending) retired_pending.add(with(), *r.retired_pages_pending ? 1 : 0);
    for (const auto& [kind, rows] : r.remapped_rows) remapped.add(with({{"kind", kind}}), static_cast<double>(rows));
    if (r.remapped_rows_pending) remapped_pending.add(with(), *r.remapped_rows_pending ? 1 : 0);
    if (r.remapped_rows_failure) remapped_failure.add(with(), *r.remapped_rows_failure ? 1 : 0);
    if (r.vram_bad_pages) bad_pages.add(with(), static_cast<double>(*r.vram_bad_pages));
    for (const auto& x : r.xids) {
      xid_events.add(with({{"xid", std::to_string(x.xid)}}), static_cast<double>(x.count));
      xid_last.add(with({{"xid", std::to_string(x.xid)}}), x.last_timestamp_seconds);
    }
    for (const auto& [reason, active] : r.clock_event_reasons) reasons.add(with({{"reason", reason}}), active ? 1 : 0);
    for (const auto& [reason, seconds] : r.throttle_seconds) throttle.add(with({{"reason", reason}}), seconds);
    if (r.power_watts) power.add(with(), *r.power_watts);
    if (r.power_limit_watts) power_limit.add(with(), *r.power_limit_watts);
    for (const auto& [name, hertz] : r.clock_hertz) clock.add(with({{"clock", name}}), hertz);
    for (const auto& [unit, ratio] : r.utilization_ratio) utilization.add(with({{"unit", unit}}), ratio);
    if (r.pcie_replays) pcie_replays.add(with(), static_cast<double>(*r.pcie_replays));
    if (r.recovery_action) recovery.add(with({{"action", *r.recovery_action}}), 1);
    for (const auto& n : r.nvlink_errors) {
      nvlink.add(with({{"link", std::to_string(n.link)}, {"kind", n.kind}}), static_cast<double>(n.count));
    }
  }
  for (const ErrorTotal& total : snapshot.error_totals) {
    errors.add({{"source", total.source}, {"cause", total.cause}}, static_cast<double>(total.count));
  }

  for (const SourceStatus& status : snapshot.sources) {
    source_success.add({{"source", status.source}}, status.last_success_seconds);
    source_timeouts.add({{"source", status.source}}, static_cast<double>(status.timeouts));
  }

  std::vector<prometheus::MetricFamily> families;
  for (FamilyBuilder* builder :
       {&source_info, &errors,     &source_success,  &source_timeouts, &temperature,      &threshold,
        &ecc,         &retired,    &retired_pending, &remapped,        &remapped_pending, &remapped_failure,
        &bad_pages,   &xid_events, &xid_last,        &reasons,         &throttle,         &power,
        &power_limit, &clock,      &utilization,     &pcie_replays,    &nvlink,           &recovery,
        &nvml_up}) {
    if (!builder->empty()) families.push_back(builder->take());
  }
  return families;
}

}  // namespace substrate::telemetry
