#include "probes/backends/launch_limits.hpp"

namespace substrate {

namespace {

Error refuse(const std::string& message) { return Error{ErrorKind::invalid_argument, message}; }

}  // namespace

Status check_buffers(const LaunchLimits& limits, const std::string& kernel, std::span<const BufferNeed> buffers,
                     std::uint64_t host_bytes) {
  std::uint64_t total = host_bytes;
  for (const BufferNeed& buffer : buffers) {
    if (buffer.elements > limits.max_elements) {
      return refuse(kernel + ": " + buffer.name + " has " + std::to_string(buffer.elements) + " elements, above the " +
                    std::to_string(limits.max_elements) + " that the kernels' element indices reach");
    }
    if (buffer.bytes > limits.max_buffer_bytes) {
      return refuse(kernel + ": " + buffer.name + " needs " + std::to_string(buffer.bytes) + " bytes, above " +
                    limits.device + "'s largest storage buffer (maxStorageBufferRange) of " +
                    std::to_string(limits.max_buffer_bytes) + " bytes; use a smaller size");
    }
    total += buffer.bytes;
  }
  if (limits.memory_bytes > 0 && total > limits.memory_bytes) {
    return refuse(kernel + ": the run needs " + std::to_string(total) + " bytes of buffers, above " + limits.device +
                  "'s " + std::to_string(limits.memory_bytes) + " bytes of device memory; use a smaller size");
  }
  return ok_status();
}

Status check_groups(const LaunchLimits& limits, const std::string& kernel, std::array<std::uint64_t, 3> groups) {
  static constexpr const char* axis[] = {"x", "y", "z"};
  for (int i = 0; i < 3; ++i) {
    if (groups[i] > limits.max_groups[i]) {
      return refuse(kernel + ": the shape needs " + std::to_string(groups[i]) + " workgroups in " + axis[i] +
                    ", above " + limits.device + "'s " + limits.groups_limit + "[" + std::to_string(i) + "] of " +
                    std::to_string(limits.max_groups[i]) + "; use a smaller size");
    }
  }
  return ok_status();
}

Status check_loop_iterations(const LaunchLimits& limits, const std::string& kernel, std::uint64_t iterations,
                             const std::string& what) {
  if (limits.max_loop_iterations == 0 || iterations <= limits.max_loop_iterations) return ok_status();
  return refuse(kernel + ": " + what + " needs " + std::to_string(iterations) +
                " loop iterations in one shader invocation, above the " + std::to_string(limits.max_loop_iterations) +
                " that " + limits.device + " runs (" + limits.loop_limit_source +
                ": the result would be silently wrong); use a smaller size");
}

}  // namespace substrate
