#pragma once
// Persistent state: per (device UUID, driver, kernel build, spec key) the last fingerprint, a
// device-time baseline and a short error-budget history; per device its recorded identity.
// Files are written atomically (temp file, fsync, rename, fsync directory) with a checksum; a
// corrupt, truncated or unreadable file is moved aside and rebuilt, never fatal.
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/expected.hpp"
#include "daemon/diag.hpp"

namespace substrate {

struct BaselineKey {
  std::string device_uuid;
  std::string driver;
  std::string kernel_build;
  std::string spec_key;  // spec_key() plus "#seed"
  auto operator<=>(const BaselineKey&) const = default;
};

struct Baseline {
  std::string fingerprint;      // last fingerprint of a run without injection
  double device_seconds = 0.0;  // baseline device time (median-ish: EWMA of passing runs)
  std::uint64_t runs = 0;
  std::deque<double> budget_history;  // last error budgets, newest at the back (bounded)
  double updated_at = 0.0;            // unix seconds
};

struct DeviceRecord {
  std::map<std::string, std::string> fields;  // identity and environment: driver, uuid, ...
  double updated_at = 0.0;
};

// The hardware counters of one telemetry device that findings are judged against
// (daemon/telemetry_history.hpp), so a restart neither misses a rise that happened while the
// daemon was down nor counts an old one again.
struct TelemetryCounterRecord {
  std::string source;    // nvml, amdgpu, ...
  std::string local_id;  // nvml0, drm-card0, ...
  std::string pci_bus_id;
  std::string uuid;
  struct Ecc {
    std::string kind, scope, location;
    std::uint64_t count = 0;
    bool operator==(const Ecc&) const = default;
  };
  std::vector<Ecc> ecc;
  bool operator==(const TelemetryCounterRecord&) const = default;
};

// The verdict of a compute device while telemetry events stand in it (daemon/verdict.hpp
// VerdictState), so a restart does not forget them before their recovery rule says so.
struct TelemetryVerdictRecord {
  std::string health;  // to_string(Health)
  std::vector<std::string> reasons;
  std::uint32_t consecutive_passes = 0;
  std::map<std::string, std::pair<std::uint64_t, std::string>> events;  // kind -> (count, reason)
  bool operator==(const TelemetryVerdictRecord&) const = default;
};

struct State {
  std::map<BaselineKey, Baseline> baselines;
  std::map<std::string, DeviceRecord> devices;  // by device uuid (or id when no uuid)
  std::vector<TelemetryCounterRecord> telemetry_counters;
  std::map<std::string, TelemetryVerdictRecord> telemetry_verdicts;  // by device key, as `devices`
  std::map<std::string, diag::Summary> diags;  // the last `substrated diag` of each device, by device key
};

// Writes `contents` to `path` with a checksum header, atomically (common/file_io.hpp:
// write_file_atomic). io_error on failure; the old file is then untouched.
Status write_checked_file(const std::string& path, const std::string& contents);
// Reads a file written by write_checked_file. io_error when missing/unreadable, corrupt when the
// checksum or header does not match (truncated, edited, garbage).
Expected<std::string> read_checked_file(const std::string& path);

class StateStore {
 public:
  explicit StateStore(std::string directory);
  // Loads state.json; a corrupt file is renamed to state.json.corrupt-<unix time> and an empty
  // state returned with `note` describing what happened. Never fails.
  State load(std::string* note = nullptr);
  Status save(const State& state);
  const std::string& path() const { return path_; }

 private:
  std::string directory_;
  std::string path_;
};

std::string serialize_state(const State& state);
Expected<State> deserialize_state(const std::string& text);

}  // namespace substrate
