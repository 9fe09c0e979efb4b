// Philox4x32-10 and the value mapping, bit for bit the same as kernels/generator.hpp.
#ifndef SUBSTRATE_GENERATOR_GLSL
#define SUBSTRATE_GENERATOR_GLSL

const uint PHILOX_M0 = 0xD2511F53u;
const uint PHILOX_M1 = 0xCD9E8D57u;
const uint PHILOX_W0 = 0x9E3779B9u;
const uint PHILOX_W1 = 0xBB67AE85u;

uvec4 philox4x32_10(uvec4 ctr, uint k0, uint k1) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += PHILOX_W0;
      k1 += PHILOX_W1;
    }
    uint hi0, lo0, hi1, lo1;
    umulExtended(PHILOX_M0, ctr.x, hi0, lo0);
    umulExtended(PHILOX_M1, ctr.z, hi1, lo1);
    ctr = uvec4(hi1 ^ ctr.y ^ k0, lo1, hi0 ^ ctr.w ^ k1, lo0);
  }
  return ctr;
}

// The bits of elements 4*quad .. 4*quad + 3 of `stream`: one call at counter (quad, stream, 0).
// seed = (lo, hi), quad = (lo, hi).
uvec4 random_quad(uvec2 seed, uint stream, uvec2 quad) {
  return philox4x32_10(uvec4(quad.x, quad.y, stream, 0u), seed.x, seed.y);
}

// Element `index` = (lo, hi): word index % 4 of random_quad at index / 4 (the mapping is written
// out in kernels/generator.hpp's header).
uint random_bits(uvec2 seed, uint stream, uvec2 index) {
  return random_quad(seed, stream, uvec2((index.x >> 2) | (index.y << 30), index.y >> 2))[index.x & 3u];
}

float exact_value(uint bits, uint radius) {
  return float(int(bits % (2u * radius + 1u)) - int(radius));
}

float random_value(uint bits, uint mantissa_bits) {
  uint sign = bits & 0x80000000u;
  uint exponent = (125u + ((bits >> 23) & 3u)) << 23;
  uint keep = ((1u << mantissa_bits) - 1u) << (23u - mantissa_bits);
  return uintBitsToFloat(sign | exponent | (bits & keep));
}

// Storage formats shared by the kernels: 0 = f32 words, 1 = f16 pairs, 2 = bf16 pairs
// (element 2w in the low half of word w).
const uint DTYPE_F32 = 0u;
const uint DTYPE_F16 = 1u;
const uint DTYPE_BF16 = 2u;

uint mantissa_bits_of(uint dtype) {
  return dtype == DTYPE_F32 ? 23u : (dtype == DTYPE_F16 ? 10u : 7u);
}

uint to_half_bits(float value) { return packHalf2x16(vec2(value, 0.0)) & 0xFFFFu; }
uint to_bf16_bits(float value) { return floatBitsToUint(value) >> 16; }

float decode_half_word(uint word, uint half_index, uint dtype) {
  uint bits = half_index == 0u ? (word & 0xFFFFu) : (word >> 16);
  return dtype == DTYPE_F16 ? unpackHalf2x16(bits).x : uintBitsToFloat(bits << 16);
}

// A drill's fault pattern (kernels/spec.hpp, injection_hits): `count` elements `stride` apart from
// `first`. The host clips count to 32 bits (outputs are 32-bit indexed) and stride is >= 1.
bool inject_hits(uint index, uint first, uint stride, uint count) {
  if (index < first) return false;
  uint offset = index - first;
  return offset % stride == 0u && offset / stride < count;
}

#endif
