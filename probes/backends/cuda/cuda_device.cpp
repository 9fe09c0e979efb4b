// CUDA implementation of ComputeDevice through the driver API loaded at run time
// (driver_api.hpp): one primary context per device, opened on first use (never at discovery)
// after the compute mode allows it, one non-blocking stream, events for device time, the
// embedded fatbin loaded with cuModuleLoadData and, when the driver refuses it, the embedded
// compute_75 PTX at ISA 8.0. Every wait polls an event against a deadline instead of blocking in
// the driver, so a hung GPU cannot hang the daemon: the device is then marked hung and every
// later call returns ErrorKind::timeout.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <utility>

#include "common/file_io.hpp"
#include "kernels/cuda/launch.hpp"
#include "kernels/fingerprint.hpp"
#include "kernels/generator.hpp"
#include "probes/backends/cuda/cuda_backend.hpp"
#include "probes/backends/cuda/driver_api.hpp"
#include "probes/backends/cuda/fatbin.hpp"
#include "probes/backends/cuda/identity.hpp"
#include "probes/backends/launch_limits.hpp"

namespace substrate::cuda {
namespace {

namespace ck = cuda_kernels;

class Failure : public std::runtime_error {
 public:
  Failure(ErrorKind kind, const std::string& message, bool sticky = false)
      : std::runtime_error(message), kind_(kind), sticky_(sticky) {}
  ErrorKind kind() const { return kind_; }
  // The driver said the context is unusable until the process is relaunched.
  bool sticky() const { return sticky_; }

 private:
  ErrorKind kind_;
  bool sticky_;
};

// Throws a Failure classified by classify_result (driver_api.hpp), naming the call and the code.
void check(const DriverApi& api, CUresult result, const std::string& what) {
  if (result == CUDA_SUCCESS) return;
  const ResultClass meaning = classify_result(result);
  std::string message = what + ": " + api.describe(result);
  if (meaning.kind == ErrorKind::hardware_fault || meaning.sticky) {
    message += " [CUresult " + std::to_string(static_cast<int>(result)) +
               (meaning.sticky ? "; sticky: the context is unusable until the process is relaunched]" : "]");
  }
  throw Failure(meaning.kind, message, meaning.sticky);
}

class DeviceBuffer {
 public:
  DeviceBuffer(const DriverApi& api, std::uint64_t bytes) : api_(&api) {
    check(api, api.MemAlloc(&ptr_, static_cast<std::size_t>(bytes)), "cuMemAlloc(" + std::to_string(bytes) + " bytes)");
  }
  ~DeviceBuffer() {
    if (ptr_ != 0) api_->MemFree(ptr_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  CUdeviceptr get() const { return ptr_; }

 private:
  const DriverApi* api_;
  CUdeviceptr ptr_ = 0;
};

// Buffers of one call. When the device hangs they may still be in use by the GPU, so they are
// leaked rather than freed (freeing could block or corrupt).
struct Scratch {
  std::vector<std::unique_ptr<DeviceBuffer>> buffers;
};

// Resources a hung device may still be using: kept for the life of the process (never freed,
// and reachable, so leak checkers do not flag a deliberate abandonment).
struct Graveyard {
  std::mutex mutex;
  std::vector<std::unique_ptr<Scratch>> scratch;
  std::vector<std::unique_ptr<DeviceBuffer>> buffers;
  std::vector<void*> pinned;
};
Graveyard& graveyard() {
  static auto* yard = new Graveyard;
  return *yard;
}

std::string kernel_build_hash() {
  const auto bytes = embedded_fatbin();
  std::vector<std::uint32_t> words((bytes.size() + 3) / 4, 0u);
  std::memcpy(words.data(), bytes.data(), bytes.size());
  return "fatbin-" + fingerprint(words);
}

std::uint32_t dtype_code(Dtype dtype) {
  switch (dtype) {
    case Dtype::f16:
      return ck::dtype_f16;
    case Dtype::bf16:
      return ck::dtype_bf16;
    default:
      return ck::dtype_f32;
  }
}

// Which image of the fatbin a driver that accepts it runs on a GPU of compute capability `cc`
// (10 * major + minor), and that image's architecture: the cubin for that exact architecture,
// else the newest cubin of the same major at or below it (SASS is binary compatible within a
// major, upwards in minor), else the driver JITs the fatbin's PTX.
std::pair<std::string, int> fatbin_image_for(int cc) {
  int best = 0, ptx = 0;
  if (auto entries = list_fatbin(embedded_fatbin())) {
    for (const FatbinEntry& entry : *entries) {
      const int arch = static_cast<int>(entry.arch);
      if (entry.kind == FatbinEntry::Kind::elf && arch / 10 == cc / 10 && arch <= cc) best = std::max(best, arch);
      if (entry.kind == FatbinEntry::Kind::ptx) ptx = std::max(ptx, arch);
    }
  }
  if (best > 0) return {"sass sm_" + std::to_string(best), best};
  return {"ptx-jit " + native_ptx_isa_version(embedded_fallback_ptx()), ptx};
}

// cuModuleLoadData codes that mean "this driver cannot use that image" (cuda.h), after which the
// fallback PTX is tried: no cubin for the GPU and no PTX it can JIT, PTX newer than the driver,
// an image format it does not know (CUDA 13 cubins on older drivers), PTX it cannot compile.
bool image_refused(CUresult result) {
  return result == CUDA_ERROR_NO_BINARY_FOR_GPU || result == CUDA_ERROR_UNSUPPORTED_PTX_VERSION ||
         result == CUDA_ERROR_INVALID_IMAGE || result == CUDA_ERROR_INVALID_PTX;
}

constexpr std::uint64_t k_staging_bytes = 64ull << 20;  // pinned readback buffer, at most
constexpr std::uint32_t k_default_dynamic_smem = 48u << 10;

class CudaComputeDevice final : public CudaDevice {
 public:
  // Opens nothing: the context is created by open() (first use), so discovery never puts a
  // context on a GPU. `compute_mode` is CU_DEVICE_ATTRIBUTE_COMPUTE_MODE as read at discovery.
  CudaComputeDevice(std::shared_ptr<const DriverApi> api, CUdevice device, DeviceInfo info, int cc, int compute_mode,
                    int driver_version)
      : api_(std::move(api)),
        device_(device),
        info_(std::move(info)),
        cc_(cc),
        compute_mode_(compute_mode),
        driver_version_(driver_version) {}

  ~CudaComputeDevice() override {
    if (hung_ || !sticky_.empty()) {
      // The GPU may still be using every resource: the process keeps them, and never calls
      // into the driver for this device again.
      std::lock_guard lock(graveyard().mutex);
      if (retention_) graveyard().buffers.push_back(std::move(retention_));
      if (staging_ != nullptr) graveyard().pinned.push_back(staging_);
      return;
    }
    release();
  }

  const DeviceInfo& info() const override { return info_; }
  void set_timeout_seconds(double seconds) override {
    std::lock_guard lock(mutex_);
    timeout_seconds_ = seconds;
  }
  void set_gemm_path(GemmPath path) override {
    std::lock_guard lock(mutex_);
    path_ = path;
  }
  GemmPath gemm_path() const override {
    std::lock_guard lock(mutex_);
    return path_;
  }
  int compute_capability() const override { return cc_; }
  void allow_exclusive_compute(bool allowed) override {
    std::lock_guard lock(mutex_);
    exclusive_allowed_ = allowed;
  }
  void set_other_compute_processes(int count) override {
    std::lock_guard lock(mutex_);
    other_processes_ = count;
  }
  Status open() override {
    std::lock_guard lock(mutex_);
    if (hung_) return Error{ErrorKind::timeout, info_.id + " is hung: an earlier kernel never finished"};
    if (!sticky_.empty()) return Error{sticky_kind_, info_.id + ": " + sticky_};
    try {
      open_locked();
    } catch (const Failure& failure) {
      return Error{failure.kind(), info_.id + ": " + failure.what()};
    }
    return ok_status();
  }
  std::string sticky_error() const override {
    std::lock_guard lock(mutex_);
    return sticky_;
  }

  std::uint64_t free_memory_bytes() const override {
    std::lock_guard lock(mutex_);
    if (hung_ || !sticky_.empty() || !ready_ || api_->CtxSetCurrent(context_) != CUDA_SUCCESS) return 0;
    std::size_t free = 0, total = 0;
    if (api_->MemGetInfo(&free, &total) != CUDA_SUCCESS) return 0;
    return free;
  }

  Expected<std::vector<std::uint32_t>> generate_raw(std::uint64_t seed, std::uint32_t stream, std::uint64_t first,
                                                    std::uint32_t count) override {
    return guarded([&](Scratch& scratch) {
      if (count == 0) return std::vector<std::uint32_t>{};
      const CUdeviceptr out = add_buffer(scratch, std::uint64_t{count} * 4);
      const ck::RawParams params{out, seed, first, count, stream};
      record(events_[0]);
      launch(functions_.raw, ck::k_fn_generate_raw, {ck::linear_blocks(count), 1, 1}, {ck::k_linear_threads, 1, 1}, 0,
             params);
      record(events_[1]);
      wait(events_[1], "generate_raw");
      return copy_out(out, std::uint64_t{count} * 4);
    });
  }

  // Refusals before any work, as the Vulkan backend makes them (probes/backends/launch_limits.hpp):
  // a shape the device cannot hold is an exit-2 message naming the limit, not a cuMemAlloc
  // OUT_OF_MEMORY (which a run reports as skipped, as if a workload held the memory) or a launch
  // error. Grid limits are architectural (kernels/cuda/launch.hpp); the kernels index elements
  // with 64 bits; the buffers must fit the device's total memory (the readback goes through a
  // pinned host buffer, not device memory).
  LaunchLimits launch_limits() const {
    LaunchLimits limits;
    limits.device = info_.id;
    limits.max_groups = {ck::k_max_grid_x, ck::k_max_grid_yz, ck::k_max_grid_yz};
    limits.groups_limit = "maxGridDim";
    limits.max_elements = UINT64_MAX;
    limits.memory_bytes = info_.memory_bytes;
    return limits;
  }

  // The device buffers of a GEMM (A, B, C) and of an attention (Q, K, V, O), as the run allocates them.
  static std::array<BufferNeed, 3> gemm_buffers(const GemmLaunch& request) {
    const GemmShape& s = request.shape;
    const std::uint32_t dtype = dtype_code(request.dtype);
    const std::uint64_t a = std::uint64_t{s.m} * s.k, b = std::uint64_t{s.k} * s.n, c = std::uint64_t{s.m} * s.n;
    return {{{"A", a, ck::buffer_bytes(a, dtype)}, {"B", b, ck::buffer_bytes(b, dtype)}, {"C", c, c * 4}}};
  }
  static std::array<BufferNeed, 4> attention_buffers(const AttentionLaunch& request) {
    const AttentionShape& s = request.shape;
    const std::uint64_t count = std::uint64_t{s.heads} * s.seq_len * s.head_dim;
    const std::uint64_t input_bytes = ck::buffer_bytes(count, dtype_code(request.dtype));
    return {{{"Q", count, input_bytes}, {"K", count, input_bytes}, {"V", count, input_bytes}, {"O", count, count * 4}}};
  }

  // A GEMM or attention whose buffers are more than the device has free is skipped
  // (out_of_memory) before any allocation: a workload holding the memory (an inference server
  // takes ~90%) never meets an allocation failure the probe caused, and the probe does not
  // allocate part of it only to fail. It is not shrunk: the spec keys its fingerprint and
  // baselines, so a smaller run would not be comparable. When the driver cannot say what is free
  // (0), cuMemAlloc decides, and its OUT_OF_MEMORY is a skip as well.
  template <std::size_t N>
  Status fits_free_memory(const char* kernel, const std::array<BufferNeed, N>& buffers) const {
    std::uint64_t bytes = 0;
    for (const BufferNeed& b : buffers) bytes += b.bytes;
    const std::uint64_t free = free_memory_bytes();
    if (free == 0 || bytes <= free) return ok_status();
    return Error{ErrorKind::out_of_memory, std::string(kernel) + ": needs " + std::to_string(bytes) +
                                               " bytes of device memory, " + std::to_string(free) + " free on " +
                                               info_.id + " (another process holds the rest); not run"};
  }

  Status check_gemm(const GemmLaunch& request) const override {
    const GemmShape& s = request.shape;
    if (s.m == 0 || s.n == 0 || s.k == 0) return Error{ErrorKind::invalid_argument, "gemm: empty shape"};
    const auto buffers = gemm_buffers(request);
    const LaunchLimits limits = launch_limits();
    TRY(check_buffers(limits, "gemm", buffers));
    return check_groups(limits, "gemm", {ck::ceil_div(s.n, ck::k_gemm_tile), ck::ceil_div(s.m, ck::k_gemm_tile), 1});
  }

  Status check_attention(const AttentionLaunch& request) const override {
    const AttentionShape& s = request.shape;
    if (s.seq_len == 0 || s.heads == 0 || s.head_dim == 0) {
      return Error{ErrorKind::invalid_argument, "attention: empty shape"};
    }
    const std::uint64_t smem = ck::attention_smem_bytes(s.seq_len, s.head_dim);
    if (smem > max_dynamic_smem_) {
      return Error{ErrorKind::invalid_argument, "attention: seq_len + head_dim floats need " + std::to_string(smem) +
                                                    " bytes of shared memory, above " + info_.id + "'s " +
                                                    std::to_string(max_dynamic_smem_) +
                                                    " per block; use a smaller size"};
    }
    const auto buffers = attention_buffers(request);
    const LaunchLimits limits = launch_limits();
    TRY(check_buffers(limits, "attention", buffers));
    return check_groups(limits, "attention", {s.seq_len, s.heads, 1});
  }

  Expected<KernelRun> run_gemm(const GemmLaunch& request) override {
    const GemmShape& s = request.shape;
    TRY(check_gemm(request));
    if (request.mode == Mode::exact && request.exact_radius == 0) {
      return Error{ErrorKind::invalid_argument, info_.id + ": exact mode needs an exact radius > 0"};
    }
    const std::uint32_t dtype = dtype_code(request.dtype);
    // The tensor-core kernels exist in the image that was loaded: the fallback PTX is compute_75,
    // whose bf16 kernel is empty (kernels.cu builds it from sm_80), so open first and ask the image.
    TRY(open());
    TRY(fits_free_memory("gemm", gemm_buffers(request)));
    GemmPath path;
    int arch = cc_;
    {
      std::lock_guard lock(mutex_);
      path = path_;
      arch = std::min(cc_, kernel_arch_);
    }
    const bool tensor_ok = ck::tensor_cores_support(dtype, arch / 10);
    if (path == GemmPath::tensor_cores && !tensor_ok) {
      return Error{ErrorKind::invalid_argument, info_.id + ": no tensor-core path for " +
                                                    std::string(to_string(request.dtype)) + " on sm_" +
                                                    std::to_string(cc_) + " with the " + info_.kernel_image +
                                                    " image (f16 needs sm_70, bf16 sm_80)"};
    }
    const ck::GemmVariant variant = (path == GemmPath::cuda_cores || !tensor_ok) ? ck::gemm_simt : ck::gemm_tensor_wmma;
    return guarded([&](Scratch& scratch) {
      const std::uint64_t a_count = std::uint64_t{s.m} * s.k, b_count = std::uint64_t{s.k} * s.n;
      const std::uint64_t c_count = std::uint64_t{s.m} * s.n;
      const CUdeviceptr a = add_buffer(scratch, ck::buffer_bytes(a_count, dtype));
      const CUdeviceptr b = add_buffer(scratch, ck::buffer_bytes(b_count, dtype));
      const CUdeviceptr c = add_buffer(scratch, c_count * 4);
      const std::uint32_t mode = request.mode == Mode::exact ? ck::mode_exact : ck::mode_random;
      const ck::FillParams fill_a{a, a_count, request.seed, gen::stream_gemm_a, dtype, mode, request.exact_radius};
      const ck::FillParams fill_b{b, b_count, request.seed, gen::stream_gemm_b, dtype, mode, request.exact_radius};
      ck::GemmParams params{};
      params.a = a;
      params.b = b;
      params.c = c;
      params.inject_element = request.inject.element;
      params.inject_stride = request.inject.stride;
      params.inject_count = request.inject.count;
      params.m = s.m;
      params.n = s.n;
      params.k = s.k;
      params.dtype = dtype;
      params.inject_enabled = request.inject.enabled ? 1u : 0u;
      params.inject_mask = request.inject.xor_mask;

      poison_output(c, c_count);
      record(events_[0]);
      launch_fill(fill_a);
      launch_fill(fill_b);
      record(events_[1]);
      const ck::Dim3 grid = ck::gemm_grid(s.m, s.n);
      if (variant == ck::gemm_simt) {
        launch(functions_.simt, ck::k_fn_gemm_simt, grid, ck::gemm_block(variant), 0, params);
      } else if (dtype == ck::dtype_f16) {
        launch(functions_.wmma_f16, ck::k_fn_gemm_wmma_f16, grid, ck::gemm_block(variant), 0, params);
      } else {
        launch(functions_.wmma_bf16, ck::k_fn_gemm_wmma_bf16, grid, ck::gemm_block(variant), 0, params);
      }
      auto run = read_output("gemm", ck::gemm_variant_name(variant), c, c_count * 4);
      run.accumulation_unit_roundoff = ck::gemm_bound_unit_roundoff(variant);
      return run;
    });
  }

  Expected<KernelRun> run_attention(const AttentionLaunch& request) override {
    const AttentionShape& s = request.shape;
    TRY(check_attention(request));
    TRY(open());
    TRY(fits_free_memory("attention", attention_buffers(request)));
    const std::uint32_t dtype = dtype_code(request.dtype);
    return guarded([&](Scratch& scratch) {
      const std::uint64_t count = std::uint64_t{s.heads} * s.seq_len * s.head_dim;
      const CUdeviceptr q = add_buffer(scratch, ck::buffer_bytes(count, dtype));
      const CUdeviceptr k = add_buffer(scratch, ck::buffer_bytes(count, dtype));
      const CUdeviceptr v = add_buffer(scratch, ck::buffer_bytes(count, dtype));
      const CUdeviceptr o = add_buffer(scratch, count * 4);
      ck::AttentionParams params{};
      params.q = q;
      params.k = k;
      params.v = v;
      params.o = o;
      params.inject_element = request.inject.element;
      params.inject_stride = request.inject.stride;
      params.inject_count = request.inject.count;
      params.seq_len = s.seq_len;
      params.heads = s.heads;
      params.head_dim = s.head_dim;
      params.dtype = dtype;
      params.causal = s.causal ? 1u : 0u;
      params.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.head_dim)));
      params.inject_enabled = request.inject.enabled ? 1u : 0u;
      params.inject_mask = request.inject.xor_mask;
      const std::uint64_t smem = ck::attention_smem_bytes(s.seq_len, s.head_dim);
      if (smem > k_default_dynamic_smem && smem > attention_smem_set_) {
        check(*api_,
              api_->FuncSetAttribute(functions_.attention, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                     static_cast<int>(smem)),
              "cuFuncSetAttribute(attention, dynamic shared memory " + std::to_string(smem) + ")");
        attention_smem_set_ = smem;
      }

      poison_output(o, count);
      record(events_[0]);
      for (auto [ptr, stream] : {std::pair{q, gen::stream_attention_q}, std::pair{k, gen::stream_attention_k},
                                 std::pair{v, gen::stream_attention_v}}) {
        launch_fill(ck::FillParams{ptr, count, request.seed, stream, dtype, ck::mode_random, 0});
      }
      record(events_[1]);
      launch(functions_.attention, ck::k_fn_attention, ck::attention_grid(s.seq_len, s.heads),
             {ck::k_attention_threads, 1, 1}, static_cast<std::uint32_t>(smem), params);
      return read_output("attention", ck::k_kernel_attention, o, count * 4);
    });
  }

  Expected<MemoryRun> run_memory(const MemoryLaunch& request) override {
    if (request.bytes < 4 || request.bytes % 4 != 0) {
      return Error{ErrorKind::invalid_argument, info_.id + ": memory region must be a positive multiple of 4 bytes"};
    }
    for (MemoryPattern pattern : request.patterns) {
      if (static_cast<std::uint32_t>(pattern) > ck::pattern_random) {
        return Error{ErrorKind::invalid_argument, info_.id + ": unknown memory pattern"};
      }
    }
    const std::uint32_t max_reported = std::min(request.max_reported, ck::k_memory_max_reported);
    return guarded([&](Scratch& scratch) {
      MemoryRun run;
      run.kernel = ck::k_kernel_memory;
      run.bytes_tested = request.bytes;
      const CUdeviceptr report = add_report(scratch, max_reported);
      // Hold every chunk at once so the region really spans `bytes` of distinct memory.
      std::vector<CUdeviceptr> chunks;
      for (std::uint64_t i = 0; i < ck::memory_chunk_count(request.bytes); ++i) {
        chunks.push_back(add_buffer(scratch, ck::memory_chunk_bytes(request.bytes, i)));
      }
      record(events_[0]);
      std::uint64_t first_word = 0;
      for (std::uint64_t i = 0; i < chunks.size(); ++i) {
        const std::uint64_t words = ck::memory_chunk_bytes(request.bytes, i) / 4;
        for (MemoryPattern pattern : request.patterns) {
          const auto code = static_cast<std::uint32_t>(pattern);
          ck::MemoryParams params =
              memory_params(chunks[i], report, first_word, words, request.seed, code, max_reported, request.inject);
          auto pass = [&](std::uint32_t op, std::uint32_t invert) {
            params.op = op;
            params.invert = invert;
            launch(functions_.memory, ck::k_fn_memory, {ck::linear_blocks(words), 1, 1}, {ck::k_linear_threads, 1, 1},
                   0, params);
          };
          pass(ck::op_write, 0);
          if (code == ck::pattern_moving_inversions) {
            pass(ck::op_verify_then_write_inverse, 0);
            pass(ck::op_verify_then_write_inverse, 1);
          }
          pass(ck::op_verify, 0);
          run.bytes_moved += words * ck::memory_bytes_moved_per_word(code);
          run.words_checked += words;
        }
        first_word += words;
      }
      record(events_[1]);
      wait(events_[1], "memory patterns");
      run.device_seconds = elapsed(events_[0], events_[1]);
      collect_report(report, max_reported, run.bad_words, run.bit_histogram, run.first_bad);
      return run;
    });
  }

  Expected<RetentionRun> check_retention(std::uint64_t bytes, std::uint64_t seed) override {
    if (bytes < 4 || bytes % 4 != 0 || bytes > ck::k_memory_chunk_bytes) {
      return Error{ErrorKind::invalid_argument, info_.id + ": retention block must be a multiple of 4 bytes up to " +
                                                    std::to_string(ck::k_memory_chunk_bytes)};
    }
    return guarded([&](Scratch& scratch) {
      RetentionRun run;
      run.bytes = bytes;
      const bool fresh = !retention_ || retention_bytes_ != bytes || retention_seed_ != seed;
      if (fresh) {
        retention_.reset();
        retention_ = std::make_unique<DeviceBuffer>(*api_, bytes);
        retention_bytes_ = bytes;
        retention_seed_ = seed;
      }
      constexpr std::uint32_t k_reported = 16;
      const CUdeviceptr report = add_report(scratch, k_reported);
      ck::MemoryParams params =
          memory_params(retention_->get(), report, 0, bytes / 4, seed, ck::pattern_retention, k_reported, Injection{});
      params.op = fresh ? ck::op_write : ck::op_verify;
      launch(functions_.memory, ck::k_fn_memory, {ck::linear_blocks(bytes / 4), 1, 1}, {ck::k_linear_threads, 1, 1}, 0,
             params);
      record(events_[0]);
      wait(events_[0], "retention");
      const auto now = std::chrono::steady_clock::now();
      if (fresh) retention_written_ = now;
      run.age_seconds = std::chrono::duration<double>(now - retention_written_).count();
      std::uint32_t histogram[32] = {};
      collect_report(report, k_reported, run.bad_words, histogram, run.first_bad);
      return run;
    });
  }

 private:
  struct Functions {
    CUfunction fill = nullptr, raw = nullptr, simt = nullptr, wmma_f16 = nullptr, wmma_bf16 = nullptr,
               attention = nullptr, memory = nullptr;
  };

  void init() {
    const DriverApi& api = *api_;
    check(api, api.DevicePrimaryCtxRetain(&context_, device_), "cuDevicePrimaryCtxRetain");
    context_retained_ = true;
    check(api, api.CtxSetCurrent(context_), "cuCtxSetCurrent");
    load_module();
    auto get = [&](CUfunction& slot, const char* name) {
      check(api, api.ModuleGetFunction(&slot, module_, name), std::string("cuModuleGetFunction(") + name + ")");
    };
    get(functions_.fill, ck::k_fn_fill);
    get(functions_.raw, ck::k_fn_generate_raw);
    get(functions_.simt, ck::k_fn_gemm_simt);
    get(functions_.wmma_f16, ck::k_fn_gemm_wmma_f16);
    get(functions_.wmma_bf16, ck::k_fn_gemm_wmma_bf16);
    get(functions_.attention, ck::k_fn_attention);
    get(functions_.memory, ck::k_fn_memory);
    check(api, api.StreamCreate(&stream_, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
    for (CUevent& event : events_) check(api, api.EventCreate(&event, CU_EVENT_DEFAULT), "cuEventCreate");
    int optin = 0;
    check(api, api.DeviceGetAttribute(&optin, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, device_),
          "cuDeviceGetAttribute(shared memory per block, opt-in)");
    // The attention kernel's static shared memory (about 0.5 KiB) comes off the same budget.
    max_dynamic_smem_ = optin > 1024 ? static_cast<std::uint64_t>(optin) - 1024 : 0;
    ready_ = true;
  }

  // The fatbin, or the fallback PTX when the driver refuses the fatbin; records which image
  // loaded in info_.kernel_image. Throws Failure: `unavailable` when the driver takes neither
  // image (the kernels cannot run on this driver), else as classify_result says.
  void load_module() {
    const DriverApi& api = *api_;
    const CUresult fatbin = api.ModuleLoadData(&module_, embedded_fatbin().data());
    if (fatbin == CUDA_SUCCESS) {
      std::tie(info_.kernel_image, kernel_arch_) = fatbin_image_for(cc_);
      return;
    }
    module_ = nullptr;
    if (!image_refused(fatbin)) check(api, fatbin, "cuModuleLoadData (embedded fatbin)");
    const std::string_view ptx = embedded_fallback_ptx();
    const std::string isa = ptx_isa_version(ptx);
    const CUresult jit = api.ModuleLoadData(&module_, ptx.data());
    if (jit == CUDA_SUCCESS) {
      info_.kernel_image = "ptx-jit " + isa;
      kernel_arch_ = 75;
      return;
    }
    module_ = nullptr;
    const std::string what = "cuModuleLoadData: the driver (CUDA " + cuda_version_text(driver_version_) +
                             ") refused the embedded fatbin (" + api.describe(fatbin) +
                             ") and the compute_75 PTX at ISA " + isa + " (" + api.describe(jit) +
                             "); the fallback needs a driver for CUDA 12.0 or newer";
    if (image_refused(jit)) throw Failure(ErrorKind::unavailable, what);
    check(api, jit, what);
  }

  // The compute mode decides before any context exists (a context is what locks a workload out):
  // PROHIBITED admits none; EXCLUSIVE_PROCESS admits one process, so probing it is refused
  // unless allowed, and then not while NVML lists another compute process on it (no context is
  // even tried); a workload NVML did not list makes the driver answer
  // CUDA_ERROR_DEVICE_UNAVAILABLE, which is busy as well. Throws Failure(busy).
  void check_compute_mode() const {
    if (compute_mode_ == CU_COMPUTEMODE_PROHIBITED) {
      throw Failure(ErrorKind::busy, "compute mode PROHIBITED: no process may create a context on this GPU");
    }
    if (compute_mode_ == CU_COMPUTEMODE_EXCLUSIVE_PROCESS && !exclusive_allowed_) {
      throw Failure(ErrorKind::busy,
                    "compute mode EXCLUSIVE_PROCESS: a context would lock a workload out of this GPU, so it is not "
                    "probed (probe_exclusive_gpus: true allows it while no other process is on it)");
    }
    if (compute_mode_ == CU_COMPUTEMODE_EXCLUSIVE_PROCESS && other_processes_ > 0) {
      throw Failure(ErrorKind::busy, "compute mode EXCLUSIVE_PROCESS and " + std::to_string(other_processes_) +
                                         " compute process(es) of other programs on it (NVML): not opened");
    }
  }

  // Opens the context, module, stream and events unless they are open; throws Failure, after
  // releasing what it opened (unless the error is sticky: then the driver is not called again).
  void open_locked() {
    if (ready_) return;
    check_compute_mode();
    try {
      init();
    } catch (const Failure& failure) {
      if (failure.sticky()) {
        sticky_ = failure.what();
        sticky_kind_ = failure.kind();
      } else {
        release();
      }
      throw;
    }
  }

  // Best effort: nothing here may throw; errors during teardown are ignored.
  void release() {
    const DriverApi& api = *api_;
    if (context_ != nullptr) api.CtxSetCurrent(context_);
    retention_.reset();
    if (staging_ != nullptr) api.MemFreeHost(staging_);
    staging_ = nullptr;
    for (CUevent& event : events_) {
      if (event != nullptr) api.EventDestroy(event);
      event = nullptr;
    }
    if (stream_ != nullptr) api.StreamDestroy(stream_);
    stream_ = nullptr;
    if (module_ != nullptr) api.ModuleUnload(module_);
    module_ = nullptr;
    if (context_retained_) api.DevicePrimaryCtxRelease(device_);
    context_retained_ = false;
    context_ = nullptr;
    ready_ = false;
  }

  template <class Fn>
  auto guarded(Fn&& body) -> Expected<decltype(body(std::declval<Scratch&>()))> {
    std::lock_guard lock(mutex_);
    if (hung_) return Error{ErrorKind::timeout, info_.id + " is hung: an earlier kernel never finished"};
    if (!sticky_.empty()) return Error{sticky_kind_, info_.id + ": " + sticky_};
    auto scratch = std::make_unique<Scratch>();
    try {
      open_locked();
      check(*api_, api_->CtxSetCurrent(context_), "cuCtxSetCurrent");
      return body(*scratch);
    } catch (const Failure& failure) {
      if (failure.kind() == ErrorKind::timeout || failure.sticky()) {
        if (failure.kind() == ErrorKind::timeout) hung_ = true;
        // After a sticky error the driver must not be asked to free anything: keep it all.
        if (failure.sticky()) {
          sticky_ = failure.what();
          sticky_kind_ = failure.kind();
        }
        std::lock_guard yard_lock(graveyard().mutex);
        graveyard().scratch.push_back(std::move(scratch));
      }
      return Error{failure.kind(), info_.id + ": " + failure.what()};
    } catch (const std::bad_alloc&) {
      return Error{ErrorKind::device_error, info_.id + ": out of host memory"};
    }
  }

  CUdeviceptr add_buffer(Scratch& scratch, std::uint64_t bytes) {
    scratch.buffers.push_back(std::make_unique<DeviceBuffer>(*api_, bytes));
    return scratch.buffers.back()->get();
  }

  CUdeviceptr add_report(Scratch& scratch, std::uint32_t max_reported) {
    const std::uint64_t bytes =
        sizeof(ck::MemoryReportHeader) + std::uint64_t{std::max(max_reported, 1u)} * sizeof(ck::MemoryReportEntry);
    const CUdeviceptr report = add_buffer(scratch, bytes);
    check(*api_, api_->MemsetD32Async(report, 0u, bytes / 4, stream_), "cuMemsetD32Async(report)");
    return report;
  }

  static ck::MemoryParams memory_params(CUdeviceptr region, CUdeviceptr report, std::uint64_t first_word,
                                        std::uint64_t words, std::uint64_t seed, std::uint32_t pattern,
                                        std::uint32_t max_reported, const Injection& inject) {
    ck::MemoryParams p{};
    p.region = region;
    p.report = report;
    p.first_word = first_word;
    p.words = words;
    p.seed = seed;
    p.inject_word = inject.element;
    p.pattern = pattern;
    p.pass =
        (pattern == ck::pattern_walking_ones || pattern == ck::pattern_walking_zeros) ? ck::walking_pass(seed) : 0u;
    p.op = ck::op_write;
    p.invert = 0;
    p.max_reported = max_reported;
    p.inject_enabled = inject.enabled ? 1u : 0u;
    p.inject_mask = inject.xor_mask;
    p.inject_transient = inject.transient ? 1u : 0u;
    return p;
  }

  void collect_report(CUdeviceptr report, std::uint32_t max_reported, std::uint64_t& bad_words,
                      std::uint32_t (&histogram)[32], std::vector<BadWord>& first_bad) {
    const std::uint64_t bytes =
        sizeof(ck::MemoryReportHeader) + std::uint64_t{std::max(max_reported, 1u)} * sizeof(ck::MemoryReportEntry);
    const std::vector<std::uint32_t> words = copy_out(report, bytes);
    ck::MemoryReportHeader header;
    std::memcpy(&header, words.data(), sizeof header);
    bad_words += header.bad_words;
    for (int bit = 0; bit < 32; ++bit) histogram[bit] += header.histogram[bit];
    const std::uint32_t recorded = std::min(header.reported, max_reported);
    const auto* raw = reinterpret_cast<const unsigned char*>(words.data()) + sizeof header;
    for (std::uint32_t r = 0; r < recorded; ++r) {
      ck::MemoryReportEntry entry;
      std::memcpy(&entry, raw + r * sizeof entry, sizeof entry);
      BadWord bad;
      bad.offset = entry.word * 4;
      bad.expected = entry.expected;
      bad.actual = entry.actual;
      bad.reread = entry.reread;
      bad.pattern = static_cast<MemoryPattern>(std::min(entry.pattern, std::uint32_t{ck::pattern_random}));
      first_bad.push_back(bad);
    }
    // Slots are claimed by atomics in whatever order the threads ran: sort for a stable report.
    std::sort(first_bad.begin(), first_bad.end(), [](const BadWord& x, const BadWord& y) {
      return x.offset != y.offset ? x.offset < y.offset : x.pattern < y.pattern;
    });
  }

  template <class Params>
  void launch(CUfunction function, const char* name, ck::Dim3 grid, ck::Dim3 block, std::uint32_t smem,
              const Params& params) {
    Params copy = params;
    void* args[] = {&copy};
    check(*api_,
          api_->LaunchKernel(function, grid.x, grid.y, grid.z, block.x, block.y, block.z, smem, stream_, args, nullptr),
          std::string("cuLaunchKernel(") + name + ")");
  }

  // Writes k_unwritten_output_word over `words` words of a GEMM or attention output before its
  // kernel, on the same stream (so ordered before it).
  void poison_output(CUdeviceptr output, std::uint64_t words) {
    check(*api_, api_->MemsetD32Async(output, k_unwritten_output_word, words, stream_), "cuMemsetD32Async(output)");
  }

  void launch_fill(const ck::FillParams& params) {
    // One thread per four elements (substrate_fill: one Philox call each).
    launch(functions_.fill, ck::k_fn_fill, {ck::linear_blocks((params.count + 3) / 4), 1, 1},
           {ck::k_linear_threads, 1, 1}, 0, params);
  }

  void record(CUevent event) { check(*api_, api_->EventRecord(event, stream_), "cuEventRecord"); }

  // Polls `event` until it completes, fails, or the timeout passes (then the device is hung).
  void wait(CUevent event, const std::string& what) {
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                      std::chrono::duration<double>(timeout_seconds_));
    auto nap = std::chrono::microseconds(20);
    for (;;) {
      const CUresult status = api_->EventQuery(event);
      if (status == CUDA_SUCCESS) return;
      if (status != CUDA_ERROR_NOT_READY) check(*api_, status, what);
      if (std::chrono::steady_clock::now() >= deadline) {
        throw Failure(ErrorKind::timeout, what + " did not finish within " + std::to_string(timeout_seconds_) +
                                              " s; the device is marked hung");
      }
      std::this_thread::sleep_for(nap);
      nap = std::min(nap * 2, std::chrono::microseconds(1000));
    }
  }

  double elapsed(CUevent from, CUevent to) {
    float ms = 0.0f;
    check(*api_, api_->EventElapsedTime(&ms, from, to), "cuEventElapsedTime");
    return static_cast<double>(ms) / 1000.0;
  }

  // After a fill (events 0..1) and the checked kernel (from event 1): waits for the kernel and
  // returns its output with generation and kernel times.
  KernelRun read_output(const char* what, const char* kernel, CUdeviceptr output, std::uint64_t bytes) {
    record(events_[2]);
    wait(events_[2], what);
    KernelRun run;
    run.kernel = kernel;
    run.generate_seconds = elapsed(events_[0], events_[1]);
    run.device_seconds = elapsed(events_[1], events_[2]);
    run.output_bits = copy_out(output, bytes);
    return run;
  }

  // Device to host through a pinned staging buffer, piece by piece, each copy waited on with the
  // deadline (a pageable cuMemcpy could block in the driver on a hung device).
  std::vector<std::uint32_t> copy_out(CUdeviceptr source, std::uint64_t bytes) {
    std::vector<std::uint32_t> out((bytes + 3) / 4, 0u);
    const std::uint64_t want = std::min(bytes, k_staging_bytes);
    if (staging_bytes_ < want) {
      if (staging_ != nullptr) api_->MemFreeHost(staging_);
      staging_ = nullptr;
      staging_bytes_ = 0;
      check(*api_, api_->MemAllocHost(&staging_, static_cast<std::size_t>(want)), "cuMemAllocHost");
      staging_bytes_ = want;
    }
    auto* dest = reinterpret_cast<unsigned char*>(out.data());
    for (std::uint64_t done = 0; done < bytes;) {
      const std::uint64_t piece = std::min(bytes - done, staging_bytes_);
      check(*api_, api_->MemcpyDtoHAsync(staging_, source + done, static_cast<std::size_t>(piece), stream_),
            "cuMemcpyDtoHAsync");
      record(events_[3]);
      wait(events_[3], "readback");
      std::memcpy(dest + done, staging_, piece);
      done += piece;
    }
    return out;
  }

  std::shared_ptr<const DriverApi> api_;
  CUdevice device_;
  DeviceInfo info_;
  int cc_;
  int compute_mode_;
  int driver_version_;
  bool exclusive_allowed_ = false;
  int other_processes_ = -1;  // set_other_compute_processes: from NVML, -1 unknown
  int kernel_arch_ = 0;       // architecture of the loaded image (75 for the fallback PTX)
  mutable std::mutex mutex_;
  CUcontext context_ = nullptr;
  bool context_retained_ = false;
  CUmodule module_ = nullptr;
  CUstream stream_ = nullptr;
  std::array<CUevent, 4> events_{};
  Functions functions_;
  std::uint64_t max_dynamic_smem_ = 0;
  std::uint64_t attention_smem_set_ = 0;
  void* staging_ = nullptr;
  std::uint64_t staging_bytes_ = 0;
  double timeout_seconds_ = 60.0;
  bool hung_ = false;
  bool ready_ = false;  // context, module, stream and events exist
  std::string sticky_;  // the sticky error that ended this process's use of the device
  ErrorKind sticky_kind_ = ErrorKind::device_error;
  GemmPath path_ = GemmPath::automatic;
  std::unique_ptr<DeviceBuffer> retention_;
  std::uint64_t retention_bytes_ = 0;
  std::uint64_t retention_seed_ = 0;
  std::chrono::steady_clock::time_point retention_written_;
};

// Reads everything DeviceInfo wants; throws Failure on a driver error.
DeviceInfo describe(const DriverApi& api, CUdevice device, int ordinal, int driver_version, int& cc,
                    int& compute_mode) {
  DeviceInfo info;
  info.id = "cuda" + std::to_string(ordinal);
  info.backend = "cuda";
  info.vendor = "nvidia";
  char name[256] = {};
  check(api, api.DeviceGetName(name, sizeof name - 1, device), "cuDeviceGetName");
  info.name = name;
  CUuuid uuid;
  check(api, api.DeviceGetUuid(&uuid, device), "cuDeviceGetUuid");
  std::array<unsigned char, 16> bytes;
  std::memcpy(bytes.data(), uuid.bytes, bytes.size());
  info.uuid = format_uuid(bytes);
  char bus[64] = {};
  if (api.DeviceGetPCIBusId(bus, sizeof bus - 1, device) == CUDA_SUCCESS) info.pci_bus_id = canonical_pci_bus_id(bus);
  auto attribute = [&](CUdevice_attribute which, const char* what) {
    int value = 0;
    check(api, api.DeviceGetAttribute(&value, which, device), std::string("cuDeviceGetAttribute(") + what + ")");
    return value;
  };
  const int major = attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, "compute capability major");
  const int minor = attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, "compute capability minor");
  cc = 10 * major + minor;
  info.compute_units = static_cast<std::uint32_t>(attribute(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, "SM count"));
  compute_mode = attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_MODE, "compute mode");
  info.device_type = attribute(CU_DEVICE_ATTRIBUTE_INTEGRATED, "integrated") != 0 ? "integrated" : "discrete";
  std::size_t total = 0;
  check(api, api.DeviceTotalMem(&total, device), "cuDeviceTotalMem");
  info.memory_bytes = total;
  info.api_version = cuda_version_text(driver_version);
  // The kernel driver's version belongs to the identity: a patch release (550.54.14 -> 550.54.15)
  // changes `driver` and so resets the baselines, which the CUDA API version alone would not.
  const char* proc_root = std::getenv("SUBSTRATE_PROC_ROOT");
  const std::string proc_path =
      std::string(proc_root != nullptr && *proc_root != '\0' ? proc_root : "/proc") + "/driver/nvidia/version";
  const auto proc_text = read_file(proc_path, 64 << 10);
  const std::string kernel_driver = proc_text ? kernel_driver_version(*proc_text) : std::string();
  info.driver = (kernel_driver.empty() ? "NVIDIA CUDA driver " + info.api_version
                                       : "NVIDIA " + kernel_driver + " (CUDA " + info.api_version + ")") +
                ", compute capability " + std::to_string(major) + "." + std::to_string(minor);
  info.kernel_build = kernel_build_hash();
  return info;
}

}  // namespace

void discover(std::vector<DevicePtr>& devices, std::vector<std::string>& notes) {
  auto loaded = load_driver_api();
  if (!loaded) {
    notes.push_back("cuda: " + loaded.error().message);
    return;
  }
  const std::shared_ptr<const DriverApi> api = *loaded;
  // cudaN follows nvidia-smi's numbering (PCI bus order), not CUDA's default FASTEST_FIRST; the
  // driver reads this once, at cuInit.
  ::setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID", 1);
  const CUresult init = api->Init(0);
  if (init == CUDA_ERROR_NO_DEVICE) {
    notes.push_back("cuda: no CUDA devices (cuInit: " + api->describe(init) + ")");
    return;
  }
  if (init != CUDA_SUCCESS) {
    notes.push_back("cuda: cuInit failed: " + api->describe(init));
    return;
  }
  int driver_version = 0;
  (void)api->DriverGetVersion(&driver_version);
  int count = 0;
  const CUresult counted = api->DeviceGetCount(&count);
  if (counted != CUDA_SUCCESS) {
    notes.push_back("cuda: cuDeviceGetCount failed: " + api->describe(counted));
    return;
  }
  if (count == 0) notes.push_back("cuda: the driver reports no CUDA devices");
  for (int ordinal = 0; ordinal < count; ++ordinal) {
    std::string label = "cuda" + std::to_string(ordinal);
    try {
      CUdevice device = 0;
      check(*api, api->DeviceGet(&device, ordinal), "cuDeviceGet");
      int cc = 0, compute_mode = CU_COMPUTEMODE_DEFAULT;
      DeviceInfo info = describe(*api, device, ordinal, driver_version, cc, compute_mode);
      label += " (" + info.name + ")";
      devices.push_back(
          std::make_unique<CudaComputeDevice>(api, device, std::move(info), cc, compute_mode, driver_version));
    } catch (const std::exception& failure) {
      notes.push_back("cuda: " + label + " unusable: " + failure.what());
    }
  }
}

}  // namespace substrate::cuda
