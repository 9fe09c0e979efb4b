#pragma once
// The Vulkan device's own transfer speeds, the yardstick of the memory probe's bandwidth
// (bench/bandwidth.cpp). No Vulkan header here: the bench sees only seconds.
#include <cstdint>
#include <memory>

#include "common/expected.hpp"

namespace substrate::vulkan {

// The device's own transfers over the whole region.
enum class Transfer {
  copy,         // vkCmdCopyBuffer from one buffer to the other: bytes read + bytes written = 2 * bytes
  fill,         // vkCmdFillBuffer of one buffer: bytes written
  shader_copy,  // kernels/glsl/copy.comp, one invocation per uvec4: 2 * bytes
};

// Two buffers of `bytes` on one device, its own VkDevice, kept between repetitions so that
// repetitions can be interleaved with other measurements.
class TransferBench {
 public:
  // `device_index` is the N of "vulkanN" (discovery order); `bytes` a multiple of 16 within the
  // device's storage buffer range. Errors: invalid_argument for a bad size or index, unavailable
  // without timestamp queries, or the driver's failure. Runs each transfer once unmeasured, which
  // touches every page of both buffers and compiles the shader.
  static Expected<std::unique_ptr<TransferBench>> open(std::size_t device_index, std::uint64_t bytes);
  virtual ~TransferBench() = default;
  // Device seconds (timestamp queries around the one command) of one transfer, submitted and
  // waited for alone, so that a caller can also time it on the host. Errors: the driver's failure.
  virtual Expected<double> run(Transfer transfer) = 0;
};

}  // namespace substrate::vulkan
