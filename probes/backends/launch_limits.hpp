#pragma once
// Device limits a launch must respect, shared by the backends: each backend fills LaunchLimits
// from its API (Vulkan: VkPhysicalDeviceLimits and the driver; CUDA: device attributes) and
// checks every launch before it allocates or dispatches, so a shape the device cannot run is
// refused with a message naming the limit (exit 2) instead of failing inside the driver
// (VK_ERROR_OUT_OF_DEVICE_MEMORY) or, worse, running wrongly and failing the check (exit 1).
#include <array>
#include <cstdint>
#include <span>
#include <string>

#include "common/expected.hpp"

namespace substrate {

struct LaunchLimits {
  std::string device;  // id used in messages, e.g. "vulkan0"
  // Workgroups (blocks) per dispatch in x, y, z: Vulkan maxComputeWorkGroupCount (65,535 each on
  // lavapipe, the minimum the Vulkan spec allows); CUDA maxGridDim.
  std::array<std::uint64_t, 3> max_groups{UINT32_MAX, UINT32_MAX, UINT32_MAX};
  std::string groups_limit = "maxComputeWorkGroupCount";  // the API's name for it, in messages
  // Bytes one buffer binding may span: Vulkan maxStorageBufferRange (128 MiB on lavapipe).
  std::uint64_t max_buffer_bytes = UINT64_MAX;
  // Elements one tensor may hold: k_max_indexed_elements for kernels with 32-bit indices (GLSL);
  // the CUDA kernels index with 64 bits.
  std::uint64_t max_elements = UINT32_MAX;
  // Device memory the launch's buffers may take together; 0 when unknown (not checked).
  std::uint64_t memory_bytes = 0;
  // Loop iterations one shader invocation may run, counted over all its loops together; 0 when
  // the driver has no such limit. Mesa's gallivm (lavapipe, llvmpipe) stops every loop after
  // LP_MAX_TGSI_LOOP_ITERATIONS = 65,535 iterations of a counter shared by all loops of a shader
  // (src/gallium/auxiliary/gallivm/lp_bld_ir_common.c), silently: the result is wrong, not an error.
  std::uint64_t max_loop_iterations = 0;
  std::string loop_limit_source;  // e.g. "Mesa lavapipe stops loops after 65535 iterations"
};

// One buffer a launch needs: `elements` values stored in `bytes`.
struct BufferNeed {
  const char* name;  // "A", "output", ...
  std::uint64_t elements = 0;
  std::uint64_t bytes = 0;
};

// The kernels index elements with 32-bit unsigned integers (GLSL uint, CUDA kernels' uint32
// offsets), so a tensor holds at most 2^32 - 1 elements.
inline constexpr std::uint64_t k_max_indexed_elements = UINT32_MAX;

// ok when every buffer has at most limits.max_elements elements and at most
// limits.max_buffer_bytes bytes and all together fit in limits.memory_bytes (when known);
// otherwise invalid_argument "<kernel>: <name> needs N bytes, above <device>'s <limit> of M bytes".
// `host_bytes` (readback copies) count against memory too: on a CPU device they share it.
Status check_buffers(const LaunchLimits& limits, const std::string& kernel, std::span<const BufferNeed> buffers,
                     std::uint64_t host_bytes = 0);

// ok when a dispatch of `groups` workgroups fits limits.max_groups in every dimension;
// otherwise invalid_argument naming the dimension, the count and the limit.
Status check_groups(const LaunchLimits& limits, const std::string& kernel, std::array<std::uint64_t, 3> groups);

// ok when `iterations` (a kernel's loop iterations per invocation in its worst invocation, as
// the backend models its own kernel) is within limits.max_loop_iterations (or there is none);
// otherwise invalid_argument naming the limit, with `what` saying which part of the shape drives it.
Status check_loop_iterations(const LaunchLimits& limits, const std::string& kernel, std::uint64_t iterations,
                             const std::string& what);

}  // namespace substrate
