#pragma once
// The tiny-transformer canary: its fixed structure (shared by the device kernels and the CPU
// golden) and the double-precision golden of every checkpoint layer.
//
// Model: tokens t ~ generator % vocab; x = E[token]; per block: x += Wo·attn(rmsnorm(x)·Wqkv)
// (causal, `heads` heads) -> checkpoint "block<i>.attention"; x += W2·silu(rmsnorm(x)·W1)
// -> checkpoint "block<i>.mlp"; logits = rmsnorm(x)·Wout -> checkpoint "logits". Checkpoint 0 is
// "embedding". Weights are generator random values times a power of two (exact in float), so
// the device and the golden use identical weights.
//
// Bound: fp32 through a dozen nonlinear operations has no tight closed-form bound here, so the
// canary uses a measured-margin bound per element: 2^-12 * (|golden| + rms(layer golden)). fp32
// runs observed on lavapipe stay below ~1e-6 relative (budget used ~1e-2 or less), and any flip
// of an exponent bit or of the top ~10 mantissa bits exceeds it.
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/spec.hpp"

namespace substrate::canary {

struct LayerShape {
  std::string name;
  std::uint32_t rows = 0, cols = 0;  // tokens x features
};

std::vector<LayerShape> layers(const CanaryShape& shape);
// Validates the shape: invalid_argument text, empty when valid.
std::string validate(const CanaryShape& shape);

inline constexpr std::uint32_t k_token_stream = 100;  // gen::stream_canary_base
inline constexpr std::uint32_t k_embedding_stream = 101;
// Streams of block b: qkv, o, w1, w2; then the output projection.
inline constexpr std::uint32_t block_stream(std::uint32_t block, std::uint32_t which) {
  return 102 + 4 * block + which;
}
inline constexpr std::uint32_t output_stream(std::uint32_t blocks) { return 102 + 4 * blocks; }
inline constexpr float k_rms_eps = 1e-5f;
inline constexpr double k_bound_factor = 1.0 / 4096.0;

// Power-of-two weight scale for a reduction of length k: keeps activations near unit size.
float weight_scale(std::uint32_t k);
float attention_scale(std::uint32_t head_dim);
std::uint32_t token(std::uint64_t seed, std::uint32_t position, std::uint32_t vocab);

}  // namespace substrate::canary

namespace substrate::golden {

struct CanaryLayer {
  std::string name;
  std::uint32_t rows = 0, cols = 0;
  std::vector<double> value, bound;
};

struct CanaryReference {
  std::vector<std::uint32_t> tokens;
  std::vector<CanaryLayer> layers;  // in checkpoint order
};

CanaryReference canary(const CanaryShape& shape, std::uint64_t seed);

}  // namespace substrate::golden
