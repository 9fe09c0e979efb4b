#pragma once
// The NVML telemetry source as the daemon holds it: libnvidia-ml loaded once, and nvmlInit retried
// with a backoff until it succeeds (the driver may load after substrated starts, or recover), so
// NVML telemetry appears without a restart. Whether NVML is up is part of every read, for the
// substrate_nvml_up metric and its alert.
#include <chrono>
#include <memory>
#include <optional>

#include "common/expected.hpp"
#include "probes/telemetry/model.hpp"
#include "probes/telemetry/nvml/library.hpp"
#include "probes/telemetry/nvml/session.hpp"

namespace substrate::nvml {

// After a failed nvmlInit the next try waits `first`, then twice as long each time, up to `max`.
struct InitBackoff {
  std::chrono::milliseconds first{1000};
  std::chrono::milliseconds max{300000};
};

class Source {
 public:
  // Loads the library and tries nvmlInit once. ErrorKind::unavailable (message "NVML absent: ..."
  // or "NVML unusable: ...") when the library cannot be used at all; a failing nvmlInit is not an
  // error here but reported by read() and retried.
  static Expected<std::unique_ptr<Source>> open(std::chrono::milliseconds xid_wait = kDefaultXidWait,
                                                InitBackoff backoff = {});

  // Not for concurrent use. Once NVML is initialised: the session's read(), with nvml_up true.
  // Before: tries nvmlInit again when the backoff has passed; while it fails, no devices, a note
  // ("NVML init failed (<cause>): <text>; retrying in <n> s") and, for each failed try, one error
  // with cause "init_failed"; nvml_up false.
  telemetry::SourceResult read();

 private:
  Source(std::shared_ptr<const Library> library, std::chrono::milliseconds xid_wait, InitBackoff backoff);
  // One nvmlInit try; records the failure for the next read().
  void try_init();

  std::shared_ptr<const Library> library_;
  std::chrono::milliseconds xid_wait_;
  InitBackoff backoff_;
  std::unique_ptr<Session> session_;
  std::chrono::milliseconds next_wait_;
  std::chrono::steady_clock::time_point next_try_;
  std::string failure_;                                // the last nvmlInit failure
  std::optional<telemetry::ReadError> pending_error_;  // a failed try not yet reported
};

}  // namespace substrate::nvml
