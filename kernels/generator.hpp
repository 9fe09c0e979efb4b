#pragma once
// Counter-based input generator shared bit for bit with kernels/glsl/generator.glsl and
// kernels/cuda/generator.cuh: Philox4x32-10 (Salmon et al., SC'11) keyed by the seed and
// counted by (index, stream). Any element of any input can be regenerated independently.
//
// The exact mapping (every backend and every port, e.g. a Python one, must follow it):
//
//   random_bits(seed, stream, index) = word (index mod 4) of
//       philox4x32_10(counter = (lo32(index / 4), hi32(index / 4), stream, 0),
//                     key = (lo32(seed), hi32(seed)))
//
// with index and seed unsigned 64-bit, words numbered 0..3 as philox4x32_10 returns them
// (Philox4::v[0..3]; GLSL .x .y .z .w), and philox4x32_10 the Random123 reference (10 rounds,
// multipliers k_philox_m0/m1, key bumped by k_philox_w0/w1 before every round but the first).
// So elements 4q..4q+3 of a stream are the four output words of ONE call at counter q
// (random_quad): kernels that generate four consecutive elements per call do a quarter of the
// generator work of one call per element (issue 19; before, element i was word 0 of the call at
// counter i, and the other three words were thrown away). Known answers:
// tests/kernels/generator_test.cpp.
#include <bit>
#include <cstdint>

namespace substrate::gen {

inline constexpr std::uint32_t k_philox_m0 = 0xD2511F53u;
inline constexpr std::uint32_t k_philox_m1 = 0xCD9E8D57u;
inline constexpr std::uint32_t k_philox_w0 = 0x9E3779B9u;
inline constexpr std::uint32_t k_philox_w1 = 0xBB67AE85u;

struct Philox4 {
  std::uint32_t v[4];
};

// Philox4x32 with 10 rounds; returns the four output words for counter `ctr` under key (k0, k1).
constexpr Philox4 philox4x32_10(Philox4 ctr, std::uint32_t k0, std::uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += k_philox_w0;
      k1 += k_philox_w1;
    }
    const std::uint64_t p0 = std::uint64_t{k_philox_m0} * ctr.v[0];
    const std::uint64_t p1 = std::uint64_t{k_philox_m1} * ctr.v[2];
    const auto hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
    const auto hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
    ctr = Philox4{{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
  }
  return ctr;
}

// The 32 random bits of elements 4*quad .. 4*quad + 3 of input `stream`, in that order.
constexpr Philox4 random_quad(std::uint64_t seed, std::uint32_t stream, std::uint64_t quad) {
  const Philox4 ctr{{static_cast<std::uint32_t>(quad), static_cast<std::uint32_t>(quad >> 32), stream, 0u}};
  return philox4x32_10(ctr, static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
}

// The generator's one primitive: 32 random bits for element `index` of input `stream` (word
// index % 4 of random_quad(seed, stream, index / 4); see the header comment).
constexpr std::uint32_t random_bits(std::uint64_t seed, std::uint32_t stream, std::uint64_t index) {
  return random_quad(seed, stream, index / 4).v[index % 4];
}

// Streams: each input tensor of each probe draws from its own stream.
enum Stream : std::uint32_t {
  stream_gemm_a = 1,
  stream_gemm_b = 2,
  stream_attention_q = 3,
  stream_attention_k = 4,
  stream_attention_v = 5,
  stream_memory_random = 6,
  stream_memory_retention = 7,
  stream_canary_base = 100,
};

// Exact mode: an integer in [-radius, radius]. The small modulo bias is irrelevant: the values
// need to be reproducible and exactly representable, not uniform.
constexpr float exact_value(std::uint32_t bits, std::uint32_t radius) {
  return static_cast<float>(static_cast<std::int32_t>(bits % (2u * radius + 1u)) - static_cast<std::int32_t>(radius));
}

// Random mode: sign from bit 31, exponent from bits 23-24 (magnitude in [0.25, 4), no zeros, no
// denormals), and as many mantissa bits as the storage type keeps, so the value is exact in it.
inline constexpr std::uint32_t k_mantissa_bits_f32 = 23;
inline constexpr std::uint32_t k_mantissa_bits_f16 = 10;
inline constexpr std::uint32_t k_mantissa_bits_bf16 = 7;

constexpr float random_value(std::uint32_t bits, std::uint32_t mantissa_bits) {
  const std::uint32_t sign = bits & 0x80000000u;
  const std::uint32_t exponent = (125u + ((bits >> 23) & 3u)) << 23;
  const std::uint32_t keep = ((1u << mantissa_bits) - 1u) << (23u - mantissa_bits);
  return std::bit_cast<float>(sign | exponent | (bits & keep));
}

// Largest integer radius R with K * R^2 <= 2^24 (capped at 64, exact in fp16 and bf16), so every
// fp32 partial sum of a length-K dot product of exact-mode values is an exactly representable
// integer and the result does not depend on summation order. Returns 0 when K is too long.
constexpr std::uint32_t exact_radius(std::uint64_t k) {
  std::uint32_t r = 64;
  while (r > 0 && k * r * r > (1u << 24)) --r;
  return r;
}

// fp16 bits of a float that is exactly representable as a normal fp16 number or zero.
constexpr std::uint16_t to_half_bits_exact(float value) {
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(value);
  const std::uint32_t sign = (bits >> 16) & 0x8000u;
  if ((bits & 0x7FFFFFFFu) == 0) return static_cast<std::uint16_t>(sign);
  const std::uint32_t exponent = ((bits >> 23) & 0xFFu) - 127u + 15u;
  return static_cast<std::uint16_t>(sign | (exponent << 10) | ((bits >> 13) & 0x3FFu));
}

constexpr float from_half_bits(std::uint16_t half) {
  const std::uint32_t sign = (std::uint32_t{half} & 0x8000u) << 16;
  const std::uint32_t exponent = (half >> 10) & 0x1Fu;
  const std::uint32_t mantissa = half & 0x3FFu;
  if (exponent == 0 && mantissa == 0) return std::bit_cast<float>(sign);
  if (exponent == 0) {  // subnormal: value = mantissa * 2^-24
    const float magnitude = static_cast<float>(mantissa) * (1.0f / 16777216.0f);
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 31) return std::bit_cast<float>(sign | 0x7F800000u | (mantissa << 13));
  return std::bit_cast<float>(sign | ((exponent - 15u + 127u) << 23) | (mantissa << 13));
}

constexpr std::uint16_t to_bf16_bits_exact(float value) {
  return static_cast<std::uint16_t>(std::bit_cast<std::uint32_t>(value) >> 16);
}

constexpr float from_bf16_bits(std::uint16_t bits) { return std::bit_cast<float>(std::uint32_t{bits} << 16); }

}  // namespace substrate::gen
