// GEMM probe: C = A·B with device-generated inputs, checked against the CPU golden bit-exactly
// (exact mode) or within gamma_K·|A||B| (random mode), plus a fingerprint of the output bits.
#include "kernels/cuda/launch.hpp"
#include "kernels/generator.hpp"
#include "probes/registry.hpp"

namespace substrate {
namespace {

std::vector<ProbeSpec> gemm_defaults(const DeviceInfo& device) {
  // lavapipe: about a second for the whole probe; a GPU: enough tiles for every compute unit.
  const std::uint32_t size = device.is_cpu() ? 256 : 1024;
  std::vector<ProbeSpec> specs;
  for (Dtype dtype : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
    for (Mode mode : {Mode::exact, Mode::random}) {
      ProbeSpec spec;
      spec.probe = "gemm";
      spec.dtype = dtype;
      spec.mode = mode;
      spec.gemm = {size, size, size};
      specs.push_back(spec);
    }
  }
  return specs;
}

Status gemm_size(const std::string& text, ProbeSpec& spec) {
  auto dims = parse_dimensions(text, 3);
  if (!dims) return dims.error();
  spec.gemm = {(*dims)[0], (*dims)[1], (*dims)[2]};
  return ok_status();
}

Status gemm_run(ComputeDevice& device, const ProbeSpec& spec, GoldenCache& goldens, ProbeResult& result) {
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
  auto run = device.run_gemm(GemmLaunch{shape, spec.dtype, spec.mode, spec.seed, radius, spec.inject});
  if (!run) return run.error();
  auto reference = golden.get(result);
  CheckOutcome check;
  if (spec.mode == Mode::exact) {
    check = check_exact(run->output_bits, reference->value, shape.n);
  } else {
    // Tensor cores align and truncate instead of rounding to nearest: their bound uses a larger
    // unit roundoff (docs/cuda.md). The golden's bound is for round-to-nearest fp32.
    const double u = cuda_kernels::gemm_bound_unit_roundoff(run->kernel.c_str());
    const double widen = (golden::gamma(shape.k, u) + 2.0 * golden::gamma(shape.k, golden::k_unit_roundoff_f64)) /
                         (golden::gamma(shape.k, golden::k_unit_roundoff_f32) +
                          2.0 * golden::gamma(shape.k, golden::k_unit_roundoff_f64));
    if (widen == 1.0) {
      check = check_bounded(run->output_bits, reference->value, reference->bound, shape.n);
    } else {
      std::vector<double> bound(reference->bound);
      for (double& b : bound) b *= widen;
      check = check_bounded(run->output_bits, reference->value, bound, shape.n);
    }
  }
  record_checked_run(result, *run, std::move(check), std::move(reference), {shape.m, shape.n});
  return ok_status();
}

}  // namespace

ProbeDescriptor gemm_probe() {
  ProbeDescriptor d;
  d.id = "gemm";
  d.description = "C = A·B (f32, f16, bf16 inputs; fp32 accumulation) vs CPU golden: exact and bounded";
  d.kernels = {"fill", "gemm"};
  d.enabled_by_default = true;
  d.maturity = Maturity::stable;
  d.time_budget_seconds = 10.0;
  d.default_specs = gemm_defaults;
  d.apply_size = gemm_size;
  d.run = gemm_run;
  return d;
}

}  // namespace substrate
