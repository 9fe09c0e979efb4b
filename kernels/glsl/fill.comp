#version 450
// Writes generated inputs into a storage buffer, one 32-bit word per invocation: one f32 value,
// two 16-bit values, or the raw generator bits (parity checks).
//
// Shaped for SIMD back ends that run every side of an `if` under a lane mask (llvmpipe): each
// word computes the generator exactly once per element it holds, in a loop of one or two
// iterations (the trip count is uniform, so no lane idles), and the format is chosen by selects
// rather than by branches that would each run their own generator call. The exact mode's modulo
// (an integer division, run lane by lane on a CPU) sits in a loop that random mode never enters:
// a SIMD back end leaves a loop as soon as no lane continues, whereas an `if` body would run
// under an all-false mask. An earlier branchy form ran four generator calls and three modulos
// per f32 word (issue 19); the values written are bit for bit the same.
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

void main() {
  uint word = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 256u;
  if (word >= p.word_count) return;
  bool wide = p.mode == MODE_RAW || p.dtype == DTYPE_F32;  // one element per word
  uint per_word = wide ? 1u : 2u;
  uint exact_trips = p.mode == MODE_EXACT ? 1u : 0u;
  uint mantissa_bits = mantissa_bits_of(p.dtype);
  uint result = 0u;
  for (uint half_index = 0u; half_index < per_word; ++half_index) {
    uint element = per_word * word + half_index;
    uvec2 index = uvec2(p.first_index.x + element, p.first_index.y);
    if (index.x < p.first_index.x) index.y += 1u;  // carry
    uint bits = random_bits(p.seed, p.stream, index);
    float value = random_value(bits, mantissa_bits);
    for (uint trip = 0u; trip < exact_trips; ++trip) value = exact_value(bits, p.radius);
    uint narrow = p.dtype == DTYPE_F16 ? to_half_bits(value) : to_bf16_bits(value);
    narrow = element < p.element_count ? narrow : 0u;  // an odd count's last word: high half 0
    uint own = p.mode == MODE_RAW ? bits : (wide ? floatBitsToUint(value) : narrow << (16u * half_index));
    result |= own;
  }
  words[word] = result;
}
