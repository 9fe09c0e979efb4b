#version 450
#ifdef SUBSTRATE_RTE
// Round-to-nearest-even for every fp32 operation (SPIR-V RoundingModeRTE, capability 4467, execution
// mode 4462, from SPV_KHR_float_controls), which the error bounds assume (docs/error-bounds.md).
#extension GL_EXT_spirv_intrinsics : require
spirv_execution_mode(extensions = ["SPV_KHR_float_controls"], capabilities = [4467], 4462, 32);
#endif
// C = A·B, fp32 accumulation in a fixed order (k ascending, one invocation per output element,
// no atomics, no split-K), so the output is bitwise reproducible on one device.
#extension GL_GOOGLE_include_directive : require
#include "generator.glsl"

const uint TILE = 16u;
layout(local_size_x = 16, local_size_y = 16) in;

layout(std430, binding = 0) readonly buffer A { uint a_words[]; };
layout(std430, binding = 1) readonly buffer B { uint b_words[]; };
layout(std430, binding = 2) writeonly buffer C { uint c_words[]; };

layout(push_constant) uniform Params {
  uint m, n, k;
  uint dtype;
  uint inject_enabled;
  uint inject_element;
  uint inject_mask;
  uint inject_stride;
  uint inject_count;
} p;

shared float tile_a[TILE][TILE];
shared float tile_b[TILE][TILE];

float load(uint element, uint dtype, bool is_a) {
  if (dtype == DTYPE_F32) return uintBitsToFloat(is_a ? a_words[element] : b_words[element]);
  uint word = is_a ? a_words[element >> 1] : b_words[element >> 1];
  return decode_half_word(word, element & 1u, dtype);
}

void main() {
  uint row = gl_WorkGroupID.y * TILE + gl_LocalInvocationID.y;
  uint col = gl_WorkGroupID.x * TILE + gl_LocalInvocationID.x;
  float acc = 0.0;
  uint tiles = (p.k + TILE - 1u) / TILE;
  for (uint t = 0u; t < tiles; ++t) {
    uint ka = t * TILE + gl_LocalInvocationID.x;
    uint kb = t * TILE + gl_LocalInvocationID.y;
    tile_a[gl_LocalInvocationID.y][gl_LocalInvocationID.x] =
        (row < p.m && ka < p.k) ? load(row * p.k + ka, p.dtype, true) : 0.0;
    tile_b[gl_LocalInvocationID.y][gl_LocalInvocationID.x] =
        (kb < p.k && col < p.n) ? load(kb * p.n + col, p.dtype, false) : 0.0;
    barrier();
    for (uint i = 0u; i < TILE; ++i) {
      acc += tile_a[gl_LocalInvocationID.y][i] * tile_b[i][gl_LocalInvocationID.x];
    }
    barrier();
  }
  if (row < p.m && col < p.n) {
    uint index = row * p.n + col;
    uint bits = floatBitsToUint(acc);
    if (p.inject_enabled != 0u && inject_hits(index, p.inject_element, p.inject_stride, p.inject_count)) {
      bits ^= p.inject_mask;
    }
    c_words[index] = bits;
  }
}
