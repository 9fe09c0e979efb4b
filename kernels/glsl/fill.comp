#version 450
// Writes generated inputs into a storage buffer, one 32-bit word per invocation: one f32 value,
// two 16-bit values, or the raw generator bits (parity checks).
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

float value_at(uint element) {
  uvec2 index = uvec2(p.first_index.x + element, p.first_index.y);
  if (index.x < p.first_index.x) index.y += 1u;  // carry
  uint bits = random_bits(p.seed, p.stream, index);
  return p.mode == MODE_EXACT ? exact_value(bits, p.radius)
                              : random_value(bits, mantissa_bits_of(p.dtype));
}

void main() {
  uint word = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 256u;
  if (word >= p.word_count) return;
  if (p.mode == MODE_RAW) {
    uvec2 index = uvec2(p.first_index.x + word, p.first_index.y);
    if (index.x < p.first_index.x) index.y += 1u;
    words[word] = random_bits(p.seed, p.stream, index);
  } else if (p.dtype == DTYPE_F32) {
    words[word] = floatBitsToUint(value_at(word));
  } else {
    uint e0 = 2u * word, e1 = 2u * word + 1u;
    float v0 = value_at(e0);
    float v1 = e1 < p.element_count ? value_at(e1) : 0.0;
    uint h0 = p.dtype == DTYPE_F16 ? to_half_bits(v0) : to_bf16_bits(v0);
    uint h1 = p.dtype == DTYPE_F16 ? to_half_bits(v1) : to_bf16_bits(v1);
    words[word] = h0 | (h1 << 16);
  }
}
