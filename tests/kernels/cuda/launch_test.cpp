// The pure launch-geometry, parameter-layout and bounds helpers of kernels/cuda/launch.hpp,
// shared by the host launcher and the CUDA kernels.
#include <catch2/catch.hpp>

#include <cstddef>
#include <set>

#include "kernels/cuda/launch.hpp"
#include "kernels/generator.hpp"
#include "kernels/spec.hpp"
#include "probes/backends/compute_device.hpp"

using namespace substrate;
namespace ck = substrate::cuda_kernels;

TEST_CASE("cuda: codes match the project's enums", "[cuda]") {
  CHECK(ck::dtype_f32 == static_cast<std::uint32_t>(Dtype::f32));
  CHECK(ck::dtype_f16 == static_cast<std::uint32_t>(Dtype::f16));
  CHECK(ck::dtype_bf16 == static_cast<std::uint32_t>(Dtype::bf16));
  CHECK(ck::pattern_walking_ones == static_cast<std::uint32_t>(MemoryPattern::walking_ones));
  CHECK(ck::pattern_walking_zeros == static_cast<std::uint32_t>(MemoryPattern::walking_zeros));
  CHECK(ck::pattern_own_address == static_cast<std::uint32_t>(MemoryPattern::own_address));
  CHECK(ck::pattern_moving_inversions == static_cast<std::uint32_t>(MemoryPattern::moving_inversions));
  CHECK(ck::pattern_random == static_cast<std::uint32_t>(MemoryPattern::random));
  CHECK(ck::mantissa_bits_of(ck::dtype_f32) == mantissa_bits(Dtype::f32));
  CHECK(ck::mantissa_bits_of(ck::dtype_f16) == mantissa_bits(Dtype::f16));
  CHECK(ck::mantissa_bits_of(ck::dtype_bf16) == mantissa_bits(Dtype::bf16));
  CHECK(ck::element_bytes(ck::dtype_f32) * 8 == storage_bits(Dtype::f32));
  CHECK(ck::element_bytes(ck::dtype_f16) * 8 == storage_bits(Dtype::f16));
}

TEST_CASE("cuda: parameter blocks have the layout the kernels expect", "[cuda]") {
  // Same checks as the static_asserts, plus offsets of the 64-bit fields (kernel parameters are
  // copied byte for byte into the kernel's parameter space).
  CHECK(offsetof(ck::GemmParams, inject_element) == 24);
  CHECK(offsetof(ck::GemmParams, inject_stride) == 32);
  CHECK(offsetof(ck::GemmParams, inject_count) == 40);
  CHECK(offsetof(ck::GemmParams, m) == 48);
  CHECK(offsetof(ck::AttentionParams, inject_element) == 32);
  CHECK(offsetof(ck::AttentionParams, inject_count) == 48);
  CHECK(offsetof(ck::AttentionParams, scale) == 76);
  CHECK(offsetof(ck::MemoryParams, pattern) == 48);
  CHECK(offsetof(ck::FillParams, stream) == 24);
  CHECK(offsetof(ck::RawParams, count) == 24);
  CHECK(sizeof(ck::MemoryReportHeader) % 8 == 0);
  CHECK(sizeof(ck::MemoryReportEntry) % 8 == 0);
}

TEST_CASE("cuda: GEMM grids cover every output exactly once", "[cuda]") {
  const std::uint32_t sizes[] = {1, 2, 15, 16, 17, 63, 64, 65, 127, 128, 129, 1000, 1024, 4097};
  for (auto m : sizes) {
    for (auto n : sizes) {
      const ck::Dim3 grid = ck::gemm_grid(m, n);
      CHECK(grid.z == 1);
      // Blocks cover [0, m) x [0, n) and the last block starts inside the matrix.
      CHECK(std::uint64_t{grid.x} * ck::k_gemm_tile >= n);
      CHECK(std::uint64_t{grid.y} * ck::k_gemm_tile >= m);
      CHECK((grid.x - 1) * ck::k_gemm_tile < n);
      CHECK((grid.y - 1) * ck::k_gemm_tile < m);
    }
  }
  // The CUDA-core thread mapping (rows ty+16r, cols tx+16c) hits each tile element once.
  std::set<std::pair<unsigned, unsigned>> seen;
  const ck::Dim3 block = ck::gemm_block(ck::gemm_simt);
  CHECK(block.x * block.y == 256);
  for (unsigned ty = 0; ty < block.y; ++ty)
    for (unsigned tx = 0; tx < block.x; ++tx)
      for (unsigned r = 0; r < ck::k_gemm_simt_per_thread; ++r)
        for (unsigned c = 0; c < ck::k_gemm_simt_per_thread; ++c) seen.insert({ty + 16 * r, tx + 16 * c});
  CHECK(seen.size() == ck::k_gemm_tile * ck::k_gemm_tile);
  CHECK(ck::gemm_block(ck::gemm_tensor_wmma).x == 128);
  CHECK(ck::k_gemm_wmma_smem_bytes <= 48 * 1024);
}

TEST_CASE("cuda: tensor-core eligibility", "[cuda]") {
  CHECK(ck::tensor_cores_support(ck::dtype_f16, 7));
  CHECK_FALSE(ck::tensor_cores_support(ck::dtype_bf16, 7));
  CHECK(ck::tensor_cores_support(ck::dtype_bf16, 8));
  CHECK_FALSE(ck::tensor_cores_support(ck::dtype_f32, 9));
}

TEST_CASE("cuda: random-mode unit roundoff per GEMM kernel", "[cuda]") {
  CHECK(ck::gemm_bound_unit_roundoff(ck::gemm_simt) == 1.0 / 16777216.0);
  CHECK(ck::gemm_bound_unit_roundoff(ck::gemm_tensor_wmma) == 4.0 / 16777216.0);
}

TEST_CASE("cuda: 1-D grids and buffer sizes", "[cuda]") {
  CHECK(ck::linear_blocks(0) == 1);
  CHECK(ck::linear_blocks(1) == 1);
  CHECK(ck::linear_blocks(256) == 1);
  CHECK(ck::linear_blocks(257) == 2);
  CHECK(ck::linear_blocks(1ull << 40) == ck::k_linear_max_blocks);
  CHECK(ck::buffer_bytes(3, ck::dtype_f16) == 8);
  CHECK(ck::buffer_bytes(4, ck::dtype_f16) == 8);
  CHECK(ck::buffer_bytes(3, ck::dtype_f32) == 12);
}

TEST_CASE("cuda: attention geometry and shared memory", "[cuda]") {
  const ck::Dim3 grid = ck::attention_grid(512, 8);
  CHECK(grid.x == 512);
  CHECK(grid.y == 8);
  CHECK(ck::attention_smem_bytes(2048, 128) == (2048 + 128) * 4);
}

TEST_CASE("cuda: memory chunks tile the region", "[cuda]") {
  const std::uint64_t gib = 1ull << 30;
  const std::uint64_t regions[] = {4, 4096, gib - 4, gib, gib + 4, 5 * gib + 12, 80 * gib};
  for (auto bytes : regions) {
    std::uint64_t total = 0;
    const std::uint64_t chunks = ck::memory_chunk_count(bytes);
    for (std::uint64_t i = 0; i < chunks; ++i) {
      const std::uint64_t b = ck::memory_chunk_bytes(bytes, i);
      CHECK(b > 0);
      CHECK(b <= ck::k_memory_chunk_bytes);
      CHECK(b % 4 == 0);
      total += b;
    }
    CHECK(total == bytes);
    CHECK(ck::memory_chunk_bytes(bytes, chunks) == 0);
  }
}

TEST_CASE("cuda: memory patterns follow the definitions", "[cuda]") {
  CHECK(ck::pattern_word(ck::pattern_walking_ones, 0, 1, 0) == 1u);
  CHECK(ck::pattern_word(ck::pattern_walking_ones, 0, 1, 31) == 0x80000000u);
  CHECK(ck::pattern_word(ck::pattern_walking_ones, 3, 1, 30) == 2u);  // (30 + 3) % 32 = 1
  CHECK(ck::pattern_word(ck::pattern_walking_zeros, 0, 1, 5) == ~(1u << 5));
  CHECK(ck::pattern_word(ck::pattern_own_address, 0, 1, 0x123456789ull) == (0x23456789u ^ 0x1u));
  CHECK(ck::pattern_word(ck::pattern_random, 0, 9, 77) == gen::random_bits(9, gen::stream_memory_random, 77));
  CHECK(ck::pattern_word(ck::pattern_moving_inversions, 0, 9, 77) ==
        gen::random_bits(9, gen::stream_memory_random, 77));
  CHECK(ck::pattern_word(ck::pattern_retention, 0, 9, 77) == gen::random_bits(9, gen::stream_memory_retention, 77));
  CHECK(ck::walking_pass(33) == 1);
  CHECK(ck::memory_bytes_moved_per_word(ck::pattern_moving_inversions) == 24);
  CHECK(ck::memory_bytes_moved_per_word(ck::pattern_random) == 8);
}
