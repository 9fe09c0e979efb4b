#pragma once
// Thin RAII layer over the Vulkan C API (Kompute-like layering: instance, device, buffer,
// pipeline, command sequence). Only files in probes/backends/vulkan include this header.
// Failures inside the layer throw VulkanFailure; VulkanComputeDevice converts them to Error at
// its boundary.
#include <vulkan/vulkan.h>

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/expected.hpp"

namespace substrate::vulkan {

class VulkanFailure : public std::runtime_error {
 public:
  VulkanFailure(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

const char* result_name(VkResult result);
// Throws VulkanFailure("<what> failed: VK_...") unless result is VK_SUCCESS.
void check(VkResult result, const char* what);

class Instance {
 public:
  Instance();
  ~Instance();
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;
  VkInstance handle() const { return instance_; }
  std::vector<VkPhysicalDevice> physical_devices() const;

 private:
  VkInstance instance_ = VK_NULL_HANDLE;
};

class Device {
 public:
  explicit Device(VkPhysicalDevice physical);
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
  VkDevice handle() const { return device_; }
  VkPhysicalDevice physical() const { return physical_; }
  VkQueue queue() const { return queue_; }
  std::uint32_t queue_family() const { return queue_family_; }
  double timestamp_period_ns() const { return timestamp_period_ns_; }
  bool has_timestamps() const { return timestamp_bits_ > 0; }
  // Whether shaders may declare RoundingModeRTE for fp32 (shaderRoundingModeRTEFloat32, with
  // VK_KHR_shader_float_controls enabled): then fp32 adds and multiplies round to nearest even.
  bool rounds_to_nearest_f32() const { return rounds_to_nearest_f32_; }
  // Index of a memory type with all of `required` (and `preferred` too when one exists).
  std::uint32_t memory_type(std::uint32_t allowed_types, VkMemoryPropertyFlags required,
                            VkMemoryPropertyFlags preferred) const;
  VkMemoryPropertyFlags memory_flags(std::uint32_t type) const { return memory_.memoryTypes[type].propertyFlags; }

 private:
  VkPhysicalDevice physical_;
  VkDevice device_ = VK_NULL_HANDLE;
  VkQueue queue_ = VK_NULL_HANDLE;
  std::uint32_t queue_family_ = 0;
  std::uint32_t timestamp_bits_ = 0;
  double timestamp_period_ns_ = 1.0;
  bool rounds_to_nearest_f32_ = false;
  VkPhysicalDeviceMemoryProperties memory_{};
};

enum class BufferKind { device_local, readback };

class Buffer {
 public:
  Buffer(const Device& device, VkDeviceSize bytes, BufferKind kind);
  ~Buffer();
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&&) = delete;
  Buffer(const Buffer&) = delete;
  VkBuffer handle() const { return buffer_; }
  VkDeviceSize bytes() const { return bytes_; }
  // Readback buffers only: the mapped words.
  std::span<std::uint32_t> words();
  // Whether the memory is device-local as well (a CPU device such as lavapipe, an integrated GPU):
  // a readback buffer that is can take a kernel's output directly, with no copy.
  bool device_local() const { return device_local_; }

 private:
  VkDevice device_;
  VkBuffer buffer_ = VK_NULL_HANDLE;
  VkDeviceMemory memory_ = VK_NULL_HANDLE;
  VkDeviceSize bytes_;
  void* mapped_ = nullptr;
  bool device_local_ = false;
};

class Pipeline {
 public:
  // `constants[i]` specialises the shader's `constant_id = i` (paths a constant rules out are
  // compiled away, which matters on SIMD back ends like llvmpipe that run both sides of a branch).
  Pipeline(const Device& device, std::span<const std::uint32_t> spirv, std::uint32_t buffer_count,
           std::uint32_t push_constant_bytes, std::span<const std::uint32_t> constants = {});
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;
  VkPipeline handle() const { return pipeline_; }
  VkPipelineLayout layout() const { return layout_; }
  VkDescriptorSetLayout set_layout() const { return set_layout_; }
  std::uint32_t buffer_count() const { return buffer_count_; }
  std::uint32_t push_constant_bytes() const { return push_constant_bytes_; }

 private:
  VkDevice device_;
  VkShaderModule module_ = VK_NULL_HANDLE;
  VkDescriptorSetLayout set_layout_ = VK_NULL_HANDLE;
  VkPipelineLayout layout_ = VK_NULL_HANDLE;
  VkPipeline pipeline_ = VK_NULL_HANDLE;
  std::uint32_t buffer_count_;
  std::uint32_t push_constant_bytes_;
};

// Workgroup counts for `invocations` 1-D invocations of `group_size`, folded into x and y so no
// dimension exceeds the guaranteed 65535.
struct Groups {
  std::uint32_t x = 1, y = 1, z = 1;
};
Groups groups_1d(std::uint64_t invocations, std::uint32_t group_size);

// One command buffer recorded, submitted and waited for with a timeout. Timestamps bracket
// marked regions so device time excludes the host.
class Sequence {
 public:
  Sequence(const Device& device, std::uint32_t max_dispatches);
  ~Sequence();
  Sequence(const Sequence&) = delete;
  Sequence& operator=(const Sequence&) = delete;

  void dispatch(const Pipeline& pipeline, std::span<const Buffer* const> buffers, const void* push_constants,
                Groups groups);
  void barrier();                                       // compute writes visible to later compute reads and transfers
  void barrier_to_host();                               // compute writes visible to host reads after submit_and_wait
  void fill(const Buffer& buffer, std::uint32_t word);  // every word of the buffer (a transfer write)
  void copy(const Buffer& from, const Buffer& to);
  // Records a timestamp; returns its slot.
  std::uint32_t timestamp();
  // Submits and waits up to timeout_seconds. Throws VulkanFailure(timeout) when the device does
  // not finish, VulkanFailure(device_error) on device loss.
  void submit_and_wait(double timeout_seconds);
  // Seconds between two recorded timestamps (after submit_and_wait); 0 without timestamp support.
  double seconds_between(std::uint32_t first, std::uint32_t second) const;

 private:
  const Device& device_;
  VkCommandPool pool_ = VK_NULL_HANDLE;
  VkCommandBuffer commands_ = VK_NULL_HANDLE;
  VkDescriptorPool descriptors_ = VK_NULL_HANDLE;
  VkQueryPool queries_ = VK_NULL_HANDLE;
  VkFence fence_ = VK_NULL_HANDLE;
  std::uint32_t timestamps_used_ = 0;
  std::vector<std::uint64_t> timestamp_values_;
  static constexpr std::uint32_t k_max_timestamps = 64;
};

}  // namespace substrate::vulkan
