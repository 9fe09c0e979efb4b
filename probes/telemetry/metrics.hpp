#pragma once
// Telemetry snapshots as Prometheus metric families, named as docs/metrics.md lists them.
#include <vector>

#include <prometheus/metric_family.h>

#include "probes/telemetry/model.hpp"

namespace substrate::telemetry {

// Pure: one family per metric that has at least one sample, in docs/metrics.md order. The device
// label is TelemetryDevice::device (run join_devices() first), falling back to the local id. A
// label set already emitted in a family is not emitted twice.
std::vector<prometheus::MetricFamily> to_metric_families(const Snapshot& snapshot);

}  // namespace substrate::telemetry
