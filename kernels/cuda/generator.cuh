#pragma once
// CUDA twin of kernels/generator.hpp: the same Philox4x32-10 counter-based generator and the
// same value mapping, usable from device code (nvcc) and from host code (nvcc or a plain C++
// compiler). tests/kernels/cuda/generator_test.cpp proves bit-parity with kernels/generator.hpp on
// the host; on a GPU the generate_raw kernel runs this exact code.
#include <cstdint>
#if !defined(__CUDACC__)
#include <cstring>
#endif

#if defined(__CUDACC__)
#define SUBSTRATE_HD __host__ __device__ __forceinline__
#else
#define SUBSTRATE_HD inline
#endif

namespace substrate::cuda_gen {

// Constants repeated rather than included so this header stays free of host-only headers;
// the unit test checks them against kernels/generator.hpp.
constexpr std::uint32_t k_philox_m0 = 0xD2511F53u;
constexpr std::uint32_t k_philox_m1 = 0xCD9E8D57u;
constexpr std::uint32_t k_philox_w0 = 0x9E3779B9u;
constexpr std::uint32_t k_philox_w1 = 0xBB67AE85u;

constexpr std::uint32_t k_stream_gemm_a = 1;
constexpr std::uint32_t k_stream_gemm_b = 2;
constexpr std::uint32_t k_stream_attention_q = 3;
constexpr std::uint32_t k_stream_attention_k = 4;
constexpr std::uint32_t k_stream_attention_v = 5;
constexpr std::uint32_t k_stream_memory_random = 6;
constexpr std::uint32_t k_stream_memory_retention = 7;

constexpr std::uint32_t k_mantissa_bits_f32 = 23;
constexpr std::uint32_t k_mantissa_bits_f16 = 10;
constexpr std::uint32_t k_mantissa_bits_bf16 = 7;

SUBSTRATE_HD std::uint32_t mul_hi(std::uint32_t a, std::uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __umulhi(a, b);
#else
  return static_cast<std::uint32_t>((static_cast<std::uint64_t>(a) * b) >> 32);
#endif
}

SUBSTRATE_HD float float_from_bits(std::uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
#endif
}

SUBSTRATE_HD std::uint32_t bits_from_float(float value) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(value);
#else
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
#endif
}

struct Philox4 {
  std::uint32_t v[4];
};

// Philox4x32-10: the four output words for counter (c0, c1, c2, c3) under key (k0, k1); the key
// schedule bumps the key before every round but the first.
SUBSTRATE_HD Philox4 philox4x32_10(std::uint32_t c0, std::uint32_t c1, std::uint32_t c2, std::uint32_t c3,
                                   std::uint32_t k0, std::uint32_t k1) {
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += k_philox_w0;
      k1 += k_philox_w1;
    }
    const std::uint32_t hi0 = mul_hi(k_philox_m0, c0), lo0 = k_philox_m0 * c0;
    const std::uint32_t hi1 = mul_hi(k_philox_m1, c2), lo1 = k_philox_m1 * c2;
    const std::uint32_t n0 = hi1 ^ c1 ^ k0;
    const std::uint32_t n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// gen::random_quad: the bits of elements 4*quad .. 4*quad + 3, one call at counter
// (quad lo, quad hi, stream, 0) under key (seed lo, seed hi).
SUBSTRATE_HD Philox4 random_quad(std::uint64_t seed, std::uint32_t stream, std::uint64_t quad) {
  return philox4x32_10(static_cast<std::uint32_t>(quad), static_cast<std::uint32_t>(quad >> 32), stream, 0u,
                       static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
}

// gen::random_bits: word index % 4 of random_quad(seed, stream, index / 4) (the mapping is
// written out in kernels/generator.hpp's header).
SUBSTRATE_HD std::uint32_t random_bits(std::uint64_t seed, std::uint32_t stream, std::uint64_t index) {
  return random_quad(seed, stream, index / 4).v[index % 4];
}

// gen::exact_value: an integer in [-radius, radius].
SUBSTRATE_HD float exact_value(std::uint32_t bits, std::uint32_t radius) {
  return static_cast<float>(static_cast<std::int32_t>(bits % (2u * radius + 1u)) - static_cast<std::int32_t>(radius));
}

// gen::random_value: sign bit 31, exponent 125..128 from bits 23-24, `mantissa_bits` top
// mantissa bits kept.
SUBSTRATE_HD float random_value(std::uint32_t bits, std::uint32_t mantissa_bits) {
  const std::uint32_t sign = bits & 0x80000000u;
  const std::uint32_t exponent = (125u + ((bits >> 23) & 3u)) << 23;
  const std::uint32_t keep = ((1u << mantissa_bits) - 1u) << (23u - mantissa_bits);
  return float_from_bits(sign | exponent | (bits & keep));
}

// gen::to_half_bits_exact: only for values exactly representable as normal fp16 or zero.
SUBSTRATE_HD std::uint16_t to_half_bits_exact(float value) {
  const std::uint32_t bits = bits_from_float(value);
  const std::uint32_t sign = (bits >> 16) & 0x8000u;
  if ((bits & 0x7FFFFFFFu) == 0) return static_cast<std::uint16_t>(sign);
  const std::uint32_t exponent = ((bits >> 23) & 0xFFu) - 127u + 15u;
  return static_cast<std::uint16_t>(sign | (exponent << 10) | ((bits >> 13) & 0x3FFu));
}

// gen::to_bf16_bits_exact: the top half of the fp32 bits.
SUBSTRATE_HD std::uint16_t to_bf16_bits_exact(float value) {
  return static_cast<std::uint16_t>(bits_from_float(value) >> 16);
}

// Widening fp16 to fp32 for the values the generator produces (normal numbers and zero) and
// subnormals; inf and NaN never occur in the inputs and are not handled.
SUBSTRATE_HD float from_half_bits_normal(std::uint16_t half) {
  const std::uint32_t sign = (static_cast<std::uint32_t>(half) & 0x8000u) << 16;
  const std::uint32_t exponent = (half >> 10) & 0x1Fu;
  const std::uint32_t mantissa = half & 0x3FFu;
  if (exponent == 0 && mantissa == 0) return float_from_bits(sign);
  if (exponent == 0) {  // subnormal: mantissa * 2^-24 (never produced by the generator)
    const float magnitude = static_cast<float>(mantissa) * (1.0f / 16777216.0f);
    return sign ? -magnitude : magnitude;
  }
  return float_from_bits(sign | ((exponent - 15u + 127u) << 23) | (mantissa << 13));
}

SUBSTRATE_HD float from_bf16_bits(std::uint16_t bits) {
  return float_from_bits(static_cast<std::uint32_t>(bits) << 16);
}

}  // namespace substrate::cuda_gen
