#include "probes/telemetry/nvml/xid_watcher.hpp"

#include <algorithm>

#include "probes/telemetry/model.hpp"

namespace substrate::nvml {

struct XidWatcher::Shared {
  std::shared_ptr<const Library> library;  // keeps libnvidia-ml loaded while any thread lives
  std::vector<api::Device> devices;
  std::chrono::milliseconds wait;
  std::atomic<bool> rebuild{false};
  mutable std::mutex mutex;  // guards what follows
  std::vector<bool> excluded;
  std::map<std::pair<std::size_t, std::uint32_t>, telemetry::XidCount> counts;
  std::vector<telemetry::ReadError> errors;

  void record_error(api::Return code, const char* what) {
    std::lock_guard lock(mutex);
    errors.push_back({telemetry::kSourceNvml, error_cause(code), std::string(what) + ": " + library->describe(code)});
  }
};

struct XidWatcher::Control {
  std::atomic<bool> abandoned{false};      // supervise() gave up on this thread and started another
  std::atomic<bool> ended{false};          // run() returned
  std::atomic<std::int64_t> heartbeat{0};  // steady-clock nanoseconds when the thread last came back

  void beat() { heartbeat = std::chrono::steady_clock::now().time_since_epoch().count(); }
};

namespace {

using Shared = XidWatcher::Shared;
using Control = XidWatcher::Control;

bool should_run(const std::stop_token& stop, const Control& control) {
  return !stop.stop_requested() && !control.abandoned;
}

// Sleeps `duration` in steps of one wait (as long as one nvmlEventSetWait), returning early when the thread should end
// or a rebuild is asked.
void pause(const std::stop_token& stop, Control& control, const Shared& shared, std::chrono::milliseconds duration) {
  const auto until = std::chrono::steady_clock::now() + duration;
  while (should_run(stop, control) && !shared.rebuild && std::chrono::steady_clock::now() < until) {
    control.beat();
    std::this_thread::sleep_for(std::min(duration, shared.wait));
  }
}

enum class Built { registered, nothing_to_watch, failed };

// Creates an event set and registers every device not excluded. `set` holds the set unless
// creation failed; on UNKNOWN from a registration the set is undefined (nvml.h) and `failed`.
Built build(Shared& shared, api::EventSet& set) {
  const Api& a = shared.library->api();
  set = nullptr;
  if (const api::Return rc = a.event_set_create(&set); rc != api::kSuccess) {
    set = nullptr;
    shared.record_error(rc, "nvmlEventSetCreate");
    return Built::failed;
  }
  std::vector<bool> excluded;
  {
    std::lock_guard lock(shared.mutex);
    excluded = shared.excluded;
  }
  bool any_registered = false, any_failed = false;
  for (std::size_t index = 0; index < shared.devices.size(); ++index) {
    if (!shared.devices[index] || excluded[index]) continue;  // no handle, or lost
    const api::Return rc = a.device_register_events(shared.devices[index], api::kEventTypeXidCriticalError, set);
    if (rc == api::kSuccess) {
      any_registered = true;
    } else if (rc == api::kErrorUnknown) {
      shared.record_error(rc, "nvmlDeviceRegisterEvents");
      return Built::failed;
    } else if (rc != api::kErrorNotSupported) {
      shared.record_error(rc, "nvmlDeviceRegisterEvents");
      if (rc == api::kErrorGpuIsLost) {
        std::lock_guard lock(shared.mutex);
        shared.excluded[index] = true;
      } else {
        any_failed = true;
      }
    }
  }
  if (any_failed) return Built::failed;
  return any_registered ? Built::registered : Built::nothing_to_watch;
}

void count_event(Shared& shared, const api::EventData& data) {
  if (!(data.event_type & api::kEventTypeXidCriticalError)) return;
  const auto found = std::find(shared.devices.begin(), shared.devices.end(), data.device);
  if (found == shared.devices.end()) return;
  const auto index = static_cast<std::size_t>(found - shared.devices.begin());
  const auto xid = static_cast<std::uint32_t>(data.event_data);
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::lock_guard lock(shared.mutex);
  telemetry::XidCount& count = shared.counts[{index, xid}];
  count.xid = xid;
  ++count.count;
  count.last_timestamp_seconds = now;
}

// The thread: build an event set, wait on it until it fails or a rebuild is asked, free it, and
// again, with a doubling backoff after failures. Everything it touches is owned by `shared` and
// `control`, so an abandoned thread that comes back from a wedged wait frees its set and ends.
void run(std::stop_token stop, std::shared_ptr<Shared> shared, std::shared_ptr<Control> control) {
  const Api& a = shared->library->api();
  const auto wait_ms = static_cast<unsigned int>(shared->wait.count());
  auto backoff = shared->wait;
  while (should_run(stop, *control)) {
    control->beat();
    shared->rebuild = false;
    api::EventSet set = nullptr;
    const Built built = build(*shared, set);
    bool failed = built == Built::failed;
    if (built == Built::registered) {
      while (should_run(stop, *control) && !shared->rebuild) {
        api::EventData data{};
        const api::Return rc = a.event_set_wait(set, &data, wait_ms);
        control->beat();
        if (rc == api::kErrorTimeout) continue;
        if (rc != api::kSuccess) {
          shared->record_error(rc, "nvmlEventSetWait");
          failed = true;
          break;
        }
        count_event(*shared, data);
      }
    }
    if (set) a.event_set_free(set);
    if (failed) {
      pause(stop, *control, *shared, backoff);
      backoff = std::min(backoff * 2, kMaxXidRebuildBackoff);
    } else {
      backoff = shared->wait;
      // Nothing to watch (no device supports XID events): idle until a rebuild is asked.
      if (built == Built::nothing_to_watch) pause(stop, *control, *shared, std::chrono::hours(24));
    }
  }
  control->ended = true;
}

}  // namespace

XidWatcher::XidWatcher(std::shared_ptr<const Library> library, std::vector<api::Device> devices,
                       std::chrono::milliseconds wait)
    : shared_(std::make_shared<Shared>()) {
  shared_->library = std::move(library);
  shared_->devices = std::move(devices);
  shared_->wait = wait;
  shared_->excluded.assign(shared_->devices.size(), false);
  const Api& a = shared_->library->api();
  if (!a.event_set_create || !a.device_register_events || !a.event_set_wait || !a.event_set_free) return;
  start();
}

void XidWatcher::start() {
  control_ = std::make_shared<Control>();
  control_->beat();
  thread_ = std::jthread([shared = shared_, control = control_](std::stop_token stop) { run(stop, shared, control); });
}

XidWatcher::~XidWatcher() {
  if (!thread_.joinable()) return;
  thread_.request_stop();
  // A wait returns within shared_->wait; one that does not is wedged in the driver: leave it.
  const auto deadline = std::chrono::steady_clock::now() + shared_->wait * 2 + std::chrono::milliseconds(500);
  while (!control_->ended && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (control_->ended) {
    thread_.join();
  } else {
    control_->abandoned = true;
    thread_.detach();
  }
}

bool XidWatcher::supervise() {
  if (!control_) return false;  // this driver lacks the event entry points
  const auto silent = std::chrono::steady_clock::now().time_since_epoch() -
                      std::chrono::steady_clock::duration(control_->heartbeat.load());
  if (silent <= shared_->wait * 10 + std::chrono::seconds(1)) return false;
  shared_->record_error(api::kErrorTimeout, "nvmlEventSetWait did not return; the XID event thread was restarted");
  // The wedged thread keeps its own event set and frees it if the call ever comes back.
  control_->abandoned = true;
  thread_.detach();
  start();
  return true;
}

void XidWatcher::exclude(std::size_t device_index) {
  std::lock_guard lock(shared_->mutex);
  if (device_index < shared_->excluded.size()) shared_->excluded[device_index] = true;
}

void XidWatcher::rebuild() { shared_->rebuild = true; }

std::vector<telemetry::XidCount> XidWatcher::counts(std::size_t device_index) const {
  std::lock_guard lock(shared_->mutex);
  std::vector<telemetry::XidCount> result;
  for (const auto& [key, count] : shared_->counts) {
    if (key.first == device_index) result.push_back(count);
  }
  return result;
}

std::vector<telemetry::ReadError> XidWatcher::take_errors() {
  std::lock_guard lock(shared_->mutex);
  return std::exchange(shared_->errors, {});
}

}  // namespace substrate::nvml
