// Alerting rules. Each alert has a severity, a static summary (the same text for every device, so
// notifications group and read alike), a description with the details (device, host, probe,
// values) and a runbook_url into docs/operations.md. Check results are gauges of the LAST
// scheduled run, so they stay visible for a whole interval; `for:` durations are in
// _config.alertFor (see mixin.libsonnet for which alerts have none and why).
//
// Paging once per bad GPU is Alertmanager's part: alertmanager.libsonnet groups one device's
// alerts into one notification and inhibits the consequences of a verdict (and of a drill).
{
  local c = $._config,
  local f(s) = s % (c { sel: c.substratedSelector }),
  local pct(r) = '%d%%' % std.floor(r * 100 + 0.5),
  local criticalXids = std.join('|', c.criticalXids),
  // '30m' -> '30 minutes', '1h' -> '1 hour' (for the texts; `for:` keeps Prometheus's form).
  local human(d) =
    local n = std.parseInt(std.substr(d, 0, std.length(d) - 1));
    local unit = { s: 'second', m: 'minute', h: 'hour', d: 'day' }[d[std.length(d) - 1]];
    '%d %s%s' % [n, unit, if n == 1 then '' else 's'],

  local alert(name, severity, expr, summary, description) = {
    alert: name,
    expr: expr,
    [if std.objectHas(c.alertFor, name) then 'for']: c.alertFor[name],
    labels: { severity: severity },
    annotations: {
      summary: summary,
      description: description,
      runbook_url: c.runbookURLPattern % std.asciiLower(name),
    },
  },

  // The numerical-fault condition, shared by SubstrateNumericalFault and SubstrateDrillDetected.
  local numericalFault = f(|||
    max without (reason) (substrate:probe_failures:new30m{reason="golden_mismatch"})
    or
    substrate_probe_mismatched_elements{%(sel)s} > 0
  |||),

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'substrated.alerts',
        rules: [
          // ------------------------------------------------------------ numerical correctness
          alert(
            'SubstrateNumericalFault', 'critical', numericalFault,
            'A GPU computed wrong results in a correctness probe.',
            'Probe {{ $labels.probe }} on device {{ $labels.substrate_device }} ({{ $labels.instance }}) produced results outside the rigorous error bound of the CPU golden (or not bit-exact in exact mode) in its last run or within the last 30 minutes. The hardware is computing wrong numbers: drain the node. If substrate_probe_drill is 1 for this device, this is a drill.'
          ),
          alert(
            'SubstrateMemoryFault', 'critical', f('substrate_memory_bad_words{%(sel)s} > 0'),
            'GPU memory returned data that differs from what was written.',
            'The memory probe on {{ $labels.substrate_device }} ({{ $labels.instance }}) read back {{ $value }} words that differ from what was written (including retention). Device memory is corrupting data: drain the node.'
          ),
          alert(
            'SubstrateNondeterminism', 'critical', 'substrate:fingerprint_changes:new1h > 0',
            'A GPU changed its result for identical input.',
            'The fingerprint of probe {{ $labels.probe }} on {{ $labels.substrate_device }} ({{ $labels.instance }}) differs from the previous run with the same driver, kernel build and spec, without a baseline reset, within the last hour. The probe kernels are deterministic by construction, so the device computed different bits for the same input.'
          ),
          alert(
            'SubstrateCrossDeviceMismatch', 'critical', f(|||
              substrate_cross_device_mismatch{%(sel)s} > 0
              or
              max without (reason) (substrate:probe_failures:new30m{reason="cross_device"})
            |||),
            'A GPU disagrees with its same-model peers on the host.',
            'On {{ $labels.instance }}, device {{ $labels.substrate_device }} is in the minority of the cross-device vote for probe {{ $labels.probe }}: identical input, same model, driver and kernel build, different result. The minority device is the suspect.'
          ),
          alert(
            'SubstrateFleetFingerprintMinority', 'critical', f(|||
              substrate:kernel_fingerprint:share < 0.5
              and on (probe, spec, model, driver, kernel_build)
                (substrate:kernel_fingerprint:majority_share > 0.5)
              and on (probe, spec, model, driver, kernel_build)
                (substrate:kernel_fingerprint:devices >= %(fleetMinDevices)d)
            |||),
            'A GPU computes a different result than the fleet majority.',
            'Across the fleet, devices of model {{ $labels.model }} with driver {{ $labels.driver }}, kernel build {{ $labels.kernel_build }} and spec {{ $labels.spec }} agree on one fingerprint for probe {{ $labels.probe }}; {{ $labels.substrate_device }} on {{ $labels.instance }} reports {{ $labels.fingerprint }}, shared by only {{ $value | humanizePercentage }} of the group.'
          ),
          alert(
            'SubstrateFleetFingerprintNoMajority', 'warning', f(|||
              substrate:kernel_fingerprint:majority_share <= 0.5
              and on (probe, spec, model, driver, kernel_build)
                (substrate:kernel_fingerprint:devices >= %(fleetMinDevices)d)
            |||),
            'Devices of one model and driver do not agree on a probe fingerprint.',
            'Devices of model {{ $labels.model }} with driver {{ $labels.driver }}, kernel build {{ $labels.kernel_build }} and spec {{ $labels.spec }} do not agree on a majority fingerprint for probe {{ $labels.probe }} (largest share {{ $value | humanizePercentage }}). Either the group mixes different hardware under one model name or the probe is not deterministic on it.'
          ),

          // ------------------------------------------------------------ error budget and speed
          alert(
            'SubstrateErrorBudgetHigh', 'warning',
            f('substrate_probe_error_budget_drift_ratio{%(sel)s} > %(errorBudgetHighFactor)g'),
            "A GPU's error is far above its own history for a probe.",
            'The worst element of probe {{ $labels.probe }} on {{ $labels.substrate_device }} ({{ $labels.instance }}) is within the rigorous bound, but its error is {{ printf `%%.3g` $value }} times what the same spec showed on this device before (median of its earlier runs; alert above %(errorBudgetHighFactor)g). A healthy device repeats its error exactly for the same inputs, whatever share of the bound the shape uses; this one is moving towards failing the check.' % c
          ),
          alert(
            'SubstrateErrorBudgetDrift', 'warning', f(|||
              substrate:probe_error_budget_ratio:avg1h > %(errorBudgetDriftFactor)g * substrate:probe_error_budget_ratio:avg7d
              and substrate:probe_error_budget_ratio:avg1h > %(errorBudgetDriftMinRatio)g
            |||),
            "A GPU's error budget is drifting upward.",
            'The 1-hour average error budget of probe {{ $labels.probe }} on {{ $labels.substrate_device }} ({{ $labels.instance }}) is {{ printf `%%.3g` $value }}, more than %(errorBudgetDriftFactor)g times its 7-day average. Still inside the bound, but a device whose rounding error grows is degrading.' % c
          ),
          alert(
            'SubstrateProbeSlowdown', 'warning', f('substrate_probe_slowdown_ratio{%(sel)s} > %(slowdownRatio)g'),
            'A GPU runs a probe much slower than its own baseline.',
            'Device time of probe {{ $labels.probe }} on {{ $labels.substrate_device }} ({{ $labels.instance }}) is {{ printf `%%.3g` $value }} times the device\'s own baseline and has been more than %(slowdownRatio)g times it for %(for)s. Check throttling, clocks, power capping and PCIe link state.' % (c { 'for': human(c.alertFor.SubstrateProbeSlowdown) })
          ),

          // ------------------------------------------------------------ hardware telemetry
          alert(
            'SubstrateUncorrectableECC', 'critical', 'substrate:ecc_uncorrected_errors:new1h > 0',
            'A GPU had uncorrectable ECC errors.',
            'The uncorrected ECC error count of {{ $labels.substrate_device }} ({{ $labels.instance }}) rose within the last hour. Data in device memory was lost; any job that ran on it may have consumed corrupted values.'
          ),
          alert(
            'SubstrateRowRemapFailed', 'critical', f('substrate_remapped_rows_failure{%(sel)s} > 0'),
            'GPU memory row remapping failed.',
            'The GPU could not remap a failing memory row on {{ $labels.substrate_device }} ({{ $labels.instance }}): its spare rows are exhausted or remapping broke. The device needs an RMA.'
          ),
          alert(
            'SubstrateRowRemapPending', 'warning',
            f('substrate_remapped_rows_pending{%(sel)s} > 0 or substrate_retired_pages_pending{%(sel)s} > 0'),
            'A GPU needs a reset to finish a row remap or page retirement.',
            'A memory row remap (or page retirement on older GPUs) is pending on {{ $labels.substrate_device }} ({{ $labels.instance }}); it takes effect only after a GPU reset. Until then the bad row is still in use.'
          ),
          // Uses the last-event timestamp, so the first event is caught even when the series is
          // brand new, and every repeat moves the timestamp again.
          alert(
            'SubstrateCriticalXid', 'critical', f(|||
              (time() - substrate_xid_last_timestamp_seconds{%(sel)s,xid=~"%(xids)s"} < 3600)
              or
              (changes(substrate_xid_last_timestamp_seconds{%(sel)s,xid=~"%(xids)s"}[1h]) > 0)
            ||| % { xids: criticalXids, sel: '%(sel)s' }),
            'A GPU reported a hardware-class XID.',
            'The NVIDIA driver reported XID {{ $labels.xid }} on {{ $labels.substrate_device }} ({{ $labels.instance }}) within the last hour. This XID class points at the hardware, memory, bus or GPU firmware, not at the application.'
          ),
          alert(
            'SubstrateXid', 'info', f(|||
              (time() - substrate_xid_last_timestamp_seconds{%(sel)s,xid!~"%(xids)s"} < 3600)
              or
              (changes(substrate_xid_last_timestamp_seconds{%(sel)s,xid!~"%(xids)s"}[1h]) > 0)
            ||| % { xids: criticalXids, sel: '%(sel)s' }),
            'A GPU reported an application-class XID.',
            'The NVIDIA driver reported XID {{ $labels.xid }} on {{ $labels.substrate_device }} ({{ $labels.instance }}) within the last hour. XIDs outside the critical set (13, 31, 43, 45, ...) usually come from the application (illegal address, killed context); correlate with the job\'s logs.'
          ),
          alert(
            'SubstrateThermalSlowdown', 'warning', f(|||
              avg_over_time(substrate_clock_event_reasons{%(sel)s,reason=~"hw_thermal_slowdown|sw_thermal_slowdown|hw_slowdown"}[10m]) > %(thermalActiveRatio)g
              or
              rate(substrate_throttle_seconds_total{%(sel)s,reason=~"hw_thermal_slowdown|sw_thermal_slowdown|hw_slowdown"}[10m]) > %(thermalActiveRatio)g
            |||),
            'A GPU is throttled by temperature or a hardware slowdown.',
            '{{ $labels.substrate_device }} ({{ $labels.instance }}) has spent more than %s of the last 10 minutes with clock-event reason {{ $labels.reason }} active. Check cooling, fans, inlet temperature and power delivery; sustained hardware slowdown also shows as probe slowdown.' % (if c.thermalActiveRatio == 0.5 then 'half' else pct(c.thermalActiveRatio))
          ),

          // ------------------------------------------------------------ verdicts
          alert(
            'SubstrateDeviceFailed', 'critical', f('substrate_device_health{%(sel)s,state="failed"} == 1'),
            "substrated's verdict for a GPU is failed.",
            'The daemon\'s verdict for {{ $labels.substrate_device }} ({{ $labels.instance }}) is "failed" (a definite numerical fault, or repeated failures past the hysteresis). `substrated status` on the host gives the reasons; the alerts it inhibits in Alertmanager (numerical fault, mismatch, fingerprint) name the probe.'
          ),
          alert(
            'SubstrateDeviceHung', 'critical', f('substrate_device_health{%(sel)s,state="hung"} == 1'),
            'A GPU is hung.',
            'A probe kernel on {{ $labels.substrate_device }} ({{ $labels.instance }}) did not return within its timeout. The daemon still answers; the device does not. Jobs on it will hang too.'
          ),
          alert(
            'SubstrateDeviceDegraded', 'warning', f('substrate_device_health{%(sel)s,state="degraded"} == 1'),
            "substrated's verdict for a GPU has been degraded for %s." % human(c.alertFor.SubstrateDeviceDegraded),
            'The daemon\'s verdict for {{ $labels.substrate_device }} ({{ $labels.instance }}) has been "degraded" for %s (transient failures, slowdown or budget drift below the failure threshold).' % human(c.alertFor.SubstrateDeviceDegraded)
          ),

          // ------------------------------------------------------------ the checker itself
          // "Stale" follows the daemon's own schedule, read from its series: three of the probe's
          // intervals (substrate_probe_interval_seconds) without a pass; while the daemon defers the
          // probe because the device is busy (substrate_probe_deferred{reason="busy"}), which it does
          // for at most max_staleness_seconds after the probe's last run
          // (substrate_max_staleness_seconds), that limit plus the three intervals. A deferral
          // within its limit does not alert; one beyond it does, and so does a probe held back by
          // the duty-cycle budget or a hung device's backoff.
          alert(
            'SubstrateProbeStale', 'warning', f(|||
              (
                time() - substrate_probe_last_success_timestamp_seconds{%(sel)s}
                  > 3 * substrate_probe_interval_seconds{%(sel)s}
                unless on (job, instance, substrate_device, probe)
                  (substrate_probe_deferred{%(sel)s,reason="busy"} == 1)
              )
              or
              (
                time() - substrate_probe_last_success_timestamp_seconds{%(sel)s}
                and on (job, instance, substrate_device, probe)
                (
                  time() - substrate_probe_last_success_timestamp_seconds{%(sel)s}
                    - 3 * substrate_probe_interval_seconds{%(sel)s}
                  > on (job, instance) group_left ()
                    substrate_max_staleness_seconds{%(sel)s}
                )
              )
            |||),
            'A probe has not passed on a GPU for longer than its schedule allows.',
            'Probe {{ $labels.probe }} on {{ $labels.substrate_device }} ({{ $labels.instance }}) last passed {{ $value | humanizeDuration }} ago: more than 3 of its intervals (substrate_probe_interval_seconds) while it was not deferred for a busy device, or more than max_staleness_seconds (the longest a busy device defers it) plus 3 intervals. It fails, times out, or is not scheduled (duty-cycle budget, hung-device backoff, worker stuck): substrate_probe_deferred and substrate_probe_next_run_timestamp_seconds say which.'
          ),
          // A telemetry source whose reads miss their deadline (telemetry.timeout_seconds): its
          // series are left out, not repeated, so the temperature and ECC alerts are blind there.
          alert(
            'SubstrateTelemetrySourceLate', 'warning',
            f('increase(substrate_telemetry_source_timeouts_total{%(sel)s}[10m]) > 0'),
            'A telemetry source of substrated stopped answering in time.',
            'Reads of telemetry source {{ $labels.source }} on {{ $labels.instance }} missed their deadline in the last 10 minutes, for %s. Its series (temperatures, ECC, throttling) are left out while it is late, so the alerts that use them cannot fire for its devices. A driver call or sysfs attribute that blocks is a sign of a wedged driver or device.' % human(c.alertFor.SubstrateTelemetrySourceLate)
          ),
          // A host whose configuration says how many devices it should have (expected_devices,
          // exported as substrate_devices_expected; 0 = no expectation) and checks fewer. Zero
          // devices is otherwise silent: every per-device alert needs a device to fire on.
          alert(
            'SubstrateDevicesMissing', 'warning', f(|||
              sum by (job, instance) (substrate_devices{%(sel)s})
              < on (job, instance)
              (substrate_devices_expected{%(sel)s} > 0)
            |||),
            'substrated checks fewer GPUs than the host should have.',
            'substrated on {{ $labels.instance }} checks {{ $value }} compute device(s), fewer than expected_devices in its configuration. A GPU fell off the bus, its driver did not load, or discovery failed: substrate_device_discovery_errors and `substrated status` (backend_notes) say which. Nothing checks the missing GPUs.'
          ),
          // A GPU the daemon found and does not probe (a MIG-enabled GPU whose instances it
          // cannot list): probing the one slice a CUDA process sees would pass for checking it,
          // so it probes none and says so (docs/cuda.md, "MIG").
          alert(
            'SubstrateGpuUnprobed', 'warning', f('substrate_device_unprobed{%(sel)s} == 1'),
            'A GPU on a substrated host is not checked.',
            'GPU {{ $labels.pci_bus_id }} {{ $labels.UUID }} on {{ $labels.instance }} is not probed ({{ $labels.reason }}): it is MIG-enabled and substrated cannot list its MIG instances, so none of them is checked. `substrated status` and /status `unprobed` give the detail.'
          ),
          alert(
            'SubstratedDown', 'warning', f('up{%(sel)s} == 0 or absent(up{%(sel)s})'),
            'substrated is down or has no scrape target.',
            '{{ if $labels.instance }}Prometheus cannot scrape substrated at {{ $labels.instance }}.{{ else }}Prometheus has no target of %s at all (service discovery or scrape configuration).{{ end }} Nothing checks the GPUs there and every other substrated alert for those hosts is blind.' % (
              if std.startsWith(c.substratedSelector, 'job="') then 'job ' + std.strReplace(std.strReplace(c.substratedSelector, 'job="', ''), '"', '')
              else 'selector ' + c.substratedSelector
            )
          ),
          alert(
            'SubstrateConfigReloadFailed', 'warning', f('substrate_config_last_reload_successful{%(sel)s} == 0'),
            'substrated rejected its configuration.',
            'The last reload (SIGHUP) of /etc/substrated/substrated.yaml on {{ $labels.instance }} failed validation; the daemon keeps running with the previous configuration. The next restart would fail with exit code 78.'
          ),
          alert(
            'SubstrateNvmlInitFailed', 'warning', f('substrate_nvml_up{%(sel)s} == 0'),
            'NVML does not initialise: NVIDIA telemetry is missing.',
            'libnvidia-ml is installed on {{ $labels.instance }} but nvmlInit keeps failing (the daemon retries with a backoff up to 5 minutes; substrate_telemetry_errors_total{cause="init_failed"} counts the tries). No ECC, XID, temperature or throttling telemetry reaches the verdicts of its NVIDIA GPUs: an XID or ECC error there goes unseen. Check the driver (nvidia-smi, dmesg) and its version against libnvidia-ml.'
          ),

          // ------------------------------------------------------------ drills (never page)
          // While a drill is configured, Alertmanager inhibits the device's correctness and
          // verdict alerts; these two info alerts go to the non-paging receiver instead.
          alert(
            'SubstrateDrillActive', 'info', f('substrate_probe_drill{%(sel)s} == 1'),
            'A fault-injection drill is active.',
            'A drill is configured for probe {{ $labels.probe }} on {{ $labels.substrate_device }} ({{ $labels.instance }}): its numerical-fault alerts are expected, and the shipped Alertmanager inhibition keeps them from paging. Remove the drill key from the configuration and reload when the drill is over.'
          ),
          alert(
            'SubstrateDrillDetected', 'info', f(|||
              substrate_probe_drill{%(sel)s} == 1
              and on (job, instance, substrate_device, probe)
                (
                  substrate_probe_mismatched_elements{%(sel)s} > 0
                  or
                  max without (reason) (substrate:probe_failures:new30m)
                )
            |||),
            "A drill's injected fault was detected.",
            'The drill on probe {{ $labels.probe }} on {{ $labels.substrate_device }} ({{ $labels.instance }}) was detected: the probe failed (wrong results, a timeout or a crash, as injected) within the last 30 minutes. The detection path works up to Prometheus; this notification arriving shows that Alertmanager routes it. Nothing pages for a drill.'
          ),
        ],
      },
    ],
  },
}
