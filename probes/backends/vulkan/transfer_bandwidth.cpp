#include "probes/backends/vulkan/transfer_bandwidth.hpp"

#include "probes/backends/vulkan/vk_core.hpp"
#include "spirv/copy.hpp"

namespace substrate::vulkan {
namespace {

class VulkanTransferBench final : public TransferBench {
 public:
  VulkanTransferBench(VkPhysicalDevice physical, std::uint64_t bytes)
      : device_(physical),
        source_(device_, bytes, BufferKind::device_local),
        target_(device_, bytes, BufferKind::device_local),
        quads_(static_cast<std::uint32_t>(bytes / 16)),
        shader_copy_(device_, spirv::copy(), 2, sizeof quads_) {}

  bool has_timestamps() const { return device_.has_timestamps(); }

  Expected<double> run(Transfer transfer) override {
    try {
      Sequence sequence(device_, 1);
      const Buffer* bindings[] = {&source_, &target_};
      const std::uint32_t t0 = sequence.timestamp();
      switch (transfer) {
        case Transfer::copy:
          sequence.copy(source_, target_);
          break;
        case Transfer::fill:
          sequence.fill(target_, 0);
          break;
        case Transfer::shader_copy:
          sequence.dispatch(shader_copy_, bindings, &quads_, groups_1d(quads_, 256));
          break;
      }
      sequence.barrier();
      const std::uint32_t t1 = sequence.timestamp();
      sequence.submit_and_wait(120);
      return sequence.seconds_between(t0, t1);
    } catch (const VulkanFailure& failure) {
      return Error{failure.kind(), std::string("transfers: ") + failure.what()};
    }
  }

 private:
  Device device_;
  Buffer source_, target_;
  std::uint32_t quads_;
  Pipeline shader_copy_;
};

}  // namespace

Expected<std::unique_ptr<TransferBench>> TransferBench::open(std::size_t device_index, std::uint64_t bytes) {
  try {
    static Instance instance;  // one per process, like discovery's: drivers stay loaded
    const auto physical = instance.physical_devices();
    if (device_index >= physical.size()) {
      return Error{ErrorKind::invalid_argument, "transfers: no Vulkan device " + std::to_string(device_index)};
    }
    VkPhysicalDeviceProperties properties;
    vkGetPhysicalDeviceProperties(physical[device_index], &properties);
    if (bytes < 16 || bytes % 16 != 0 || bytes > properties.limits.maxStorageBufferRange) {
      return Error{ErrorKind::invalid_argument, "transfers: " + std::to_string(bytes) +
                                                    " bytes is not a multiple of 16 within the storage buffer range"};
    }
    auto bench = std::make_unique<VulkanTransferBench>(physical[device_index], bytes);
    if (!bench->has_timestamps()) {
      return Error{ErrorKind::unavailable, "transfers: the device has no timestamp queries"};
    }
    for (Transfer transfer : {Transfer::copy, Transfer::fill, Transfer::shader_copy}) TRY(bench->run(transfer));
    return std::unique_ptr<TransferBench>(std::move(bench));
  } catch (const VulkanFailure& failure) {
    return Error{failure.kind(), std::string("transfers: ") + failure.what()};
  }
}

}  // namespace substrate::vulkan
