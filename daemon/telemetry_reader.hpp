#pragma once
// The telemetry source the daemon holds: NVML (when present) plus the sysfs collectors, read
// together into one Snapshot. Error totals accumulate across reads; each (source, cause) is
// logged once, the first time it happens.
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "probes/telemetry/model.hpp"
#include "probes/telemetry/nvml/source.hpp"

namespace substrate::telemetry {

struct TelemetryOptions {
  std::filesystem::path sysfs_root = "/sys";  // a --path.sysfs style override
  bool nvml = true;
  std::vector<std::string> disabled_collectors;  // names from sysfs_collectors()
  std::chrono::milliseconds xid_wait = nvml::kDefaultXidWait;
};

class TelemetryReader {
 public:
  // Opens NVML when enabled. Absent NVML becomes a note ("NVML absent: libnvidia-ml.so.1 not
  // found"), not an error; a failing nvmlInit is retried by nvml::Source (a note and a counted
  // error per failed try, Snapshot::nvml_up false until it succeeds).
  explicit TelemetryReader(TelemetryOptions options = {});
  ~TelemetryReader();

  // Reads every source now. Never throws for a bad value: it is skipped and counted. Safe to call
  // from several threads (calls are serialised). Devices are not joined yet: see join_devices().
  Snapshot read();

 private:
  void count(const std::vector<ReadError>& errors);

  TelemetryOptions options_;
  std::unique_ptr<nvml::Source> nvml_;
  std::vector<std::string> notes_;  // from opening the sources, copied into every snapshot
  std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, std::uint64_t> error_totals_;
};

}  // namespace substrate::telemetry
