#include "probes/probe_result.hpp"

#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "probes/registry.hpp"

namespace substrate {

const char* to_string(RunStatus status) {
  switch (status) {
    case RunStatus::pass: return "pass";
    case RunStatus::fail: return "fail";
    case RunStatus::error: return "error";
    case RunStatus::skipped: return "skipped";
  }
  return "error";
}

const char* to_string(SkipKind kind) {
  switch (kind) {
    case SkipKind::not_implemented: return "not_implemented";
  }
  return "not_implemented";
}

const char* to_string(MemoryPattern pattern) {
  switch (pattern) {
    case MemoryPattern::walking_ones: return "walking_ones";
    case MemoryPattern::walking_zeros: return "walking_zeros";
    case MemoryPattern::own_address: return "own_address";
    case MemoryPattern::moving_inversions: return "moving_inversions";
    case MemoryPattern::random: return "random";
  }
  return "unknown";
}

const char* persistence(const BadWord& bad) {
  if (bad.reread == bad.actual) return "stored";
  if (bad.reread == bad.expected) return "transient";
  return "unstable";
}

namespace {

std::string hex32(std::uint32_t value) {
  char text[11];
  std::snprintf(text, sizeof text, "0x%08x", value);
  return text;
}

template <class Histogram>
nlohmann::json histogram_json(const Histogram& bits) {
  nlohmann::json out = nlohmann::json::object();
  for (std::size_t bit = 0; bit < bits.size(); ++bit) {
    if (bits[bit]) out[std::to_string(bit)] = bits[bit];
  }
  return out;
}

// JSON has no Inf or NaN; a non-finite figure is written as a string.
nlohmann::json number(double value) {
  if (std::isfinite(value)) return value;
  return std::isnan(value) ? "nan" : (value > 0 ? "inf" : "-inf");
}

}  // namespace

void to_json(nlohmann::json& out, const ProbeSpec& spec) {
  out = {{"probe", spec.probe}, {"dtype", to_string(spec.dtype)}, {"mode", to_string(spec.mode)},
         {"seed", spec.seed}, {"key", spec_key(spec)}};
  const ProbeDescriptor* probe = probe_registry().find(spec.probe);
  if (probe) probe->shape_to_json(spec, out[probe->id]);
  if (spec.inject.enabled) {
    out["inject"] = {{"element", spec.inject.element}, {"xor_mask", spec.inject.xor_mask},
                     {"transient", spec.inject.transient}};
    if (probe && probe->injects_by_layer) out["inject"]["layer"] = spec.inject.layer;
  }
}

void from_json(const nlohmann::json& in, ProbeSpec& spec) {
  spec = ProbeSpec{};
  spec.probe = in.at("probe").get<std::string>();
  const auto dtype = parse_dtype(in.at("dtype").get<std::string>());
  const auto mode = parse_mode(in.at("mode").get<std::string>());
  if (!dtype || !mode) throw nlohmann::json::other_error::create(501, "unknown dtype or mode", &in);
  spec.dtype = *dtype;
  spec.mode = *mode;
  spec.seed = in.at("seed").get<std::uint64_t>();
  const ProbeDescriptor* probe = probe_registry().find(spec.probe);
  if (probe && in.contains(probe->id)) probe->shape_from_json(in.at(probe->id), spec);
  if (in.contains("inject")) {
    const auto& i = in.at("inject");
    spec.inject = {true, i.at("element").get<std::uint64_t>(), i.at("xor_mask").get<std::uint32_t>(),
                   i.at("transient").get<bool>(), i.value("layer", std::uint32_t{0})};
  }
}

void to_json(nlohmann::json& out, const DeviceInfo& info) {
  out = {{"id", info.id},           {"backend", info.backend},         {"name", info.name},
         {"vendor", info.vendor},   {"driver", info.driver},           {"device_type", info.device_type},
         {"uuid", info.uuid},       {"pci_bus_id", info.pci_bus_id},   {"api_version", info.api_version},
         {"memory_bytes", info.memory_bytes}, {"compute_units", info.compute_units},
         {"kernel_build", info.kernel_build}};
}

void to_json(nlohmann::json& out, const ProbeResult& result) {
  out = nlohmann::json::object();
  out["device"] = result.device;
  out["spec"] = result.spec;
  out["kernel"] = result.kernel;
  out["status"] = to_string(result.status);
  out["drill"] = result.drill();
  if (result.status == RunStatus::error) {
    out["error"] = result.error;
    out["error_kind"] = to_string(result.error_kind);
  }
  if (result.status == RunStatus::skipped) {
    out["skip_reason"] = result.skip_reason;
    out["skip_kind"] = to_string(result.skip_kind);
  }
  const CheckOutcome& c = result.check;
  nlohmann::json mismatches = nlohmann::json::array();
  for (const Mismatch& m : c.first_mismatches) {
    mismatches.push_back({{"index", m.index}, {"row", m.row}, {"col", m.col}, {"expected", number(m.expected)},
                          {"actual", number(m.actual)}, {"expected_bits", hex32(m.expected_bits)},
                          {"actual_bits", hex32(m.actual_bits)}, {"xor", hex32(m.xor_bits)},
                          {"significant_xor", hex32(m.significant_xor_bits)}, {"bound", number(m.bound)}});
  }
  out["check"] = {{"pass", c.pass},
                  {"elements_checked", c.checked},
                  {"mismatched_elements", c.mismatched},
                  {"max_abs_error", number(c.max_abs_error)},
                  {"max_rel_error", number(c.max_rel_error)},
                  {"error_budget_used", number(c.budget_used)},
                  {"first_mismatches", mismatches},
                  {"flipped_bit_histogram", histogram_json(c.flipped_bits)}};
  out["fingerprint"] = result.fingerprint;
  out["timing"] = {{"device_seconds", result.device_seconds}, {"generate_seconds", result.generate_seconds},
                   {"golden_seconds", result.golden_seconds}, {"wall_seconds", result.wall_seconds}};
  out["finished_at"] = result.finished_at;
  if (result.canary) {
    const CanaryDetails& c = *result.canary;
    nlohmann::json layers = nlohmann::json::array();
    for (const CanaryLayerReport& l : c.layers) {
      layers.push_back({{"name", l.name}, {"rows", l.rows}, {"cols", l.cols}, {"mismatched", l.mismatched},
                        {"max_abs_error", number(l.max_abs_error)}, {"error_budget_used", number(l.budget_used)},
                        {"cosine", number(l.cosine)}});
    }
    out["canary"] = {{"layers", layers},
                     {"first_diverging_layer", c.first_diverging_layer.empty() ? nlohmann::json(nullptr)
                                                                               : nlohmann::json(c.first_diverging_layer)},
                     {"tokens", c.tokens},
                     {"argmax_agreeing_tokens", c.argmax_agreeing_tokens},
                     {"top5_agreeing_tokens", c.top5_agreeing_tokens},
                     {"input_tokens", c.input_tokens}};
  }
  if (result.memory) {
    const MemoryDetails& m = *result.memory;
    nlohmann::json bad = nlohmann::json::array();
    for (const BadWord& word : m.first_bad) {
      bad.push_back({{"offset", word.offset}, {"expected", hex32(word.expected)}, {"actual", hex32(word.actual)},
                     {"xor", hex32(word.expected ^ word.actual)}, {"reread", hex32(word.reread)},
                     {"persistence", persistence(word)}, {"pattern", to_string(word.pattern)}});
    }
    out["memory"] = {{"bytes_tested", m.bytes_tested},
                     {"bad_words", m.bad_words},
                     {"bandwidth_bytes_per_second", m.bandwidth_bytes_per_second},
                     {"first_bad_words", bad},
                     {"flipped_bit_histogram", histogram_json(m.flipped_bits)},
                     {"retention", {{"bytes", m.retention_bytes},
                                    {"bad_words", m.retention_bad_words},
                                    {"age_seconds", m.retention_age_seconds}}}};
  }
}

}  // namespace substrate
