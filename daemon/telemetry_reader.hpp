#pragma once
// The telemetry sources the daemon holds: NVML (when present) and the sysfs collectors. Each
// source is read on a thread of its own with a deadline, so one that blocks (a sysfs attribute
// whose driver never answers, a stuck NVML call) neither freezes the others nor holds shutdown:
// it is reported late (SourceStatus, exported as per-source metrics) and its devices are left out
// of the snapshot until a read of it returns in time again. Error totals accumulate across reads;
// each (source, cause) is logged once, the first time it happens.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "daemon/device_worker.hpp"
#include "probes/telemetry/model.hpp"
#include "probes/telemetry/nvml/source.hpp"

namespace substrate::telemetry {

// The default of telemetry.timeout_seconds: how long one read of one source may take.
inline constexpr std::chrono::milliseconds kDefaultReadDeadline{5000};

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
  // Sources whose read never returned are abandoned (their threads detached), never joined.
  ~TelemetryReader();
  TelemetryReader(const TelemetryReader&) = delete;
  TelemetryReader& operator=(const TelemetryReader&) = delete;

  // Starts a read of every source whose previous read has returned, each on its own thread, and
  // waits until they all return, `deadline` passes, or cancel() is called. A source that has not
  // returned by then (or whose earlier read is still blocked, so it was not started) counts a
  // timeout and contributes no devices; its late result is dropped. Never throws for a bad value:
  // it is skipped and counted. Calls are serialised. Devices are not joined yet: see
  // join_devices().
  Snapshot read(std::chrono::milliseconds deadline = kDefaultReadDeadline);

  // Makes a read() waiting for late sources return at once, and every later one (shutdown).
  void cancel();

 private:
  struct Source {
    std::string name;                    // kSource*
    std::function<SourceResult()> read;  // owns what it reads with, so an abandoned read stays valid
    std::unique_ptr<DeviceWorker> worker;
    // Set while a read of the source is in flight, cleared by the read as it returns (the worker's
    // own idle() lags behind that, and a read right after must not count as blocked).
    std::shared_ptr<std::atomic<bool>> reading = std::make_shared<std::atomic<bool>>(false);
    SourceStatus status;
    bool late = false;  // the last read missed its deadline (logged once per episode)
  };
  // One read()'s results, shared with the source threads (a late thread writes into a round no one
  // reads any more).
  struct Round {
    std::mutex mutex;
    std::condition_variable done;
    std::map<std::size_t, SourceResult> results;  // by index into sources_
    bool cancelled = false;
  };

  void count(const std::vector<ReadError>& errors);

  TelemetryOptions options_;
  std::vector<Source> sources_;
  std::vector<std::string> notes_;  // from opening the sources, copied into every snapshot
  std::mutex mutex_;                // serialises read()
  std::map<std::pair<std::string, std::string>, std::uint64_t> error_totals_;
  std::mutex round_mutex_;        // guards round_ and cancelled_
  std::shared_ptr<Round> round_;  // the read() in progress, for cancel()
  bool cancelled_ = false;
};

}  // namespace substrate::telemetry
