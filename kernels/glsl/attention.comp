#version 450
#ifdef SUBSTRATE_RTE
// Round-to-nearest-even for every fp32 operation (SPIR-V RoundingModeRTE, capability 4467, execution
// mode 4462, from SPV_KHR_float_controls), which the error bounds assume (docs/error-bounds.md).
#extension GL_EXT_spirv_intrinsics : require
spirv_execution_mode(extensions = ["SPV_KHR_float_controls"], capabilities = [4467], 4462, 32);
#endif
// O = softmax(Q·Kᵀ·scale)·V for one (query, head) per workgroup. Every reduction has a fixed
// order (d ascending for scores, j ascending for the max, the sum and the output), no atomics.
#extension GL_GOOGLE_include_directive : require
#include "generator.glsl"

const uint MAX_SEQ = 2048u;
const uint THREADS = 64u;
layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer Q { uint q_words[]; };
layout(std430, binding = 1) readonly buffer K { uint k_words[]; };
layout(std430, binding = 2) readonly buffer V { uint v_words[]; };
layout(std430, binding = 3) writeonly buffer O { uint o_words[]; };

layout(push_constant) uniform Params {
  uint seq_len, heads, head_dim;
  uint dtype;
  uint causal;
  float scale;
  uint inject_enabled;
  uint inject_element;
  uint inject_mask;
  uint inject_stride;
  uint inject_count;
} p;

shared float weights[MAX_SEQ];
shared float row_sum;

float load_q(uint e) {
  return p.dtype == DTYPE_F32 ? uintBitsToFloat(q_words[e]) : decode_half_word(q_words[e >> 1], e & 1u, p.dtype);
}
float load_k(uint e) {
  return p.dtype == DTYPE_F32 ? uintBitsToFloat(k_words[e]) : decode_half_word(k_words[e >> 1], e & 1u, p.dtype);
}
float load_v(uint e) {
  return p.dtype == DTYPE_F32 ? uintBitsToFloat(v_words[e]) : decode_half_word(v_words[e >> 1], e & 1u, p.dtype);
}

void main() {
  uint query = gl_WorkGroupID.x;
  uint head = gl_WorkGroupID.y;
  uint tid = gl_LocalInvocationID.x;
  uint keys = p.causal != 0u ? query + 1u : p.seq_len;
  uint q_base = (head * p.seq_len + query) * p.head_dim;

  for (uint j = tid; j < keys; j += THREADS) {
    uint k_base = (head * p.seq_len + j) * p.head_dim;
    float dot_qk = 0.0;
    for (uint d = 0u; d < p.head_dim; ++d) dot_qk += load_q(q_base + d) * load_k(k_base + d);
    weights[j] = dot_qk * p.scale;
  }
  barrier();
  if (tid == 0u) {
    float row_max = weights[0];
    for (uint j = 1u; j < keys; ++j) row_max = max(row_max, weights[j]);
    float sum = 0.0;
    for (uint j = 0u; j < keys; ++j) {
      float e = exp(weights[j] - row_max);
      weights[j] = e;
      sum += e;
    }
    row_sum = sum;
  }
  barrier();
  for (uint d = tid; d < p.head_dim; d += THREADS) {
    float acc = 0.0;
    for (uint j = 0u; j < keys; ++j) acc += weights[j] * load_v((head * p.seq_len + j) * p.head_dim + d);
    uint index = q_base + d;
    uint bits = floatBitsToUint(acc / row_sum);
    if (p.inject_enabled != 0u && inject_hits(index, p.inject_element, p.inject_stride, p.inject_count)) {
      bits ^= p.inject_mask;
    }
    o_words[index] = bits;
  }
}
