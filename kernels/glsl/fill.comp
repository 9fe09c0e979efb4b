#version 450
// Writes generated inputs into a storage buffer: one f32 value or two 16-bit values per 32-bit
// word, or the raw generator bits (parity checks). One invocation per four elements: when the
// first element is a multiple of 4 (ALIGNED, every probe input) they are the four words of one
// Philox call (random_quad), so no generator word is computed and thrown away (issue 19: the
// generation was 8-16% of attention's kernel time on lavapipe). Otherwise (raw parity checks at
// any offset) each element is its own random_bits call. ALIGNED, MODE and DTYPE are
// specialisation constants, not branches on push constants: llvmpipe runs both sides of a branch
// under a mask, so the unused side would cost (issue 19: with mode and dtype as push constants
// every random fill also paid exact mode's integer modulo and the other storage format's
// conversion, half of attention's generation time on lavapipe).
#extension GL_GOOGLE_include_directive : require
#include "generator.glsl"

//
// Workgroup z (0, 1 or 2) writes stream `stream + z` to binding z, so one dispatch generates up to
// three inputs of the same element count (attention's Q, K and V: llvmpipe pays a fixed cost per
// dispatch, issue 19). A single fill binds its buffer three times and dispatches z = 1.
layout(local_size_x = 256) in;
layout(constant_id = 0) const bool ALIGNED = true;  // first_index % 4 == 0
layout(constant_id = 1) const uint MODE = 1u;   // MODE_EXACT, MODE_RANDOM or MODE_RAW
layout(constant_id = 2) const uint DTYPE = 0u;  // DTYPE_F32, DTYPE_F16 or DTYPE_BF16 (generator.glsl)
layout(std430, binding = 0) writeonly buffer Out0 { uint words0[]; };
layout(std430, binding = 1) writeonly buffer Out1 { uint words1[]; };
layout(std430, binding = 2) writeonly buffer Out2 { uint words2[]; };

const uint MODE_EXACT = 0u;
const uint MODE_RANDOM = 1u;
const uint MODE_RAW = 2u;

layout(push_constant) uniform Params {
  uvec2 seed;
  uvec2 first_index;  // element index of word 0 (lo, hi)
  uint stream;
  uint radius;        // exact mode
  uint element_count;
  uint word_count;
} p;

// This workgroup's stream and output binding.
uint stream_of() { return p.stream + gl_WorkGroupID.z; }
void store(uint word, uint value) {
  if (gl_WorkGroupID.z == 0u) {
    words0[word] = value;
  } else if (gl_WorkGroupID.z == 1u) {
    words1[word] = value;
  } else {
    words2[word] = value;
  }
}

// Global element index of local element `element` (lo, hi).
uvec2 global_index(uint element) {
  uvec2 index = uvec2(p.first_index.x + element, p.first_index.y);
  if (index.x < p.first_index.x) index.y += 1u;  // carry
  return index;
}

// The generator bits of local elements first..first+3 (first a multiple of 4).
uvec4 bits_of(uint first) {
  uvec2 index = global_index(first);
  if (ALIGNED) return random_quad(p.seed, stream_of(), uvec2((index.x >> 2) | (index.y << 30), index.y >> 2));
  uvec4 bits;
  for (uint c = 0u; c < 4u; ++c) bits[c] = random_bits(p.seed, stream_of(), global_index(first + c));
  return bits;
}

float value_of(uint bits) {
  return MODE == MODE_EXACT ? exact_value(bits, p.radius) : random_value(bits, mantissa_bits_of(DTYPE));
}

uint half_bits(float value) { return DTYPE == DTYPE_F16 ? to_half_bits(value) : to_bf16_bits(value); }

void main() {
  uint quad = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 256u;
  uint first = 4u * quad;
  if (first >= p.element_count) return;
  uvec4 bits = bits_of(first);
  if (MODE == MODE_RAW || DTYPE == DTYPE_F32) {
    // Words first..first+3 (raw: the bits; f32: the values).
    uvec4 out_words = MODE == MODE_RAW ? bits
                                         : uvec4(floatBitsToUint(value_of(bits.x)), floatBitsToUint(value_of(bits.y)),
                                                 floatBitsToUint(value_of(bits.z)), floatBitsToUint(value_of(bits.w)));
    for (uint c = 0u; c < 4u; ++c) {
      if (first + c < p.word_count) store(first + c, out_words[c]);
    }
  } else {
    // Words 2*quad and 2*quad + 1, element 2w in the low half of word w; past the end: 0.
    uvec4 halves = uvec4(half_bits(value_of(bits.x)), half_bits(value_of(bits.y)), half_bits(value_of(bits.z)),
                         half_bits(value_of(bits.w)));
    halves *= uvec4(lessThan(uvec4(first) + uvec4(0u, 1u, 2u, 3u), uvec4(p.element_count)));
    store(2u * quad, halves.x | (halves.y << 16));
    if (2u * quad + 1u < p.word_count) store(2u * quad + 1u, halves.z | (halves.w << 16));
  }
}
