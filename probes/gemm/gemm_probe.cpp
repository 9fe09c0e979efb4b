// GEMM probe: C = A·B with device-generated inputs, checked against the CPU golden bit-exactly
// (exact mode) or within gamma_K·|A||B| (random mode), plus a fingerprint of the output bits.
#include <array>

#include <nlohmann/json.hpp>

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
  static constexpr std::array backends{"vulkan", "cuda"};
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
  return {{"a", {s.m, s.k},
           golden::generate(spec.seed, gen::stream_gemm_a, std::uint64_t{s.m} * s.k, spec.dtype, spec.mode, radius)},
          {"b", {s.k, s.n},
           golden::generate(spec.seed, gen::stream_gemm_b, std::uint64_t{s.k} * s.n, spec.dtype, spec.mode, radius)}};
}

Status GemmProbe::run(ComputeDevice& device, const ProbeSpec& spec, GoldenCache& goldens, ProbeResult& result) {
  const GemmShape& shape = spec.gemm;
  if (shape.m == 0 || shape.n == 0 || shape.k == 0) return Error{ErrorKind::invalid_argument, "gemm: empty shape"};
  const std::uint32_t radius = spec.mode == Mode::exact ? gen::exact_radius(shape.k) : 0;
  if (spec.mode == Mode::exact && radius == 0) {
    return Error{ErrorKind::invalid_argument, "gemm: K=" + std::to_string(shape.k) + " is too long for exact mode"};
  }
  if (spec.inject.enabled && spec.inject.element >= std::uint64_t{shape.m} * shape.n) {
    return Error{ErrorKind::invalid_argument, "gemm: injected element is outside the output"};
  }
  GoldenFetch golden(goldens, spec, [&] { return golden::gemm(shape, spec.dtype, spec.mode, spec.seed, radius); });
  TRY_ASSIGN(auto run, device.run_gemm(GemmLaunch{shape, spec.dtype, spec.mode, spec.seed, radius, spec.inject}));
  auto reference = golden.get(result);
  CheckOutcome check;
  if (spec.mode == Mode::exact) {
    check = check_exact(run.output_bits, reference->value, shape.n);
  } else {
    // The golden's bound is for round-to-nearest fp32; a kernel that accumulates more coarsely
    // (tensor cores align and truncate, docs/cuda.md) reports its own unit roundoff.
    const double u = run.accumulation_unit_roundoff;
    const double widen = (golden::gamma(shape.k, u) + 2.0 * golden::gamma(shape.k, golden::k_unit_roundoff_f64)) /
                         (golden::gamma(shape.k, golden::k_unit_roundoff_f32) +
                          2.0 * golden::gamma(shape.k, golden::k_unit_roundoff_f64));
    if (widen == 1.0) {
      check = check_bounded(run.output_bits, reference->value, reference->bound, shape.n);
    } else {
      std::vector<double> bound(reference->bound);
      for (double& b : bound) b *= widen;
      check = check_bounded(run.output_bits, reference->value, bound, shape.n);
    }
  }
  record_checked_run(result, run, std::move(check), std::move(reference), {shape.m, shape.n});
  return ok_status();
}

}  // namespace

ProbeDescriptor gemm_probe() { return describe<GemmProbe>(); }

}  // namespace substrate
