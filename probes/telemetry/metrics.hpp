#pragma once
// Telemetry snapshots as Prometheus metric families, named as docs/metrics.md lists them.
#include <vector>

#include <prometheus/metric_family.h>

#include "probes/telemetry/identity.hpp"
#include "probes/telemetry/model.hpp"

namespace substrate::telemetry {

// Pure: one family per metric that has at least one sample, in docs/metrics.md order. Each device's
// series carry identity_labels(): of the compute device in `compute_devices` whose id is
// TelemetryDevice::device (run join_devices() first), else telemetry_only_identities(). A label set
// already emitted in a family is not emitted twice.
std::vector<prometheus::MetricFamily> to_metric_families(const Snapshot& snapshot,
                                                         const std::vector<DeviceIdentity>& compute_devices);

}  // namespace substrate::telemetry
