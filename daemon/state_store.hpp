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

struct State {
  std::map<BaselineKey, Baseline> baselines;
  std::map<std::string, DeviceRecord> devices;  // by device uuid (or id when no uuid)
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
