#include "daemon/telemetry_reader.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "probes/telemetry/collectors.hpp"

namespace substrate::telemetry {

TelemetryReader::TelemetryReader(TelemetryOptions options) : options_(std::move(options)) {
  if (!options_.nvml) return;
  auto source = nvml::Source::open(options_.xid_wait);
  if (source) {
    nvml_ = std::move(*source);
    return;
  }
  notes_.push_back(source.error().message);
  spdlog::info("telemetry: {}", source.error().message);
}

TelemetryReader::~TelemetryReader() = default;

Snapshot TelemetryReader::read() {
  std::lock_guard lock(mutex_);
  Snapshot snapshot;
  snapshot.notes = notes_;
  auto take = [&](SourceResult result) {
    for (auto& device : result.devices) snapshot.devices.push_back(std::move(device));
    for (auto& note : result.notes) snapshot.notes.push_back(std::move(note));
    count(result.errors);
    if (result.nvml_up) snapshot.nvml_up = result.nvml_up;
  };
  if (nvml_) take(nvml_->read());
  for (const SysfsCollector& collector : sysfs_collectors()) {
    const auto& disabled = options_.disabled_collectors;
    if (std::find(disabled.begin(), disabled.end(), collector.name) != disabled.end()) continue;
    take(collector.read(options_.sysfs_root));
  }
  for (const auto& [key, total] : error_totals_) snapshot.error_totals.push_back({key.first, key.second, total});
  return snapshot;
}

void TelemetryReader::count(const std::vector<ReadError>& errors) {
  for (const ReadError& error : errors) {
    std::uint64_t& total = error_totals_[{error.source, error.cause}];
    if (total++ == 0) {
      spdlog::warn("telemetry: {} read error ({}): {} (further errors of this cause are counted, not logged)",
                   error.source, error.cause, error.detail);
    }
  }
}

}  // namespace substrate::telemetry
