#version 450
// One pass of the memory probe over one chunk. A run is a chain of pattern stages s1..sm (walking
// ones, walking zeros, own address, the three stages of moving inversions P, ~P, P, random):
// pass 0 writes s1, pass i verifies s(i) and writes s(i+1) in the same visit of each word, the
// last pass verifies sm. Every stage is still written over the whole chunk and, after a barrier,
// read back in full, as with a write pass and a verify pass per stage; the chain only saves the
// separate visit (m + 1 passes instead of 2m).
//
// Shaped for SIMD back ends that run every side of a branch under a lane mask, loop bodies at
// least once (llvmpipe: all code of a shader costs, taken or not). So: whether a pass verifies,
// whether it writes, and whether either side's pattern comes from the generator are
// specialisation constants (a generator call left in a computed-pattern pass costs as much as a
// random pass); the drill's injection is arithmetic, not a branch, with its mask computed once per
// invocation; and the error path (atomics, records, a re-read) sits outside the loop over the
// words, entered by leaving the loop at a bad uvec4, so on a healthy pass it runs (masked) once
// per invocation: on llvmpipe each atomic or store is a loop over the lanes, and visited per
// uvec4, or per batch of 8 as before, it cost more than the loads it guards (issue 19,
// bench_bandwidth by CPU time: 0.30 -> 0.54 of a shader copy at 8 MiB).
//
// Access shape: each run of SPAN = 8 consecutive invocations (one SIMD row on llvmpipe at 256 bits; a
// quarter warp on NVIDIA) owns one contiguous block of uvec4s and walks it in steps of 8 uvec4s,
// lane i taking the i-th: every step is one whole 128-byte line (a warp's step is four whole
// lines, as many transactions as 512 contiguous bytes), and a block (8 KiB at 64 uvec4s per
// invocation) is walked front to back by one SIMD row, which a CPU driver's caches and
// prefetchers follow. SPAN = 32 (a row then takes every fourth 128-byte line of a 32 KiB block)
// cost llvmpipe 20-30% by CPU time; a grid stride (each invocation hopping over the whole buffer
// in 1 MiB steps) 2-4x at 64 MiB. The host sizes the dispatch; each invocation derives its block
// from the group count, so any group count covers the chunk. Invocation 0 also takes the last
// words when the chunk is not a multiple of four.
//
// A bad word is read a second time through a volatile alias of the same buffer, before the pass
// writes there: the same wrong value again means a flipped stored bit, the right value a
// transient read error. Mismatches are
// rare, so atomics in the error path cost nothing on a healthy device and touch no fingerprint.
#extension GL_GOOGLE_include_directive : require
#include "generator.glsl"

layout(local_size_x = 256) in;

layout(constant_id = 0) const bool VERIFY = false;
layout(constant_id = 1) const bool WRITE = false;
layout(constant_id = 2) const bool CHECK_RANDOM = false;  // the verified stage is the generator's
layout(constant_id = 3) const bool WRITE_RANDOM = false;  // the written stage is the generator's

const uint MAX_RECORDS = 64u;
const uint SPAN = 8u;    // invocations that walk one block together (one llvmpipe SIMD row at 256 bits)
const uint KIND_WALKING = 0u;  // a one at bit (word + rotation) mod 32; inverted: walking zeros
const uint KIND_ADDRESS = 1u;  // the word's own global index, high half XORed in
// (the generator's bits for the word's global index: CHECK_RANDOM, WRITE_RANDOM)

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
  uint rotation;      // walking patterns: shift of the walking bit
  uint check_kind;    // verifying passes: the stage read back (computed patterns: KIND_*)
  uint check_invert;  // ... its complement
  uint write_kind;    // writing passes: the stage written
  uint write_invert;
  uint max_records;
  uint inject_write;  // the drill flips inject_mask of inject_word as this pass stores it (stored flip)
  uint inject_read;   // ... as this pass reads it (transient read error)
  uint inject_word;   // chunk-local
  uint inject_mask;
  uint report_id;     // the host's pattern id of the verified stage, echoed into records
} p;

// The stage's words base..base+3 (chunk-local `base`, a multiple of 4: the host makes every chunk
// a multiple of 16 bytes, so global quads start at multiples of 4 too); `random` is a
// specialisation constant. The random words of global quad j are random_quad(seed, stream, j),
// i.e. random_bits of each word: one Philox4x32-10 call per four words (issue 19).
uvec4 pattern_quad(uint base, bool random, uint kind, uint invert) {
  uint lo = p.chunk_first_word.x + base;  // a multiple of 4: lo + 3 does not carry
  uint hi = p.chunk_first_word.y + (lo < p.chunk_first_word.x ? 1u : 0u);
  uvec4 value;
  if (random) {
    value = random_quad(p.seed, p.stream, uvec2((lo >> 2) | (hi << 30), hi >> 2));
  } else {
    uvec4 words_lo = uvec4(lo) + uvec4(0u, 1u, 2u, 3u);
    value = kind == KIND_WALKING ? uvec4(1u) << ((words_lo + p.rotation) & 31u) : words_lo ^ hi;
  }
  return invert != 0u ? ~value : value;
}

uvec4 check_quad(uint base) { return pattern_quad(base, CHECK_RANDOM, p.check_kind, p.check_invert); }
uvec4 write_quad(uint base) { return pattern_quad(base, WRITE_RANDOM, p.write_kind, p.write_invert); }

// The written stage at `base` in a pass that has just computed the verified stage there
// (`expected`, uninjected). When both are random they are the same generator words (one seed and
// one stream per pass), inverted or not, so the written stage is the verified one XOR the
// difference of the inversions: one Philox call per uvec4 instead of two in moving inversions'
// passes (P -> ~P -> P) and in the pass into the random stage (issue 19).
uvec4 next_quad(uvec4 expected, uint base) {
  if (VERIFY && CHECK_RANDOM && WRITE_RANDOM) return expected ^ uvec4(p.check_invert != p.write_invert ? ~0u : 0u);
  return write_quad(base);
}

// The drill's mask on the injected word as a uvec4 (the same for every invocation: computed once),
// to be XORed into the chunk's uvec4 number p.inject_word / 4 only.
uvec4 injection_mask(uint enabled) {
  return uvec4(equal(uvec4(p.inject_word & 3u), uvec4(0u, 1u, 2u, 3u))) * (p.inject_mask * enabled);
}

// `mask` where uvec4 `q` is the injected one, else 0.
uvec4 injection(uint q, uvec4 mask) { return q == p.inject_word / 4u ? mask : uvec4(0u); }

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
  uint group = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  uint invocation = group * 256u + gl_LocalInvocationIndex;
  uint invocations = gl_NumWorkGroups.x * gl_NumWorkGroups.y * 256u;
  uint quad_count = p.word_count / 4u;
  uint per_invocation = (quad_count + invocations - 1u) / invocations;
  uint begin = (invocation / SPAN) * SPAN * per_invocation;
  uint end = min(begin + SPAN * per_invocation, quad_count);
  uvec4 read_mask = injection_mask(p.inject_read), write_mask = injection_mask(p.inject_write);
  // The fast loop holds no error path: a lane that finds a bad uvec4 leaves it before writing
  // there, the error path reports the uvec4's bad words and writes it, and the lane resumes. On a
  // back end that runs all code under a lane mask (llvmpipe) the error path then costs once per
  // invocation on a healthy pass, not once per uvec4 (issue 19: the atomics, records and re-read
  // visited per uvec4, or per batch of 8, cost more than the memory access they guard); and the
  // values it reports are plain variables, not arrays indexed at run time (kept in memory).
  uint q = begin + invocation % SPAN;
  for (;;) {
    uvec4 expected = uvec4(0u), actual = uvec4(0u);
    for (; q < end; q += SPAN) {
      if (VERIFY) {
        expected = check_quad(4u * q);
        actual = quads[q] ^ injection(q, read_mask);
        if (any(notEqual(actual, expected))) break;
      }
      if (WRITE) quads[q] = next_quad(expected, 4u * q) ^ injection(q, write_mask);
    }
    if (q >= end) break;
    uvec4 flags = uvec4(notEqual(actual, expected)) << uvec4(0u, 1u, 2u, 3u);
    for (uint bad = flags.x | flags.y | flags.z | flags.w; bad != 0u; bad &= bad - 1u) {
      uint c = uint(findLSB(bad));
      report(4u * q + c, expected[c], actual[c]);
    }
    if (WRITE) quads[q] = next_quad(expected, 4u * q) ^ injection(q, write_mask);
    q += SPAN;
  }
  // The last word_count % 4 words, one at a time, by invocation 0 only (word w is component
  // w - 4q of the partial last quad q).
  uint tail = invocation == 0u ? p.word_count - 4u * quad_count : 0u;
  for (uint c = 0u; c < tail; ++c) {
    uint word = 4u * quad_count + c;
    if (VERIFY) {
      uint expected = check_quad(4u * quad_count)[c];
      uint actual = words[word] ^ injection(quad_count, read_mask)[c];
      if (actual != expected) report(word, expected, actual);
    }
    if (WRITE) words[word] = write_quad(4u * quad_count)[c] ^ injection(quad_count, write_mask)[c];
  }
}
