#include "daemon/telemetry_reader.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "probes/telemetry/collectors.hpp"

namespace substrate::telemetry {

namespace {

double unix_now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

}  // namespace

TelemetryReader::TelemetryReader(TelemetryOptions options) : options_(std::move(options)) {
  auto add = [this](const char* name, std::function<SourceResult()> read) {
    Source source;
    source.name = name;
    source.read = std::move(read);
    source.worker = std::make_unique<DeviceWorker>();
    source.status.source = name;
    sources_.push_back(std::move(source));
  };
  if (options_.nvml) {
    auto source = nvml::Source::open(options_.xid_wait);
    if (source) {
      std::shared_ptr<nvml::Source> nvml = std::move(*source);
      add(kSourceNvml, [nvml] { return nvml->read(); });
    } else {
      notes_.push_back(source.error().message);
      spdlog::info("telemetry: {}", source.error().message);
    }
  }
  for (const SysfsCollector& collector : sysfs_collectors()) {
    const auto& disabled = options_.disabled_collectors;
    if (std::find(disabled.begin(), disabled.end(), collector.name) != disabled.end()) continue;
    add(collector.name, [read = collector.read, root = options_.sysfs_root] { return read(root); });
  }
}

TelemetryReader::~TelemetryReader() {
  cancel();
  for (Source& source : sources_) {
    // A read blocked in the kernel cannot be interrupted: its thread is left to the process exit.
    if (!source.worker->stop(std::chrono::milliseconds(0))) DeviceWorker::abandon(std::move(source.worker));
  }
}

void TelemetryReader::cancel() {
  std::lock_guard lock(round_mutex_);
  cancelled_ = true;
  if (!round_) return;
  {
    std::lock_guard round_lock(round_->mutex);
    round_->cancelled = true;
  }
  round_->done.notify_all();
}

Snapshot TelemetryReader::read(std::chrono::milliseconds deadline) {
  std::lock_guard lock(mutex_);
  auto round = std::make_shared<Round>();
  {
    std::lock_guard round_lock(round_mutex_);
    round->cancelled = cancelled_;
    round_ = round;
  }
  std::size_t started = 0;
  for (std::size_t i = 0; i < sources_.size(); ++i) {
    Source& source = sources_[i];
    // A source whose earlier read is still blocked is not started again: one thread per source.
    if (source.reading->exchange(true)) continue;
    ++started;
    source.worker->submit([round, i, read = source.read, reading = source.reading] {
      SourceResult result = read();
      *reading = false;
      {
        std::lock_guard round_lock(round->mutex);
        round->results.emplace(i, std::move(result));
      }
      round->done.notify_all();
    });
  }
  std::map<std::size_t, SourceResult> results;
  {
    std::unique_lock round_lock(round->mutex);
    round->done.wait_for(round_lock, deadline, [&] { return round->cancelled || round->results.size() == started; });
    results = std::move(round->results);
    round->results.clear();
  }
  {
    std::lock_guard round_lock(round_mutex_);
    round_.reset();
  }

  Snapshot snapshot;
  snapshot.notes = notes_;
  const double now = unix_now();
  for (std::size_t i = 0; i < sources_.size(); ++i) {
    Source& source = sources_[i];
    auto it = results.find(i);
    source.status.timed_out = it == results.end();
    if (source.status.timed_out) {
      ++source.status.timeouts;
      if (!source.late) {
        spdlog::warn(
            "telemetry: the {} read did not return within {} ms; its readings are left out until a read "
            "returns in time (substrate_telemetry_source_timeouts_total)",
            source.name, deadline.count());
      }
      source.late = true;
    } else {
      if (source.late) spdlog::info("telemetry: the {} read returns in time again", source.name);
      source.late = false;
      source.status.last_success_seconds = now;
      for (auto& device : it->second.devices) snapshot.devices.push_back(std::move(device));
      for (auto& note : it->second.notes) snapshot.notes.push_back(std::move(note));
      count(it->second.errors);
      if (it->second.nvml_up) snapshot.nvml_up = it->second.nvml_up;
    }
    snapshot.sources.push_back(source.status);
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
