#pragma once
// Telemetry snapshots as Prometheus metric families, named as docs/metrics.md lists them.
#include <functional>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "probes/telemetry/model.hpp"

namespace substrate::telemetry {

// Pure: one family per metric that has at least one sample, in docs/metrics.md order. The device
// label is TelemetryDevice::device (run join_devices() first), falling back to the local id. A
// label set already emitted in a family is not emitted twice.
std::vector<prometheus::MetricFamily> to_metric_families(const Snapshot& snapshot);

// A Collectable that builds a fresh snapshot at every scrape, so label sets of devices or readings
// that disappeared vanish instead of going stale. `take_snapshot` is expected to read and join,
// e.g. [&] { return join_devices(reader.read(), compute_devices); }.
class TelemetryCollectable : public prometheus::Collectable {
 public:
  explicit TelemetryCollectable(std::function<Snapshot()> take_snapshot);
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::function<Snapshot()> take_snapshot_;
};

}  // namespace substrate::telemetry
