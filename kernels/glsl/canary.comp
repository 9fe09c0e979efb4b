#version 450
// Tiny-transformer canary: one operation per dispatch over a single float state buffer. Weights
// and tokens come from the shared generator inside the kernel (weight = random_value * scale,
// scale a power of two, so the CPU golden regenerates exactly the same weights). Every
// reduction runs in a fixed order; no atomics. Injection flips bits of one element of this
// dispatch's output before it is stored.
#extension GL_GOOGLE_include_directive : require
#include "generator.glsl"

const uint OP_EMBED = 0u;      // dst[t, d] = E[token(t), d]
const uint OP_RMSNORM = 1u;    // dst[t, :] = src[t, :] / sqrt(mean(src[t, :]^2) + eps)   (one row per invocation)
const uint OP_MATMUL = 2u;     // dst[t, j] = res[t, j] + act(sum_k src[t, k] * W[k, j])
const uint OP_ATTENTION = 3u;  // causal multi-head attention over a [q | k | v] row layout
const uint NO_RESIDUAL = 0xFFFFFFFFu;
const uint MAX_TOKENS = 256u;
const float RMS_EPS = 1e-5;

layout(local_size_x = 64) in;
layout(std430, binding = 0) buffer State { float s[]; };

layout(push_constant) uniform Params {
  uint op;
  uint rows;      // tokens
  uint k;         // reduction length (matmul), row length (rmsnorm), d_model (attention)
  uint n;         // output row length
  uint src, dst, res;  // offsets into s[] (res = NO_RESIDUAL for none)
  uint seed_lo, seed_hi;
  uint stream;        // weights
  uint token_stream;  // embedding: token ids
  float scale;        // weight scale (power of two); attention: 1/sqrt(head_dim)
  uint activation;    // matmul: 1 = SiLU
  uint heads;
  uint vocab;
  uint inject_enabled, inject_element, inject_mask;
} p;

float weight(uint index) {
  return random_value(random_bits(uvec2(p.seed_lo, p.seed_hi), p.stream, uvec2(index, 0u)), 23u) * p.scale;
}

void store(uint element, float value) {
  uint bits = floatBitsToUint(value);
  if (p.inject_enabled != 0u && element == p.inject_element) bits ^= p.inject_mask;
  s[p.dst + element] = uintBitsToFloat(bits);
}

void main() {
  uint id = gl_GlobalInvocationID.x;
  if (p.op == OP_EMBED) {
    if (id >= p.rows * p.n) return;
    uint t = id / p.n, d = id % p.n;
    uint token = random_bits(uvec2(p.seed_lo, p.seed_hi), p.token_stream, uvec2(t, 0u)) % p.vocab;
    store(id, weight(token * p.n + d));
  } else if (p.op == OP_RMSNORM) {
    if (id >= p.rows) return;
    float sum = 0.0;
    for (uint d = 0u; d < p.k; ++d) {
      float x = s[p.src + id * p.k + d];
      sum += x * x;
    }
    float inv = 1.0 / sqrt(sum / float(p.k) + RMS_EPS);
    for (uint d = 0u; d < p.k; ++d) store(id * p.k + d, s[p.src + id * p.k + d] * inv);
  } else if (p.op == OP_MATMUL) {
    if (id >= p.rows * p.n) return;
    uint t = id / p.n, j = id % p.n;
    float acc = 0.0;
    for (uint kk = 0u; kk < p.k; ++kk) acc += s[p.src + t * p.k + kk] * weight(kk * p.n + j);
    if (p.activation == 1u) acc = acc / (1.0 + exp(-acc));
    if (p.res != NO_RESIDUAL) acc = s[p.res + id] + acc;
    store(id, acc);
  } else if (p.op == OP_ATTENTION) {
    // One invocation per (token, head); src rows are [q (k floats) | k (k floats) | v (k floats)].
    if (id >= p.rows * p.heads) return;
    uint t = id / p.heads, h = id % p.heads;
    uint hd = p.k / p.heads;
    uint row = 3u * p.k;
    float e[MAX_TOKENS];
    float top = -3.402823466e38;
    for (uint j = 0u; j <= t; ++j) {
      float dot_qk = 0.0;
      for (uint d = 0u; d < hd; ++d) {
        dot_qk += s[p.src + t * row + h * hd + d] * s[p.src + j * row + p.k + h * hd + d];
      }
      e[j] = dot_qk * p.scale;
      top = max(top, e[j]);
    }
    float sum = 0.0;
    for (uint j = 0u; j <= t; ++j) {
      e[j] = exp(e[j] - top);
      sum += e[j];
    }
    for (uint d = 0u; d < hd; ++d) {
      float acc = 0.0;
      for (uint j = 0u; j <= t; ++j) acc += e[j] * s[p.src + j * row + 2u * p.k + h * hd + d];
      store(t * p.k + h * hd + d, acc / sum);
    }
  }
}
