// GEMM probe: C = A·B with device-generated inputs, checked against the CPU golden bit-exactly
// (exact mode) or within gamma_K·|A||B| (random mode), plus a fingerprint of the output bits.
#include <array>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "kernels/fingerprint.hpp"
#include "kernels/generator.hpp"
#include "probes/gemm/gemm_probe.hpp"

namespace substrate {
namespace {

struct GemmProbe {
  static constexpr const char* id = "gemm";
  static constexpr const char* description =
      "C = A·B (f32, f16, bf16 inputs; fp32 accumulation) vs CPU golden: exact and bounded";
  static constexpr std::array kernels{"fill", "gemm"};
  static constexpr bool enabled_by_default = true;
  static constexpr Maturity maturity = Maturity::stable;
  static constexpr double default_interval_seconds = 300.0;
  static constexpr double default_timeout_seconds = 120.0;
  static constexpr std::array modes{Mode::exact, Mode::random};
  static constexpr std::array dtypes{Dtype::f32, Dtype::f16, Dtype::bf16};
  static constexpr std::array backends{"vulkan", "cuda", "external"};
  static constexpr bool injects_by_layer = false;

  static std::vector<ProbeSpec> default_specs(const DeviceInfo& device);
  static Status apply_size(const std::string& text, ProbeSpec& spec);
  static std::string shape_text(const ProbeSpec& spec) {
    return std::to_string(spec.gemm.m) + "x" + std::to_string(spec.gemm.n) + "x" + std::to_string(spec.gemm.k);
  }
  static std::string spec_key(const ProbeSpec& spec) {
    return std::string(id) + "/" + to_string(spec.dtype) + "/" + to_string(spec.mode) + "/" + shape_text(spec);
  }
  // C is m x n, row-major.
  static std::uint64_t row_length(const ProbeSpec& spec, std::uint32_t) { return spec.gemm.n; }
  static void shape_to_json(const ProbeSpec& spec, nlohmann::json& out) {
    out = {{"m", spec.gemm.m}, {"n", spec.gemm.n}, {"k", spec.gemm.k}};
  }
  static void shape_from_json(const nlohmann::json& in, ProbeSpec& spec) {
    spec.gemm = {in.at("m").get<std::uint32_t>(), in.at("n").get<std::uint32_t>(), in.at("k").get<std::uint32_t>()};
  }
  static std::vector<DumpInput> dump_inputs(const ProbeSpec& spec);
  // Device: A and B at their element size, C and its readback copy as f32 (check_gemm). Host: the
  // golden's A and B as float, C's values (and, in random mode, its bound and a widened copy of
  // it) as double, the output words read back.
  static MemoryNeeds memory_needs(const ProbeSpec& spec, const DeviceInfo&) {
    const double m = spec.gemm.m, n = spec.gemm.n, k = spec.gemm.k;
    const double inputs = m * k + k * n, outputs = m * n;
    const double element = spec.dtype == Dtype::f32 ? 4.0 : 2.0;
    const double per_output = 8.0 + (spec.mode == Mode::random ? 16.0 : 0.0) + 4.0;
    return {saturated_bytes(inputs * element + outputs * 8.0), saturated_bytes(inputs * 4.0 + outputs * per_output)};
  }
  static Status run(ComputeDevice& device, const ProbeSpec& spec, GoldenCache& goldens, ProbeResult& result);
};

std::vector<ProbeSpec> GemmProbe::default_specs(const DeviceInfo& device) {
  // lavapipe: about a second for the whole probe; a GPU: enough tiles for every compute unit.
  const std::uint32_t size = device.is_cpu() ? 256 : 1024;
  std::vector<ProbeSpec> specs;
  for (Dtype dtype : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
    for (Mode mode : {Mode::exact, Mode::random}) {
      ProbeSpec spec;
      spec.probe = id;
      spec.dtype = dtype;
      spec.mode = mode;
      spec.gemm = {size, size, size};
      specs.push_back(spec);
    }
  }
  return specs;
}

Status GemmProbe::apply_size(const std::string& text, ProbeSpec& spec) {
  TRY_ASSIGN(auto dims, parse_dimensions(text, 3));
  spec.gemm = {dims[0], dims[1], dims[2]};
  return ok_status();
}

std::vector<DumpInput> GemmProbe::dump_inputs(const ProbeSpec& spec) {
  const GemmShape& s = spec.gemm;
  const std::uint32_t radius = spec.mode == Mode::exact ? gen::exact_radius(s.k) : 0;
  return {{"a",
           {s.m, s.k},
           golden::generate(spec.seed, gen::stream_gemm_a, std::uint64_t{s.m} * s.k, spec.dtype, spec.mode, radius)},
          {"b",
           {s.k, s.n},
           golden::generate(spec.seed, gen::stream_gemm_b, std::uint64_t{s.k} * s.n, spec.dtype, spec.mode, radius)}};
}

// Expected share of a random-mode output whose sign and exponent flips the bound cannot guarantee
// visible (|C| <= 3 bound, docs/error-bounds.md "What a check guarantees") at reduction length K
// with accumulation unit roundoff u. The inputs are ±(1.m)·2^e, e uniform in {-2..1} (gen::
// random_value): E|a| = 1.5 · 15/16, E[a²] = 7/3 · 85/64. The bound is β_K·Σ|a||b| ≈ β_K·K·E|a|²
// (a sum of K positive terms concentrates), while C, a sum of K terms of random sign, is close to
// normal with σ = √K·E[a²]; so the share is P(|C| <= 3 β_K K E|a|²) = erf(3 β_K √K E|a|² / (√2 E[a²])).
// It grows like K^1.5·u: 0.3% at K = 1024, 2.4% at K = 4096 for u = 2^-24.
double expected_blind_share(std::uint32_t k, double u) {
  constexpr double abs_mean = 1.5 * 15.0 / 16.0, square_mean = 7.0 / 3.0 * 85.0 / 64.0;
  const double beta = golden::gamma(k, u) + 2.0 * golden::gamma(k, golden::k_unit_roundoff_f64);
  return std::erf(3.0 * beta * std::sqrt(static_cast<double>(k)) * abs_mean * abs_mean /
                  (std::sqrt(2.0) * square_mean));
}

// ok when at most 1 - k_min_guaranteed_share of a random-mode output is expected to hide sign and
// exponent flips; otherwise invalid_argument pointing to exact mode. A property of the shape and
// the kernel's rounding, not of the seed, so a shape is accepted or refused the same way every run
// (the result still counts the guaranteed elements of its own output).
Status require_random_guarantee(std::uint32_t k, double u) {
  const double share = expected_blind_share(k, u);
  if (share <= 1.0 - k_min_guaranteed_share) return ok_status();
  char text[256];
  std::snprintf(text, sizeof text,
                "gemm: random mode cannot see sign and exponent flips at K=%u: its bound hides them at about %.1f%% "
                "of the elements (%.0f%% allowed); use --mode exact, bit-exact at every K, or a smaller K",
                k, 100.0 * share, 100.0 * (1.0 - k_min_guaranteed_share));
  return Error{ErrorKind::invalid_argument, text};
}

Status GemmProbe::run(ComputeDevice& device, const ProbeSpec& spec, GoldenCache& goldens, ProbeResult& result) {
  const GemmShape& shape = spec.gemm;
  if (shape.m == 0 || shape.n == 0 || shape.k == 0) return Error{ErrorKind::invalid_argument, "gemm: empty shape"};
  const std::uint32_t radius = spec.mode == Mode::exact ? gen::exact_radius(shape.k) : 0;
  if (spec.mode == Mode::exact && radius == 0) {
    return Error{ErrorKind::invalid_argument, "gemm: K=" + std::to_string(shape.k) + " is too long for exact mode"};
  }
  TRY(check_injection_range(spec.inject, std::uint64_t{shape.m} * shape.n, "gemm"));
  // Refused before any work at the finest rounding any backend reports; again after the run
  // with the kernel's own unit roundoff (coarser on tensor cores).
  if (spec.mode == Mode::random) TRY(require_random_guarantee(shape.k, golden::k_unit_roundoff_f32));
  const GemmLaunch launch{shape, spec.dtype, spec.mode, spec.seed, radius, spec.inject};
  TRY(device.check_gemm(launch));
  GoldenFetch golden(goldens, spec, [&] {
    golden::Reference reference = golden::gemm(shape, spec.dtype, spec.mode, spec.seed, radius);
    return spec.mode == Mode::random ? with_guarantee(std::move(reference)) : reference;
  });
  TRY_ASSIGN(auto run, device.run_gemm(launch));
  auto reference = golden.get(result);
  CheckOutcome check;
  std::string print;
  if (spec.mode == Mode::exact) {
    check = check_exact(run.output_bits, reference->value, shape.n);
    print = fingerprint(run.output_bits);
  } else {
    // The golden's bound is for round-to-nearest fp32; a kernel that accumulates more coarsely
    // (tensor cores align and truncate, docs/cuda.md) reports its own unit roundoff.
    const double u = run.accumulation_unit_roundoff;
    const double widen = (golden::gamma(shape.k, u) + 2.0 * golden::gamma(shape.k, golden::k_unit_roundoff_f64)) /
                         (golden::gamma(shape.k, golden::k_unit_roundoff_f32) +
                          2.0 * golden::gamma(shape.k, golden::k_unit_roundoff_f64));
    if (widen == 1.0) {
      check = check_bounded(run.output_bits, *reference, shape.n, print);
    } else {
      std::vector<double> bound(reference->bound);
      for (double& b : bound) b *= widen;
      check = check_bounded(run.output_bits, reference->value, bound, shape.n);
      print = fingerprint(run.output_bits);
    }
  }
  if (spec.mode == Mode::random) TRY(require_random_guarantee(shape.k, run.accumulation_unit_roundoff));
  record_checked_run(result, run, std::move(check), std::move(print), std::move(reference), {shape.m, shape.n});
  return ok_status();
}

}  // namespace

ProbeDescriptor gemm_probe() { return describe<GemmProbe>(); }

}  // namespace substrate
