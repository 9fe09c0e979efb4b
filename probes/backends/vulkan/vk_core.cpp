#include "probes/backends/vulkan/vk_core.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace substrate::vulkan {

const char* result_name(VkResult result) {
  switch (result) {
    case VK_SUCCESS:
      return "VK_SUCCESS";
    case VK_NOT_READY:
      return "VK_NOT_READY";
    case VK_TIMEOUT:
      return "VK_TIMEOUT";
    case VK_INCOMPLETE:
      return "VK_INCOMPLETE";
    case VK_ERROR_OUT_OF_HOST_MEMORY:
      return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY:
      return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED:
      return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST:
      return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED:
      return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT:
      return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT:
      return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT:
      return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER:
      return "VK_ERROR_INCOMPATIBLE_DRIVER (no Vulkan driver installed)";
    case VK_ERROR_TOO_MANY_OBJECTS:
      return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_FORMAT_NOT_SUPPORTED:
      return "VK_ERROR_FORMAT_NOT_SUPPORTED";
    case VK_ERROR_FRAGMENTED_POOL:
      return "VK_ERROR_FRAGMENTED_POOL";
    case VK_ERROR_OUT_OF_POOL_MEMORY:
      return "VK_ERROR_OUT_OF_POOL_MEMORY";
    default:
      return "VK_ERROR_UNKNOWN";
  }
}

void check(VkResult result, const char* what) {
  if (result == VK_SUCCESS) return;
  const ErrorKind kind = result == VK_TIMEOUT ? ErrorKind::timeout : ErrorKind::device_error;
  throw VulkanFailure(kind, std::string(what) + " failed: " + result_name(result));
}

Instance::Instance() {
  VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
  app.pApplicationName = "substrated";
  app.apiVersion = VK_API_VERSION_1_1;
  VkInstanceCreateInfo info{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
  info.pApplicationInfo = &app;
  check(vkCreateInstance(&info, nullptr, &instance_), "vkCreateInstance");
}

Instance::~Instance() { vkDestroyInstance(instance_, nullptr); }

std::vector<VkPhysicalDevice> Instance::physical_devices() const {
  std::uint32_t count = 0;
  check(vkEnumeratePhysicalDevices(instance_, &count, nullptr), "vkEnumeratePhysicalDevices");
  std::vector<VkPhysicalDevice> devices(count);
  check(vkEnumeratePhysicalDevices(instance_, &count, devices.data()), "vkEnumeratePhysicalDevices");
  devices.resize(count);
  return devices;
}

Device::Device(VkPhysicalDevice physical) : physical_(physical) {
  std::uint32_t family_count = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(physical, &family_count, nullptr);
  std::vector<VkQueueFamilyProperties> families(family_count);
  vkGetPhysicalDeviceQueueFamilyProperties(physical, &family_count, families.data());
  bool found = false;
  for (std::uint32_t i = 0; i < family_count && !found; ++i) {
    if (families[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
      queue_family_ = i;
      timestamp_bits_ = families[i].timestampValidBits;
      found = true;
    }
  }
  if (!found) throw VulkanFailure(ErrorKind::unavailable, "device has no compute queue");

  VkPhysicalDeviceProperties properties;
  vkGetPhysicalDeviceProperties(physical, &properties);
  timestamp_period_ns_ = properties.limits.timestampPeriod;
  if (!properties.limits.timestampComputeAndGraphics) timestamp_bits_ = 0;
  vkGetPhysicalDeviceMemoryProperties(physical, &memory_);

  const float priority = 1.0f;
  VkDeviceQueueCreateInfo queue_info{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
  queue_info.queueFamilyIndex = queue_family_;
  queue_info.queueCount = 1;
  queue_info.pQueuePriorities = &priority;
  VkDeviceCreateInfo info{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
  info.queueCreateInfoCount = 1;
  info.pQueueCreateInfos = &queue_info;
  // Round-to-nearest-even declared in the shaders (SPIR-V RoundingModeRTE) needs
  // VK_KHR_shader_float_controls enabled (the instance asks for Vulkan 1.1, where it is not core)
  // and shaderRoundingModeRTEFloat32. Without it "correctly rounded" fp32 operations may return
  // either neighbour (Vulkan spec, "Precision and Operation of SPIR-V Instructions").
  std::uint32_t extension_count = 0;
  vkEnumerateDeviceExtensionProperties(physical, nullptr, &extension_count, nullptr);
  std::vector<VkExtensionProperties> extensions(extension_count);
  vkEnumerateDeviceExtensionProperties(physical, nullptr, &extension_count, extensions.data());
  const char* float_controls = VK_KHR_SHADER_FLOAT_CONTROLS_EXTENSION_NAME;
  for (const VkExtensionProperties& extension : extensions) {
    if (std::string(extension.extensionName) != float_controls) continue;
    VkPhysicalDeviceFloatControlsPropertiesKHR controls{
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FLOAT_CONTROLS_PROPERTIES_KHR};
    VkPhysicalDeviceProperties2 properties2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
    properties2.pNext = &controls;
    vkGetPhysicalDeviceProperties2(physical, &properties2);
    rounds_to_nearest_f32_ = controls.shaderRoundingModeRTEFloat32 == VK_TRUE;
  }
  if (rounds_to_nearest_f32_) {
    info.enabledExtensionCount = 1;
    info.ppEnabledExtensionNames = &float_controls;
  }
  check(vkCreateDevice(physical, &info, nullptr, &device_), "vkCreateDevice");
  vkGetDeviceQueue(device_, queue_family_, 0, &queue_);
}

Device::~Device() {
  vkDeviceWaitIdle(device_);
  vkDestroyDevice(device_, nullptr);
}

std::uint32_t Device::memory_type(std::uint32_t allowed_types, VkMemoryPropertyFlags required,
                                  VkMemoryPropertyFlags preferred) const {
  std::int64_t fallback = -1;
  for (std::uint32_t i = 0; i < memory_.memoryTypeCount; ++i) {
    if (!(allowed_types & (1u << i))) continue;
    const VkMemoryPropertyFlags flags = memory_.memoryTypes[i].propertyFlags;
    if ((flags & required) != required) continue;
    if ((flags & preferred) == preferred) return i;
    if (fallback < 0) fallback = i;
  }
  if (fallback < 0) throw VulkanFailure(ErrorKind::device_error, "no suitable memory type");
  return static_cast<std::uint32_t>(fallback);
}

Buffer::Buffer(const Device& device, VkDeviceSize bytes, BufferKind kind) : device_(device.handle()), bytes_(bytes) {
  VkBufferCreateInfo info{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  info.size = std::max<VkDeviceSize>(bytes, 4);
  info.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
  info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  check(vkCreateBuffer(device_, &info, nullptr, &buffer_), "vkCreateBuffer");
  VkMemoryRequirements requirements;
  vkGetBufferMemoryRequirements(device_, buffer_, &requirements);
  VkMemoryAllocateInfo allocate{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  allocate.allocationSize = requirements.size;
  allocate.memoryTypeIndex =
      kind == BufferKind::device_local
          ? device.memory_type(requirements.memoryTypeBits, 0, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT)
          : device.memory_type(requirements.memoryTypeBits,
                               VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                               VK_MEMORY_PROPERTY_HOST_CACHED_BIT);
  const VkResult allocated = vkAllocateMemory(device_, &allocate, nullptr, &memory_);
  if (allocated != VK_SUCCESS) {
    vkDestroyBuffer(device_, buffer_, nullptr);
    check(allocated, "vkAllocateMemory");
  }
  vkBindBufferMemory(device_, buffer_, memory_, 0);
  device_local_ = device.memory_flags(allocate.memoryTypeIndex) & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
  if (kind == BufferKind::readback) {
    const VkResult mapped = vkMapMemory(device_, memory_, 0, VK_WHOLE_SIZE, 0, &mapped_);
    if (mapped != VK_SUCCESS) {
      vkDestroyBuffer(device_, buffer_, nullptr);
      vkFreeMemory(device_, memory_, nullptr);
      check(mapped, "vkMapMemory");
    }
  }
}

Buffer::Buffer(Buffer&& other) noexcept
    : device_(other.device_),
      buffer_(other.buffer_),
      memory_(other.memory_),
      bytes_(other.bytes_),
      mapped_(other.mapped_),
      device_local_(other.device_local_) {
  other.buffer_ = VK_NULL_HANDLE;
  other.memory_ = VK_NULL_HANDLE;
  other.mapped_ = nullptr;
}

Buffer::~Buffer() {
  if (buffer_ == VK_NULL_HANDLE) return;
  if (mapped_) vkUnmapMemory(device_, memory_);
  vkDestroyBuffer(device_, buffer_, nullptr);
  vkFreeMemory(device_, memory_, nullptr);
}

std::span<std::uint32_t> Buffer::words() {
  return {static_cast<std::uint32_t*>(mapped_), static_cast<std::size_t>(bytes_ / 4)};
}

Pipeline::Pipeline(const Device& device, std::span<const std::uint32_t> spirv, std::uint32_t buffer_count,
                   std::uint32_t push_constant_bytes, std::span<const std::uint32_t> constants)
    : device_(device.handle()), buffer_count_(buffer_count), push_constant_bytes_(push_constant_bytes) {
  VkShaderModuleCreateInfo module_info{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
  module_info.codeSize = spirv.size_bytes();
  module_info.pCode = spirv.data();
  check(vkCreateShaderModule(device_, &module_info, nullptr, &module_), "vkCreateShaderModule");

  std::vector<VkDescriptorSetLayoutBinding> bindings(buffer_count);
  for (std::uint32_t i = 0; i < buffer_count; ++i) {
    bindings[i] = {i, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, nullptr};
  }
  VkDescriptorSetLayoutCreateInfo set_info{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
  set_info.bindingCount = buffer_count;
  set_info.pBindings = bindings.data();
  check(vkCreateDescriptorSetLayout(device_, &set_info, nullptr, &set_layout_), "vkCreateDescriptorSetLayout");

  VkPushConstantRange range{VK_SHADER_STAGE_COMPUTE_BIT, 0, push_constant_bytes};
  VkPipelineLayoutCreateInfo layout_info{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
  layout_info.setLayoutCount = 1;
  layout_info.pSetLayouts = &set_layout_;
  layout_info.pushConstantRangeCount = 1;
  layout_info.pPushConstantRanges = &range;
  check(vkCreatePipelineLayout(device_, &layout_info, nullptr, &layout_), "vkCreatePipelineLayout");

  VkComputePipelineCreateInfo info{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
  info.stage = {VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO};
  info.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
  info.stage.module = module_;
  info.stage.pName = "main";
  std::vector<VkSpecializationMapEntry> entries(constants.size());
  for (std::uint32_t i = 0; i < constants.size(); ++i) {
    entries[i] = {i, static_cast<std::uint32_t>(i * sizeof(std::uint32_t)), sizeof(std::uint32_t)};
  }
  const VkSpecializationInfo specialization{static_cast<std::uint32_t>(entries.size()), entries.data(),
                                            constants.size_bytes(), constants.data()};
  if (!constants.empty()) info.stage.pSpecializationInfo = &specialization;
  info.layout = layout_;
  check(vkCreateComputePipelines(device_, VK_NULL_HANDLE, 1, &info, nullptr, &pipeline_), "vkCreateComputePipelines");
}

Pipeline::~Pipeline() {
  vkDestroyPipeline(device_, pipeline_, nullptr);
  vkDestroyPipelineLayout(device_, layout_, nullptr);
  vkDestroyDescriptorSetLayout(device_, set_layout_, nullptr);
  vkDestroyShaderModule(device_, module_, nullptr);
}

Groups groups_1d(std::uint64_t invocations, std::uint32_t group_size) {
  const std::uint64_t groups = std::max<std::uint64_t>(1, (invocations + group_size - 1) / group_size);
  constexpr std::uint64_t k_max_x = 32768;
  if (groups <= k_max_x) return {static_cast<std::uint32_t>(groups), 1, 1};
  return {static_cast<std::uint32_t>(k_max_x), static_cast<std::uint32_t>((groups + k_max_x - 1) / k_max_x), 1};
}

Sequence::Sequence(const Device& device, std::uint32_t max_dispatches) : device_(device) {
  VkCommandPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  pool_info.queueFamilyIndex = device.queue_family();
  check(vkCreateCommandPool(device.handle(), &pool_info, nullptr, &pool_), "vkCreateCommandPool");
  VkCommandBufferAllocateInfo allocate{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  allocate.commandPool = pool_;
  allocate.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  allocate.commandBufferCount = 1;
  check(vkAllocateCommandBuffers(device.handle(), &allocate, &commands_), "vkAllocateCommandBuffers");

  VkDescriptorPoolSize size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, max_dispatches * 4};
  VkDescriptorPoolCreateInfo descriptor_info{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
  descriptor_info.maxSets = max_dispatches;
  descriptor_info.poolSizeCount = 1;
  descriptor_info.pPoolSizes = &size;
  check(vkCreateDescriptorPool(device.handle(), &descriptor_info, nullptr, &descriptors_), "vkCreateDescriptorPool");

  VkFenceCreateInfo fence_info{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  check(vkCreateFence(device.handle(), &fence_info, nullptr, &fence_), "vkCreateFence");

  VkCommandBufferBeginInfo begin{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  check(vkBeginCommandBuffer(commands_, &begin), "vkBeginCommandBuffer");
  if (device.has_timestamps()) {
    VkQueryPoolCreateInfo query_info{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
    query_info.queryType = VK_QUERY_TYPE_TIMESTAMP;
    query_info.queryCount = k_max_timestamps;
    check(vkCreateQueryPool(device.handle(), &query_info, nullptr, &queries_), "vkCreateQueryPool");
    vkCmdResetQueryPool(commands_, queries_, 0, k_max_timestamps);
  }
}

Sequence::~Sequence() {
  VkDevice device = device_.handle();
  if (queries_) vkDestroyQueryPool(device, queries_, nullptr);
  vkDestroyFence(device, fence_, nullptr);
  vkDestroyDescriptorPool(device, descriptors_, nullptr);
  vkDestroyCommandPool(device, pool_, nullptr);
}

void Sequence::dispatch(const Pipeline& pipeline, std::span<const Buffer* const> buffers, const void* push_constants,
                        Groups groups) {
  if (buffers.size() != pipeline.buffer_count()) {
    throw VulkanFailure(ErrorKind::invalid_argument, "dispatch: buffer count does not match the pipeline");
  }
  VkDescriptorSetLayout layout = pipeline.set_layout();
  VkDescriptorSetAllocateInfo allocate{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
  allocate.descriptorPool = descriptors_;
  allocate.descriptorSetCount = 1;
  allocate.pSetLayouts = &layout;
  VkDescriptorSet set;
  check(vkAllocateDescriptorSets(device_.handle(), &allocate, &set), "vkAllocateDescriptorSets");
  std::vector<VkDescriptorBufferInfo> infos(buffers.size());
  std::vector<VkWriteDescriptorSet> writes(buffers.size());
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    infos[i] = {buffers[i]->handle(), 0, VK_WHOLE_SIZE};
    writes[i] = {VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
    writes[i].dstSet = set;
    writes[i].dstBinding = static_cast<std::uint32_t>(i);
    writes[i].descriptorCount = 1;
    writes[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    writes[i].pBufferInfo = &infos[i];
  }
  vkUpdateDescriptorSets(device_.handle(), static_cast<std::uint32_t>(writes.size()), writes.data(), 0, nullptr);
  vkCmdBindPipeline(commands_, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline.handle());
  vkCmdBindDescriptorSets(commands_, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline.layout(), 0, 1, &set, 0, nullptr);
  vkCmdPushConstants(commands_, pipeline.layout(), VK_SHADER_STAGE_COMPUTE_BIT, 0, pipeline.push_constant_bytes(),
                     push_constants);
  vkCmdDispatch(commands_, groups.x, groups.y, groups.z);
}

void Sequence::barrier() {
  VkMemoryBarrier memory{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  memory.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  memory.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT;
  vkCmdPipelineBarrier(commands_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                       VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &memory, 0, nullptr,
                       0, nullptr);
}

void Sequence::barrier_to_host() {
  VkMemoryBarrier memory{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  memory.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
  memory.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
  vkCmdPipelineBarrier(commands_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &memory, 0,
                       nullptr, 0, nullptr);
}

void Sequence::fill(const Buffer& buffer, std::uint32_t word) {
  vkCmdFillBuffer(commands_, buffer.handle(), 0, VK_WHOLE_SIZE, word);
}

void Sequence::copy(const Buffer& from, const Buffer& to) {
  VkBufferCopy region{0, 0, std::min(from.bytes(), to.bytes())};
  vkCmdCopyBuffer(commands_, from.handle(), to.handle(), 1, &region);
  VkMemoryBarrier memory{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  memory.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
  memory.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
  vkCmdPipelineBarrier(commands_, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &memory, 0, nullptr,
                       0, nullptr);
}

std::uint32_t Sequence::timestamp() {
  if (!queries_) return 0;
  if (timestamps_used_ >= k_max_timestamps) throw VulkanFailure(ErrorKind::invalid_argument, "too many timestamps");
  vkCmdWriteTimestamp(commands_, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queries_, timestamps_used_);
  return timestamps_used_++;
}

void Sequence::submit_and_wait(double timeout_seconds) {
  check(vkEndCommandBuffer(commands_), "vkEndCommandBuffer");
  VkSubmitInfo submit{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  submit.commandBufferCount = 1;
  submit.pCommandBuffers = &commands_;
  check(vkQueueSubmit(device_.queue(), 1, &submit, fence_), "vkQueueSubmit");
  const auto timeout_ns = static_cast<std::uint64_t>(std::max(0.0, timeout_seconds) * 1e9);
  const VkResult waited = vkWaitForFences(device_.handle(), 1, &fence_, VK_TRUE, timeout_ns);
  if (waited == VK_TIMEOUT) {
    throw VulkanFailure(ErrorKind::timeout,
                        "device did not finish within " + std::to_string(timeout_seconds) + " s: marked hung");
  }
  check(waited, "vkWaitForFences");
  if (queries_ && timestamps_used_ > 0) {
    timestamp_values_.assign(timestamps_used_, 0);
    check(vkGetQueryPoolResults(device_.handle(), queries_, 0, timestamps_used_,
                                timestamp_values_.size() * sizeof(std::uint64_t), timestamp_values_.data(),
                                sizeof(std::uint64_t), VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT),
          "vkGetQueryPoolResults");
  }
}

double Sequence::seconds_between(std::uint32_t first, std::uint32_t second) const {
  if (second >= timestamp_values_.size() || first >= timestamp_values_.size()) return 0.0;
  const double ticks = static_cast<double>(timestamp_values_[second] - timestamp_values_[first]);
  return ticks * device_.timestamp_period_ns() * 1e-9;
}

}  // namespace substrate::vulkan
