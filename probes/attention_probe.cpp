// Attention probe: softmax(Q·Kᵀ/√d)·V against a double golden with the per-element bound
// derived in docs/error-bounds.md, plus a fingerprint of the output bits.
#include "probes/registry.hpp"

namespace substrate {
namespace {

std::vector<ProbeSpec> attention_defaults(const DeviceInfo& device) {
  struct Shape {
    std::uint32_t seq_len, heads, head_dim;
    bool causal;
  };
  const std::vector<Shape> shapes = device.is_cpu()
                                        ? std::vector<Shape>{{128, 4, 64, true}, {64, 2, 128, false}}
                                        : std::vector<Shape>{{512, 8, 64, true}, {512, 8, 128, false}};
  std::vector<ProbeSpec> specs;
  for (Dtype dtype : {Dtype::f32, Dtype::f16}) {
    for (const Shape& s : shapes) {
      ProbeSpec spec;
      spec.probe = "attention";
      spec.dtype = dtype;
      spec.mode = Mode::random;
      spec.attention = {s.seq_len, s.heads, s.head_dim, s.causal};
      specs.push_back(spec);
    }
  }
  return specs;
}

Status attention_size(const std::string& text, ProbeSpec& spec) {
  auto dims = parse_dimensions(text, 3);
  if (!dims) return dims.error();
  spec.attention.seq_len = (*dims)[0];
  spec.attention.heads = (*dims)[1];
  spec.attention.head_dim = (*dims)[2];
  return ok_status();
}

Status attention_run(ComputeDevice& device, const ProbeSpec& spec, GoldenCache& goldens, ProbeResult& result) {
  const AttentionShape& shape = spec.attention;
  if (shape.seq_len == 0 || shape.heads == 0 || shape.head_dim == 0) {
    return Error{ErrorKind::invalid_argument, "attention: empty shape"};
  }
  if (spec.mode != Mode::random) {
    return Error{ErrorKind::invalid_argument, "attention: only random mode (exp has no exact mode)"};
  }
  const std::uint64_t elements = std::uint64_t{shape.seq_len} * shape.heads * shape.head_dim;
  if (spec.inject.enabled && spec.inject.element >= elements) {
    return Error{ErrorKind::invalid_argument, "attention: injected element is outside the output"};
  }
  GoldenFetch golden(goldens, spec, [&] { return golden::attention(shape, spec.dtype, spec.seed); });
  auto run = device.run_attention(AttentionLaunch{shape, spec.dtype, spec.seed, spec.inject});
  if (!run) return run.error();
  auto reference = golden.get(result);
  // Rows are (head, query) pairs, columns the head dimension.
  CheckOutcome check = check_bounded(run->output_bits, reference->value, reference->bound, shape.head_dim);
  record_checked_run(result, *run, std::move(check), std::move(reference), {shape.heads, shape.seq_len, shape.head_dim});
  return ok_status();
}

}  // namespace

ProbeDescriptor attention_probe() {
  ProbeDescriptor d;
  d.id = "attention";
  d.description = "softmax(Q·Kᵀ/√d)·V (f32, f16 inputs; causal and full) vs CPU golden within a derived bound";
  d.kernels = {"fill", "attention"};
  d.enabled_by_default = true;
  d.maturity = Maturity::stable;
  d.time_budget_seconds = 10.0;
  d.default_specs = attention_defaults;
  d.apply_size = attention_size;
  d.run = attention_run;
  return d;
}

}  // namespace substrate
