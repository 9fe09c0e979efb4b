#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <vector>

#include "daemon/device_worker.hpp"

using namespace substrate;
using namespace std::chrono_literals;

TEST_CASE("device_worker: jobs run serially in order, urgent ones first", "[unit]") {
  DeviceWorker worker;
  std::promise<void> gate;
  auto opened = gate.get_future().share();
  std::vector<int> order;
  std::mutex mutex;
  auto record = [&](int n) {
    std::lock_guard lock(mutex);
    order.push_back(n);
  };
  worker.submit([opened] { opened.wait(); });  // holds the worker while the queue fills
  worker.submit([&] { record(1); });
  worker.submit([&] { record(2); });
  worker.submit([&] { record(0); }, /*urgent=*/true);
  gate.set_value();
  while (!worker.idle()) std::this_thread::sleep_for(1ms);
  CHECK(order == std::vector<int>{0, 1, 2});
}

TEST_CASE("device_worker: stop reports a job that outlives the grace period", "[unit]") {
  auto worker = std::make_unique<DeviceWorker>();
  std::atomic<bool> release{false};
  worker->submit([&] {
    while (!release) std::this_thread::sleep_for(1ms);
  });
  while (!worker->running_since()) std::this_thread::sleep_for(1ms);
  CHECK_FALSE(worker->stop(50ms));
  release = true;
  CHECK(worker->stop(2000ms));
}
