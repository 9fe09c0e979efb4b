#version 450
// Memory pattern passes over one chunk: write a pattern, or verify it (optionally writing the
// inverse in the same pass: moving inversions). Write or verify, and whether the pattern is the
// generator's (random, moving inversions) or computed (walking bits, own address), are
// specialisation constants, so each pipeline holds only its own path: SIMD back ends such as
// llvmpipe execute every side of a branch under a mask, and an unused generator or error path
// costs as much as a used one. Four pipelines in all (each 1-2 MiB of JIT code on llvmpipe).
// Invocations stride over the chunk one uvec4 (four words) at a time; invocation 0 also takes the
// last words when the chunk is not a multiple of four. A bad word is read a second time through
// a volatile alias of the same buffer: the same wrong value again means a flipped stored bit, the
// right value a transient read error. Mismatches are rare, so atomics in the error path cost
// nothing on a healthy device and touch no fingerprint.
#extension GL_GOOGLE_include_directive : require
#include "generator.glsl"

layout(local_size_x = 256) in;

layout(constant_id = 0) const bool VERIFY = false;
layout(constant_id = 1) const bool RANDOM = false;

const uint MAX_RECORDS = 64u;
layout(std430, binding = 0) buffer Region { uvec4 quads[]; };
layout(std430, binding = 2) volatile coherent buffer RegionWords { uint words[]; };  // binding 0 again
layout(std430, binding = 1) buffer Errors {
  uint bad_count;
  uint histogram[32];
  uint record_count;
  // Two per record: (word index in chunk, expected, actual, reread), (pattern id, 0, 0, 0).
  uvec4 records[2 * MAX_RECORDS];
} errors;

layout(push_constant) uniform Params {
  uvec2 seed;
  uvec2 chunk_first_word;  // global index of word 0 of this chunk (lo, hi)
  uint word_count;
  uint stream;
  uint walking;      // computed patterns: 1 = a walking one (its complement: walking zeros), 0 = own address
  uint rotation;     // walking patterns: shift of the walking bit
  uint invert;       // expect/write the complement of the pattern
  uint write_inverse;  // verify passes: then write the complement of what was expected
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
  if (RANDOM) value = random_bits(p.seed, p.stream, g);
  else value = p.walking != 0u ? 1u << ((g.x + p.rotation) & 31u) : g.x ^ g.y;
  return p.invert != 0u ? ~value : value;
}

// The drill's mask on the injected word among `count` words from `first`, else 0; `transient`
// selects read-path (1) or stored (0) injections.
uvec4 injection(uint first, uint transient) {
  if (p.inject_enabled == 0u || p.inject_transient != transient) return uvec4(0u);
  return uvec4(equal(uvec4(first) + uvec4(0u, 1u, 2u, 3u), uvec4(p.inject_word))) * p.inject_mask;
}

void report(uint word, uint expected, uint actual) {
  atomicAdd(errors.bad_count, 1u);
  // Only the flipped bits: a fixed 32-step loop is unrolled into 32 atomics run under a mask.
  for (uint flipped = actual ^ expected; flipped != 0u; flipped &= flipped - 1u) {
    atomicAdd(errors.histogram[findLSB(flipped)], 1u);
  }
  uint slot = atomicAdd(errors.record_count, 1u);
  if (slot < p.max_records) {
    errors.records[2u * slot] = uvec4(word, expected, actual, words[word]);
    errors.records[2u * slot + 1u] = uvec4(p.report_id, 0u, 0u, 0u);
  }
}

void main() {
  uint first = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 256u;
  uint stride = gl_NumWorkGroups.x * gl_NumWorkGroups.y * 256u;
  uint quad_count = p.word_count / 4u;
  for (uint q = first; q < quad_count; q += stride) {
    uint base = 4u * q;
    uvec4 expected = uvec4(pattern_at(base), pattern_at(base + 1u), pattern_at(base + 2u), pattern_at(base + 3u));
    if (!VERIFY) {
      quads[q] = expected ^ injection(base, 0u);
      continue;
    }
    uvec4 actual = quads[q] ^ injection(base, 1u);
    if (any(notEqual(actual, expected))) {
      for (uint c = 0u; c < 4u; ++c) {
        if (actual[c] != expected[c]) report(base + c, expected[c], actual[c]);
      }
    }
    if (p.write_inverse != 0u) quads[q] = ~expected;
  }
  if (first != 0u) return;
  for (uint word = 4u * quad_count; word < p.word_count; ++word) {
    uint expected = pattern_at(word);
    if (!VERIFY) {
      words[word] = expected ^ injection(word, 0u).x;
      continue;
    }
    uint actual = words[word] ^ injection(word, 1u).x;
    if (actual != expected) report(word, expected, actual);
    if (p.write_inverse != 0u) words[word] = ~expected;
  }
}
