// Every CUDA kernel of substrated, in one translation unit so nvcc runs once per architecture.
// Same algorithms as kernels/glsl/*.comp: inputs generated on the device by the shared Philox
// generator, fixed reduction orders, no atomics outside the memory probe's error path.
// Loaded at run time from the embedded fatbin by probes/backends/cuda (driver API, by name).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <cstdint>

#include "kernels/cuda/launch.hpp"

namespace gen = substrate::cuda_gen;
using namespace substrate::cuda_kernels;

namespace {

__device__ __forceinline__ float load_element(const void* base, std::uint64_t e, std::uint32_t dtype) {
  if (dtype == dtype_f32) return static_cast<const float*>(base)[e];
  const unsigned short raw = static_cast<const unsigned short*>(base)[e];
  return dtype == dtype_f16 ? __half2float(__ushort_as_half(raw)) : __bfloat162float(__ushort_as_bfloat16(raw));
}

__device__ __forceinline__ std::uint64_t global_thread() {
  return static_cast<std::uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ std::uint64_t grid_threads() { return static_cast<std::uint64_t>(gridDim.x) * blockDim.x; }

// A drill's fault pattern (kernels/spec.hpp, injection_hits): `count` elements `stride` apart from
// `element` (stride >= 1, checked by the host).
__device__ __forceinline__ std::uint32_t inject_bits(std::uint32_t bits, std::uint64_t index, std::uint32_t enabled,
                                                     std::uint64_t element, std::uint32_t mask, std::uint64_t stride,
                                                     std::uint64_t count) {
  if (enabled == 0u || index < element) return bits;
  const std::uint64_t offset = index - element;
  return (offset % stride == 0 && offset / stride < count) ? bits ^ mask : bits;
}

}  // namespace

// ---- inputs -------------------------------------------------------------------------------

// Element e of the tensor: exact_value or random_value of random_bits(seed, stream, e), stored as
// f32, f16 or bf16 (the values are exactly representable, so the 16-bit encodings are exact).
// One thread per four elements: elements 4q..4q+3 are the four words of one Philox call
// (gen::random_quad), so no generator word is computed and thrown away.
extern "C" __global__ void __launch_bounds__(k_linear_threads) substrate_fill(FillParams p) {
  const std::uint32_t mbits = mantissa_bits_of(p.dtype);
  for (std::uint64_t q = global_thread(); 4 * q < p.count; q += grid_threads()) {
    const gen::Philox4 bits = gen::random_quad(p.seed, p.stream, q);
    for (std::uint32_t c = 0; c < 4 && 4 * q + c < p.count; ++c) {
      const std::uint64_t e = 4 * q + c;
      const float value =
          p.mode == mode_exact ? gen::exact_value(bits.v[c], p.radius) : gen::random_value(bits.v[c], mbits);
      if (p.dtype == dtype_f32) {
        reinterpret_cast<float*>(p.dst)[e] = value;
      } else {
        const std::uint16_t h = p.dtype == dtype_f16 ? gen::to_half_bits_exact(value) : gen::to_bf16_bits_exact(value);
        reinterpret_cast<std::uint16_t*>(p.dst)[e] = h;
      }
    }
  }
}

extern "C" __global__ void __launch_bounds__(k_linear_threads) substrate_generate_raw(RawParams p) {
  for (std::uint64_t i = global_thread(); i < p.count; i += grid_threads()) {
    reinterpret_cast<std::uint32_t*>(p.dst)[i] = gen::random_bits(p.seed, p.stream, p.first + i);
  }
}

// ---- GEMM on CUDA cores -------------------------------------------------------------------
// Block (16,16) computes a 64x64 tile of C; thread (tx,ty) owns rows ty+16r and columns tx+16c
// (r,c < 4). k advances in slices of 16 through shared memory; each output accumulates
// fmaf(a_ik, b_kj, acc) for k = 0..K-1 strictly ascending, starting from +0. The inner loop
// stops at K, so no padding term ever enters a sum.
extern "C" __global__ void __launch_bounds__(256) substrate_gemm_simt(GemmParams p) {
  __shared__ float a_tile[k_gemm_k_slice][k_gemm_tile];  // [kk][row]
  __shared__ float b_tile[k_gemm_k_slice][k_gemm_tile];  // [kk][col]
  const std::uint32_t tx = threadIdx.x, ty = threadIdx.y;
  const std::uint32_t tid = ty * k_gemm_simt_threads_x + tx;
  const std::uint32_t row0 = blockIdx.y * k_gemm_tile, col0 = blockIdx.x * k_gemm_tile;
  const void* a = reinterpret_cast<const void*>(p.a);
  const void* b = reinterpret_cast<const void*>(p.b);

  float acc[k_gemm_simt_per_thread][k_gemm_simt_per_thread];
#pragma unroll
  for (int r = 0; r < 4; ++r)
#pragma unroll
    for (int c = 0; c < 4; ++c) acc[r][c] = 0.0f;

  for (std::uint32_t k0 = 0; k0 < p.k; k0 += k_gemm_k_slice) {
#pragma unroll
    for (std::uint32_t l = 0; l < 4; ++l) {
      const std::uint32_t t = tid + 256u * l;
      const std::uint32_t ar = t / k_gemm_k_slice, akk = t % k_gemm_k_slice;
      const std::uint32_t gi = row0 + ar, gk = k0 + akk;
      a_tile[akk][ar] =
          (gi < p.m && gk < p.k) ? load_element(a, static_cast<std::uint64_t>(gi) * p.k + gk, p.dtype) : 0.0f;
      const std::uint32_t bkk = t / k_gemm_tile, bc = t % k_gemm_tile;
      const std::uint32_t gk2 = k0 + bkk, gj = col0 + bc;
      b_tile[bkk][bc] =
          (gk2 < p.k && gj < p.n) ? load_element(b, static_cast<std::uint64_t>(gk2) * p.n + gj, p.dtype) : 0.0f;
    }
    __syncthreads();
    const std::uint32_t depth = (p.k - k0) < k_gemm_k_slice ? (p.k - k0) : k_gemm_k_slice;
    for (std::uint32_t kk = 0; kk < depth; ++kk) {
      float av[4], bv[4];
#pragma unroll
      for (int r = 0; r < 4; ++r) av[r] = a_tile[kk][ty + 16u * r];
#pragma unroll
      for (int c = 0; c < 4; ++c) bv[c] = b_tile[kk][tx + 16u * c];
#pragma unroll
      for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[r][c] = __fmaf_rn(av[r], bv[c], acc[r][c]);
    }
    __syncthreads();
  }

  std::uint32_t* out = reinterpret_cast<std::uint32_t*>(p.c);
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const std::uint32_t i = row0 + ty + 16u * r;
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const std::uint32_t j = col0 + tx + 16u * c;
      if (i < p.m && j < p.n) {
        const std::uint64_t index = static_cast<std::uint64_t>(i) * p.n + j;
        out[index] = inject_bits(__float_as_uint(acc[r][c]), index, p.inject_enabled, p.inject_element, p.inject_mask,
                                 p.inject_stride, p.inject_count);
      }
    }
  }
}

// ---- GEMM on tensor cores -----------------------------------------------------------------
// 128 threads = 4 warps in a 2x2 arrangement; each warp owns a 32x32 sub-tile = 2x2 wmma
// 16x16x16 fragments with f32 accumulators. k advances in slices of 16 (one mma per fragment
// per slice), ascending; the order of additions inside one mma is fixed by the hardware, so the
// result is reproducible on one architecture. Rows, columns and k beyond the matrix are padded
// with +0 in shared memory; a zero product adds nothing to an integer or normal sum. The
// epilogue adds +0.0f to each result: that maps a possible -0 (the tensor core's sign of an
// exact zero sum is not documented) to +0, as the CUDA-core path and the golden produce, and
// leaves every other value unchanged.
namespace {

template <class T>
__device__ __forceinline__ void gemm_wmma_body(const GemmParams& p) {
  using namespace nvcuda;
  __shared__ __align__(32) std::uint16_t a_tile[k_gemm_tile * k_gemm_k_slice];  // [row][kk], ld 16
  __shared__ __align__(32) std::uint16_t b_tile[k_gemm_k_slice * k_gemm_tile];  // [kk][col], ld 64
  __shared__ __align__(32) float c_tile[k_gemm_tile * k_gemm_tile];             // [row][col], ld 64
  const std::uint32_t tid = threadIdx.x;
  const std::uint32_t warp = tid / 32u;
  const std::uint32_t wr = warp / 2u, wc = warp % 2u;
  const std::uint32_t row0 = blockIdx.y * k_gemm_tile, col0 = blockIdx.x * k_gemm_tile;
  const std::uint16_t* a = reinterpret_cast<const std::uint16_t*>(p.a);
  const std::uint16_t* b = reinterpret_cast<const std::uint16_t*>(p.b);

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
  for (int r = 0; r < 2; ++r)
#pragma unroll
    for (int c = 0; c < 2; ++c) wmma::fill_fragment(acc[r][c], 0.0f);

  for (std::uint32_t k0 = 0; k0 < p.k; k0 += k_gemm_k_slice) {
#pragma unroll
    for (std::uint32_t l = 0; l < 8; ++l) {
      const std::uint32_t t = tid + k_gemm_wmma_threads * l;
      const std::uint32_t ar = t / k_gemm_k_slice, akk = t % k_gemm_k_slice;
      const std::uint32_t gi = row0 + ar, gk = k0 + akk;
      a_tile[t] = (gi < p.m && gk < p.k) ? a[static_cast<std::uint64_t>(gi) * p.k + gk] : std::uint16_t{0};
      const std::uint32_t bkk = t / k_gemm_tile, bc = t % k_gemm_tile;
      const std::uint32_t gk2 = k0 + bkk, gj = col0 + bc;
      b_tile[t] = (gk2 < p.k && gj < p.n) ? b[static_cast<std::uint64_t>(gk2) * p.n + gj] : std::uint16_t{0};
    }
    __syncthreads();
    wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa[2];
    wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb[2];
#pragma unroll
    for (int r = 0; r < 2; ++r)
      wmma::load_matrix_sync(fa[r], reinterpret_cast<const T*>(a_tile) + (wr * 32u + 16u * r) * k_gemm_k_slice,
                             k_gemm_k_slice);
#pragma unroll
    for (int c = 0; c < 2; ++c)
      wmma::load_matrix_sync(fb[c], reinterpret_cast<const T*>(b_tile) + wc * 32u + 16u * c, k_gemm_tile);
#pragma unroll
    for (int r = 0; r < 2; ++r)
#pragma unroll
      for (int c = 0; c < 2; ++c) wmma::mma_sync(acc[r][c], fa[r], fb[c], acc[r][c]);
    __syncthreads();
  }

#pragma unroll
  for (int r = 0; r < 2; ++r)
#pragma unroll
    for (int c = 0; c < 2; ++c)
      wmma::store_matrix_sync(c_tile + (wr * 32u + 16u * r) * k_gemm_tile + wc * 32u + 16u * c, acc[r][c], k_gemm_tile,
                              wmma::mem_row_major);
  __syncthreads();

  std::uint32_t* out = reinterpret_cast<std::uint32_t*>(p.c);
  for (std::uint32_t t = tid; t < k_gemm_tile * k_gemm_tile; t += k_gemm_wmma_threads) {
    const std::uint32_t i = row0 + t / k_gemm_tile, j = col0 + t % k_gemm_tile;
    if (i < p.m && j < p.n) {
      const std::uint64_t index = static_cast<std::uint64_t>(i) * p.n + j;
      const float value = c_tile[t] + 0.0f;  // -0 -> +0, see above
      out[index] = inject_bits(__float_as_uint(value), index, p.inject_enabled, p.inject_element, p.inject_mask,
                               p.inject_stride, p.inject_count);
    }
  }
}

}  // namespace

extern "C" __global__ void __launch_bounds__(k_gemm_wmma_threads) substrate_gemm_wmma_f16(GemmParams p) {
  gemm_wmma_body<half>(p);
}

// bf16 fragments need sm_80; on sm_75 the kernel is an empty stub the host never launches
// (tensor_cores_support() gates it on the compute capability).
extern "C" __global__ void __launch_bounds__(k_gemm_wmma_threads) substrate_gemm_wmma_bf16(GemmParams p) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  gemm_wmma_body<__nv_bfloat16>(p);
#else
  (void)p;
#endif
}

// ---- attention ----------------------------------------------------------------------------
// One block per (query i = blockIdx.x, head h = blockIdx.y). Scores s_j = (sum_d q_d k_jd, d
// ascending) * scale; m = max_j s_j (order-free); e_j = expf(s_j - m); S = sum_j e_j with j
// ascending by one thread; o_d = (sum_j e_j v_jd, j ascending) / S with IEEE division.
// expf is CUDA's full-precision expf (at most 2 ulp, CUDA Math API); no fast-math anywhere.
extern "C" __global__ void __launch_bounds__(k_attention_threads) substrate_attention(AttentionParams p) {
  extern __shared__ float smem[];
  float* weights = smem;            // [seq_len]
  float* q_row = smem + p.seq_len;  // [head_dim]
  __shared__ float partial_max[k_attention_threads];
  __shared__ float row_max, row_sum;

  const std::uint32_t query = blockIdx.x, head = blockIdx.y, tid = threadIdx.x;
  const std::uint32_t keys = p.causal != 0u ? query + 1u : p.seq_len;
  const std::uint64_t head_base = static_cast<std::uint64_t>(head) * p.seq_len * p.head_dim;
  const std::uint64_t q_base = head_base + static_cast<std::uint64_t>(query) * p.head_dim;
  const void* qp = reinterpret_cast<const void*>(p.q);
  const void* kp = reinterpret_cast<const void*>(p.k);
  const void* vp = reinterpret_cast<const void*>(p.v);

  for (std::uint32_t d = tid; d < p.head_dim; d += k_attention_threads)
    q_row[d] = load_element(qp, q_base + d, p.dtype);
  __syncthreads();

  float local_max = -INFINITY;
  for (std::uint32_t j = tid; j < keys; j += k_attention_threads) {
    const std::uint64_t k_base = head_base + static_cast<std::uint64_t>(j) * p.head_dim;
    float dot = 0.0f;
    for (std::uint32_t d = 0; d < p.head_dim; ++d)
      dot = __fmaf_rn(q_row[d], load_element(kp, k_base + d, p.dtype), dot);
    const float s = __fmul_rn(dot, p.scale);
    weights[j] = s;
    local_max = fmaxf(local_max, s);
  }
  partial_max[tid] = local_max;
  __syncthreads();
  if (tid == 0) {
    float m = partial_max[0];
    for (std::uint32_t t = 1; t < k_attention_threads; ++t) m = fmaxf(m, partial_max[t]);
    row_max = m;
  }
  __syncthreads();
  const float m = row_max;
  for (std::uint32_t j = tid; j < keys; j += k_attention_threads) weights[j] = expf(__fsub_rn(weights[j], m));
  __syncthreads();
  if (tid == 0) {
    float sum = 0.0f;
    for (std::uint32_t j = 0; j < keys; ++j) sum = __fadd_rn(sum, weights[j]);
    row_sum = sum;
  }
  __syncthreads();
  const float sum = row_sum;
  std::uint32_t* out = reinterpret_cast<std::uint32_t*>(p.o);
  for (std::uint32_t d = tid; d < p.head_dim; d += k_attention_threads) {
    float acc = 0.0f;
    for (std::uint32_t j = 0; j < keys; ++j)
      acc = __fmaf_rn(weights[j], load_element(vp, head_base + static_cast<std::uint64_t>(j) * p.head_dim + d, p.dtype),
                      acc);
    const std::uint64_t index = q_base + d;
    out[index] = inject_bits(__float_as_uint(__fdiv_rn(acc, sum)), index, p.inject_enabled, p.inject_element,
                             p.inject_mask, p.inject_stride, p.inject_count);
  }
}

// ---- memory -------------------------------------------------------------------------------
// One pass over one chunk: write the pattern, verify it, or verify it and write its complement
// (moving inversions). A bad word is counted, its flipped bits added to the histogram, and the
// first max_reported are recorded with a second read through a volatile pointer (goes back to the
// memory system instead of reusing the first load): the same wrong value again means a stored
// flip, the expected value a transient read error. Atomics only on this error path.
extern "C" __global__ void __launch_bounds__(k_linear_threads) substrate_memory(MemoryParams p) {
  std::uint32_t* region = reinterpret_cast<std::uint32_t*>(p.region);
  auto* header = reinterpret_cast<MemoryReportHeader*>(p.report);
  auto* entries = reinterpret_cast<MemoryReportEntry*>(p.report + sizeof(MemoryReportHeader));
  for (std::uint64_t w = global_thread(); w < p.words; w += grid_threads()) {
    const std::uint64_t word = p.first_word + w;
    std::uint32_t expected = pattern_word(p.pattern, p.pass, p.seed, word);
    if (p.invert != 0u) expected = ~expected;
    const bool injected = p.inject_enabled != 0u && word == p.inject_word;
    if (p.op == op_write) {
      region[w] = (injected && p.inject_transient == 0u) ? expected ^ p.inject_mask : expected;
      continue;
    }
    std::uint32_t actual = region[w];
    if (injected && p.inject_transient != 0u) actual ^= p.inject_mask;
    if (actual != expected) {
      const std::uint32_t reread = *static_cast<volatile std::uint32_t*>(region + w);
      atomicAdd(&header->bad_words, 1ull);
      const std::uint32_t flipped = actual ^ expected;
      for (std::uint32_t bit = 0; bit < 32; ++bit)
        if ((flipped >> bit) & 1u) atomicAdd(&header->histogram[bit], 1u);
      const std::uint32_t slot = atomicAdd(&header->reported, 1u);
      if (slot < p.max_reported) {
        MemoryReportEntry entry;
        entry.word = word;
        entry.expected = expected;
        entry.actual = actual;
        entry.reread = reread;
        entry.pattern = p.pattern;
        entries[slot] = entry;
      }
    }
    if (p.op == op_verify_then_write_inverse) region[w] = ~expected;
  }
}
