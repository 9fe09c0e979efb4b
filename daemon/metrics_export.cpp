#include "daemon/metrics_export.hpp"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <chrono>
#include <map>

#include "daemon/git_revision.hpp"
#include "daemon/process_metrics.hpp"
#include "probes/core/registry.hpp"
#include "probes/telemetry/identity.hpp"
#include "probes/telemetry/metrics.hpp"

namespace substrate {
namespace {

class Families {
 public:
  prometheus::MetricFamily& family(const std::string& name, const std::string& help, prometheus::MetricType type) {
    auto it = index_.find(name);
    if (it != index_.end()) return families_[it->second];
    index_[name] = families_.size();
    families_.push_back(prometheus::MetricFamily{name, help, type, {}});
    return families_.back();
  }
  void gauge(const std::string& name, const std::string& help, std::vector<prometheus::ClientMetric::Label> labels,
             double value) {
    prometheus::ClientMetric metric;
    metric.label = std::move(labels);
    metric.gauge.value = value;
    family(name, help, prometheus::MetricType::Gauge).metric.push_back(std::move(metric));
  }
  void counter(const std::string& name, const std::string& help, std::vector<prometheus::ClientMetric::Label> labels,
               double value) {
    prometheus::ClientMetric metric;
    metric.label = std::move(labels);
    metric.counter.value = value;
    family(name, help, prometheus::MetricType::Counter).metric.push_back(std::move(metric));
  }
  std::vector<prometheus::MetricFamily>& all() { return families_; }

 private:
  std::vector<prometheus::MetricFamily> families_;
  std::map<std::string, std::size_t> index_;
};

}  // namespace

std::string render_metrics(const DaemonView& view) {
  const auto scrape_started = std::chrono::steady_clock::now();
  Families f;
  const std::string last = " From the last scheduled run, not computed at scrape time.";
  std::string kernel_build;
  for (const DeviceView& d : view.devices) kernel_build = d.stats->info.kernel_build;
  f.gauge("substrate_build_info",
          "Build of substrated; revision is the git commit it was built from, kernel_build hashes the embedded kernel "
          "binaries.",
          {{"version", SUBSTRATE_VERSION}, {"revision", git_revision()}, {"kernel_build", kernel_build}}, 1);
  // Zero devices is not silent: a count per backend (0 included) and the discovery problems.
  std::map<std::string, std::size_t> devices_by_backend{{"cuda", 0}, {"vulkan", 0}, {"external", 0}};
  for (const DeviceView& d : view.devices) ++devices_by_backend[d.stats->info.backend];
  for (const auto& [backend, count] : devices_by_backend) {
    f.gauge("substrate_devices",
            "Compute devices this daemon checks (found at start and selected by `devices:`), by backend.",
            {{"backend", backend}}, static_cast<double>(count));
  }
  f.gauge("substrate_devices_expected",
          "Compute devices this host should have (expected_devices; 0: no expectation), for the no-devices alert.", {},
          view.expected_devices);
  std::map<std::string, std::size_t> discovery_errors{{"cuda", 0}, {"vulkan", 0}, {"external", 0}, {"discovery", 0}};
  for (const std::string& note : *view.backend_notes) {
    const std::string prefix = note.substr(0, note.find(':'));
    ++discovery_errors[prefix == "cuda" || prefix == "vulkan" || prefix == "external" ? prefix
                                                                                      : std::string("discovery")];
  }
  for (const auto& [backend, count] : discovery_errors) {
    f.gauge("substrate_device_discovery_errors",
            "Problems device discovery reported at start, by backend (discovery: the discovery worker itself "
            "failed): not compiled in, no driver, no devices, a device unusable. Texts in /status backend_notes.",
            {{"backend", backend}}, static_cast<double>(count));
  }
  // Silently probing one slice of a MIG GPU would pass for checking it: what is not probed says so.
  f.family("substrate_device_unprobed",
           "1 for each GPU found and not probed, by reason (a MIG GPU whose instances cannot be listed: "
           "nvml_unavailable, no_permission, enumeration_failed, no_instances, instance_not_visible). Details in "
           "/status unprobed.",
           prometheus::MetricType::Gauge);
  if (view.unprobed) {
    for (const UnprobedGpu& gpu : *view.unprobed) {
      // The GPU's identity as dcgm-exporter labels it; a part NVML could not give is left out.
      std::vector<prometheus::ClientMetric::Label> labels;
      for (auto [name, value] :
           {std::pair{telemetry::kUuidLabel, telemetry::vendor_uuid("nvidia", gpu.uuid)},
            std::pair{telemetry::kPciBusIdLabel, telemetry::vendor_pci_bus_id("nvidia", gpu.pci_bus_id)}}) {
        if (!value.empty()) labels.push_back({name, value});
      }
      labels.push_back({"reason", gpu.reason});
      f.gauge("substrate_device_unprobed", "", std::move(labels), 1);
    }
  }
  // The node under the names the other exporters give it, so their series join without relabelling:
  // kube-state-metrics' `node`, dcgm-exporter's `Hostname` (both $NODE_NAME in Kubernetes, else the
  // host name) and node_exporter's `nodename` (uname).
  f.gauge("substrate_node_info",
          "The node this daemon runs on: node and Hostname are $NODE_NAME (the DaemonSet sets it from spec.nodeName), "
          "else the host name; nodename is the host name as uname gives it.",
          {{"node", view.node_name}, {"Hostname", view.node_name}, {"nodename", view.host_name}}, 1);
  f.gauge("substrate_max_staleness_seconds",
          "max_staleness_seconds: a probe deferred because its device is busy runs at the latest this long after its "
          "last run.",
          {}, view.max_staleness_seconds);
  f.gauge("substrate_config_last_reload_successful", "1 when the last configuration (re)load succeeded.", {},
          view.reload_successful ? 1 : 0);
  f.gauge("substrate_config_last_reload_success_timestamp_seconds", "Time of the last successful configuration load.",
          {}, view.reload_timestamp);
  f.gauge("substrate_telemetry_last_read_timestamp_seconds",
          "End of the last telemetry snapshot (0: none yet), one every telemetry.interval_seconds; a late source "
          "shows in substrate_telemetry_source_last_success_timestamp_seconds.",
          {}, view.telemetry_read_at);
  f.counter("substrate_telemetry_read_overruns_total",
            "Telemetry snapshots skipped because the previous one had not been taken yet.", {},
            static_cast<double>(view.telemetry_overruns));
  // Families a healthy host has no series for still appear (with their TYPE) so dashboards and
  // rules see every name.
  f.family("substrate_probe_failures_total", "Failed scheduled probe runs by reason." + last,
           prometheus::MetricType::Counter);
  f.family("substrate_probe_skipped_total",
           "Scheduled probe runs skipped by reason (not_implemented: the device's backend lacks the probe; "
           "out_of_memory: too little free device memory; device_busy: the device refused this process).",
           prometheus::MetricType::Counter);
  f.family("substrate_baseline_resets_total", "Baselines reset because the driver or kernel build changed.",
           prometheus::MetricType::Counter);
  f.family("substrate_device_changes_total",
           "Recorded device identity/environment fields that changed since the last run (new_device: another GPU in "
           "the slot).",
           prometheus::MetricType::Counter);
  f.family("substrate_worker_exits_total",
           "Worker processes that ended, by outcome: ok, hung (killed at its deadline), crashed (died by a signal), "
           "error (could not start, or exited without its results).",
           prometheus::MetricType::Counter);
  const kubelet::PodResourcesWatcher::Snapshot* pods = view.pod_resources;
  if (pods) {
    f.gauge("substrate_pod_resources_up", "1 when the last List of the kubelet's pod-resources API succeeded.", {},
            pods->up ? 1 : 0);
    f.counter("substrate_pod_resources_errors_total", "Failed Lists of the kubelet's pod-resources API.", {},
              static_cast<double>(pods->errors));
  }
  // Every per-device series below is labelled through telemetry::identity_labels(), so each joins
  // dcgm-exporter's on UUID, pci_bus_id or gpu (docs/metrics.md#device-identity).
  std::vector<telemetry::DeviceIdentity> identities;
  for (const DeviceView& device : view.devices) {
    identities.push_back(telemetry::device_identity(device.stats->info, view.host_devices));
  }
  for (std::size_t i = 0; i < view.devices.size(); ++i) {
    const DeviceStats* slot = view.devices[i].stats;
    const DeviceInfo& info = slot->info;
    const telemetry::DeviceIdentity& id = identities[i];
    auto with = [&id](std::vector<prometheus::ClientMetric::Label> more = {}) {
      return telemetry::identity_labels(id, std::move(more));
    };
    f.gauge("substrate_device_info", "Compute device identity.",
            with({{"name", info.name}, {"vendor", info.vendor}, {"driver", info.driver}, {"backend", info.backend}}),
            1);
    if (pods) {
      // One series per (device, container): which workload is on the device that lies.
      for (const kubelet::DeviceAssignment& a : pods->assignments) {
        if (!kubelet::names_device(a.device_id, info.uuid, info.pci_bus_id)) continue;
        f.gauge("substrate_device_pod_info",
                "Pod, namespace and container the kubelet assigned this device to (pod-resources API).",
                with({{"resource", a.resource_name},
                      {"pod", a.pod},
                      {"namespace", a.pod_namespace},
                      {"container", a.container}}),
                1);
      }
    }
    const Health health = effective_verdict(slot->verdict, slot->telemetry_conditions).health;
    for (Health h : k_all_health) {
      f.gauge("substrate_device_health", "1 for the device's current verdict, 0 for the other states." + last,
              with({{"state", to_string(h)}}), h == health ? 1 : 0);
    }
    for (const auto& [reason, count] : slot->baseline_resets) {
      f.counter("substrate_baseline_resets_total", "", with({{"reason", reason}}), static_cast<double>(count));
    }
    for (const char* outcome : {"ok", "hung", "crashed", "error"}) {
      const auto it = slot->worker_exits.find(outcome);
      f.counter("substrate_worker_exits_total", "", with({{"outcome", outcome}}),
                it == slot->worker_exits.end() ? 0.0 : static_cast<double>(it->second));
    }
    for (const auto& [what, count] : slot->device_changes) {
      f.counter("substrate_device_changes_total", "", with({{"what", what}}), static_cast<double>(count));
    }
    for (const auto& [skip, count] : slot->skipped) {
      f.counter("substrate_probe_skipped_total", "", with({{"probe", skip.first}, {"reason", to_string(skip.second)}}),
                static_cast<double>(count));
    }
    // The scheduler's view of each enabled probe, from its start on (SubstrateProbeStale reads it).
    for (const auto& [probe, timer] : slot->schedule) {
      f.gauge("substrate_probe_interval_seconds", "Configured interval of the probe; each run is re-armed at it.",
              with({{"probe", probe}}), timer.interval_seconds);
      f.gauge("substrate_probe_next_run_timestamp_seconds",
              "When the probe's timer fires next (in the past while the probe is due or running).",
              with({{"probe", probe}}), timer.next_run);
      for (Deferral deferral : k_all_deferrals) {
        f.gauge("substrate_probe_deferred",
                "1 while the probe's next run is deferred for this reason: busy (GPU utilisation above "
                "busy_utilization, at most max_staleness_seconds after its last run), duty_cycle (duty-cycle budget "
                "spent), hung_backoff (the device is hung and waits for its retry).",
                with({{"probe", probe}, {"reason", to_string(deferral)}}), timer.deferral == deferral ? 1 : 0);
      }
    }
    double bandwidth = -1, bad_words = -1;
    for (const auto& [probe, s] : slot->probes) {
      const std::vector<prometheus::ClientMetric::Label> labels = with({{"probe", probe}});
      f.counter("substrate_probe_runs_total", "Completed scheduled probe runs.", labels, static_cast<double>(s.runs));
      // Every reason from the first run on, zeros included, so increase() sees the first failure.
      for (Reason reason : k_all_reasons) {
        const auto it = s.failures.find(reason);
        f.counter("substrate_probe_failures_total", "", with({{"probe", probe}, {"reason", to_string(reason)}}),
                  it == s.failures.end() ? 0.0 : static_cast<double>(it->second));
      }
      f.gauge("substrate_probe_error_budget_ratio", "Max over elements of error divided by the derived bound." + last,
              labels, s.budget);
      f.gauge("substrate_probe_error_budget_drift_ratio",
              "Error budget used divided by the median of the device's own history of the same spec (0: no "
              "history yet)." +
                  last,
              labels, s.budget_drift);
      f.gauge("substrate_probe_guaranteed_bit",
              "Lowest output bit whose flip the check is guaranteed to detect at its guaranteed elements (32: none)." +
                  last,
              labels, s.guaranteed_bit);
      f.gauge("substrate_probe_guaranteed_elements_ratio",
              "Share of checked elements where that guarantee holds (the rest are left to the fingerprint)." + last,
              labels, s.guaranteed_share);
      f.gauge("substrate_probe_mismatched_elements", "Elements outside the bound or not bit-exact." + last, labels,
              static_cast<double>(s.mismatched));
      f.gauge("substrate_probe_duration_seconds", "Device time of the checked kernels." + last, labels,
              s.device_seconds);
      f.gauge("substrate_probe_wall_seconds", "Wall time of the run including generation, golden and check." + last,
              labels, s.wall_seconds);
      f.gauge("substrate_probe_slowdown_ratio",
              "Device time divided by the device's baseline (0: no baseline yet)." + last, labels, s.slowdown_ratio);
      f.gauge("substrate_probe_last_run_timestamp_seconds", "End of the last scheduled run.", labels, s.last_run);
      f.gauge("substrate_probe_last_success_timestamp_seconds", "End of the last scheduled run that passed.", labels,
              s.last_success);
      f.gauge("substrate_probe_drill", "1 while a fault-injection drill is configured for the probe.", labels,
              s.drill ? 1 : 0);
      f.counter("substrate_probe_device_seconds_total",
                "Device time (kernels plus input generation) of every pass of the scheduled runs; its rate is the "
                "share of max_duty_cycle the probe used.",
                labels, s.spent_seconds);
      f.counter("substrate_checked_runs_total",
                "Kernel runs of scheduled rounds whose output was checked, every repeated pass counted (coverage).",
                labels, static_cast<double>(s.checked_runs));
      if (s.checked_flops > 0) {
        f.counter("substrate_checked_flops_total",
                  "Floating-point operations of checked GEMM and attention runs (2 per multiply-add).", labels,
                  s.checked_flops);
      }
      if (s.checked_bytes > 0) {
        f.counter("substrate_checked_bytes_total", "Bytes of device memory the checked memory runs tested.", labels,
                  s.checked_bytes);
      }
      f.counter("substrate_fingerprint_changes_total",
                "Output fingerprint differed from the previous run of the same key without a baseline reset.", labels,
                static_cast<double>(s.fingerprint_changes));
      f.gauge("substrate_cross_device_mismatch", "1 when the device is in the minority of its same-model peers." + last,
              labels, s.cross_device ? 1 : 0);
      for (const ProbeResult& r : s.last_results) {
        if (r.fingerprint.empty() || r.drill()) continue;
        f.gauge(
            "substrate_kernel_fingerprint_info",
            "Hash of the output bits of a probe spec; equal model, driver, kernel build and spec must agree." + last,
            with({{"probe", probe},
                  {"spec", spec_key(r.spec) + "#" + std::to_string(r.spec.seed)},
                  {"fingerprint", r.fingerprint},
                  {"model", info.name},
                  {"driver", info.driver},
                  {"kernel_build", info.kernel_build}}),
            1);
      }
      for (const ProbeResult& r : s.last_results) {
        if (!r.memory) continue;
        bandwidth = r.memory->bandwidth_bytes_per_second;
        bad_words = static_cast<double>(r.memory->bad_words + r.memory->retention_bad_words);
      }
    }
    // Which embedded kernel image the driver took (CUDA: "sass sm_90", or "ptx-jit 8.0" on drivers
    // before R580): from the newest run that opened the device, else from discovery.
    std::string image = slot->info.kernel_image;
    for (const auto& [probe, s] : slot->probes) {
      for (const ProbeResult& r : s.last_results) {
        if (!r.device.kernel_image.empty()) image = r.device.kernel_image;
      }
    }
    if (!image.empty()) {
      f.gauge("substrate_kernel_image_info", "1 for the kernel image the driver loaded for the device.",
              with({{"image", image}}), 1);
    }
    if (info.is_mig()) {
      f.gauge("substrate_mig_instance_info",
              "1 for a device that is a MIG instance: its parent GPU's UUID, GPU instance id and profile.",
              with({{"parent_uuid", telemetry::vendor_uuid("nvidia", info.mig_parent_uuid)},
                    {"gpu_instance", std::to_string(info.mig_gpu_instance)},
                    {"profile", info.mig_profile}}),
              1);
    }
    if (bandwidth >= 0) {
      f.gauge("substrate_memory_bandwidth_bytes_per_second", "Achieved by the memory probe (read plus written)." + last,
              with(), bandwidth);
      f.gauge("substrate_memory_bad_words", "Bad words in the last memory probe run, retention block included." + last,
              with(), bad_words);
    }
  }
  std::vector<prometheus::MetricFamily> families = std::move(f.all());
  for (auto& family : telemetry::to_metric_families(*view.telemetry, identities)) families.push_back(std::move(family));
  for (auto& family : process_metric_families(scrape_started)) families.push_back(std::move(family));
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace substrate
