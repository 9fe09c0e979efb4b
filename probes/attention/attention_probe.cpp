// Attention probe: softmax(Q·Kᵀ/√d)·V against a double golden with the per-element bound
// derived in docs/error-bounds.md, plus a fingerprint of the output bits.
#include <array>
#include <memory>

#include <nlohmann/json.hpp>

#include "kernels/generator.hpp"
#include "probes/attention/attention_probe.hpp"

namespace substrate {
namespace {

struct AttentionProbe {
  static constexpr const char* id = "attention";
  static constexpr const char* description =
      "softmax(Q·Kᵀ/√d)·V (f32, f16 inputs; causal and full) vs CPU golden within a derived bound";
  static constexpr std::array kernels{"fill", "attention"};
  static constexpr bool enabled_by_default = true;
  static constexpr Maturity maturity = Maturity::stable;
  static constexpr double default_interval_seconds = 300.0;
  static constexpr double default_timeout_seconds = 120.0;
  static constexpr std::array modes{Mode::random};  // exp has no exact mode
  static constexpr std::array dtypes{Dtype::f32, Dtype::f16};
  static constexpr std::array backends{"vulkan", "cuda", "external"};
  static constexpr bool injects_by_layer = false;

  static std::vector<ProbeSpec> default_specs(const DeviceInfo& device);
  static Status apply_size(const std::string& text, ProbeSpec& spec);
  // SEQ_LENxHEADSxHEAD_DIM; causal or full is not part of the size.
  static std::string shape_text(const ProbeSpec& spec) {
    const AttentionShape& s = spec.attention;
    return std::to_string(s.seq_len) + "x" + std::to_string(s.heads) + "x" + std::to_string(s.head_dim);
  }
  static std::string spec_key(const ProbeSpec& spec) {
    return std::string(id) + "/" + to_string(spec.dtype) + "/" + shape_text(spec) +
           (spec.attention.causal ? "/causal" : "/full");
  }
  // The output's rows are (head, query) pairs, its columns the head dimension.
  static std::uint64_t row_length(const ProbeSpec& spec, std::uint32_t) { return spec.attention.head_dim; }
  static void shape_to_json(const ProbeSpec& spec, nlohmann::json& out) {
    const AttentionShape& s = spec.attention;
    out = {{"seq_len", s.seq_len}, {"heads", s.heads}, {"head_dim", s.head_dim}, {"causal", s.causal}};
  }
  static void shape_from_json(const nlohmann::json& in, ProbeSpec& spec) {
    spec.attention = {in.at("seq_len").get<std::uint32_t>(), in.at("heads").get<std::uint32_t>(),
                      in.at("head_dim").get<std::uint32_t>(), in.at("causal").get<bool>()};
  }
  static std::vector<DumpInput> dump_inputs(const ProbeSpec& spec);
  // Device: Q, K and V at their element size, O and its readback copy as f32 (check_attention).
  // Host: the golden's Q, K and V as float, O's values and bounds as double, the output read
  // back, and three score rows of double per key.
  static MemoryNeeds memory_needs(const ProbeSpec& spec, const DeviceInfo&) {
    const AttentionShape& s = spec.attention;
    const double elements = static_cast<double>(s.heads) * s.seq_len * s.head_dim;
    const double element = spec.dtype == Dtype::f32 ? 4.0 : 2.0;
    return {saturated_bytes(3.0 * elements * element + 8.0 * elements),
            saturated_bytes(12.0 * elements + 20.0 * elements + 32.0 * s.seq_len)};
  }
  static Status run(ComputeDevice& device, const ProbeSpec& spec, GoldenCache& goldens, ProbeResult& result);
};

std::vector<ProbeSpec> AttentionProbe::default_specs(const DeviceInfo& device) {
  struct Shape {
    std::uint32_t seq_len, heads, head_dim;
    bool causal;
  };
  const std::vector<Shape> shapes = device.is_cpu() ? std::vector<Shape>{{128, 4, 64, true}, {64, 2, 128, false}}
                                                    : std::vector<Shape>{{512, 8, 64, true}, {512, 8, 128, false}};
  std::vector<ProbeSpec> specs;
  for (Dtype dtype : {Dtype::f32, Dtype::f16}) {
    for (const Shape& s : shapes) {
      ProbeSpec spec;
      spec.probe = id;
      spec.dtype = dtype;
      spec.mode = Mode::random;
      spec.attention = {s.seq_len, s.heads, s.head_dim, s.causal};
      specs.push_back(spec);
    }
  }
  return specs;
}

Status AttentionProbe::apply_size(const std::string& text, ProbeSpec& spec) {
  TRY_ASSIGN(auto dims, parse_dimensions(text, 3));
  spec.attention.seq_len = dims[0];
  spec.attention.heads = dims[1];
  spec.attention.head_dim = dims[2];
  return ok_status();
}

std::vector<DumpInput> AttentionProbe::dump_inputs(const ProbeSpec& spec) {
  const AttentionShape& s = spec.attention;
  const std::uint64_t count = std::uint64_t{s.heads} * s.seq_len * s.head_dim;
  const std::vector<std::uint64_t> shape{s.heads, s.seq_len, s.head_dim};
  std::vector<DumpInput> inputs;
  for (auto [name, stream] : {std::pair{"q", gen::stream_attention_q}, std::pair{"k", gen::stream_attention_k},
                              std::pair{"v", gen::stream_attention_v}}) {
    inputs.push_back({name, shape, golden::generate(spec.seed, stream, count, spec.dtype, Mode::random, 0)});
  }
  return inputs;
}

Status AttentionProbe::run(ComputeDevice& device, const ProbeSpec& spec, GoldenCache& goldens, ProbeResult& result) {
  const AttentionShape& shape = spec.attention;
  if (shape.seq_len == 0 || shape.heads == 0 || shape.head_dim == 0) {
    return Error{ErrorKind::invalid_argument, "attention: empty shape"};
  }
  if (spec.mode != Mode::random) {
    return Error{ErrorKind::invalid_argument, "attention: only random mode (exp has no exact mode)"};
  }
  const std::uint64_t elements = std::uint64_t{shape.seq_len} * shape.heads * shape.head_dim;
  TRY(check_injection_range(spec.inject, elements, "attention"));
  // Shapes whose gamma_n would leave the derivation are refused before anything runs, at the
  // widest unit roundoff a kernel may report, so the run's own u cannot take it out again.
  TRY(golden::attention_bound_applies(shape, golden::k_widest_attention_unit_roundoff));
  const AttentionLaunch launch{shape, spec.dtype, spec.seed, spec.inject};
  TRY(device.check_attention(launch));
  GoldenFetch golden(goldens, spec, [&] { return with_guarantee(golden::attention(shape, spec.dtype, spec.seed)); });
  TRY_ASSIGN(auto run, device.run_attention(launch));
  auto reference = golden.get(result);
  // Rows are (head, query) pairs, columns the head dimension. The cached golden's bound is for
  // round-to-nearest (u = 2^-24). The bound is not linear in u (its second-order terms grow
  // faster), so a kernel whose fp32 operations may round either way (Vulkan without
  // RoundingModeRTE: u = 2^-23) gets the bound derived again at its own u, outside the cache.
  if (run.accumulation_unit_roundoff > golden::k_unit_roundoff_f32) {
    reference = std::make_shared<const golden::Reference>(
        golden::attention(shape, spec.dtype, spec.seed, run.accumulation_unit_roundoff));
  }
  std::string print;
  CheckOutcome check = check_bounded(run.output_bits, *reference, shape.head_dim, print);
  TRY(require_guarantee(check, "attention",
                        "head_dim " + std::to_string(shape.head_dim) +
                            " is too large for the derived bound (attention has no exact mode; use --kernel gemm "
                            "--mode exact for long reductions)"));
  record_checked_run(result, run, std::move(check), std::move(print), std::move(reference),
                     {shape.heads, shape.seq_len, shape.head_dim});
  return ok_status();
}

}  // namespace

ProbeDescriptor attention_probe() { return describe<AttentionProbe>(); }

}  // namespace substrate
