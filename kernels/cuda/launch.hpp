#pragma once
// Launch geometry, kernel parameter blocks and bounds helpers shared by the CUDA kernels
// (kernels/cuda/kernels.cu, compiled by nvcc) and the host launcher
// (probes/backends/cuda/cuda_device.cpp, compiled by the C++ compiler). Everything here is a pure
// function of its arguments so tests/kernels/cuda/launch_test.cpp can check it without a GPU.
// The parameter structs are passed by value to the kernels: fixed-width fields only, device
// pointers as 64-bit integers, sizes checked by static_assert on both sides.
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/generator.cuh"

namespace substrate::cuda_kernels {

// ---- names in the fatbin (extern "C", so no mangling) -------------------------------------
constexpr const char* k_fn_fill = "substrate_fill";
constexpr const char* k_fn_generate_raw = "substrate_generate_raw";
constexpr const char* k_fn_gemm_simt = "substrate_gemm_simt";
constexpr const char* k_fn_gemm_wmma_f16 = "substrate_gemm_wmma_f16";
constexpr const char* k_fn_gemm_wmma_bf16 = "substrate_gemm_wmma_bf16";
constexpr const char* k_fn_attention = "substrate_attention";
constexpr const char* k_fn_memory = "substrate_memory";

// ---- element encodings --------------------------------------------------------------------
// Same order as substrate::Dtype.
enum DtypeCode : std::uint32_t { dtype_f32 = 0, dtype_f16 = 1, dtype_bf16 = 2 };
enum ModeCode : std::uint32_t { mode_exact = 0, mode_random = 1 };

SUBSTRATE_HD std::uint32_t element_bytes(std::uint32_t dtype) { return dtype == dtype_f32 ? 4u : 2u; }
SUBSTRATE_HD std::uint32_t mantissa_bits_of(std::uint32_t dtype) {
  return dtype == dtype_f32   ? cuda_gen::k_mantissa_bits_f32
         : dtype == dtype_f16 ? cuda_gen::k_mantissa_bits_f16
                              : cuda_gen::k_mantissa_bits_bf16;
}
SUBSTRATE_HD std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) { return (a + b - 1) / b; }
// Bytes of a buffer of `count` elements, rounded up to whole 32-bit words (the output words
// the host reads are always 32 bits).
SUBSTRATE_HD std::uint64_t buffer_bytes(std::uint64_t count, std::uint32_t dtype) {
  return ceil_div(count * element_bytes(dtype), 4) * 4;
}

// ---- 1-D grid-stride kernels (fill, generate_raw, memory) ---------------------------------
constexpr std::uint32_t k_linear_threads = 256;
constexpr std::uint32_t k_linear_max_blocks = 65535;  // grid-stride loops cover the rest

SUBSTRATE_HD std::uint32_t linear_blocks(std::uint64_t items) {
  const std::uint64_t blocks = ceil_div(items, k_linear_threads);
  if (blocks == 0) return 1;
  return blocks > k_linear_max_blocks ? k_linear_max_blocks : static_cast<std::uint32_t>(blocks);
}

// ---- GEMM ---------------------------------------------------------------------------------
// Variants: which hardware path ran. The id is stable (results and fingerprints carry it).
enum GemmVariant : std::uint32_t {
  gemm_simt = 0,         // CUDA cores: 64x64 tile, 16-deep k slices, 4x4 outputs per thread
  gemm_tensor_wmma = 1,  // tensor cores: wmma 16x16x16 fragments, f16/bf16 in, f32 accumulate
};
// KernelRun::kernel of each variant.
inline const char* gemm_variant_name(GemmVariant v) {
  return v == gemm_tensor_wmma ? "cuda.gemm.wmma16" : "cuda.gemm.simt64";
}
constexpr const char* k_kernel_attention = "cuda.attention.rowwise";
constexpr const char* k_kernel_memory = "cuda.memory.patterns";

constexpr std::uint32_t k_gemm_tile = 64;     // output tile edge (both variants)
constexpr std::uint32_t k_gemm_k_slice = 16;  // k depth staged in shared memory per step
constexpr std::uint32_t k_gemm_simt_threads_x = 16, k_gemm_simt_threads_y = 16;
constexpr std::uint32_t k_gemm_simt_per_thread = 4;  // 4x4 outputs per thread
constexpr std::uint32_t k_gemm_wmma_threads = 128;   // 4 warps, 2x2, each 32x32 = 2x2 fragments
static_assert(k_gemm_simt_threads_x * k_gemm_simt_per_thread == k_gemm_tile, "simt tile");

struct Dim3 {
  std::uint32_t x = 1, y = 1, z = 1;
};

// Grid of a GEMM launch: one block per 64x64 output tile, x over columns, y over rows.
SUBSTRATE_HD Dim3 gemm_grid(std::uint32_t m, std::uint32_t n) {
  Dim3 g;
  g.x = static_cast<std::uint32_t>(ceil_div(n, k_gemm_tile));
  g.y = static_cast<std::uint32_t>(ceil_div(m, k_gemm_tile));
  return g;
}
SUBSTRATE_HD Dim3 gemm_block(GemmVariant v) {
  Dim3 b;
  if (v == gemm_tensor_wmma) {
    b.x = k_gemm_wmma_threads;
  } else {
    b.x = k_gemm_simt_threads_x;
    b.y = k_gemm_simt_threads_y;
  }
  return b;
}
// Static shared memory of the wmma kernel: A and B slices as 16-bit values plus the f32 tile
// the fragments are stored through for the bounds-checked, injecting epilogue.
constexpr std::uint32_t k_gemm_wmma_smem_bytes = 2 * k_gemm_tile * k_gemm_k_slice * 2 + k_gemm_tile * k_gemm_tile * 4;

// Tensor cores: f16 from sm_70 (all our targets), bf16 from sm_80.
SUBSTRATE_HD bool tensor_cores_support(std::uint32_t dtype, int cc_major) {
  if (dtype == dtype_f16) return cc_major >= 7;
  if (dtype == dtype_bf16) return cc_major >= 8;
  return false;
}

// Grid limits of every target (sm_75 and newer; CUDA C++ Programming Guide, "Technical
// specifications per compute capability"): blocks in x, and in y and z. The host checks launches
// against them (probes/backends/launch_limits.hpp); element indices are 64-bit in the kernels and
// row offsets i*K use 64-bit arithmetic, so no other shape limit applies.
constexpr std::uint64_t k_max_grid_x = 0x7FFFFFFFu, k_max_grid_yz = 65535;

// Unit roundoff to use in the random-mode forward error bound gamma_K = K*u/(1-K*u) for each
// variant (docs/cuda.md derives it). CUDA cores round to nearest: u = 2^-24. Tensor cores align
// addends to the largest exponent and truncate, and round the sum toward zero (Fasi, Higham,
// Mikaitis, Pranesh 2021): per block of b products the error is at most 2u(1 + 1/b) relative
// to the sum of magnitudes, so we use 4u = 2^-22, which covers every block size b >= 1.
inline double gemm_bound_unit_roundoff(GemmVariant v) {
  return v == gemm_tensor_wmma ? 1.0 / 4194304.0 : 1.0 / 16777216.0;
}
struct FillParams {
  std::uint64_t dst;    // device pointer
  std::uint64_t count;  // elements
  std::uint64_t seed;
  std::uint32_t stream;
  std::uint32_t dtype;
  std::uint32_t mode;
  std::uint32_t radius;  // exact mode
};
static_assert(sizeof(FillParams) == 40, "FillParams layout");

struct RawParams {
  std::uint64_t dst;
  std::uint64_t seed;
  std::uint64_t first;
  std::uint32_t count;
  std::uint32_t stream;
};
static_assert(sizeof(RawParams) == 32, "RawParams layout");

struct GemmParams {
  std::uint64_t a, b, c;  // device pointers: A MxK, B KxN (storage dtype), C MxN f32
  std::uint64_t inject_element;
  std::uint64_t inject_stride, inject_count;  // the drill's pattern (kernels/spec.hpp Injection)
  std::uint32_t m, n, k;
  std::uint32_t dtype;
  std::uint32_t inject_enabled;
  std::uint32_t inject_mask;
};
static_assert(sizeof(GemmParams) == 72, "GemmParams layout");

// ---- attention ----------------------------------------------------------------------------
constexpr std::uint32_t k_attention_threads = 128;

struct AttentionParams {
  std::uint64_t q, k, v, o;  // device pointers, [heads][seq_len][head_dim]
  std::uint64_t inject_element;
  std::uint64_t inject_stride, inject_count;  // the drill's pattern (kernels/spec.hpp Injection)
  std::uint32_t seq_len, heads, head_dim;
  std::uint32_t dtype;
  std::uint32_t causal;
  float scale;
  std::uint32_t inject_enabled;
  std::uint32_t inject_mask;
};
static_assert(sizeof(AttentionParams) == 88, "AttentionParams layout");

// One block per (query, head): grid x = queries, y = heads.
SUBSTRATE_HD Dim3 attention_grid(std::uint32_t seq_len, std::uint32_t heads) {
  Dim3 g;
  g.x = seq_len;
  g.y = heads;
  return g;
}
// Dynamic shared memory: one weight per key plus the query row.
SUBSTRATE_HD std::uint64_t attention_smem_bytes(std::uint32_t seq_len, std::uint32_t head_dim) {
  return (static_cast<std::uint64_t>(seq_len) + head_dim) * 4;
}

// ---- memory -------------------------------------------------------------------------------
// Same numbering as substrate::MemoryPattern.
enum PatternCode : std::uint32_t {
  pattern_walking_ones = 0,
  pattern_walking_zeros = 1,
  pattern_own_address = 2,
  pattern_moving_inversions = 3,
  pattern_random = 4,
  pattern_retention = 5,  // random bits from stream_memory_retention
};
enum MemoryOp : std::uint32_t { op_write = 0, op_verify = 1, op_verify_then_write_inverse = 2 };

// Each allocation (chunk) is at most 1 GiB: a big card is covered by many chunks, and a chunk
// fits in any single allocation the driver can still satisfy on a fragmented card.
constexpr std::uint64_t k_memory_chunk_bytes = std::uint64_t{1} << 30;
constexpr std::uint32_t k_memory_max_reported = 4096;

SUBSTRATE_HD std::uint64_t memory_chunk_count(std::uint64_t bytes) { return ceil_div(bytes, k_memory_chunk_bytes); }
// Bytes of chunk `index` of a region of `bytes` (a multiple of 4).
SUBSTRATE_HD std::uint64_t memory_chunk_bytes(std::uint64_t bytes, std::uint64_t index) {
  const std::uint64_t start = index * k_memory_chunk_bytes;
  if (start >= bytes) return 0;
  const std::uint64_t left = bytes - start;
  return left < k_memory_chunk_bytes ? left : k_memory_chunk_bytes;
}

// Walking patterns run one pass per run; the pass number p (the shift of the walking bit) is
// seed % 32, so successive runs with different seeds walk every bit through every word (same
// choice as the Vulkan backend).
SUBSTRATE_HD std::uint32_t walking_pass(std::uint64_t seed) { return static_cast<std::uint32_t>(seed % 32); }
// Bytes read plus written per word by one pattern: write + verify, or for moving inversions
// write P, verify P + write ~P, verify ~P + write P, verify P.
SUBSTRATE_HD std::uint64_t memory_bytes_moved_per_word(std::uint32_t pattern) {
  return pattern == pattern_moving_inversions ? 24 : 8;
}

// Expected value of word `word` (index within the whole region) for `pattern` in pass `pass`.
// Moving inversions use the random pattern as P.
SUBSTRATE_HD std::uint32_t pattern_word(std::uint32_t pattern, std::uint32_t pass, std::uint64_t seed,
                                        std::uint64_t word) {
  switch (pattern) {
    case pattern_walking_ones:
      return 1u << ((static_cast<std::uint32_t>(word) + pass) & 31u);
    case pattern_walking_zeros:
      return ~(1u << ((static_cast<std::uint32_t>(word) + pass) & 31u));
    case pattern_own_address:
      return static_cast<std::uint32_t>(word) ^ static_cast<std::uint32_t>(word >> 32);
    case pattern_retention:
      return cuda_gen::random_bits(seed, cuda_gen::k_stream_memory_retention, word);
    default:  // random, moving inversions
      return cuda_gen::random_bits(seed, cuda_gen::k_stream_memory_random, word);
  }
}

struct MemoryReportEntry {
  std::uint64_t word;  // index within the region
  std::uint32_t expected, actual, reread;
  std::uint32_t pattern;
};
static_assert(sizeof(MemoryReportEntry) == 24, "MemoryReportEntry layout");

// Device-side error report; `entries` (capacity max_reported) follow it in the same buffer.
struct MemoryReportHeader {
  unsigned long long bad_words;  // the type atomicAdd takes
  std::uint32_t reported;        // slots claimed (may exceed capacity; only capacity are written)
  std::uint32_t pad;
  std::uint32_t histogram[32];
};
static_assert(sizeof(MemoryReportHeader) == 144, "MemoryReportHeader layout");

struct MemoryParams {
  std::uint64_t region;      // device pointer of this chunk
  std::uint64_t report;      // device pointer of MemoryReportHeader + entries
  std::uint64_t first_word;  // index of this chunk's word 0 within the region
  std::uint64_t words;       // words in this chunk
  std::uint64_t seed;
  std::uint64_t inject_word;  // region-wide word index
  std::uint32_t pattern;
  std::uint32_t pass;
  std::uint32_t op;
  std::uint32_t invert;  // expect / write the complement of the pattern
  std::uint32_t max_reported;
  std::uint32_t inject_enabled;
  std::uint32_t inject_mask;
  std::uint32_t inject_transient;
};
static_assert(sizeof(MemoryParams) == 80, "MemoryParams layout");

}  // namespace substrate::cuda_kernels
