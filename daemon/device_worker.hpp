#pragma once
// A helper thread that runs jobs serially, never on the event loop (the daemon reads telemetry
// on one; device work runs in worker processes, daemon/supervisor.hpp). Urgent jobs go to the
// front of the queue.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace substrate {

class DeviceWorker {
 public:
  DeviceWorker();
  ~DeviceWorker();  // joins; call abandon() first when a job may never return
  DeviceWorker(const DeviceWorker&) = delete;
  DeviceWorker& operator=(const DeviceWorker&) = delete;

  void submit(std::function<void()> job, bool urgent = false);
  // When the current job started, or nullopt when idle.
  std::optional<std::chrono::steady_clock::time_point> running_since() const;
  bool idle() const;
  // Stops taking jobs; returns once the running job ends or `grace` passes. False: still running.
  bool stop(std::chrono::milliseconds grace);
  // Gives up on a worker whose job never returns: its thread is detached and the worker (with
  // whatever the job uses) is kept until the process exits.
  static void abandon(std::unique_ptr<DeviceWorker> worker);
  // Whether any worker was abandoned in this process (its thread may still be blocked).
  static bool any_abandoned();

 private:
  void loop();

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable finished_;
  std::deque<std::function<void()>> jobs_;
  std::optional<std::chrono::steady_clock::time_point> running_since_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace substrate
