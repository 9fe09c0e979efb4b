#include "daemon/device_worker.hpp"

#include <vector>

namespace substrate {

DeviceWorker::DeviceWorker() : thread_([this] { loop(); }) {}

DeviceWorker::~DeviceWorker() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void DeviceWorker::submit(std::function<void()> job, bool urgent) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    if (urgent) {
      jobs_.push_front(std::move(job));
    } else {
      jobs_.push_back(std::move(job));
    }
  }
  wake_.notify_one();
}

std::optional<std::chrono::steady_clock::time_point> DeviceWorker::running_since() const {
  std::lock_guard lock(mutex_);
  return running_since_;
}

bool DeviceWorker::idle() const {
  std::lock_guard lock(mutex_);
  return !running_since_ && jobs_.empty();
}

bool DeviceWorker::stop(std::chrono::milliseconds grace) {
  std::unique_lock lock(mutex_);
  stopping_ = true;
  jobs_.clear();
  wake_.notify_all();
  return finished_.wait_for(lock, grace, [this] { return !running_since_; });
}

namespace {
// Abandoned workers, kept where a global points at them and never freed: the detached thread
// still uses its worker, and a leak checker sees it reachable (the thread may end, a blocked read
// returning, before the process does).
std::mutex g_abandoned_mutex;
std::vector<std::unique_ptr<DeviceWorker>>& abandoned() {
  static auto* kept = new std::vector<std::unique_ptr<DeviceWorker>>();
  return *kept;
}
}  // namespace

void DeviceWorker::abandon(std::unique_ptr<DeviceWorker> worker) {
  if (worker->thread_.joinable()) worker->thread_.detach();
  std::lock_guard lock(g_abandoned_mutex);
  abandoned().push_back(std::move(worker));
}

bool DeviceWorker::any_abandoned() {
  std::lock_guard lock(g_abandoned_mutex);
  return !abandoned().empty();
}

void DeviceWorker::loop() {
  std::unique_lock lock(mutex_);
  while (true) {
    wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
    if (stopping_) break;
    auto job = std::move(jobs_.front());
    jobs_.pop_front();
    running_since_ = std::chrono::steady_clock::now();
    lock.unlock();
    job();
    lock.lock();
    running_since_.reset();
    finished_.notify_all();
  }
  running_since_.reset();
  finished_.notify_all();
}

}  // namespace substrate
