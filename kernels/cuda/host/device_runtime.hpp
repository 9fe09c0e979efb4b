#pragma once
// The execution shim that lets g++ compile and run the device code of kernels/cuda/kernels.cu on
// the CPU: the kernels' logic executed on a CPU, not the hardware. Included by
// kernels_on_cpu.cpp right before kernels.cu itself (the same source file nvcc compiles; nothing
// is copied). docs/cuda.md, "The kernels executed on a CPU", says what is emulated and where
// the emulation and a GPU may differ.
//
// Execution model (device_runtime.cpp): one block at a time per host thread; the CUDA threads of
// a block are fibers (ucontext) on that host thread. The lowest-numbered runnable thread always
// runs next and a warp goes on as soon as its collective completes, so warp 0 runs ahead to the
// next barrier before warp 1 starts: one of the interleavings a GPU may choose, and one that
// exposes a missing barrier after a warp's last read of shared memory. Hence:
// - `__shared__` is `thread_local`: a block-scope thread_local is one object per host thread,
//   which is one object per running block, shared by its fibers like shared memory by a block's
//   threads; `extern __shared__` (dynamic shared memory) is the host thread's `smem` array below.
// - `__syncthreads()` parks the fiber until every thread of the block waits at the same call
//   site; a thread that exits first or waits elsewhere is reported as a divergent barrier, the
//   hang or undefined behaviour the CUDA Programming Guide warns of.
// - the wmma operations (nvcuda::wmma below) are warp collectives: a lane waits until the 32
//   lanes of its warp arrived at the same operation with the same pointer and leading dimension
//   (a mismatch is reported), as the documentation requires.
// Blocks run in parallel on several host threads, so atomics are real atomics.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <source_location>
#include <string>
#include <type_traits>

#include "kernels/cuda/host/kernels_on_cpu.hpp"

namespace substrate::cuda_on_cpu {

struct Index3 {
  unsigned x = 0, y = 0, z = 0;
};
// The builtin variables of the calling fiber's thread and block.
Index3 thread_index();
Index3 block_index();
Index3 block_dim();
Index3 grid_dim();

// __syncthreads(): a barrier across the block's threads at one call site.
void sync_threads(std::source_location site);

// A warp collective: waits until all 32 lanes of the caller's warp arrived with the same `site`,
// `pointer` and `value` (the operands the documentation says must be uniform). Returns the
// pointers each lane published (`published[lane]`), valid until the caller's next collective.
void* const* warp_collective(const char* operation, const void* pointer, unsigned value, void* publish,
                             std::source_location site);
// The caller's lane (0..31) within its warp.
unsigned lane_id();
// Marks the running launch failed with `message` and ends the calling thread's block (never
// returns to the kernel).
[[noreturn]] void kernel_fault(const char* message, std::source_location site);

// The running launch's LaunchOptions::mma_rounding.
MmaRounding mma_rounding();

}  // namespace substrate::cuda_on_cpu

// Dynamic shared memory: the kernels' `extern __shared__ float smem[];` names this array (one per
// host thread, so one per running block). Filled with 0xFF bytes (NaN) before each block.
alignas(16) inline thread_local float smem[substrate::cuda_on_cpu::k_dynamic_smem_bytes / sizeof(float)];

// ---- CUDA C++ keywords -------------------------------------------------------------------------
// The toolkit's host_defines.h (pulled in by cuda_fp16.h) maps these to attributes a host
// compiler ignores; here they get their execution meaning.
#undef __global__
#undef __device__
#undef __forceinline__
#undef __launch_bounds__
#undef __shared__
#undef __align__
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ thread_local
#define __align__(n) __attribute__((aligned(n)))

#define threadIdx (::substrate::cuda_on_cpu::thread_index())
#define blockIdx (::substrate::cuda_on_cpu::block_index())
#define blockDim (::substrate::cuda_on_cpu::block_dim())
#define gridDim (::substrate::cuda_on_cpu::grid_dim())
#define __syncthreads() ::substrate::cuda_on_cpu::sync_threads(std::source_location::current())

// ---- intrinsics the kernels use ----------------------------------------------------------------
// The _rn operations are IEEE binary32 operations rounding to nearest; on x86-64 (SSE) and
// aarch64 plain float arithmetic is exactly that (the target builds with -ffp-contract=off so no
// multiply-add is fused behind the kernels' back). std::fma is the correctly rounded fused
// multiply-add that __fmaf_rn is.
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline unsigned __float_as_uint(float value) { return std::bit_cast<unsigned>(value); }

// atomicAdd: relaxed read-modify-write at device scope (CUDA's atomics order nothing else).
inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long value) {
  return std::atomic_ref<unsigned long long>(*address).fetch_add(value, std::memory_order_relaxed);
}
inline unsigned atomicAdd(unsigned* address, unsigned value) {
  return std::atomic_ref<unsigned>(*address).fetch_add(value, std::memory_order_relaxed);
}

// ---- wmma --------------------------------------------------------------------------------------
// The subset of nvcuda::wmma the kernels use (CUDA C++ Programming Guide, "Warp Matrix
// Functions"): m16n16k16 fragments of half or __nv_bfloat16 with float accumulators, row-major
// operands. A fragment's element-to-lane mapping is unspecified by CUDA; here lane l holds
// elements 8l..8l+7 of the row-major 16x16 tile. The kernels never index `x` directly.
namespace nvcuda::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void>
class fragment {
  static_assert(M == 16 && N == 16 && K == 16, "only m16n16k16 is emulated (the shape the kernels use)");
  static_assert(std::is_same_v<Use, accumulator> ? std::is_same_v<T, float> && std::is_void_v<Layout>
                                                 : std::is_same_v<Layout, row_major>,
                "only float accumulators and row-major operands are emulated (what the kernels use)");

 public:
  static constexpr int num_elements = 16 * 16 / 32;
  T x[num_elements];
};

template <class Use, class T, class Layout>
void fill_fragment(fragment<Use, 16, 16, 16, T, Layout>& f, const T& value) {
  for (T& element : f.x) element = value;
}

namespace detail {

inline float to_float(float v) { return v; }
inline float to_float(const __half& v) { return __half2float(v); }
inline float to_float(const __nv_bfloat16& v) { return __bfloat162float(v); }

// Documented preconditions of load/store_matrix_sync: a 256-bit aligned pointer and a leading
// dimension that is a multiple of 16 bytes.
template <class T>
void check_operands(const char* operation, const T* pointer, unsigned ldm, std::source_location site) {
  if (reinterpret_cast<std::uintptr_t>(pointer) % 32 != 0)
    substrate::cuda_on_cpu::kernel_fault((std::string(operation) + ": pointer not 256-bit aligned").c_str(), site);
  if ((ldm * sizeof(T)) % 16 != 0)
    substrate::cuda_on_cpu::kernel_fault((std::string(operation) + ": ldm not a multiple of 16 bytes").c_str(), site);
}

}  // namespace detail

template <class Use, class T>
void load_matrix_sync(fragment<Use, 16, 16, 16, T, row_major>& f, const T* pointer, unsigned ldm,
                      std::source_location site = std::source_location::current()) {
  detail::check_operands("load_matrix_sync", pointer, ldm, site);
  substrate::cuda_on_cpu::warp_collective("load_matrix_sync", pointer, ldm, nullptr, site);
  const unsigned first = substrate::cuda_on_cpu::lane_id() * f.num_elements;
  for (int e = 0; e < f.num_elements; ++e) {
    const unsigned row = (first + e) / 16, col = (first + e) % 16;
    std::memcpy(&f.x[e], pointer + row * ldm + col, sizeof(T));  // the tile may be stored as raw 16-bit words
  }
}

template <class T>
void store_matrix_sync(float* pointer, const fragment<accumulator, 16, 16, 16, T>& f, unsigned ldm, layout_t layout,
                       std::source_location site = std::source_location::current()) {
  detail::check_operands("store_matrix_sync", pointer, ldm, site);
  if (layout != mem_row_major) substrate::cuda_on_cpu::kernel_fault("store_matrix_sync: only mem_row_major", site);
  substrate::cuda_on_cpu::warp_collective("store_matrix_sync", pointer, ldm, nullptr, site);
  const unsigned first = substrate::cuda_on_cpu::lane_id() * f.num_elements;
  for (int e = 0; e < f.num_elements; ++e) {
    const unsigned row = (first + e) / 16, col = (first + e) % 16;
    pointer[row * ldm + col] = f.x[e];
  }
}

// D = A*B + C for the warp's 16x16x16 tile: each output is C plus the 16 products (exact in
// double: fp16 and bf16 products are exact in float), summed as mma_rounding() says.
// `nearest` sums in double and rounds once; for the generator's inputs (|values| in [1/4, 2) or
// small integers) the double sum is exact. In exact mode every model gives the same bits (every
// partial sum is an integer of at most 2^24); in random mode the hardware may differ from both in
// the last bits (docs/cuda.md).
template <class T>
void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, const fragment<matrix_a, 16, 16, 16, T, row_major>& a,
              const fragment<matrix_b, 16, 16, 16, T, row_major>& b, const fragment<accumulator, 16, 16, 16, float>& c,
              std::source_location site = std::source_location::current()) {
  using substrate::cuda_on_cpu::warp_collective;
  constexpr int per_lane = 8;
  // Every lane publishes its A and B fragments; the last collective keeps them alive until all
  // lanes have read them.
  const void* mine[2] = {&a, &b};
  void* const* lanes = warp_collective("mma_sync", nullptr, 0, mine, site);
  auto element = [&](int which, unsigned row, unsigned col) {
    const unsigned e = row * 16 + col;
    const void* fragment_pointer = static_cast<const void* const*>(lanes[e / per_lane])[which];
    return which == 0
               ? detail::to_float(
                     static_cast<const std::remove_reference_t<decltype(a)>*>(fragment_pointer)->x[e % per_lane])
               : detail::to_float(
                     static_cast<const std::remove_reference_t<decltype(b)>*>(fragment_pointer)->x[e % per_lane]);
  };
  const unsigned first = substrate::cuda_on_cpu::lane_id() * per_lane;
  const bool truncating = substrate::cuda_on_cpu::mma_rounding() == substrate::cuda_on_cpu::MmaRounding::truncating;
  float result[per_lane];
  for (int e = 0; e < per_lane; ++e) {
    const unsigned row = (first + e) / 16, col = (first + e) % 16;
    double addends[17] = {c.x[e]};
    double largest = std::fabs(addends[0]);
    for (unsigned k = 0; k < 16; ++k) {
      addends[k + 1] = static_cast<double>(element(0, row, k)) * element(1, k, col);
      largest = std::max(largest, std::fabs(addends[k + 1]));
    }
    double sum = 0.0;
    if (truncating && largest != 0.0) {
      // Quantum: the last of 24 bits below the largest addend's leading bit. Each truncated
      // addend is a multiple of it below 2^(e+1), so the double sum of 17 is exact.
      int exponent = 0;
      std::frexp(largest, &exponent);
      const double quantum = std::ldexp(1.0, exponent - 24);
      for (double addend : addends) sum += std::trunc(addend / quantum) * quantum;
    } else {
      for (double addend : addends) sum += addend;
    }
    float rounded = static_cast<float>(sum);
    if (truncating && std::fabs(static_cast<double>(rounded)) > std::fabs(sum)) rounded = std::nextafter(rounded, 0.0f);
    if (truncating && sum == 0.0) rounded = -0.0f;
    result[e] = rounded;
  }
  warp_collective("mma_sync(done)", nullptr, 0, nullptr, site);
  for (int e = 0; e < per_lane; ++e) d.x[e] = result[e];
}

}  // namespace nvcuda::wmma
