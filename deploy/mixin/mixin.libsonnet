// substrated monitoring mixin: Prometheus recording and alerting rules, the Grafana dashboard and
// the Alertmanager inhibition rules, generated from one `_config`.
//
// Use it as kube-prometheus mixins are used:
//
//   local substrated = (import 'substrated-mixin/mixin.libsonnet') + {
//     _config+:: { substratedSelector: 'job="gpu-check"', runbookURLPattern: 'https://wiki/%s' },
//   };
//   substrated.prometheusRules + substrated.prometheusAlerts   // { groups: [...] }
//   substrated.grafanaDashboards['substrated-dashboard.json']
//   substrated.alertmanagerInhibitRules                        // [ {source_matchers, ...} ]
//
// The files committed under deploy/ are this mixin with the defaults below, written by
// deploy/mixin/generate.sh; tests/deploy/mixin_test.sh fails when they differ.
(import 'rules.libsonnet')
+ (import 'alerts.libsonnet')
+ (import 'dashboards.libsonnet')
+ (import 'alertmanager.libsonnet')
+ {
  _config+:: {
    // Selects substrated's series. Every raw metric in the rules and the dashboard carries it, and
    // SubstratedDown watches up{<selector>}.
    substratedSelector: 'job="substrated"',
    // Runbook of an alert: this pattern with %s replaced by the lower-cased alert name (the anchor
    // of its section in docs/operations.md).
    runbookURLPattern: 'https://github.com/substrated/substrated/blob/main/docs/operations.md#%s',
    // Labels that tell devices apart across the fleet: Alertmanager inhibits only within one device
    // (these labels equal), and routes one device's alerts into one group (one notification). A
    // label missing from both alerts counts as equal, so `cluster` is harmless without clusters.
    clusterLabel: 'cluster',
    deviceIdentityLabels: [self.clusterLabel, 'instance', 'substrate_device'],

    // Scheduling, as configured in substrated.yaml (docs/configuration.md), for the dashboard's
    // thresholds only: SubstrateProbeStale reads each probe's interval, deferral reason and
    // max_staleness_seconds from the daemon's own series.
    probeIntervalSeconds: 300,  // probes.ID.interval_seconds
    maxStalenessSeconds: 3600,  // max_staleness_seconds: a busy device defers at most this long
    busyUtilization: 0.5,  // busy_utilization: above this GPU utilisation due probes defer
    // SubstrateProbeStale: no passing run for this long (3 intervals) on a device that was not busy...
    probeStaleSeconds: 3 * self.probeIntervalSeconds,
    // ...and for this long on a device that was busy (so probes may have been deferred) in the last
    // maxStalenessSeconds: the longest deferral the daemon allows plus the same 3 intervals.
    probeStaleBusySeconds: self.maxStalenessSeconds + self.probeStaleSeconds,

    // Thresholds.
    // SubstrateErrorBudgetHigh: budget used / the median of the device's own history of the same
    // spec (substrate_probe_error_budget_drift_ratio). A healthy device is at 1 at every shape (a
    // fixed seed repeats its bits); a fixed share of the bound is not (an f32 GEMM with K = 1 uses
    // 0.93 of it, healthy), so the threshold is relative.
    errorBudgetHighFactor: 8,
    errorBudgetDriftFactor: 4,  // SubstrateErrorBudgetDrift: 1 h average / 7 d average above this...
    errorBudgetDriftMinRatio: 0.01,  // ...and the 1 h average above this
    slowdownRatio: 1.5,  // SubstrateProbeSlowdown: device time / baseline
    thermalActiveRatio: 0.5,  // SubstrateThermalSlowdown: share of 10 minutes throttled
    fleetMinDevices: 3,  // fleet fingerprint alerts: smallest group compared
    // XIDs that degrade or fail the device verdict (48 DBE, 61/62 microcontroller, 63/64 row
    // remap/page retirement events, 74 NVLink, 79 fell off the bus, 92 high SBE rate, 94/95
    // contained/uncontained ECC, 119/120 GSP, 140 unrecovered ECC, 154 recovery action required);
    // the others are SubstrateXid (info). The one table is probes/telemetry/findings.cpp (shown in
    // docs/findings.md); tests/probes/telemetry/findings_test.cpp fails when this list differs.
    criticalXids: ['48', '61', '62', '63', '64', '74', '79', '92', '94', '95', '119', '120', '140', '154'],

    // `for:` of each alert. An alert not listed fires on the first evaluation that finds it: it
    // reports a definite fault (a result outside a rigorous bound, changed bits for identical
    // input, an uncorrectable ECC error, a hardware XID) or a verdict the daemon already reached
    // with its own hysteresis (failed, hung), or it is info. The others should not page on one run
    // or one sample.
    alertFor: {
      SubstrateFleetFingerprintMinority: '10m',
      SubstrateFleetFingerprintNoMajority: '30m',
      SubstrateErrorBudgetHigh: '15m',
      SubstrateErrorBudgetDrift: '1h',
      SubstrateProbeSlowdown: '15m',
      SubstrateRowRemapFailed: '5m',
      SubstrateRowRemapPending: '5m',
      SubstrateThermalSlowdown: '5m',
      SubstrateDeviceDegraded: '30m',
      SubstrateProbeStale: '10m',
      SubstrateTelemetrySourceLate: '10m',
      SubstratedDown: '5m',
      SubstrateConfigReloadFailed: '5m',
      SubstrateNvmlInitFailed: '10m',
    },

    // Grafana.
    dashboardUid: 'substrated-overview',
    dashboardTitle: 'substrated: GPU correctness',
    dashboardRefresh: '1m',
    // Optional label variables: each becomes a dashboard variable (All = any value, also none), so
    // a Prometheus without them still shows everything. `node` and `pod` come from the
    // ServiceMonitor (deploy/kubernetes/base/servicemonitor.yaml) or your relabelling; `cluster`
    // usually from external labels.
    dashboardLabelVariables: [
      { name: 'cluster', label: 'Cluster' },
      { name: 'node', label: 'Node' },
      { name: 'pod', label: 'Pod' },
    ],

    // Kubernetes (deploy/kubernetes/base/prometheusrule.yaml): the namespace, and the labels the
    // Prometheus Operator's ruleSelector matches (kube-prometheus-stack's default selects
    // release=<its Helm release name>; change it here or with a kustomize patch).
    kubernetesNamespace: 'substrated',
    prometheusRuleLabels: { release: 'kube-prometheus-stack' },

    // Alertmanager example: receivers for pages and for notifications that must not page (the
    // drill, warnings, info). Replace the URLs with your pager and chat webhooks.
    pageReceiver: 'substrated-page',
    notifyReceiver: 'substrated-notify',
    pageWebhookURL: 'https://pager.example.invalid/substrated',
    notifyWebhookURL: 'https://chat.example.invalid/substrated',
  },
}
