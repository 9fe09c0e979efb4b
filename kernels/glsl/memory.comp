#version 450
// Memory pattern passes over one chunk: write a pattern, or verify it (optionally writing the
// inverse in the same pass: moving inversions). A bad word is read a second time through a
// volatile alias of the same buffer: the same wrong value again means a flipped stored bit, the
// right value a transient read error. Mismatches are rare, so atomics in the error path cost
// nothing on a healthy device and touch no fingerprint.
#extension GL_GOOGLE_include_directive : require
#include "generator.glsl"

layout(local_size_x = 256) in;

const uint MAX_RECORDS = 64u;
layout(std430, binding = 0) buffer Region { uint words[]; };
layout(std430, binding = 2) volatile coherent readonly buffer RegionAgain { uint words_again[]; };
layout(std430, binding = 1) buffer Errors {
  uint bad_count;
  uint histogram[32];
  uint record_count;
  // Two per record: (word index in chunk, expected, actual, reread), (pattern id, 0, 0, 0).
  uvec4 records[2 * MAX_RECORDS];
} errors;

const uint OP_WRITE = 0u;
const uint OP_VERIFY = 1u;
const uint OP_VERIFY_THEN_WRITE_INVERSE = 2u;

const uint PATTERN_WALKING_ONES = 0u;
const uint PATTERN_WALKING_ZEROS = 1u;
const uint PATTERN_OWN_ADDRESS = 2u;
const uint PATTERN_RANDOM = 4u;

layout(push_constant) uniform Params {
  uvec2 seed;
  uvec2 chunk_first_word;  // global index of word 0 of this chunk (lo, hi)
  uint word_count;
  uint op;
  uint pattern;
  uint stream;
  uint rotation;     // walking patterns: shift of the walking bit
  uint invert;       // expect/write the complement of the pattern
  uint max_records;
  uint inject_enabled;
  uint inject_word;  // chunk-local
  uint inject_mask;
  uint inject_transient;
  uint report_id;    // the host's pattern id, echoed into records
} p;

uint pattern_at(uint word) {
  uvec2 g = uvec2(p.chunk_first_word.x + word, p.chunk_first_word.y);
  if (g.x < p.chunk_first_word.x) g.y += 1u;
  uint value;
  if (p.pattern == PATTERN_WALKING_ONES) value = 1u << ((g.x + p.rotation) & 31u);
  else if (p.pattern == PATTERN_WALKING_ZEROS) value = ~(1u << ((g.x + p.rotation) & 31u));
  else if (p.pattern == PATTERN_OWN_ADDRESS) value = g.x ^ g.y;
  else value = random_bits(p.seed, p.stream, g);
  return p.invert != 0u ? ~value : value;
}

void main() {
  uint word = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 256u;
  if (word >= p.word_count) return;
  bool injected = p.inject_enabled != 0u && word == p.inject_word;
  uint expected = pattern_at(word);
  if (p.op == OP_WRITE) {
    words[word] = (injected && p.inject_transient == 0u) ? expected ^ p.inject_mask : expected;
    return;
  }
  uint actual = words[word];
  if (injected && p.inject_transient != 0u) actual ^= p.inject_mask;
  if (actual != expected) {
    atomicAdd(errors.bad_count, 1u);
    uint flipped = actual ^ expected;
    for (uint bit = 0u; bit < 32u; ++bit) {
      if ((flipped & (1u << bit)) != 0u) atomicAdd(errors.histogram[bit], 1u);
    }
    uint slot = atomicAdd(errors.record_count, 1u);
    if (slot < p.max_records) {
      errors.records[2u * slot] = uvec4(word, expected, actual, words_again[word]);
      errors.records[2u * slot + 1u] = uvec4(p.report_id, 0u, 0u, 0u);
    }
  }
  if (p.op == OP_VERIFY_THEN_WRITE_INVERSE) words[word] = ~expected;
}
