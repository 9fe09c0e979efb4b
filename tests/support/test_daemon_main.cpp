// Test-only daemon: `substrated serve` whose workers wrap the real lavapipe device in stand-ins,
// for faults that real hardware cannot be made to show on demand. Never installed.
//   hang  --config FILE : gemm never returns in the worker (the backend's own timeout does not
//                         fire either)
//   flaky --config FILE : every other gemm output (counted across workers) has its lowest
//                         mantissa bit flipped, inside the error bound: only the fingerprint can
//                         notice
//   slow  --config FILE : every gemm reports one second of device time (the duty-cycle budget's
//                         arithmetic without a device that slow)
// The daemon starts its workers from /proc/self/exe, i.e. this binary with `__worker`; the mode
// reaches them through the environment.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#include "daemon/service.hpp"
#include "daemon/worker_main.hpp"
#include "daemon/worker_protocol.hpp"

using namespace substrate;

namespace {

constexpr const char* k_mode_variable = "SUBSTRATE_TEST_DAEMON_MODE";
constexpr const char* k_counter_variable = "SUBSTRATE_TEST_DAEMON_COUNTER";

// Flaky mode's call count, kept across worker processes in a file beside the config.
unsigned next_call() {
  const char* path = std::getenv(k_counter_variable);
  if (!path) return 0;
  unsigned calls = 0;
  std::ifstream(path) >> calls;
  std::ofstream(path) << ++calls;
  return calls;
}

class WrappedDevice : public ComputeDevice {
 public:
  WrappedDevice(DevicePtr inner, std::string mode) : inner_(std::move(inner)), mode_(std::move(mode)) {
    info_ = inner_->info();
    info_.id = mode_ + "0";
  }
  const DeviceInfo& info() const override { return info_; }
  std::uint64_t free_memory_bytes() const override { return inner_->free_memory_bytes(); }
  Expected<std::vector<std::uint32_t>> generate_raw(std::uint64_t seed, std::uint32_t stream, std::uint64_t first,
                                                    std::uint32_t count) override {
    return inner_->generate_raw(seed, stream, first, count);
  }
  Expected<KernelRun> run_gemm(const GemmLaunch& launch) override {
    if (mode_ == "hang") {
      while (true) std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    auto run = inner_->run_gemm(launch);
    if (run && mode_ == "flaky" && next_call() % 2 == 0) run->output_bits[0] ^= 1u;
    if (run && mode_ == "slow") run->device_seconds = 1.0;
    return run;
  }
  Expected<KernelRun> run_attention(const AttentionLaunch& launch) override { return inner_->run_attention(launch); }
  Expected<MemoryRun> run_memory(const MemoryLaunch& launch) override { return inner_->run_memory(launch); }
  Expected<RetentionRun> check_retention(std::uint64_t bytes, std::uint64_t seed) override {
    return inner_->check_retention(bytes, seed);
  }
  void set_timeout_seconds(double seconds) override { inner_->set_timeout_seconds(seconds); }

 private:
  DevicePtr inner_;
  std::string mode_;
  DeviceInfo info_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == worker::k_worker_command) {
    const char* mode = std::getenv(k_mode_variable);
    worker::WorkerHooks hooks;
    hooks.discover = [mode = std::string(mode ? mode : "hang")] {
      Discovery real = discover_devices();
      Discovery wrapped;
      wrapped.backend_notes = real.backend_notes;
      if (!real.devices.empty()) {
        wrapped.devices.push_back(std::make_unique<WrappedDevice>(std::move(real.devices.front()), mode));
      }
      return wrapped;
    };
    return worker::worker_main(std::vector<std::string>(argv + 2, argv + argc), hooks);
  }
  if (argc != 4 || std::string(argv[2]) != "--config") {
    std::fprintf(stderr, "usage: substrate_test_daemon hang|flaky|slow --config FILE\n");
    return 2;
  }
  ::setenv(k_mode_variable, argv[1], 1);
  ::setenv(k_counter_variable, (std::string(argv[3]) + ".calls").c_str(), 1);
  ServeOptions options;
  options.config_path = argv[3];
  return serve(std::move(options));
}
