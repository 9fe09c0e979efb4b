#include "probes/backends/vulkan/vulkan_device.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>

#include "kernels/fingerprint.hpp"
#include "kernels/generator.hpp"
#include "kernels/golden/canary_golden.hpp"
#include "probes/backends/launch_limits.hpp"
#include "probes/backends/vulkan/vk_core.hpp"
#include "spirv/attention.hpp"
#include "spirv/attention_rte.hpp"
#include "spirv/canary.hpp"
#include "spirv/fill.hpp"
#include "spirv/gemm.hpp"
#include "spirv/gemm_rte.hpp"
#include "spirv/memory.hpp"

namespace substrate::vulkan {
namespace {

// Push-constant blocks, laid out as the GLSL declares them.
struct FillParams {
  std::uint32_t seed[2];
  std::uint32_t first_index[2];
  std::uint32_t stream, radius, element_count, word_count;
};
struct GemmParams {
  std::uint32_t m, n, k, dtype, inject_enabled, inject_element, inject_mask, inject_stride, inject_count;
};
struct AttentionParams {
  std::uint32_t seq_len, heads, head_dim, dtype, causal;
  float scale;
  std::uint32_t inject_enabled, inject_element, inject_mask, inject_stride, inject_count;
};
// A drill's pattern as the shaders take it (32-bit indices: the output has fewer than 2^32
// elements, so clipping the count to 32 bits changes nothing).
std::uint32_t inject_stride(const Injection& inject) {
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(inject.stride, UINT32_MAX));
}
std::uint32_t inject_count(const Injection& inject) {
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(inject.count, UINT32_MAX));
}
struct CanaryParams {
  std::uint32_t op, rows, k, n, src, dst, res, seed_lo, seed_hi, stream, token_stream;
  float scale;
  std::uint32_t activation, heads, vocab, inject_enabled, inject_element, inject_mask;
};

struct MemoryParams {
  std::uint32_t seed[2];
  std::uint32_t chunk_first_word[2];
  std::uint32_t word_count, stream, rotation, check_kind, check_invert, write_kind, write_invert, max_records;
  std::uint32_t inject_write, inject_read, inject_word, inject_mask, report_id;
};

enum FillMode : std::uint32_t { fill_exact = 0, fill_random = 1, fill_raw = 2 };
// kernels/glsl/memory.comp KIND_* (walking, address); random selects its CHECK_RANDOM / WRITE_RANDOM pipelines.
enum MemoryKind : std::uint32_t { kind_walking = 0, kind_address = 1, kind_random = 2 };
// One stage of a memory chain: a pattern written over the whole chunk, then read back.
struct MemoryStage {
  MemoryKind kind = kind_walking;
  std::uint32_t invert = 0;
  MemoryPattern pattern = MemoryPattern::walking_ones;  // reported with its bad words
  bool first = true;  // the pattern's first write, where a drill's stored flip goes in
};
constexpr std::uint32_t k_max_records = 64;  // kernels/glsl/memory.comp MAX_RECORDS
// uvec4s each invocation of a memory pass walks (kernels/glsl/memory.comp): on llvmpipe an
// invocation's fixed cost is spread over more uvec4s (64 ran 15% faster than 16 by CPU time,
// bench_bandwidth, issue 19); a GPU still gets one invocation per KiB (262,144 for a 256 MiB
// chunk). 64 iterations of the word loop per invocation, plus at most 64 x 133 in the error
// path's loops (every bit of every word bad: 4 words x (1 + 32 bits) and the resume per uvec4),
// below lavapipe's 65,535 loop iterations per shader (one counter for all its loops).
constexpr std::uint64_t k_memory_quads_per_invocation = 64;
// bad_count, histogram[32], record_count, then 2 uvec4 per record.
constexpr std::uint32_t k_error_header_words = 34 + 2;  // padded to uvec4 alignment
constexpr std::uint64_t k_error_buffer_bytes = (k_error_header_words + 8 * k_max_records) * 4;

std::uint32_t dtype_code(Dtype dtype) {
  switch (dtype) {
    case Dtype::f32:
      return 0;
    case Dtype::f16:
      return 1;
    case Dtype::bf16:
      return 2;
  }
  return 0;
}

// The pipelines of one shader, one per set of specialisation constants, each built on first use.
class PipelineFamily {
 public:
  PipelineFamily(std::span<const std::uint32_t> spirv, std::uint32_t buffer_count, std::uint32_t push_constant_bytes)
      : spirv_(spirv), buffer_count_(buffer_count), push_constant_bytes_(push_constant_bytes) {}

  const Pipeline& get(const Device& device, std::vector<std::uint32_t> constants = {}) {
    auto& slot = pipelines_[constants];
    if (!slot) slot = std::make_unique<Pipeline>(device, spirv_, buffer_count_, push_constant_bytes_, constants);
    return *slot;
  }

  // Leaks every pipeline: destroying objects a hung device may still use is undefined.
  void abandon() {
    for (auto& [constants, pipeline] : pipelines_) (void)pipeline.release();
  }

 private:
  std::span<const std::uint32_t> spirv_;
  std::uint32_t buffer_count_, push_constant_bytes_;
  std::map<std::vector<std::uint32_t>, std::unique_ptr<Pipeline>> pipelines_;
};

std::uint64_t words_for(std::uint64_t elements, Dtype dtype) {
  return dtype == Dtype::f32 ? elements : (elements + 1) / 2;
}

std::string format_uuid(const std::uint8_t* bytes) {
  char text[37];
  std::snprintf(text, sizeof text, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", bytes[0],
                bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9], bytes[10],
                bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]);
  return text;
}

std::string vendor_name(std::uint32_t vendor_id) {
  switch (vendor_id) {
    case 0x10DE:
      return "nvidia";
    case 0x1002:
      return "amd";
    case 0x8086:
      return "intel";
    case 0x10005:
      return "mesa";
    case 0x13B5:
      return "arm";
    case 0x5143:
      return "qualcomm";
    default: {
      char text[16];
      std::snprintf(text, sizeof text, "0x%x", vendor_id);
      return text;
    }
  }
}

std::string device_type_name(VkPhysicalDeviceType type) {
  switch (type) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
      return "discrete";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
      return "integrated";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
      return "virtual";
    case VK_PHYSICAL_DEVICE_TYPE_CPU:
      return "cpu";
    default:
      return "other";
  }
}

bool has_extension(VkPhysicalDevice physical, const char* name) {
  std::uint32_t count = 0;
  vkEnumerateDeviceExtensionProperties(physical, nullptr, &count, nullptr);
  std::vector<VkExtensionProperties> extensions(count);
  vkEnumerateDeviceExtensionProperties(physical, nullptr, &count, extensions.data());
  return std::any_of(extensions.begin(), extensions.end(),
                     [&](const VkExtensionProperties& e) { return std::string(e.extensionName) == name; });
}

// Hash of every embedded SPIR-V module: baselines and fingerprints are only comparable between
// identical kernel binaries.
std::string kernel_build_hash() {
  std::vector<std::uint32_t> all;
  for (auto module : {spirv::fill(), spirv::gemm(), spirv::attention(), spirv::memory(), spirv::canary(),
                      spirv::gemm_rte(), spirv::attention_rte()}) {
    all.insert(all.end(), module.begin(), module.end());
  }
  return "spirv-" + fingerprint(all);
}

DeviceInfo describe(VkPhysicalDevice physical, std::size_t index) {
  VkPhysicalDeviceProperties basic;
  vkGetPhysicalDeviceProperties(physical, &basic);
  const bool has_driver_properties =
      basic.apiVersion >= VK_API_VERSION_1_2 || has_extension(physical, VK_KHR_DRIVER_PROPERTIES_EXTENSION_NAME);
  const bool has_pci = has_extension(physical, VK_EXT_PCI_BUS_INFO_EXTENSION_NAME);

  VkPhysicalDeviceIDProperties id{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES};
  VkPhysicalDeviceDriverProperties driver{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
  VkPhysicalDevicePCIBusInfoPropertiesEXT pci{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PCI_BUS_INFO_PROPERTIES_EXT};
  VkPhysicalDeviceProperties2 properties{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
  properties.pNext = &id;
  void** tail = &id.pNext;
  if (has_driver_properties) {
    *tail = &driver;
    tail = &driver.pNext;
  }
  if (has_pci) *tail = &pci;
  vkGetPhysicalDeviceProperties2(physical, &properties);

  DeviceInfo info;
  info.id = "vulkan" + std::to_string(index);
  info.backend = "vulkan";
  info.name = basic.deviceName;
  info.vendor = vendor_name(basic.vendorID);
  if (has_driver_properties) {
    info.driver = std::string(driver.driverName) + " " + driver.driverInfo;
  } else {
    info.driver = std::to_string(VK_API_VERSION_MAJOR(basic.driverVersion)) + "." +
                  std::to_string(VK_API_VERSION_MINOR(basic.driverVersion)) + "." +
                  std::to_string(VK_API_VERSION_PATCH(basic.driverVersion));
  }
  info.device_type = device_type_name(basic.deviceType);
  info.kernel_build = kernel_build_hash();
  info.uuid = format_uuid(id.deviceUUID);
  if (has_pci) {
    char bus[32];
    std::snprintf(bus, sizeof bus, "%04x:%02x:%02x.%x", pci.pciDomain, pci.pciBus, pci.pciDevice, pci.pciFunction);
    info.pci_bus_id = bus;
  }
  info.api_version = std::to_string(VK_API_VERSION_MAJOR(basic.apiVersion)) + "." +
                     std::to_string(VK_API_VERSION_MINOR(basic.apiVersion)) + "." +
                     std::to_string(VK_API_VERSION_PATCH(basic.apiVersion));
  VkPhysicalDeviceMemoryProperties memory;
  vkGetPhysicalDeviceMemoryProperties(physical, &memory);
  for (std::uint32_t h = 0; h < memory.memoryHeapCount; ++h) {
    if (memory.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) info.memory_bytes += memory.memoryHeaps[h].size;
  }
  return info;
}

// Buffers and command sequences of one run. When the device hangs, the run's resources may
// still be in use by the device, so they are deliberately leaked instead of destroyed.
struct Scratch {
  std::vector<std::unique_ptr<Buffer>> buffers;
  std::unique_ptr<Sequence> sequence;
};

class VulkanComputeDevice final : public ComputeDevice {
 public:
  VulkanComputeDevice(std::shared_ptr<Instance> instance, VkPhysicalDevice physical, DeviceInfo info)
      : instance_(std::move(instance)),
        device_(std::make_unique<Device>(physical)),
        info_(std::move(info)),
        has_budget_(has_extension(physical, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME)) {
    VkPhysicalDeviceProperties basic;
    vkGetPhysicalDeviceProperties(physical, &basic);
    // Whole uvec4s, so every chunk after the first starts at a quad of the region
    // (kernels/glsl/memory.comp generates random words a quad at a time).
    max_chunk_bytes_ = std::min<std::uint64_t>(basic.limits.maxStorageBufferRange, 256ull << 20) & ~std::uint64_t{15};
    limits_ = launch_limits(physical, basic, info_);
  }

  ~VulkanComputeDevice() override {
    if (hung_) {
      // Destroying objects the device may still use is undefined; the process keeps them.
      (void)retention_.release();
      for (PipelineFamily* family : {&fill_, &gemm_, &attention_, &memory_, &canary_}) family->abandon();
      (void)device_.release();
    }
  }

  const DeviceInfo& info() const override { return info_; }

  std::uint64_t free_memory_bytes() const override {
    if (!has_budget_) return info_.memory_bytes;
    VkPhysicalDeviceMemoryBudgetPropertiesEXT budget{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
    VkPhysicalDeviceMemoryProperties2 properties{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2};
    properties.pNext = &budget;
    vkGetPhysicalDeviceMemoryProperties2(device_->physical(), &properties);
    std::uint64_t free = 0;
    for (std::uint32_t h = 0; h < properties.memoryProperties.memoryHeapCount; ++h) {
      if (!(properties.memoryProperties.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)) continue;
      if (budget.heapBudget[h] > budget.heapUsage[h]) free += budget.heapBudget[h] - budget.heapUsage[h];
    }
    return free;
  }

  void set_timeout_seconds(double seconds) override { timeout_seconds_ = seconds; }

  Expected<std::vector<std::uint32_t>> generate_raw(std::uint64_t seed, std::uint32_t stream, std::uint64_t first,
                                                    std::uint32_t count) override {
    return guarded([&](Scratch& scratch) {
      Buffer& out = add_buffer(scratch, std::uint64_t{count} * 4, BufferKind::device_local);
      Buffer& host = add_buffer(scratch, std::uint64_t{count} * 4, BufferKind::readback);
      Sequence& sequence = start(scratch, 1);
      record_fill(sequence, {&out}, seed, stream, first, fill_raw, Dtype::f32, 0, count);
      sequence.barrier();
      sequence.copy(out, host);
      sequence.submit_and_wait(timeout_seconds_);
      return std::vector<std::uint32_t>(host.words().begin(), host.words().end());
    });
  }

  Expected<KernelRun> run_gemm(const GemmLaunch& launch) override {
    TRY(check_gemm(launch));
    return guarded([&](Scratch& scratch) {
      const GemmShape& s = launch.shape;
      const std::uint64_t a_elements = std::uint64_t{s.m} * s.k, b_elements = std::uint64_t{s.k} * s.n;
      const std::uint64_t c_elements = std::uint64_t{s.m} * s.n;
      Buffer& a = add_buffer(scratch, words_for(a_elements, launch.dtype) * 4, BufferKind::device_local);
      Buffer& b = add_buffer(scratch, words_for(b_elements, launch.dtype) * 4, BufferKind::device_local);
      Buffer& host = add_buffer(scratch, c_elements * 4, BufferKind::readback);
      Buffer& c = output_buffer(scratch, host);
      Sequence& sequence = start(scratch, 3);
      const std::uint32_t mode = launch.mode == Mode::exact ? fill_exact : fill_random;
      poison_output(sequence, c, host);
      const std::uint32_t t0 = sequence.timestamp();
      record_fill(sequence, {&a}, launch.seed, gen::stream_gemm_a, 0, mode, launch.dtype, launch.exact_radius,
                  a_elements);
      record_fill(sequence, {&b}, launch.seed, gen::stream_gemm_b, 0, mode, launch.dtype, launch.exact_radius,
                  b_elements);
      sequence.barrier();
      const std::uint32_t t1 = sequence.timestamp();
      GemmParams params{s.m,
                        s.n,
                        s.k,
                        dtype_code(launch.dtype),
                        launch.inject.enabled ? 1u : 0u,
                        static_cast<std::uint32_t>(launch.inject.element),
                        launch.inject.xor_mask,
                        inject_stride(launch.inject),
                        inject_count(launch.inject)};
      const Buffer* bindings[] = {&a, &b, &c};
      sequence.dispatch(gemm_.get(*device_), bindings, &params, {(s.n + 15) / 16, (s.m + 15) / 16, 1});
      const std::uint32_t t2 = sequence.timestamp();
      KernelRun run = read_output(sequence, c, host, "vulkan.gemm.tiled16", t0, t1, t2);
      run.accumulation_unit_roundoff = unit_roundoff();
      return run;
    });
  }

  Expected<KernelRun> run_attention(const AttentionLaunch& launch) override {
    TRY(check_attention(launch));
    return guarded([&](Scratch& scratch) {
      const AttentionShape& s = launch.shape;
      const std::uint64_t elements = std::uint64_t{s.heads} * s.seq_len * s.head_dim;
      const std::uint64_t input_bytes = words_for(elements, launch.dtype) * 4;
      Buffer& q = add_buffer(scratch, input_bytes, BufferKind::device_local);
      Buffer& k = add_buffer(scratch, input_bytes, BufferKind::device_local);
      Buffer& v = add_buffer(scratch, input_bytes, BufferKind::device_local);
      Buffer& host = add_buffer(scratch, elements * 4, BufferKind::readback);
      Buffer& o = output_buffer(scratch, host);
      Sequence& sequence = start(scratch, 4);
      poison_output(sequence, o, host);
      const std::uint32_t t0 = sequence.timestamp();
      // One dispatch for the three inputs: workgroup z writes stream_attention_q + z (fill.comp).
      static_assert(gen::stream_attention_k == gen::stream_attention_q + 1 &&
                    gen::stream_attention_v == gen::stream_attention_q + 2);
      record_fill(sequence, {&q, &k, &v}, launch.seed, gen::stream_attention_q, 0, fill_random, launch.dtype, 0,
                  elements);
      sequence.barrier();
      const std::uint32_t t1 = sequence.timestamp();
      AttentionParams params{s.seq_len,
                             s.heads,
                             s.head_dim,
                             dtype_code(launch.dtype),
                             s.causal ? 1u : 0u,
                             static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.head_dim))),
                             launch.inject.enabled ? 1u : 0u,
                             static_cast<std::uint32_t>(launch.inject.element),
                             launch.inject.xor_mask,
                             inject_stride(launch.inject),
                             inject_count(launch.inject)};
      const Buffer* bindings[] = {&q, &k, &v, &o};
      sequence.dispatch(attention_.get(*device_), bindings, &params, {s.seq_len, s.heads, 1});
      const std::uint32_t t2 = sequence.timestamp();
      KernelRun run = read_output(sequence, o, host, "vulkan.attention.rowwise", t0, t1, t2);
      run.accumulation_unit_roundoff = unit_roundoff();
      return run;
    });
  }

  Expected<MemoryRun> run_memory(const MemoryLaunch& launch) override {
    if (launch.bytes < 4 || launch.bytes % 4 != 0) {
      return Error{ErrorKind::invalid_argument, "memory: region must be a positive multiple of 4 bytes"};
    }
    return guarded([&](Scratch& scratch) {
      MemoryRun run;
      run.kernel = "vulkan.memory.patterns";
      run.bytes_tested = launch.bytes;
      // Hold every chunk at once so the region really spans `bytes` of distinct memory.
      std::vector<Buffer*> chunks;
      for (std::uint64_t offset = 0; offset < launch.bytes; offset += max_chunk_bytes_) {
        chunks.push_back(
            &add_buffer(scratch, std::min(max_chunk_bytes_, launch.bytes - offset), BufferKind::device_local));
      }
      Buffer& errors = add_buffer(scratch, k_error_buffer_bytes, BufferKind::device_local);
      Buffer& host = add_buffer(scratch, k_error_buffer_bytes, BufferKind::readback);
      std::uint64_t first_word = 0;
      for (Buffer* chunk : chunks) {
        const std::uint64_t words = chunk->bytes() / 4;
        scratch.sequence =
            std::make_unique<Sequence>(*device_, 3 * static_cast<std::uint32_t>(launch.patterns.size()) + 4);
        Sequence& sequence = *scratch.sequence;
        sequence.fill(errors, 0);
        sequence.barrier();
        const std::uint32_t t0 = sequence.timestamp();
        run.bytes_moved += record_memory_chain(sequence, *chunk, errors, launch, first_word, words);
        const std::uint32_t t1 = sequence.timestamp();
        sequence.copy(errors, host);
        sequence.submit_and_wait(timeout_seconds_);
        run.device_seconds += sequence.seconds_between(t0, t1);
        collect_errors(host.words(), first_word, launch.max_reported, run);
        run.words_checked += words * launch.patterns.size();
        first_word += words;
      }
      return run;
    });
  }

  Expected<RetentionRun> check_retention(std::uint64_t bytes, std::uint64_t seed) override {
    if (bytes < 4 || bytes % 4 != 0 || bytes > max_chunk_bytes_) {
      return Error{ErrorKind::invalid_argument,
                   "retention block must be a multiple of 4 bytes up to " + std::to_string(max_chunk_bytes_)};
    }
    return guarded([&](Scratch& scratch) {
      RetentionRun run;
      run.bytes = bytes;
      const bool fresh = !retention_ || retention_->bytes() != bytes || retention_seed_ != seed;
      if (fresh) {
        retention_.reset();
        retention_ = std::make_unique<Buffer>(*device_, bytes, BufferKind::device_local);
        retention_seed_ = seed;
      }
      Buffer& errors = add_buffer(scratch, k_error_buffer_bytes, BufferKind::device_local);
      Buffer& host = add_buffer(scratch, k_error_buffer_bytes, BufferKind::readback);
      Sequence& sequence = start(scratch, 2);
      sequence.fill(errors, 0);
      sequence.barrier();
      const MemoryStage stage{kind_random, 0, MemoryPattern::random, false};
      MemoryParams params = memory_params(seed, gen::stream_memory_retention, 0, bytes / 4, fresh ? nullptr : &stage,
                                          fresh ? &stage : nullptr, {}, 16);
      const Buffer* bindings[] = {retention_.get(), &errors, retention_.get()};
      sequence.dispatch(memory_pipeline(fresh ? nullptr : &stage, fresh ? &stage : nullptr), bindings, &params,
                        memory_groups(bytes / 4));
      sequence.barrier();
      sequence.copy(errors, host);
      sequence.submit_and_wait(timeout_seconds_);
      const auto now = std::chrono::steady_clock::now();
      if (fresh) retention_written_ = now;
      run.age_seconds = std::chrono::duration<double>(now - retention_written_).count();
      MemoryRun verify;
      collect_errors(host.words(), 0, 16, verify);
      run.bad_words = verify.bad_words;
      run.first_bad = std::move(verify.first_bad);
      return run;
    });
  }

  Expected<CanaryRun> run_canary(const CanaryLaunch& launch) override {
    const CanaryShape& s = launch.shape;
    if (const std::string invalid = canary::validate(s); !invalid.empty()) {
      return Error{ErrorKind::invalid_argument, invalid};
    }
    const auto checkpoints = canary::layers(s);
    return guarded([&](Scratch& scratch) {
      // State buffer: every checkpoint's region, then scratch for h, qkv, attention and the MLP.
      const std::uint32_t T = s.tokens, D = s.d_model;
      std::vector<std::uint32_t> offset;
      std::uint32_t size = 0;
      for (const auto& layer : checkpoints) {
        offset.push_back(size);
        size += layer.rows * layer.cols;
      }
      const std::uint32_t h = size, qkv = h + T * D, attn = qkv + 3 * T * D, mlp = attn + T * D;
      size = mlp + T * s.ffn;
      Buffer& state = add_buffer(scratch, std::uint64_t{size} * 4, BufferKind::device_local);
      Buffer& host = add_buffer(scratch, std::uint64_t{size} * 4, BufferKind::readback);
      const std::uint32_t dispatches = 2 + 6 * s.layers + 2;
      Sequence& sequence = start(scratch, dispatches);
      const Buffer* bindings[] = {&state};
      const Pipeline& kernel = canary_.get(*device_);
      std::uint32_t checkpoint = 0;
      auto op = [&](std::uint32_t code, std::uint32_t k, std::uint32_t n, std::uint32_t src, std::uint32_t dst,
                    std::uint32_t res, std::uint32_t stream, float scale, std::uint32_t activation,
                    std::uint64_t invocations, bool is_checkpoint) {
        const bool inject = launch.inject.enabled && is_checkpoint && launch.inject.layer == checkpoint;
        CanaryParams params{code,
                            T,
                            k,
                            n,
                            src,
                            dst,
                            res,
                            static_cast<std::uint32_t>(launch.seed),
                            static_cast<std::uint32_t>(launch.seed >> 32),
                            stream,
                            canary::k_token_stream,
                            scale,
                            activation,
                            s.heads,
                            s.vocab,
                            inject ? 1u : 0u,
                            inject ? static_cast<std::uint32_t>(launch.inject.element) : 0u,
                            launch.inject.xor_mask};
        sequence.dispatch(kernel, bindings, &params, groups_1d(invocations, 64));
        sequence.barrier();
        if (is_checkpoint) ++checkpoint;
      };
      constexpr std::uint32_t none = 0xFFFFFFFFu;
      enum : std::uint32_t { embed = 0, rmsnorm = 1, matmul = 2, attention = 3 };
      const std::uint32_t t0 = sequence.timestamp();
      op(embed, 0, D, 0, offset[0], none, canary::k_embedding_stream, 1.0f, 0, T * D, true);
      std::uint32_t x = offset[0];
      for (std::uint32_t b = 0; b < s.layers; ++b) {
        op(rmsnorm, D, D, x, h, none, 0, 1.0f, 0, T, false);
        op(matmul, D, 3 * D, h, qkv, none, canary::block_stream(b, 0), canary::weight_scale(D), 0, T * 3 * D, false);
        op(attention, D, D, qkv, attn, none, 0, canary::attention_scale(D / s.heads), 0, T * s.heads, false);
        const std::uint32_t after_attention = offset[1 + 2 * b];
        op(matmul, D, D, attn, after_attention, x, canary::block_stream(b, 1), canary::weight_scale(D), 0, T * D, true);
        op(rmsnorm, D, D, after_attention, h, none, 0, 1.0f, 0, T, false);
        op(matmul, D, s.ffn, h, mlp, none, canary::block_stream(b, 2), canary::weight_scale(D), 1, T * s.ffn, false);
        x = offset[2 + 2 * b];
        op(matmul, s.ffn, D, mlp, x, after_attention, canary::block_stream(b, 3), canary::weight_scale(s.ffn), 0, T * D,
           true);
      }
      op(rmsnorm, D, D, x, h, none, 0, 1.0f, 0, T, false);
      op(matmul, D, s.vocab, h, offset.back(), none, canary::output_stream(s.layers), canary::weight_scale(D), 0,
         T * s.vocab, true);
      const std::uint32_t t1 = sequence.timestamp();
      sequence.copy(state, host);
      sequence.submit_and_wait(timeout_seconds_);
      CanaryRun run;
      run.kernel = "vulkan.canary.ops";
      const auto words = host.words();
      for (std::size_t i = 0; i < checkpoints.size(); ++i) {
        const auto first = words.begin() + offset[i];
        run.layers.emplace_back(first, first + checkpoints[i].rows * checkpoints[i].cols);
      }
      run.device_seconds = sequence.seconds_between(t0, t1);
      return run;
    });
  }

 private:
  // The limits of `physical` that the launches below check (probes/backends/launch_limits.hpp).
  static LaunchLimits launch_limits(VkPhysicalDevice physical, const VkPhysicalDeviceProperties& basic,
                                    const DeviceInfo& info) {
    LaunchLimits limits;
    limits.device = info.id;
    for (int i = 0; i < 3; ++i) limits.max_groups[i] = basic.limits.maxComputeWorkGroupCount[i];
    limits.max_buffer_bytes = basic.limits.maxStorageBufferRange;
    limits.memory_bytes = info.memory_bytes;
    bool gallivm = std::string(basic.deviceName).rfind("llvmpipe", 0) == 0;
    if (basic.apiVersion >= VK_API_VERSION_1_2) {
      VkPhysicalDeviceDriverProperties driver{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
      VkPhysicalDeviceProperties2 properties{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
      properties.pNext = &driver;
      vkGetPhysicalDeviceProperties2(physical, &properties);
      gallivm = gallivm || driver.driverID == VK_DRIVER_ID_MESA_LLVMPIPE;
    }
    if (gallivm) {
      limits.max_loop_iterations = k_gallivm_loop_iterations;
      limits.loop_limit_source = "Mesa lavapipe stops every loop of a shader after 65535 iterations in all";
    }
    return limits;
  }

  // Mesa gallivm's LP_MAX_TGSI_LOOP_ITERATIONS: one counter per shader invocation, decremented at
  // the end of every iteration of every loop; at zero every loop exits. Measured on Mesa 22.3:
  // GEMM exact 1x1x1048560 (65,535 tiles) is right, 1x1x1048561 returns the first 65,535 tiles.
  static constexpr std::uint64_t k_gallivm_loop_iterations = 65535;

  // gemm.comp: one 16x16 workgroup per 16x16 tile of C; each invocation loops over ceil(K/16)
  // tiles of K (the inner loop of 16 has a constant trip count and is unrolled, so it does not
  // count: the measured boundary above is exactly 65,535 tiles).
  Status check_gemm(const GemmLaunch& launch) const override {
    const GemmShape& s = launch.shape;
    const std::string kernel = "gemm";
    const std::uint64_t a = std::uint64_t{s.m} * s.k, b = std::uint64_t{s.k} * s.n, c = std::uint64_t{s.m} * s.n;
    const BufferNeed buffers[] = {
        {"A", a, words_for(a, launch.dtype) * 4}, {"B", b, words_for(b, launch.dtype) * 4}, {"C", c, c * 4}};
    TRY(check_buffers(limits_, kernel, buffers, c * 4));
    TRY(check_groups(limits_, kernel, {(std::uint64_t{s.n} + 15) / 16, (std::uint64_t{s.m} + 15) / 16, 1}));
    TRY(check_groups(limits_, "gemm fill", groups_of(fill_groups(std::max(a, b)))));
    TRY(check_loop_iterations(limits_, kernel, (std::uint64_t{s.k} + 15) / 16, "K=" + std::to_string(s.k)));
    return ok_status();
  }

  // attention.comp: one 64-invocation workgroup per (query, head). Invocation 0 of the row with
  // the most keys (seq_len: the last query when causal) runs the most iterations: scores
  // (ceil(keys/64) rows of head_dim), max (keys - 1), exp and sum (keys), output (ceil(head_dim/64)
  // columns of keys). Each loop is charged one more iteration for its exit test (a masked
  // iteration still decrements gallivm's counter), so the model errs towards refusing.
  static std::uint64_t attention_loop_iterations(const AttentionShape& s) {
    const std::uint64_t keys = s.seq_len, d = s.head_dim;
    const std::uint64_t rows = (keys + 63) / 64, cols = (d + 63) / 64;
    return (rows + 1) + rows * (d + 1) + keys + (keys + 1) + (cols + 1) + cols * (keys + 1);
  }

  Status check_attention(const AttentionLaunch& launch) const override {
    const AttentionShape& s = launch.shape;
    const std::string kernel = "attention";
    if (s.seq_len > 2048) {
      return Error{ErrorKind::invalid_argument, "attention: seq_len above 2048 (the kernel's shared score row)"};
    }
    const std::uint64_t elements = std::uint64_t{s.heads} * s.seq_len * s.head_dim;
    const std::uint64_t input_bytes = words_for(elements, launch.dtype) * 4;
    const BufferNeed buffers[] = {{"Q", elements, input_bytes},
                                  {"K", elements, input_bytes},
                                  {"V", elements, input_bytes},
                                  {"O", elements, elements * 4}};
    TRY(check_buffers(limits_, kernel, buffers, elements * 4));
    TRY(check_groups(limits_, kernel, {s.seq_len, s.heads, 1}));
    TRY(check_groups(limits_, "attention fill", groups_of(fill_groups(elements, 3))));
    TRY(check_loop_iterations(limits_, kernel, attention_loop_iterations(s),
                              "seq_len " + std::to_string(s.seq_len) + " with head_dim " + std::to_string(s.head_dim)));
    return ok_status();
  }

  // Unit roundoff of the fp32 arithmetic of gemm and attention: 2^-24 where the shaders declare
  // round-to-nearest-even; otherwise 2^-23, since without RoundingModeRTE Vulkan lets a correctly
  // rounded operation return either neighbour (issue 18, finding 4).
  double unit_roundoff() const { return device_->rounds_to_nearest_f32() ? 0x1p-24 : 0x1p-23; }

  static std::array<std::uint64_t, 3> groups_of(const Groups& groups) { return {groups.x, groups.y, groups.z}; }

  template <class Fn>
  auto guarded(Fn&& body) -> Expected<decltype(body(std::declval<Scratch&>()))> {
    if (hung_) return Error{ErrorKind::timeout, info_.id + " is hung: an earlier kernel never finished"};
    auto scratch = std::make_unique<Scratch>();
    try {
      return body(*scratch);
    } catch (const VulkanFailure& failure) {
      if (failure.kind() == ErrorKind::timeout) {
        hung_ = true;
        (void)scratch.release();
      }
      return Error{failure.kind(), info_.id + ": " + failure.what()};
    }
  }

  // Where a checked kernel writes its output: the readback buffer itself where that memory is
  // device-local too (lavapipe, integrated GPUs), which spares a copy and a barrier after the
  // kernel (issue 19: on lavapipe the copy was 0.04-0.15 ms of attention's fixed cost per run);
  // otherwise a device-local buffer of the same size, copied to `host` by read_output.
  Buffer& output_buffer(Scratch& scratch, Buffer& host) {
    return host.device_local() ? host : add_buffer(scratch, host.bytes(), BufferKind::device_local);
  }

  // Makes the checked kernel's output visible to the host (copying it to `host` unless the kernel
  // wrote there, output_buffer), submits, waits, and returns the output with generation (t0..t1)
  // and kernel (t1..t2) device times.
  KernelRun read_output(Sequence& sequence, const Buffer& output, Buffer& host, const char* kernel, std::uint32_t t0,
                        std::uint32_t t1, std::uint32_t t2) {
    if (&output == &host) {
      sequence.barrier_to_host();
    } else {
      sequence.barrier();
      sequence.copy(output, host);
    }
    sequence.submit_and_wait(timeout_seconds_);
    KernelRun run;
    run.kernel = kernel;
    run.output_bits.assign(host.words().begin(), host.words().end());
    run.generate_seconds = sequence.seconds_between(t0, t1);
    run.device_seconds = sequence.seconds_between(t1, t2);
    return run;
  }

  // Writes k_unwritten_output_word over a GEMM or attention output before its kernel: from the
  // host where the output is the mapped readback buffer (no command; host writes are visible to
  // the submission that follows), else with a transfer fill, which the barrier after the input
  // fills orders before the kernel.
  static void poison_output(Sequence& sequence, Buffer& output, Buffer& host) {
    if (&output == &host) {
      std::ranges::fill(host.words(), k_unwritten_output_word);
    } else {
      sequence.fill(output, k_unwritten_output_word);
    }
  }

  Buffer& add_buffer(Scratch& scratch, std::uint64_t bytes, BufferKind kind) {
    scratch.buffers.push_back(std::make_unique<Buffer>(*device_, bytes, kind));
    return *scratch.buffers.back();
  }

  Sequence& start(Scratch& scratch, std::uint32_t dispatches) {
    scratch.sequence = std::make_unique<Sequence>(*device_, dispatches);
    return *scratch.sequence;
  }

  // Specialised by whether the pass verifies and whether it writes, and whether each side's
  // stage is the generator's (kernels/glsl/memory.comp): at most six in a daemon's runs.
  const Pipeline& memory_pipeline(const MemoryStage* check, const MemoryStage* write) {
    return memory_.get(*device_, {check ? 1u : 0u, write ? 1u : 0u, check && check->kind == kind_random ? 1u : 0u,
                                  write && write->kind == kind_random ? 1u : 0u});
  }

  // Enough 256-invocation groups that each invocation walks at most
  // k_memory_quads_per_invocation uvec4s; the shader derives the blocks from the count.
  static Groups memory_groups(std::uint64_t words) {
    const std::uint64_t quads = words / 4;
    return groups_1d((quads + k_memory_quads_per_invocation - 1) / k_memory_quads_per_invocation, 256);
  }

  // Generates `elements` elements of stream `stream + i` into outs[i] for each of the (at most
  // three) buffers, in one dispatch (fill.comp's workgroup z).
  void record_fill(Sequence& sequence, std::initializer_list<const Buffer*> outs, std::uint64_t seed,
                   std::uint32_t stream, std::uint64_t first, std::uint32_t mode, Dtype dtype, std::uint32_t radius,
                   std::uint64_t elements) {
    const std::uint64_t words = mode == fill_raw ? elements : words_for(elements, dtype);
    FillParams params{{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)},
                      {static_cast<std::uint32_t>(first), static_cast<std::uint32_t>(first >> 32)},
                      stream,
                      radius,
                      static_cast<std::uint32_t>(elements),
                      static_cast<std::uint32_t>(words)};
    if (outs.size() == 0 || outs.size() > 3) throw VulkanFailure(ErrorKind::invalid_argument, "fill: 1 to 3 outputs");
    // Unused bindings alias the first output: the shader writes only binding z.
    const Buffer* bindings[] = {*outs.begin(), *outs.begin(), *outs.begin()};
    std::copy(outs.begin(), outs.end(), bindings);
    // Specialisation constants (fill.comp): ALIGNED (elements 4q..4q+3 are then one generator
    // call), MODE and DTYPE; a worker compiles one pipeline per combination it uses.
    sequence.dispatch(fill_.get(*device_, {first % 4 == 0 ? 1u : 0u, mode, dtype_code(dtype)}), bindings, &params,
                      fill_groups(elements, static_cast<std::uint32_t>(outs.size())));
  }

  // fill.comp's dispatch for `elements` elements of each of `outputs` streams: one invocation per
  // four, 256 per group, one z slice per stream.
  static Groups fill_groups(std::uint64_t elements, std::uint32_t outputs = 1) {
    Groups groups = groups_1d((elements + 3) / 4, 256);
    groups.z = outputs;
    return groups;
  }

  // Push constants of one pass over the chunk of `words` words from `first_word`: verifying
  // `check` (none: a first write) and writing `write` (none: the last check).
  static MemoryParams memory_params(std::uint64_t seed, std::uint32_t stream, std::uint64_t first_word,
                                    std::uint64_t words, const MemoryStage* check, const MemoryStage* write,
                                    const Injection& inject, std::uint32_t max_records) {
    const bool inject_here = inject.enabled && inject.element >= first_word && inject.element < first_word + words;
    return MemoryParams{{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)},
                        {static_cast<std::uint32_t>(first_word), static_cast<std::uint32_t>(first_word >> 32)},
                        static_cast<std::uint32_t>(words),
                        stream,
                        static_cast<std::uint32_t>(seed % 32),
                        check ? check->kind : 0u,
                        check ? check->invert : 0u,
                        write ? write->kind : 0u,
                        write ? write->invert : 0u,
                        std::min(max_records, k_max_records),
                        inject_here && !inject.transient && write && write->first ? 1u : 0u,
                        inject_here && inject.transient && check ? 1u : 0u,
                        inject_here ? static_cast<std::uint32_t>(inject.element - first_word) : 0u,
                        inject.xor_mask,
                        check ? static_cast<std::uint32_t>(check->pattern) : 0u};
  }

  // The stages of `patterns` in order: one per pattern, three for moving inversions (P, ~P, P,
  // with P the generator's bits), walking zeros as walking ones inverted.
  static std::vector<MemoryStage> memory_stages(std::span<const MemoryPattern> patterns) {
    std::vector<MemoryStage> stages;
    for (MemoryPattern pattern : patterns) {
      switch (pattern) {
        case MemoryPattern::walking_ones:
          stages.push_back({kind_walking, 0, pattern, true});
          break;
        case MemoryPattern::walking_zeros:
          stages.push_back({kind_walking, 1, pattern, true});
          break;
        case MemoryPattern::own_address:
          stages.push_back({kind_address, 0, pattern, true});
          break;
        case MemoryPattern::moving_inversions:
          stages.push_back({kind_random, 0, pattern, true});
          stages.push_back({kind_random, 1, pattern, false});
          stages.push_back({kind_random, 0, pattern, false});
          break;
        case MemoryPattern::random:
          stages.push_back({kind_random, 0, pattern, true});
          break;
      }
    }
    return stages;
  }

  // Records the chain of passes of every pattern over one chunk (kernels/glsl/memory.comp: write
  // the first stage, then verify each stage while writing the next, then verify the last);
  // returns the bytes the passes read plus write.
  std::uint64_t record_memory_chain(Sequence& sequence, const Buffer& chunk, const Buffer& errors,
                                    const MemoryLaunch& launch, std::uint64_t first_word, std::uint64_t words) {
    const std::vector<MemoryStage> stages = memory_stages(launch.patterns);
    if (stages.empty()) return 0;
    const Buffer* bindings[] = {&chunk, &errors, &chunk};
    const Groups groups = memory_groups(words);
    for (std::size_t pass = 0; pass <= stages.size(); ++pass) {
      const MemoryStage* check = pass > 0 ? &stages[pass - 1] : nullptr;
      const MemoryStage* write = pass < stages.size() ? &stages[pass] : nullptr;
      MemoryParams params = memory_params(launch.seed, gen::stream_memory_random, first_word, words, check, write,
                                          launch.inject, launch.max_reported);
      sequence.dispatch(memory_pipeline(check, write), bindings, &params, groups);
      sequence.barrier();
    }
    return words * 8 * stages.size();  // each stage written once and read once
  }

  static void collect_errors(std::span<const std::uint32_t> words, std::uint64_t first_word, std::uint32_t max_reported,
                             MemoryRun& run) {
    run.bad_words += words[0];
    for (int bit = 0; bit < 32; ++bit) run.bit_histogram[bit] += words[1 + bit];
    const std::uint32_t records = std::min({words[33], k_max_records, max_reported});
    for (std::uint32_t r = 0; r < records && run.first_bad.size() < max_reported; ++r) {
      const std::uint32_t* record = &words[k_error_header_words + 8 * r];
      BadWord bad;
      bad.offset = (first_word + record[0]) * 4;
      bad.expected = record[1];
      bad.actual = record[2];
      bad.reread = record[3];
      bad.pattern = static_cast<MemoryPattern>(record[4]);
      run.first_bad.push_back(bad);
    }
  }

  std::shared_ptr<Instance> instance_;
  std::unique_ptr<Device> device_;
  DeviceInfo info_;
  bool has_budget_;
  std::uint64_t max_chunk_bytes_ = 0;
  LaunchLimits limits_;
  double timeout_seconds_ = 60.0;
  bool hung_ = false;
  PipelineFamily fill_{spirv::fill(), 3, sizeof(FillParams)};
  // Where the device rounds fp32 to nearest on request, the kernels that the error bounds
  // cover declare it (RoundingModeRTE); elsewhere the plain modules run and report u = 2^-23.
  PipelineFamily gemm_{device_->rounds_to_nearest_f32() ? spirv::gemm_rte() : spirv::gemm(), 3, sizeof(GemmParams)};
  PipelineFamily attention_{device_->rounds_to_nearest_f32() ? spirv::attention_rte() : spirv::attention(), 4,
                            sizeof(AttentionParams)};
  PipelineFamily memory_{spirv::memory(), 3, sizeof(MemoryParams)};
  PipelineFamily canary_{spirv::canary(), 1, sizeof(CanaryParams)};
  std::unique_ptr<Buffer> retention_;
  std::uint64_t retention_seed_ = 0;
  std::chrono::steady_clock::time_point retention_written_;
};

// One instance for the process, kept until exit: rediscovery (SIGHUP) reuses it instead of
// unloading and reloading the drivers, and drivers' one-time allocations stay attributable.
std::shared_ptr<Instance> process_instance() {
  static std::mutex mutex;
  static std::shared_ptr<Instance>* instance = nullptr;
  std::lock_guard lock(mutex);
  if (!instance) instance = new std::shared_ptr<Instance>(std::make_shared<Instance>());
  return *instance;
}

}  // namespace

void discover(std::vector<DevicePtr>& devices, std::vector<std::string>& notes) {
  try {
    auto instance = process_instance();
    const auto physical = instance->physical_devices();
    if (physical.empty()) notes.push_back("vulkan: the loader found no devices (is mesa-vulkan-drivers installed?)");
    for (std::size_t i = 0; i < physical.size(); ++i) {
      try {
        devices.push_back(std::make_unique<VulkanComputeDevice>(instance, physical[i], describe(physical[i], i)));
      } catch (const VulkanFailure& failure) {
        notes.push_back("vulkan: device " + std::to_string(i) + " unusable: " + failure.what());
      }
    }
  } catch (const VulkanFailure& failure) {
    notes.push_back(std::string("vulkan: ") + failure.what());
  }
}

}  // namespace substrate::vulkan
