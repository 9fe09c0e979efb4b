#version 450
// Writes generated inputs into a storage buffer, one 32-bit word per invocation: one f32 value,
// two 16-bit values, or the raw generator bits (parity checks).
//
// One generator call per element the word holds, under branches a GPU takes uniformly (the
// format and mode are push constants). SIMD back ends that run every side of a branch under a
// lane mask (llvmpipe) pay two calls and two exact-mode modulos per word whatever the format;
// the earlier form, one branch per format each with its own calls, cost them four calls and
// three modulos per word, which made input generation 8-16% of attention's kernel time (issue
// 19). The values written are bit for bit the same.
#extension GL_GOOGLE_include_directive : require
#include "generator.glsl"

layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer Out { uint words[]; };

const uint MODE_EXACT = 0u;
const uint MODE_RANDOM = 1u;
const uint MODE_RAW = 2u;

layout(push_constant) uniform Params {
  uvec2 seed;
  uvec2 first_index;  // element index of word 0 (lo, hi)
  uint stream;
  uint mode;
  uint dtype;
  uint radius;        // exact mode
  uint element_count;
  uint word_count;
} p;

uint element_bits(uint element) {
  uvec2 index = uvec2(p.first_index.x + element, p.first_index.y);
  if (index.x < p.first_index.x) index.y += 1u;  // carry
  return random_bits(p.seed, p.stream, index);
}

float element_value(uint bits) {
  float value = random_value(bits, mantissa_bits_of(p.dtype));
  if (p.mode == MODE_EXACT) value = exact_value(bits, p.radius);
  return value;
}

void main() {
  uint word = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 256u;
  if (word >= p.word_count) return;
  bool wide = p.mode == MODE_RAW || p.dtype == DTYPE_F32;  // one element per word
  uint first = wide ? word : 2u * word;
  uint bits = element_bits(first);
  float value = element_value(bits);
  uint result = p.mode == MODE_RAW ? bits : floatBitsToUint(value);
  if (!wide) {
    float high = first + 1u < p.element_count ? element_value(element_bits(first + 1u)) : 0.0;
    uint h0 = p.dtype == DTYPE_F16 ? to_half_bits(value) : to_bf16_bits(value);
    uint h1 = p.dtype == DTYPE_F16 ? to_half_bits(high) : to_bf16_bits(high);
    result = h0 | (h1 << 16);
  }
  words[word] = result;
}
