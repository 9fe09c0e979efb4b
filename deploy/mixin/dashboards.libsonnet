// The Grafana dashboard. Every query filters by the dashboard variables: the optional label
// variables of _config.dashboardLabelVariables (cluster, node, pod; "All" also matches series
// without the label) and instance and device. Long-window panels read the recording rules of
// rules.libsonnet instead of recomputing them.
{
  local c = $._config,
  local ds = { type: 'prometheus', uid: '${datasource}' },
  local labelVars = [v.name for v in c.dashboardLabelVariables],
  // Matchers for the host (no device label) and for device series.
  local hostSel = std.join(',', [c.substratedSelector] + ['%s=~"$%s"' % [l, l] for l in labelVars + ['instance']]),
  local sel = hostSel + ',substrate_device=~"$substrate_device"',
  local f(s) = s % { sel: sel, host: hostSel },

  local target(expr, legend='', table=false) = {
    datasource: ds,
    expr: f(expr),
    legendFormat: legend,
  } + (if table then { format: 'table', instant: true } else {}),

  // A panel; refIds are assigned A, B, ... in order, ids and grid positions by layout() below.
  local panel(type, title, description, targets, w, h, defaults={}, options={}, extra={}) = {
    type: type,
    title: title,
    description: description,
    datasource: ds,
    targets: [targets[i] { refId: std.char(65 + i) } for i in std.range(0, std.length(targets) - 1)],
    fieldConfig: { defaults: defaults, overrides: [] },
    options: options,
    size:: { w: w, h: h },
  } + extra,
  local ts(title, description, targets, w=8, h=8, unit='short', defaults={}) =
    panel('timeseries', title, description, targets, w, h, { unit: unit } + defaults),
  local bars = { custom: { drawStyle: 'bars', fillOpacity: 80 } },
  local thresholds(steps) = { thresholds: { mode: 'absolute', steps: steps } },
  local step(color, value) = { color: color, value: value },
  local stat = { colorMode: 'background', reduceOptions: { calcs: ['lastNotNull'] } },
  local organize(exclude, rename={}) = {
    transformations: [{ id: 'organize', options: { excludeByName: exclude } + (if rename == {} then {} else { renameByName: rename }) }],
  },

  // Verdict as one number per device: 0 healthy, 1 degraded, 2 failed, 3 hung, 4 unknown.
  local states = ['healthy', 'degraded', 'failed', 'hung', 'unknown'],
  local verdictExpr = 'max by (instance, substrate_device) (%s)' % std.join(' or ', [
    '(substrate_device_health{%%(sel)s,state="%s"} == 1) * %d' % [states[i], i]
    for i in std.range(0, std.length(states) - 1)
  ]),
  local verdictMappings = {
    mappings: [{
      type: 'value',
      options: {
        [std.toString(i)]: { text: states[i], color: ['green', 'yellow', 'red', 'purple', 'text'][i], index: i }
        for i in std.range(0, std.length(states) - 1)
      },
    }],
  },

  // Rows of panels, placed left to right and wrapped at 24 columns.
  local rows = [
    {
      title: 'Overview',
      panels: [
        panel('stat', 'Devices not healthy', 'Devices whose verdict is degraded, failed, hung or unknown.',
              [target('count(substrate_device_health{%(sel)s,state!="healthy"} == 1) or vector(0)', 'not healthy')], 4, 6,
              thresholds([step('green', null), step('red', 1)]), stat),
        panel('stat', 'Current verdict per device', 'substrate_device_health: the state whose series is 1.',
              [target(verdictExpr, '{{instance}} {{substrate_device}}')], 10, 6,
              verdictMappings + thresholds([step('green', null)]), stat { textMode: 'value_and_name' }),
        panel('table', 'Devices', 'substrate_device_info: one row per compute device, with the node, pod and cluster labels where they exist.',
              [target('substrate_device_info{%(sel)s}', table=true)], 10, 6,
              extra=organize({ Time: true, Value: true, __name__: true })),
        panel('state-timeline', 'Device health over time', 'Verdict history per device (substrate_device_health).',
              [target(verdictExpr, '{{instance}} {{substrate_device}}')], 24, 7,
              verdictMappings + thresholds([step('green', null)])),
        ts('Check failures by reason', 'Failed scheduled runs per device, probe and reason (substrate_probe_failures_total).',
           [target('sum by (instance, substrate_device, probe, reason) (increase(substrate_probe_failures_total{%(sel)s}[$__rate_interval]))',
                   '{{instance}} {{substrate_device}} {{probe}} {{reason}}')], 12, 8, defaults=bars),
        ts('Probe runs', 'Completed scheduled runs (substrate_probe_runs_total).',
           [target('sum by (instance, substrate_device, probe) (increase(substrate_probe_runs_total{%(sel)s}[$__rate_interval]))',
                   '{{instance}} {{substrate_device}} {{probe}}')], 12, 8),
      ],
    },
    {
      title: 'Numerical correctness',
      panels: [
        ts('Error budget used', "Worst element's error / its rigorous bound (1 = failure). Its healthy level depends on the shape (an f32 GEMM with K = 1 uses 0.93); growth against the same spec is the warning sign (next panels).",
           [target('substrate_probe_error_budget_ratio{%(sel)s}', '{{instance}} {{substrate_device}} {{probe}}')], 12, 8, 'percentunit',
           { custom: { scaleDistribution: { type: 'log', log: 10 } } }
           + thresholds([step('green', null), step('red', 1)])),
        ts('Error budget: 1 h average / 7 d average',
           'Drift of the error budget against its own history (alert above %g), from the recording rules substrate:probe_error_budget_ratio:avg1h and :avg7d.' % c.errorBudgetDriftFactor,
           [target('substrate:probe_error_budget_ratio:avg1h{%(sel)s} / substrate:probe_error_budget_ratio:avg7d{%(sel)s}',
                   '{{instance}} {{substrate_device}} {{probe}}')], 12, 8, 'none',
           thresholds([step('green', null), step('yellow', c.errorBudgetDriftFactor)])),
        ts('Error budget against the same spec\'s history',
           'Budget used / the median of the device\'s own earlier runs of the same spec (substrate_probe_error_budget_drift_ratio): 1 when healthy at every shape, 0 before there is a history; SubstrateErrorBudgetHigh above %g.' % c.errorBudgetHighFactor,
           [target('substrate_probe_error_budget_drift_ratio{%(sel)s}', '{{instance}} {{substrate_device}} {{probe}}')], 12, 8, 'none',
           thresholds([step('green', null), step('red', c.errorBudgetHighFactor)])),
        ts('Guaranteed bit and guaranteed share',
           'Lowest output bit whose flip each check is guaranteed to detect (substrate_probe_guaranteed_bit: 0 exact, at most 23 random, 32 none) and the share of elements where that holds (substrate_probe_guaranteed_elements_ratio); the rest are left to the fingerprint.',
           [
             target('substrate_probe_guaranteed_bit{%(sel)s}', 'bit {{instance}} {{substrate_device}} {{probe}}'),
             target('substrate_probe_guaranteed_elements_ratio{%(sel)s}', 'share {{instance}} {{substrate_device}} {{probe}}'),
           ], 12, 8),
        ts('Mismatched elements (last run)', 'Elements outside the bound or not bit-exact (substrate_probe_mismatched_elements); any value above 0 is a numerical fault.',
           [
             target('substrate_probe_mismatched_elements{%(sel)s}', '{{instance}} {{substrate_device}} {{probe}}'),
             target('substrate_probe_drill{%(sel)s} == 1', 'DRILL {{instance}} {{substrate_device}} {{probe}}'),
           ]),
        ts('Fingerprint changes and baseline resets', 'Changed result for identical input without a reset (substrate_fingerprint_changes_total), and resets after driver/kernel changes.',
           [
             target('sum by (instance, substrate_device, probe) (increase(substrate_fingerprint_changes_total{%(sel)s}[$__rate_interval]))', 'change {{instance}} {{substrate_device}} {{probe}}'),
             target('sum by (instance, substrate_device, reason) (increase(substrate_baseline_resets_total{%(sel)s}[$__rate_interval]))', 'reset {{instance}} {{substrate_device}} {{reason}}'),
           ], defaults=bars),
        ts('Cross-device mismatch and memory bad words', '1 when the device is in the minority of its same-model peers on the host; bad words found by the memory probe.',
           [
             target('substrate_cross_device_mismatch{%(sel)s}', 'minority {{instance}} {{substrate_device}} {{probe}}'),
             target('substrate_memory_bad_words{%(sel)s}', 'bad words {{instance}} {{substrate_device}}'),
           ]),
        panel('table', 'Fleet fingerprints',
              'For each (probe, spec, model, driver, kernel build) and fingerprint: how many of the selected devices hold it, and the share of the whole fleet group holding it (recording rule substrate:kernel_fingerprint:share; the group spans every host this Prometheus sees, whatever the variables). A share below 0.5 is a minority.',
              [
                target('count by (probe, spec, model, driver, kernel_build, fingerprint) (substrate_kernel_fingerprint_info{%(sel)s})', table=true),
                target('max by (probe, spec, model, driver, kernel_build, fingerprint) (substrate:kernel_fingerprint:share{%(sel)s})', table=true),
              ], 24, 7,
              extra={
                transformations: [
                  { id: 'merge', options: {} },
                  { id: 'organize', options: { excludeByName: { Time: true }, renameByName: { 'Value #A': 'selected devices', 'Value #B': 'share of fleet group' } } },
                ],
              }),
      ],
    },
    {
      title: 'Hardware health',
      panels: [
        ts('ECC errors', 'Uncorrected (any increase is an alert) and corrected ECC errors per device (substrate_ecc_errors_total).',
           [
             target('sum by (instance, substrate_device) (increase(substrate_ecc_errors_total{%(sel)s,kind="uncorrected",scope="volatile"}[$__rate_interval]))', 'uncorrected {{instance}} {{substrate_device}}'),
             target('sum by (instance, substrate_device) (increase(substrate_ecc_errors_total{%(sel)s,kind="corrected",scope="volatile"}[$__rate_interval]))', 'corrected {{instance}} {{substrate_device}}'),
           ]),
        ts('Remapped rows and retired pages', 'Row remapping (Ampere+) and page retirement (older GPUs); pending needs a GPU reset, failure needs an RMA.',
           [
             target('substrate_remapped_rows{%(sel)s}', 'remapped {{kind}} {{instance}} {{substrate_device}}'),
             target('substrate_remapped_rows_pending{%(sel)s}', 'remap pending {{instance}} {{substrate_device}}'),
             target('substrate_remapped_rows_failure{%(sel)s}', 'remap failed {{instance}} {{substrate_device}}'),
             target('substrate_retired_pages{%(sel)s}', 'retired {{cause}} {{instance}} {{substrate_device}}'),
             target('substrate_retired_pages_pending{%(sel)s}', 'retire pending {{instance}} {{substrate_device}}'),
             target('substrate_vram_bad_pages{%(sel)s}', 'amdgpu bad pages {{instance}} {{substrate_device}}'),
           ]),
        ts('XID events', 'NVIDIA XID events per device and XID (substrate_xid_events_total).',
           [target('sum by (instance, substrate_device, xid) (increase(substrate_xid_events_total{%(sel)s}[$__rate_interval]))', 'XID {{xid}} {{instance}} {{substrate_device}}')],
           defaults=bars),
        panel('table', 'Last XID per device', 'Time of the last event of each XID (substrate_xid_last_timestamp_seconds).',
              [target('substrate_xid_last_timestamp_seconds{%(sel)s} * 1000', table=true)], 8, 8,
              { unit: 'dateTimeAsIso' }, extra=organize({ Time: true, __name__: true }, { Value: 'last event' })),
        ts('Temperatures', 'Sensor temperatures and their slowdown/shutdown thresholds.',
           [
             target('substrate_gpu_temperature_celsius{%(sel)s}', '{{instance}} {{substrate_device}} {{sensor}}'),
             target('substrate_gpu_temperature_threshold_celsius{%(sel)s,threshold=~"slowdown|crit"}', '{{threshold}} {{instance}} {{substrate_device}} {{sensor}}'),
           ], unit='celsius'),
        ts('Throttling', 'Share of time each clock-event (throttle) reason is active.',
           [
             target('rate(substrate_throttle_seconds_total{%(sel)s}[$__rate_interval])', '{{instance}} {{substrate_device}} {{reason}}'),
             target('substrate_clock_event_reasons{%(sel)s,reason=~"hw_thermal_slowdown|sw_thermal_slowdown|hw_slowdown"} == 1', 'active {{instance}} {{substrate_device}} {{reason}}'),
           ], unit='percentunit'),
        ts('Power', 'Power draw against the enforced limit.',
           [
             target('substrate_power_watts{%(sel)s}', '{{instance}} {{substrate_device}}'),
             target('substrate_power_limit_watts{%(sel)s}', 'limit {{instance}} {{substrate_device}}'),
           ], unit='watt'),
        ts('Clocks', 'SM and memory clocks.',
           [target('substrate_clock_hertz{%(sel)s}', '{{instance}} {{substrate_device}} {{clock}}')], unit='hertz'),
        ts('PCIe replays and NVLink errors', 'Link-level error counters.',
           [
             target('sum by (instance, substrate_device) (increase(substrate_pcie_replays_total{%(sel)s}[$__rate_interval]))', 'PCIe replays {{instance}} {{substrate_device}}'),
             target('sum by (instance, substrate_device, kind) (increase(substrate_nvlink_errors_total{%(sel)s}[$__rate_interval]))', 'NVLink {{kind}} {{instance}} {{substrate_device}}'),
           ]),
      ],
    },
    {
      title: 'Probe performance and freshness',
      panels: [
        ts('Probe device time', 'Device time of the checked kernels in the last run (substrate_probe_duration_seconds) and wall time of the whole run.',
           [
             target('substrate_probe_duration_seconds{%(sel)s}', 'device {{instance}} {{substrate_device}} {{probe}}'),
             target('substrate_probe_wall_seconds{%(sel)s}', 'wall {{instance}} {{substrate_device}} {{probe}}'),
           ], unit='s'),
        ts('Slowdown against baseline', "Last device time / the device's own baseline (alert above %g for %s)." % [c.slowdownRatio, c.alertFor.SubstrateProbeSlowdown],
           [target('substrate_probe_slowdown_ratio{%(sel)s}', '{{instance}} {{substrate_device}} {{probe}}')], unit='none',
           defaults=thresholds([step('green', null), step('yellow', c.slowdownRatio)])),
        ts('Time since last passing run',
           'SubstrateProbeStale: above %d s on a device that was not busy, above %d s on one that was (busy devices defer probes up to max_staleness_seconds, %d s).' % [c.probeStaleSeconds, c.probeStaleBusySeconds, c.maxStalenessSeconds],
           [
             target('time() - substrate_probe_last_success_timestamp_seconds{%(sel)s}', '{{instance}} {{substrate_device}} {{probe}}'),
             target('time() - substrate_probe_last_run_timestamp_seconds{%(sel)s}', 'last run {{instance}} {{substrate_device}} {{probe}}'),
           ], unit='s',
           defaults=thresholds([step('green', null), step('yellow', c.probeStaleSeconds), step('red', c.probeStaleBusySeconds)])),
        ts('Checked work', 'Floating-point operations (gemm, attention) and device memory bytes (memory) that scheduled runs verified per second, every repeated pass counted (coverage: docs/configuration.md).',
           [
             target('sum by (instance, substrate_device) (rate(substrate_checked_flops_total{%(sel)s}[15m]))', 'FLOP/s {{instance}} {{substrate_device}}'),
             target('sum by (instance, substrate_device) (rate(substrate_checked_bytes_total{%(sel)s}[15m]))', 'bytes/s {{instance}} {{substrate_device}}'),
           ], unit='short'),
        ts('Duty cycle used', 'Share of wall time the scheduled runs kept the device busy (kernels plus input generation, every pass), against the max_duty_cycle budget.',
           [target('sum by (instance, substrate_device) (rate(substrate_probe_device_seconds_total{%(sel)s}[15m]))', '{{instance}} {{substrate_device}}')],
           unit='percentunit'),
        ts('Memory bandwidth', 'Achieved by the memory probe (read plus written).',
           [target('substrate_memory_bandwidth_bytes_per_second{%(sel)s}', '{{instance}} {{substrate_device}}')], unit='Bps'),
        ts('Utilization', 'GPU and memory utilization (probes defer while the GPU utilization is above busy_utilization, %g).' % c.busyUtilization,
           [target('substrate_utilization_ratio{%(sel)s}', '{{instance}} {{substrate_device}} {{unit}}')], unit='percentunit',
           defaults=thresholds([step('green', null), step('yellow', c.busyUtilization)])),
        panel('stat', 'Daemon', 'Scrape up and last configuration reload result per host.',
              [
                target('up{%(host)s}', 'up {{instance}}'),
                target('substrate_config_last_reload_successful{%(host)s}', 'config ok {{instance}}'),
              ], 8, 8,
              { mappings: [{ type: 'value', options: { '0': { text: 'NO', color: 'red' }, '1': { text: 'yes', color: 'green' } } }] }
              + thresholds([step('red', null), step('green', 1)]),
              stat { textMode: 'value_and_name' }),
      ],
    },
  ],

  // Flow layout: a row header (h 1), then its panels left to right, wrapping at 24 columns.
  local items = std.flattenArrays([
    [{ row: r.title }] + [{ panel: p } for p in r.panels]
    for r in rows
  ]),
  local placed = std.foldl(
    function(st, it)
      if std.objectHas(it, 'row') then
        local y = st.y + st.h;
        st { y: y + 1, x: 0, h: 0, id: st.id + 1, out+: [{
          type: 'row', id: st.id + 1, title: it.row, collapsed: false, panels: [],
          gridPos: { h: 1, w: 24, x: 0, y: y },
        }] }
      else
        local s = it.panel.size;
        local wrap = st.x + s.w > 24;
        local x = if wrap then 0 else st.x;
        local y = if wrap then st.y + st.h else st.y;
        st { x: x + s.w, y: y, h: if wrap then s.h else std.max(st.h, s.h), id: st.id + 1, out+: [
          it.panel { id: st.id + 1, gridPos: { h: s.h, w: s.w, x: x, y: y } },
        ] },
    items,
    { x: 0, y: 0, h: 0, id: 0, out: [] }
  ).out,

  local queryVar(name, label, filters) = {
    local q = 'label_values(substrate_device_info{%s}, %s)' % [std.join(',', [c.substratedSelector] + ['%s=~"$%s"' % [l, l] for l in filters]), name],
    name: name,
    label: label,
    type: 'query',
    datasource: ds,
    query: { query: q, refId: name },
    definition: q,
    multi: true,
    includeAll: true,
    // ".*" also matches series without the label: the optional labels cost nothing where absent.
    allValue: '.*',
    current: { selected: true, text: ['All'], value: ['$__all'] },
    refresh: 2,
    sort: 1,
  },
  local chain = labelVars + ['instance', 'substrate_device'],
  local varLabels = { [v.name]: v.label for v in c.dashboardLabelVariables } + { instance: 'Host', substrate_device: 'Device' },

  grafanaDashboards+:: {
    'substrated-dashboard.json': {
      title: c.dashboardTitle,
      uid: c.dashboardUid,
      description: 'Per-device verdicts, error budgets, fingerprints, mismatches, ECC, XIDs, temperatures, throttling and probe timing from substrated. Generated from deploy/mixin. Runbooks: docs/operations.md.',
      tags: ['substrated', 'gpu'],
      timezone: 'utc',
      editable: true,
      graphTooltip: 1,
      refresh: c.dashboardRefresh,
      schemaVersion: 38,
      version: 1,
      time: { from: 'now-24h', to: 'now' },
      links: [{ title: 'Runbooks', type: 'link', url: std.split(c.runbookURLPattern, '#')[0], targetBlank: true }],
      annotations: {
        list: [
          {
            builtIn: 1,
            datasource: { type: 'grafana', uid: '-- Grafana --' },
            enable: true,
            hide: true,
            iconColor: 'rgba(0, 211, 255, 1)',
            name: 'Annotations & Alerts',
            type: 'dashboard',
          },
          {
            datasource: ds,
            enable: true,
            iconColor: 'red',
            name: 'Baseline resets',
            expr: f('changes(substrate_baseline_resets_total{%(sel)s}[2m]) > 0'),
            step: '60s',
            titleFormat: 'baseline reset',
            textFormat: '{{instance}} {{substrate_device}} {{reason}}',
          },
        ],
      },
      templating: {
        list: [{ name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', current: {}, hide: 0, refresh: 1 }]
              + [queryVar(chain[i], varLabels[chain[i]], chain[0:i]) for i in std.range(0, std.length(chain) - 1)],
      },
      panels: placed,
    },
  },
}
