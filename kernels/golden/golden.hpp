#pragma once
// CPU goldens in double precision from the same generator bits as the devices.
//
// Why double is exact enough:
// - GEMM exact mode: every input is an integer |v| <= R with K*R^2 <= 2^24, so every partial
//   sum is an integer below 2^53 and the double result is exact; its fp32 rounding is exact too.
// - GEMM random mode: products of fp32 (24-bit) values are exact in double (48 <= 53 bits); the
//   sums carry at most gamma_K(fp64) relative to |A||B|, about 2^-29 of the fp32 bound, and that
//   term is added to the bound (see docs/error-bounds.md).
// - Attention: the double result's own error is ~1e-16 relative, below 2^-29 of each term of the
//   fp32 bound; the bound is widened by 2^-20 of itself to cover it and its own rounding.
#include <cstdint>
#include <vector>

#include "kernels/spec.hpp"

namespace substrate::golden {

// Values of an input tensor exactly as a device stores them (f16/bf16 values are exact in
// float), generated from (seed, stream, element index).
std::vector<float> generate(std::uint64_t seed, std::uint32_t stream, std::uint64_t count, Dtype dtype, Mode mode,
                            std::uint32_t exact_radius);

// Unit roundoff u of fp32 and gamma_n = n*u/(1-n*u) (Higham, section 3.1).
inline constexpr double k_unit_roundoff_f32 = 1.0 / 16777216.0;
inline constexpr double k_unit_roundoff_f64 = 1.0 / 9007199254740992.0;
double gamma(std::uint64_t n, double unit_roundoff);

struct Reference {
  std::vector<double> value;  // the correct result, row-major
  std::vector<double> bound;  // per-element bound on |device - value|; empty in exact mode
  // What a bounded check against value and bound guarantees (probes/core/check.hpp,
  // with_guarantee): it depends on nothing the device returns, so it is derived once where the
  // reference is made and cached with it, not per run. guaranteed_bit < 0: not derived.
  int guaranteed_bit = -1;
  std::uint64_t guaranteed_elements = 0;
};

// C = A*B for the GEMM probe's inputs. Exact mode: `bound` is empty (the check is bit-exact).
Reference gemm(const GemmShape& shape, Dtype dtype, Mode mode, std::uint64_t seed, std::uint32_t exact_radius);

// softmax(Q K^T * scale) V with the per-element bound of docs/error-bounds.md ("Attention"), for
// fp32 arithmetic of unit roundoff `unit_roundoff` (2^-24 round-to-nearest; 2^-23 either
// neighbour), exp within 3 + 2|x| ULP and division within 2.5 ULP (Vulkan's SPIR-V precision; CUDA's
// expf and __fdiv_rn are tighter). The bound is rigorous, second-order terms included, wherever
// attention_bound_applies holds; a row whose weight error reaches 1 (a >= 1 in the derivation: a
// head_dim so large that score errors swamp the softmax) gets an infinite bound, so nothing is
// guaranteed there and the probe refuses the shape. Inputs as the devices generate them.
Reference attention(const AttentionShape& shape, Dtype dtype, std::uint64_t seed,
                    double unit_roundoff = k_unit_roundoff_f32);

// Largest unit roundoff any backend reports for attention's fp32 arithmetic: Vulkan without
// RoundingModeRTE (docs/error-bounds.md, "Which rounding each backend guarantees").
inline constexpr double k_widest_attention_unit_roundoff = 1.0 / 8388608.0;

// ok when the attention bound's derivation holds for the shape at unit roundoff u: every gamma_n
// it uses has n*u <= 1/2 (n = head_dim + 1 for the scores, seq_len + 1 for the sums), which also
// keeps gamma_n <= 1 for its underflow terms. Otherwise invalid_argument naming the dimension and
// its largest valid value. Shape-only, so the probe refuses before computing anything.
Status attention_bound_applies(const AttentionShape& shape, double unit_roundoff);
// The scale the device kernels use: fp32 of 1/sqrt(head_dim).
float attention_scale(std::uint32_t head_dim);

}  // namespace substrate::golden
