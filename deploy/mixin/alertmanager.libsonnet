// Alertmanager: one bad GPU pages once, a drill never pages.
//
// - Routing groups one device's alerts into one notification (group_by the device identity), so
//   the alerts one failure raises together arrive together; `critical` goes to the pager, the rest
//   (warnings, info, drills) to a notification channel that does not page.
// - Inhibition mutes, for the same device (cluster, instance, device equal), what a verdict
//   already says: a failed verdict mutes the probe-level correctness alerts that led to it
//   (NumericalFault, MemoryFault, Nondeterminism, CrossDeviceMismatch, FleetFingerprintMinority)
//   and the warnings; a hung device mutes staleness and slowdown; any critical alert of a device
//   mutes that device's warnings; a drill mutes the correctness and verdict alerts it provokes, so
//   only SubstrateDrillActive / SubstrateDrillDetected (info, not paging) are delivered.
// Hardware alerts (ECC, row remap, XIDs, thermal) are never muted by a verdict or a drill: they
// come from the driver, not from the probes.
{
  local c = $._config,
  local eq = c.deviceIdentityLabels,
  local anyOf(names) = 'alertname=~"%s"' % std.join('|', names),

  local correctness = [
    'SubstrateNumericalFault',
    'SubstrateMemoryFault',
    'SubstrateNondeterminism',
    'SubstrateCrossDeviceMismatch',
    'SubstrateFleetFingerprintMinority',
  ],
  local symptoms = [
    'SubstrateErrorBudgetHigh',
    'SubstrateErrorBudgetDrift',
    'SubstrateProbeSlowdown',
    'SubstrateDeviceDegraded',
    'SubstrateProbeStale',
  ],
  local verdicts = ['SubstrateDeviceFailed', 'SubstrateDeviceHung'],
  local drills = ['SubstrateDrillActive', 'SubstrateDrillDetected'],

  alertmanagerInhibitRules:: [
    {
      // A drill is not a fault: nothing it provokes on that device pages.
      source_matchers: ['alertname="SubstrateDrillActive"'],
      target_matchers: [anyOf(correctness + symptoms + verdicts)],
      equal: eq,
    },
    {
      // The failed verdict is the page; the probe alerts behind it are its details.
      source_matchers: ['alertname="SubstrateDeviceFailed"'],
      target_matchers: [anyOf(correctness + symptoms)],
      equal: eq,
    },
    {
      // A hung device runs no probes: staleness and slowdown follow from the hang.
      source_matchers: ['alertname="SubstrateDeviceHung"'],
      target_matchers: [anyOf(symptoms)],
      equal: eq,
    },
    {
      // Any page about a device covers that device's warnings.
      source_matchers: ['severity="critical"', 'substrate_device=~".+"'],
      target_matchers: ['severity="warning"'],
      equal: eq,
    },
  ],

  // A complete example configuration (amtool check-config passes on it): merge its route and
  // inhibit_rules into yours.
  alertmanagerConfigExample:: {
    route: {
      receiver: c.notifyReceiver,
      group_by: eq + ['alertname'],
      group_wait: '30s',
      group_interval: '5m',
      repeat_interval: '4h',
      routes: [
        {
          // substrated's alerts: one notification per device, whatever fired on it.
          matchers: ['alertname=~"Substrate.*"'],
          group_by: eq,
          receiver: c.notifyReceiver,
          routes: [
            // A drill notifies and never pages, whatever its severity.
            { matchers: [anyOf(drills)], receiver: c.notifyReceiver },
            { matchers: ['severity="critical"'], receiver: c.pageReceiver },
          ],
        },
      ],
    },
    receivers: [
      { name: c.pageReceiver, webhook_configs: [{ url: c.pageWebhookURL, send_resolved: true }] },
      { name: c.notifyReceiver, webhook_configs: [{ url: c.notifyWebhookURL, send_resolved: true }] },
    ],
    inhibit_rules: $.alertmanagerInhibitRules,
  },
}
