// Test-only daemon: `substrated serve` with stand-in devices wrapped around the real lavapipe
// device, for faults that real hardware cannot be made to show on demand. Never installed.
//   hang  --config FILE : gemm never returns (the backend's own timeout does not fire either)
//   flaky --config FILE : every other gemm output has its lowest mantissa bit flipped, inside the
//                         error bound: only the fingerprint can notice
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "daemon/service.hpp"

using namespace substrate;

namespace {

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
    if (run && (++calls_ % 2 == 0)) run->output_bits[0] ^= 1u;
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
  unsigned calls_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 || std::string(argv[2]) != "--config") {
    std::fprintf(stderr, "usage: substrate_test_daemon hang|flaky --config FILE\n");
    return 2;
  }
  Discovery real = discover_devices();
  if (real.devices.empty()) {
    std::fprintf(stderr, "no Vulkan device\n");
    return 2;
  }
  auto wrapped = std::make_unique<Discovery>();
  wrapped->devices.push_back(std::make_unique<WrappedDevice>(std::move(real.devices.front()), argv[1]));
  ServeOptions options;
  options.config_path = argv[3];
  options.devices = std::move(wrapped);
  return serve(std::move(options));
}
