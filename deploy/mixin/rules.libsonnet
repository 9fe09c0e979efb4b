// Recording rules. Counters created on first increment: `increase()` needs two samples and
// therefore misses the first event of a series that appears already at 1. The *:new* rules add a
// "new series" branch: the counter exists and is > 0 now, did not exist W ago, while the daemon did
// report the same device/probe W ago (so a fresh Prometheus or a fresh daemon does not count old
// history).
{
  prometheusRules+:: {
    local c = $._config,
    local f(s) = s % { sel: c.substratedSelector },
    groups+: [
      {
        name: 'substrated.records',
        rules: [
          {
            // Probe failures (any reason) in the last 30 minutes, present only when > 0.
            record: 'substrate:probe_failures:new30m',
            expr: f(|||
              (increase(substrate_probe_failures_total{%(sel)s}[30m]) > 0)
              or
              (
                (
                  substrate_probe_failures_total{%(sel)s} > 0
                  unless on (job, instance, substrate_device, probe, reason)
                    substrate_probe_failures_total{%(sel)s} offset 30m
                )
                and on (job, instance, substrate_device, probe)
                  substrate_probe_runs_total{%(sel)s} offset 30m
              )
            |||),
          },
          {
            // Fingerprint changes (without a baseline reset) in the last hour, present only when > 0.
            record: 'substrate:fingerprint_changes:new1h',
            expr: f(|||
              (increase(substrate_fingerprint_changes_total{%(sel)s}[1h]) > 0)
              or
              (
                (
                  substrate_fingerprint_changes_total{%(sel)s} > 0
                  unless on (job, instance, substrate_device, probe)
                    substrate_fingerprint_changes_total{%(sel)s} offset 1h
                )
                and on (job, instance, substrate_device, probe)
                  substrate_probe_runs_total{%(sel)s} offset 1h
              )
            |||),
          },
          {
            // Uncorrected ECC errors in the last hour per device, any scope and location, only when > 0.
            record: 'substrate:ecc_uncorrected_errors:new1h',
            expr: f(|||
              max without (scope, location) (
                (increase(substrate_ecc_errors_total{%(sel)s,kind="uncorrected"}[1h]) > 0)
                or
                (
                  (
                    substrate_ecc_errors_total{%(sel)s,kind="uncorrected"} > 0
                    unless on (job, instance, substrate_device, kind, scope, location)
                      substrate_ecc_errors_total{%(sel)s,kind="uncorrected"} offset 1h
                  )
                  and on (job, instance, substrate_device)
                    substrate_device_info{%(sel)s} offset 1h
                )
              )
            |||),
          },
          // Fleet comparison of kernel fingerprints (across every host this Prometheus sees).
          // Group key: same probe, spec, device model, driver and kernel build.
          {
            record: 'substrate:kernel_fingerprint:devices',
            expr: f('count by (probe, spec, model, driver, kernel_build) (substrate_kernel_fingerprint_info{%(sel)s})'),
          },
          {
            record: 'substrate:kernel_fingerprint:devices_by_fingerprint',
            expr: f('count by (probe, spec, model, driver, kernel_build, fingerprint) (substrate_kernel_fingerprint_info{%(sel)s})'),
          },
          {
            // Share of the group holding each device's fingerprint (1 = unanimous), per device.
            record: 'substrate:kernel_fingerprint:share',
            expr: f(|||
              (
                substrate_kernel_fingerprint_info{%(sel)s}
                * on (probe, spec, model, driver, kernel_build, fingerprint) group_left ()
                  substrate:kernel_fingerprint:devices_by_fingerprint
              )
              / on (probe, spec, model, driver, kernel_build) group_left ()
                substrate:kernel_fingerprint:devices
            |||),
          },
          {
            // Share of the most common fingerprint in each group (> 0.5: a strict majority exists).
            record: 'substrate:kernel_fingerprint:majority_share',
            expr: |||
              max by (probe, spec, model, driver, kernel_build) (substrate:kernel_fingerprint:devices_by_fingerprint)
              / on (probe, spec, model, driver, kernel_build)
                substrate:kernel_fingerprint:devices
            |||,
          },
        ],
      },
      {
        // Joins with the exporters an operator already runs (docs/metrics.md#device-identity).
        // Every substrate series carries dcgm-exporter's UUID, pci_bus_id and gpu; these add the
        // node under each exporter's own label name and fold the verdict into one series per
        // device, so dcgm-exporter's, node_exporter's and kube-state-metrics' series join them with
        // `on (UUID)`, `on (nodename)`, `on (namespace, pod)` and no label_replace.
        name: 'substrated.joins',
        rules: [
          {
            // The verdict of each device as one number (0 healthy, 1 degraded, 2 failed, 3 hung,
            // 4 unknown), with its identity and its node: `node` (kube-state-metrics), `Hostname`
            // (dcgm-exporter), `nodename` (node_exporter). `>= 2` selects the failing devices.
            record: 'substrate:device_verdict',
            expr: f(|||
              max without (state) (
                  (substrate_device_health{%(sel)s,state="healthy"} == 1) * 0
                or
                  (substrate_device_health{%(sel)s,state="degraded"} == 1)
                or
                  (substrate_device_health{%(sel)s,state="failed"} == 1) * 2
                or
                  (substrate_device_health{%(sel)s,state="hung"} == 1) * 3
                or
                  (substrate_device_health{%(sel)s,state="unknown"} == 1) * 4
              )
              * on (job, instance) group_left (node, Hostname, nodename)
                substrate_node_info{%(sel)s}
            |||),
          },
          {
            // The worst verdict per GPU UUID (a GPU checked by two backends, cuda0 and vulkan1, has
            // two devices): one series per UUID, so dcgm-exporter's series take it with
            // `* on (UUID) group_left` without a many-to-many match.
            record: 'uuid:substrate_device_verdict:max',
            expr: 'max by (UUID, Hostname) (substrate:device_verdict{UUID!=""})',
          },
          {
            // The verdict of the device each container was assigned (kubelet pod-resources API),
            // per (device, container): `>= 2` gives the pods on failing devices; kube-state-metrics'
            // kube_pod_info joins it `on (namespace, pod)`.
            record: 'substrate:device_pod_verdict',
            expr: f(|||
              substrate_device_pod_info{%(sel)s}
              * on (job, instance, substrate_device) group_left (node, Hostname, nodename)
                substrate:device_verdict
            |||),
          },
        ],
      },
      {
        // Long windows are evaluated less often: a 7-day average of a 1-hour average. The
        // dashboard's drift panel reads these too.
        name: 'substrated.records.slow',
        interval: '5m',
        rules: [
          {
            record: 'substrate:probe_error_budget_ratio:avg1h',
            expr: f('avg_over_time(substrate_probe_error_budget_ratio{%(sel)s}[1h])'),
          },
          {
            record: 'substrate:probe_error_budget_ratio:avg7d',
            expr: 'avg_over_time(substrate:probe_error_budget_ratio:avg1h[7d])',
          },
        ],
      },
    ],
  },
}
