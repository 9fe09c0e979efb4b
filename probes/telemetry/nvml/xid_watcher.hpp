#pragma once
// XID critical-error events from an NVML event set, on a thread of its own. Counted per device
// and XID with the time of the last one, so repeats stay visible (a last-value gauge hides them).
//
// NVML as nvml.h documents it: after nvmlDeviceRegisterEvents returns UNKNOWN the event set is
// undefined, and a GPU reset drops the registrations, so the thread frees its event set and builds
// a new one (create, register every device that is not lost) whenever a wait or a registration
// fails, with a backoff, and whenever rebuild() asks it to. The thread is supervised by
// supervise(): one that stopped coming back from nvmlEventSetWait is abandoned and a new one
// started; the counts survive.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "probes/telemetry/model.hpp"
#include "probes/telemetry/nvml/library.hpp"

namespace substrate::nvml {

// Backoff between event-set rebuilds after a failure: the first wait, doubled up to this.
inline constexpr std::chrono::milliseconds kMaxXidRebuildBackoff{30000};

class XidWatcher {
 public:
  // Starts the thread, which registers every device for XID events; `devices` is indexed like
  // NVML and may hold null handles, which are skipped. A device that does not support XID events
  // is skipped silently; other failures are returned by take_errors(). The thread waits at most
  // `wait` per call; it counts as wedged when a call has not returned after 10 * wait + 1 s.
  XidWatcher(std::shared_ptr<const Library> library, std::vector<api::Device> devices, std::chrono::milliseconds wait);
  ~XidWatcher();  // stops the thread (abandons it when wedged); the thread frees its event set
  XidWatcher(const XidWatcher&) = delete;
  XidWatcher& operator=(const XidWatcher&) = delete;

  // Events seen so far for the device at `device_index`, ordered by XID.
  std::vector<telemetry::XidCount> counts(std::size_t device_index) const;
  // Errors since the last call (creation, registration, waiting, a restarted thread).
  std::vector<telemetry::ReadError> take_errors();
  // Never registers the device at `device_index` again (it is lost); takes effect at the next rebuild.
  void exclude(std::size_t device_index);
  // Asks the thread to free its event set and register every device anew (after a GPU reset).
  void rebuild();
  // Restarts the thread when it is wedged in a wait (an error with cause "timeout" says so).
  // Returns true when it restarted it. Call it now and then (each telemetry read does).
  bool supervise();

  // Shared with the thread(s): a wedged thread that comes back later still finds it alive.
  struct Shared;
  // One thread's own flags.
  struct Control;

 private:
  void start();

  std::shared_ptr<Shared> shared_;
  std::shared_ptr<Control> control_;
  std::jthread thread_;
};

}  // namespace substrate::nvml
