// Tiny-transformer canary (beta, not enabled by default): a small decoder stack (embedding,
// RMSNorm, QKV, causal attention, SiLU MLP, residuals, logits) with generator weights and tokens
// runs on the device; every checkpoint layer is checked against a double-precision golden, and
// the first diverging layer is named, with next-token agreement of the final logits, so a fault
// reads the way a model user would see it.
#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <numeric>

#include <nlohmann/json.hpp>

#include "kernels/fingerprint.hpp"
#include "kernels/golden/canary_golden.hpp"
#include "probes/canary/canary_probe.hpp"

namespace substrate {
namespace {

struct CanaryProbe {
  static constexpr const char* id = "canary";
  static constexpr const char* description =
      "tiny transformer (embedding, RMSNorm, causal attention, SiLU MLP, logits) vs CPU golden per layer";
  static constexpr std::array kernels{"canary"};
  static constexpr bool enabled_by_default = false;
  static constexpr Maturity maturity = Maturity::beta;
  static constexpr double default_interval_seconds = 300.0;
  static constexpr double default_timeout_seconds = 120.0;
  // f32 in random mode only: exp, rsqrt and SiLU have no exact mode.
  static constexpr std::array modes{Mode::random};
  static constexpr std::array dtypes{Dtype::f32};
  static constexpr std::array backends{"vulkan"};  // no CUDA kernels yet
  static constexpr bool injects_by_layer = true;

  static std::vector<ProbeSpec> default_specs(const DeviceInfo& device);
  static Status apply_size(const std::string& text, ProbeSpec& spec);
  // TOKENSxD_MODELxHEADSxFFNxLAYERSxVOCAB
  static std::string shape_text(const ProbeSpec& spec) {
    const CanaryShape& c = spec.canary;
    std::string text;
    for (std::uint32_t v : {c.tokens, c.d_model, c.heads, c.ffn, c.layers, c.vocab}) {
      text += (text.empty() ? "" : "x") + std::to_string(v);
    }
    return text;
  }
  static std::string spec_key(const ProbeSpec& spec) {
    return std::string(id) + "/" + to_string(spec.dtype) + "/" + shape_text(spec);
  }
  // A drill corrupts one checkpoint layer, whose rows are tokens and columns features.
  static std::uint64_t row_length(const ProbeSpec& spec, std::uint32_t layer) {
    const auto layers = canary::layers(spec.canary);
    return layer < layers.size() ? layers[layer].cols : 0;
  }
  static void shape_to_json(const ProbeSpec& spec, nlohmann::json& out) {
    const CanaryShape& c = spec.canary;
    out = {{"tokens", c.tokens}, {"d_model", c.d_model}, {"heads", c.heads},
           {"ffn", c.ffn},       {"layers", c.layers},   {"vocab", c.vocab}};
  }
  static void shape_from_json(const nlohmann::json& in, ProbeSpec& spec) {
    spec.canary = {in.at("tokens").get<std::uint32_t>(), in.at("d_model").get<std::uint32_t>(),
                   in.at("heads").get<std::uint32_t>(),  in.at("ffn").get<std::uint32_t>(),
                   in.at("layers").get<std::uint32_t>(), in.at("vocab").get<std::uint32_t>()};
  }
  // The input tokens (as float32: npy readers everywhere take them); the weights are generator
  // values the golden regenerates.
  static std::vector<DumpInput> dump_inputs(const ProbeSpec& spec) {
    const CanaryShape& s = spec.canary;
    std::vector<float> tokens;
    for (std::uint32_t t = 0; t < s.tokens; ++t)
      tokens.push_back(static_cast<float>(canary::token(spec.seed, t, s.vocab)));
    return {{"tokens", {s.tokens}, std::move(tokens)}};
  }
  // Device: the weights (embedding; per layer 4·d² of attention and 2·d·ffn of MLP), the score
  // matrices and every checkpoint with its readback, as f32. Host: the golden's weights as float
  // and double, each checkpoint's values and bounds as double twice (per layer and the flat
  // cached copy) and its readback, the scores as double. A shape the probe refuses needs nothing.
  static MemoryNeeds memory_needs(const ProbeSpec& spec, const DeviceInfo&) {
    const CanaryShape& c = spec.canary;
    if (!canary::validate(c).empty()) return {};
    const double d = c.d_model;
    const double weights =
        static_cast<double>(c.vocab) * d + static_cast<double>(c.layers) * (4.0 * d * d + 2.0 * d * c.ffn);
    double checkpoints = 0.0;
    for (const auto& layer : canary::layers(c)) checkpoints += static_cast<double>(layer.rows) * layer.cols;
    const double scores = static_cast<double>(c.heads) * c.tokens * c.tokens;
    return {saturated_bytes(4.0 * weights + 8.0 * checkpoints + 4.0 * scores),
            saturated_bytes(12.0 * weights + 36.0 * checkpoints + 8.0 * scores)};
  }
  static Status run(ComputeDevice& device, const ProbeSpec& spec, GoldenCache& goldens, ProbeResult& result);
};

std::vector<ProbeSpec> CanaryProbe::default_specs(const DeviceInfo& device) {
  ProbeSpec spec;
  spec.probe = id;
  spec.dtype = Dtype::f32;
  spec.mode = Mode::random;
  spec.canary = device.is_cpu() ? CanaryShape{16, 64, 4, 128, 2, 128} : CanaryShape{64, 256, 8, 1024, 4, 1024};
  return {spec};
}

Status CanaryProbe::apply_size(const std::string& text, ProbeSpec& spec) {
  TRY_ASSIGN(auto dims, parse_dimensions(text, 6));
  const auto& d = dims;
  spec.canary = {d[0], d[1], d[2], d[3], d[4], d[5]};
  if (const std::string invalid = canary::validate(spec.canary); !invalid.empty()) {
    return Error{ErrorKind::invalid_argument, invalid};
  }
  return ok_status();
}

double cosine(std::span<const std::uint32_t> bits, std::span<const double> golden) {
  double dot = 0, aa = 0, bb = 0;
  for (std::size_t i = 0; i < bits.size(); ++i) {
    const double a = std::bit_cast<float>(bits[i]);
    dot += a * golden[i];
    aa += a * a;
    bb += golden[i] * golden[i];
  }
  if (aa == 0 && bb == 0) return 1.0;
  if (aa == 0 || bb == 0) return 0.0;
  return dot / (std::sqrt(aa) * std::sqrt(bb));
}

Status CanaryProbe::run(ComputeDevice& device, const ProbeSpec& spec, GoldenCache& goldens, ProbeResult& result) {
  const CanaryShape& shape = spec.canary;
  if (const std::string invalid = canary::validate(shape); !invalid.empty()) {
    return Error{ErrorKind::invalid_argument, invalid};
  }
  if (spec.mode != Mode::random || spec.dtype != Dtype::f32) {
    return Error{ErrorKind::invalid_argument,
                 "canary: f32 inputs in random mode only (exp, rsqrt and SiLU have no exact mode)"};
  }
  const auto layers = canary::layers(shape);
  if (spec.inject.enabled) {
    if (is_pattern(spec.inject)) {
      return Error{ErrorKind::invalid_argument,
                   "canary: --inject count/stride patterns apply to gemm and attention outputs; the canary injects "
                   "one element"};
    }
    if (spec.inject.layer >= layers.size()) {
      return Error{ErrorKind::invalid_argument, "canary: inject layer " + std::to_string(spec.inject.layer) +
                                                    " is outside 0.." + std::to_string(layers.size() - 1)};
    }
    const auto& target = layers[spec.inject.layer];
    if (spec.inject.element >= std::uint64_t{target.rows} * target.cols) {
      return Error{ErrorKind::invalid_argument, "canary: injected element is outside layer '" + target.name + "'"};
    }
  }
  // Cached as one flat reference: every layer's values (and bounds) back to back.
  GoldenFetch golden(goldens, spec, [&] {
    golden::CanaryReference ref = golden::canary(shape, spec.seed);
    golden::Reference flat;
    for (const golden::CanaryLayer& l : ref.layers) {
      flat.value.insert(flat.value.end(), l.value.begin(), l.value.end());
      flat.bound.insert(flat.bound.end(), l.bound.begin(), l.bound.end());
    }
    return flat;
  });
  TRY_ASSIGN(auto run, device.run_canary(CanaryLaunch{shape, spec.seed, spec.inject}));
  if (run.layers.size() != layers.size()) {
    return Error{ErrorKind::device_error, "canary: the backend returned " + std::to_string(run.layers.size()) +
                                              " layers, expected " + std::to_string(layers.size())};
  }
  auto reference = golden.get(result);

  CanaryDetails details;
  details.tokens = shape.tokens;
  for (std::uint32_t t = 0; t < shape.tokens; ++t)
    details.input_tokens.push_back(canary::token(spec.seed, t, shape.vocab));
  CheckOutcome combined;
  std::vector<std::uint32_t> all_bits;
  std::size_t offset = 0;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const auto& layer = layers[i];
    const std::size_t count = std::size_t{layer.rows} * layer.cols;
    const std::vector<std::uint32_t>& bits = run.layers[i];
    if (bits.size() != count)
      return Error{ErrorKind::device_error, "canary: layer '" + layer.name + "' has the wrong size"};
    const std::span<const double> value(reference->value.data() + offset, count);
    const std::span<const double> bound(reference->bound.data() + offset, count);
    const CheckOutcome outcome = check_bounded(bits, value, bound, layer.cols);
    details.layers.push_back({layer.name, layer.rows, layer.cols, outcome.mismatched, outcome.max_abs_error,
                              outcome.budget_used, cosine(bits, value)});
    if (outcome.mismatched > 0 && details.first_diverging_layer.empty()) {
      details.first_diverging_layer = layer.name;
      combined.first_mismatches = outcome.first_mismatches;  // positions within the first diverging layer
      combined.mismatch_map = outcome.mismatch_map;
    }
    combined.checked += outcome.checked;
    combined.mismatched += outcome.mismatched;
    combined.max_abs_error = std::max(combined.max_abs_error, outcome.max_abs_error);
    combined.max_rel_error = std::max(combined.max_rel_error, outcome.max_rel_error);
    if (!(outcome.budget_used <= combined.budget_used)) combined.budget_used = outcome.budget_used;
    for (int bit = 0; bit < 32; ++bit) combined.flipped_bits[bit] += outcome.flipped_bits[bit];
    if (outcome.guaranteed_elements > 0)
      combined.guaranteed_bit = std::max(combined.guaranteed_bit, outcome.guaranteed_bit);
    combined.guaranteed_elements += outcome.guaranteed_elements;
    all_bits.insert(all_bits.end(), bits.begin(), bits.end());
    if (result.tensors) {
      result.tensors->layers.push_back({layer.name,
                                        {layer.rows, layer.cols},
                                        bits,
                                        std::vector<double>(value.begin(), value.end()),
                                        std::vector<double>(bound.begin(), bound.end())});
    }
    offset += count;
  }
  combined.pass = combined.mismatched == 0;
  if (combined.guaranteed_elements == 0) combined.guaranteed_bit = 32;

  // Next-token view of the logits: argmax per token, and whether the device's pick is in the golden top 5.
  const auto& logits = layers.back();
  const std::size_t logits_offset = reference->value.size() - std::size_t{logits.rows} * logits.cols;
  for (std::uint32_t t = 0; t < logits.rows; ++t) {
    const std::uint32_t* row = run.layers.back().data() + std::size_t{t} * logits.cols;
    const double* golden_row = reference->value.data() + logits_offset + std::size_t{t} * logits.cols;
    std::uint32_t device_pick = 0;
    for (std::uint32_t j = 1; j < logits.cols; ++j) {
      if (std::bit_cast<float>(row[j]) > std::bit_cast<float>(row[device_pick])) device_pick = j;
    }
    std::vector<std::uint32_t> order(logits.cols);
    std::iota(order.begin(), order.end(), 0u);
    const std::size_t top = std::min<std::size_t>(5, order.size());
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(top), order.end(),
                      [&](std::uint32_t a, std::uint32_t b) { return golden_row[a] > golden_row[b]; });
    if (order[0] == device_pick) ++details.argmax_agreeing_tokens;
    if (std::find(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(top), device_pick) !=
        order.begin() + static_cast<std::ptrdiff_t>(top)) {
      ++details.top5_agreeing_tokens;
    }
  }

  result.kernel = run.kernel;
  result.check = std::move(combined);
  result.fingerprint = fingerprint(all_bits);
  result.device_seconds = run.device_seconds;
  if (result.tensors) {
    auto logits_reference = std::make_shared<golden::Reference>();
    logits_reference->value = result.tensors->layers.back().golden;
    logits_reference->bound = result.tensors->layers.back().bound;
    result.tensors->output_shape = {logits.rows, logits.cols};
    result.tensors->output_bits = run.layers.back();
    result.tensors->golden = std::move(logits_reference);
  }
  result.canary = std::move(details);
  result.status = result.check.pass ? RunStatus::pass : RunStatus::fail;
  return ok_status();
}

}  // namespace

ProbeDescriptor canary_probe() { return describe<CanaryProbe>(); }

}  // namespace substrate
