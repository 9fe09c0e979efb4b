#include "probes/core/probe_result.hpp"

#include <cmath>
#include <cstdio>
#include <limits>

#include <nlohmann/json.hpp>

#include "probes/core/registry.hpp"

namespace substrate {

const char* to_string(RunStatus status) {
  switch (status) {
    case RunStatus::pass:
      return "pass";
    case RunStatus::fail:
      return "fail";
    case RunStatus::error:
      return "error";
    case RunStatus::skipped:
      return "skipped";
    case RunStatus::hung:
      return "hung";
    case RunStatus::crashed:
      return "crashed";
  }
  return "error";
}

const char* to_string(SkipKind kind) {
  switch (kind) {
    case SkipKind::not_implemented:
      return "not_implemented";
    case SkipKind::out_of_memory:
      return "out_of_memory";
    case SkipKind::device_busy:
      return "device_busy";
  }
  return "not_implemented";
}

std::optional<SkipKind> parse_skip_kind(const std::string& name) {
  for (SkipKind k : k_all_skip_kinds) {
    if (name == to_string(k)) return k;
  }
  return std::nullopt;
}

std::optional<RunStatus> parse_run_status(const std::string& name) {
  for (RunStatus s :
       {RunStatus::pass, RunStatus::fail, RunStatus::error, RunStatus::skipped, RunStatus::hung, RunStatus::crashed}) {
    if (name == to_string(s)) return s;
  }
  return std::nullopt;
}

const char* to_string(MemoryPattern pattern) {
  switch (pattern) {
    case MemoryPattern::walking_ones:
      return "walking_ones";
    case MemoryPattern::walking_zeros:
      return "walking_zeros";
    case MemoryPattern::own_address:
      return "own_address";
    case MemoryPattern::moving_inversions:
      return "moving_inversions";
    case MemoryPattern::random:
      return "random";
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

double from_number(const nlohmann::json& value) {
  if (value.is_number()) return value.get<double>();
  const std::string text = value.get<std::string>();
  if (text == "nan") return std::numeric_limits<double>::quiet_NaN();
  if (text == "inf") return std::numeric_limits<double>::infinity();
  if (text == "-inf") return -std::numeric_limits<double>::infinity();
  throw nlohmann::json::other_error::create(501, "not a number: " + text, &value);
}

std::uint32_t from_hex32(const nlohmann::json& value) {
  return static_cast<std::uint32_t>(std::stoul(value.get<std::string>(), nullptr, 16));
}

template <class Histogram>
void histogram_from_json(const nlohmann::json& in, Histogram& bits) {
  for (const auto& [bit, count] : in.items()) {
    const std::size_t index = std::stoul(bit);
    if (index < bits.size()) bits[index] = count.template get<typename Histogram::value_type>();
  }
}

ErrorKind parse_error_kind(const std::string& name) {
  for (ErrorKind k : {ErrorKind::invalid_argument, ErrorKind::unavailable, ErrorKind::device_error, ErrorKind::timeout,
                      ErrorKind::io_error, ErrorKind::corrupt, ErrorKind::out_of_memory, ErrorKind::busy,
                      ErrorKind::hardware_fault}) {
    if (name == to_string(k)) return k;
  }
  return ErrorKind::device_error;
}

MemoryPattern parse_pattern(const std::string& name) {
  for (MemoryPattern p : {MemoryPattern::walking_ones, MemoryPattern::walking_zeros, MemoryPattern::own_address,
                          MemoryPattern::moving_inversions, MemoryPattern::random}) {
    if (name == to_string(p)) return p;
  }
  return MemoryPattern::random;
}

}  // namespace

void to_json(nlohmann::json& out, const ProbeSpec& spec) {
  out = {{"probe", spec.probe},
         {"dtype", to_string(spec.dtype)},
         {"mode", to_string(spec.mode)},
         {"seed", spec.seed},
         {"key", spec_key(spec)}};
  const ProbeDescriptor* probe = probe_registry().find(spec.probe);
  if (probe) probe->shape_to_json(spec, out[probe->id]);
  if (spec.inject.enabled) {
    out["inject"] = {
        {"element", spec.inject.element}, {"xor_mask", spec.inject.xor_mask}, {"transient", spec.inject.transient}};
    if (probe && probe->injects_by_layer) out["inject"]["layer"] = spec.inject.layer;
    // A pattern only: single-element drills keep their shape. count "all": to the end of the output.
    if (is_pattern(spec.inject)) {
      out["inject"]["count"] =
          spec.inject.count == k_inject_to_end ? nlohmann::json("all") : nlohmann::json(spec.inject.count);
      out["inject"]["stride"] = spec.inject.stride;
    }
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
    if (i.contains("count")) {
      const auto& count = i.at("count");
      spec.inject.count =
          count.is_string() && count.get<std::string>() == "all" ? k_inject_to_end : count.get<std::uint64_t>();
      spec.inject.stride = i.value("stride", std::uint64_t{1});
      if (spec.inject.count == 0 || spec.inject.stride == 0) {
        throw nlohmann::json::out_of_range::create(401, "inject count and stride must be at least 1", &i);
      }
    }
  }
}

void to_json(nlohmann::json& out, const DeviceInfo& info) {
  out = {{"id", info.id},
         {"backend", info.backend},
         {"name", info.name},
         {"vendor", info.vendor},
         {"driver", info.driver},
         {"device_type", info.device_type},
         {"uuid", info.uuid},
         {"pci_bus_id", info.pci_bus_id},
         {"api_version", info.api_version},
         {"memory_bytes", info.memory_bytes},
         {"compute_units", info.compute_units},
         {"kernel_build", info.kernel_build}};
  if (!info.kernel_image.empty()) out["kernel_image"] = info.kernel_image;
  if (!info.vbios_version.empty()) out["vbios_version"] = info.vbios_version;
  if (!info.serial.empty()) out["serial"] = info.serial;
  if (!info.board_part_number.empty()) out["board_part_number"] = info.board_part_number;
  if (info.is_mig()) {
    out["mig"] = {
        {"parent_uuid", info.mig_parent_uuid}, {"gpu_instance", info.mig_gpu_instance}, {"profile", info.mig_profile}};
  }
}

void to_json(nlohmann::json& out, const ProbeResult& result) {
  out = nlohmann::json::object();
  out["device"] = result.device;
  out["spec"] = result.spec;
  out["kernel"] = result.kernel;
  out["status"] = to_string(result.status);
  out["drill"] = result.drill();
  if (result.status == RunStatus::error || result.status == RunStatus::hung || result.status == RunStatus::crashed ||
      (result.status == RunStatus::fail && !result.error.empty())) {
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
    mismatches.push_back({{"index", m.index},
                          {"row", m.row},
                          {"col", m.col},
                          {"expected", number(m.expected)},
                          {"actual", number(m.actual)},
                          {"expected_bits", hex32(m.expected_bits)},
                          {"actual_bits", hex32(m.actual_bits)},
                          {"xor", hex32(m.xor_bits)},
                          {"significant_xor", hex32(m.significant_xor_bits)},
                          {"bound", number(m.bound)}});
  }
  out["check"] = {{"pass", c.pass},
                  {"elements_checked", c.checked},
                  {"mismatched_elements", c.mismatched},
                  {"max_abs_error", number(c.max_abs_error)},
                  {"max_rel_error", number(c.max_rel_error)},
                  {"error_budget_used", number(c.budget_used)},
                  {"first_mismatches", mismatches},
                  {"flipped_bit_histogram", histogram_json(c.flipped_bits)},
                  {"guaranteed_bit", c.guaranteed_bit},
                  {"guaranteed_elements", c.guaranteed_elements}};
  if (c.mismatch_map.rows > 0) {
    const MismatchMap& map = c.mismatch_map;
    out["check"]["mismatch_map"] = {{"rows", map.rows},
                                    {"cols", map.cols},
                                    {"tile_rows", map.tile_rows},
                                    {"tile_cols", map.tile_cols},
                                    {"counts", map.counts}};
  }
  out["fingerprint"] = result.fingerprint;
  out["timing"] = {{"device_seconds", result.device_seconds},
                   {"generate_seconds", result.generate_seconds},
                   {"golden_seconds", result.golden_seconds},
                   {"wall_seconds", result.wall_seconds}};
  out["finished_at"] = result.finished_at;
  if (result.canary) {
    const CanaryDetails& c = *result.canary;
    nlohmann::json layers = nlohmann::json::array();
    for (const CanaryLayerReport& l : c.layers) {
      layers.push_back({{"name", l.name},
                        {"rows", l.rows},
                        {"cols", l.cols},
                        {"mismatched", l.mismatched},
                        {"max_abs_error", number(l.max_abs_error)},
                        {"error_budget_used", number(l.budget_used)},
                        {"cosine", number(l.cosine)}});
    }
    out["canary"] = {
        {"layers", layers},
        {"first_diverging_layer",
         c.first_diverging_layer.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.first_diverging_layer)},
        {"tokens", c.tokens},
        {"argmax_agreeing_tokens", c.argmax_agreeing_tokens},
        {"top5_agreeing_tokens", c.top5_agreeing_tokens},
        {"input_tokens", c.input_tokens}};
  }
  if (result.memory) {
    const MemoryDetails& m = *result.memory;
    nlohmann::json bad = nlohmann::json::array();
    for (const BadWord& word : m.first_bad) {
      bad.push_back({{"offset", word.offset},
                     {"expected", hex32(word.expected)},
                     {"actual", hex32(word.actual)},
                     {"xor", hex32(word.expected ^ word.actual)},
                     {"reread", hex32(word.reread)},
                     {"persistence", persistence(word)},
                     {"pattern", to_string(word.pattern)}});
    }
    out["memory"] = {{"bytes_tested", m.bytes_tested},
                     {"bad_words", m.bad_words},
                     {"bandwidth_bytes_per_second", m.bandwidth_bytes_per_second},
                     {"first_bad_words", bad},
                     {"flipped_bit_histogram", histogram_json(m.flipped_bits)},
                     {"retention",
                      {{"bytes", m.retention_bytes},
                       {"bad_words", m.retention_bad_words},
                       {"age_seconds", m.retention_age_seconds}}}};
  }
}

void from_json(const nlohmann::json& in, DeviceInfo& info) {
  info = DeviceInfo{};
  info.id = in.at("id").get<std::string>();
  info.backend = in.at("backend").get<std::string>();
  info.name = in.at("name").get<std::string>();
  info.vendor = in.at("vendor").get<std::string>();
  info.driver = in.at("driver").get<std::string>();
  info.device_type = in.at("device_type").get<std::string>();
  info.uuid = in.at("uuid").get<std::string>();
  info.pci_bus_id = in.at("pci_bus_id").get<std::string>();
  info.api_version = in.at("api_version").get<std::string>();
  info.memory_bytes = in.at("memory_bytes").get<std::uint64_t>();
  info.compute_units = in.at("compute_units").get<std::uint32_t>();
  info.kernel_build = in.at("kernel_build").get<std::string>();
  info.kernel_image = in.value("kernel_image", std::string());
  info.vbios_version = in.value("vbios_version", std::string());
  info.serial = in.value("serial", std::string());
  info.board_part_number = in.value("board_part_number", std::string());
  if (const auto mig = in.find("mig"); mig != in.end()) {
    info.mig_parent_uuid = mig->at("parent_uuid").get<std::string>();
    info.mig_gpu_instance = mig->at("gpu_instance").get<int>();
    info.mig_profile = mig->at("profile").get<std::string>();
    if (info.mig_gpu_instance < 0) {
      throw nlohmann::json::out_of_range::create(401, "mig gpu_instance must not be negative", &*mig);
    }
  }
}

void from_json(const nlohmann::json& in, ProbeResult& result) {
  result = ProbeResult{};
  result.device = in.at("device").get<DeviceInfo>();
  result.spec = in.at("spec").get<ProbeSpec>();
  result.kernel = in.at("kernel").get<std::string>();
  const auto status = parse_run_status(in.at("status").get<std::string>());
  if (!status) throw nlohmann::json::other_error::create(501, "unknown status", &in);
  result.status = *status;
  result.error = in.value("error", std::string());
  result.error_kind = parse_error_kind(in.value("error_kind", std::string("device_error")));
  if (result.status == RunStatus::skipped) {
    result.skip_reason = in.at("skip_reason").get<std::string>();
    const std::string kind = in.at("skip_kind").get<std::string>();
    const auto known = parse_skip_kind(kind);
    if (!known) throw nlohmann::json::other_error::create(501, "unknown skip_kind '" + kind + "'", &in);
    result.skip_kind = *known;
  }
  const nlohmann::json& c = in.at("check");
  CheckOutcome& check = result.check;
  check.pass = c.at("pass").get<bool>();
  check.checked = c.at("elements_checked").get<std::uint64_t>();
  check.mismatched = c.at("mismatched_elements").get<std::uint64_t>();
  check.max_abs_error = from_number(c.at("max_abs_error"));
  check.max_rel_error = from_number(c.at("max_rel_error"));
  check.budget_used = from_number(c.at("error_budget_used"));
  for (const auto& m : c.at("first_mismatches")) {
    check.first_mismatches.push_back({m.at("index").get<std::uint64_t>(), m.at("row").get<std::uint64_t>(),
                                      m.at("col").get<std::uint64_t>(), from_number(m.at("expected")),
                                      from_number(m.at("actual")), from_hex32(m.at("expected_bits")),
                                      from_hex32(m.at("actual_bits")), from_hex32(m.at("xor")),
                                      from_hex32(m.at("significant_xor")), from_number(m.at("bound"))});
  }
  histogram_from_json(c.at("flipped_bit_histogram"), check.flipped_bits);
  // Absent from results written before the guarantee was stated.
  check.guaranteed_bit = c.value("guaranteed_bit", 32);
  check.guaranteed_elements = c.value("guaranteed_elements", std::uint64_t{0});
  if (c.contains("mismatch_map")) {  // absent when nothing mismatched, and from results written before it existed
    const nlohmann::json& mj = c.at("mismatch_map");
    MismatchMap& map = check.mismatch_map;
    map.rows = mj.at("rows").get<std::uint64_t>();
    map.cols = mj.at("cols").get<std::uint64_t>();
    map.tile_rows = mj.at("tile_rows").get<std::uint64_t>();
    map.tile_cols = mj.at("tile_cols").get<std::uint64_t>();
    map.counts = mj.at("counts").get<std::vector<std::uint64_t>>();
    if (map.rows == 0 || map.cols == 0 || map.tile_rows == 0 || map.tile_cols == 0 ||
        map.grid_rows() > k_mismatch_map_side || map.grid_cols() > k_mismatch_map_side ||
        map.counts.size() != map.grid_rows() * map.grid_cols()) {
      throw nlohmann::json::out_of_range::create(
          401,
          "mismatch_map: counts must hold ceil(rows/tile_rows) x ceil(cols/tile_cols) tiles, at most 32 a side, "
          "none empty",
          &mj);
    }
  }
  result.fingerprint = in.at("fingerprint").get<std::string>();
  const nlohmann::json& t = in.at("timing");
  result.device_seconds = t.at("device_seconds").get<double>();
  result.generate_seconds = t.at("generate_seconds").get<double>();
  result.golden_seconds = t.at("golden_seconds").get<double>();
  result.wall_seconds = t.at("wall_seconds").get<double>();
  result.finished_at = in.at("finished_at").get<double>();
  if (in.contains("canary")) {
    const nlohmann::json& cj = in.at("canary");
    CanaryDetails canary;
    for (const auto& l : cj.at("layers")) {
      canary.layers.push_back({l.at("name").get<std::string>(), l.at("rows").get<std::uint32_t>(),
                               l.at("cols").get<std::uint32_t>(), l.at("mismatched").get<std::uint64_t>(),
                               from_number(l.at("max_abs_error")), from_number(l.at("error_budget_used")),
                               from_number(l.at("cosine"))});
    }
    const auto& diverging = cj.at("first_diverging_layer");
    canary.first_diverging_layer = diverging.is_null() ? std::string() : diverging.get<std::string>();
    canary.tokens = cj.at("tokens").get<std::uint32_t>();
    canary.argmax_agreeing_tokens = cj.at("argmax_agreeing_tokens").get<std::uint32_t>();
    canary.top5_agreeing_tokens = cj.at("top5_agreeing_tokens").get<std::uint32_t>();
    canary.input_tokens = cj.at("input_tokens").get<std::vector<std::uint32_t>>();
    result.canary = std::move(canary);
  }
  if (in.contains("memory")) {
    const nlohmann::json& mj = in.at("memory");
    MemoryDetails memory;
    memory.bytes_tested = mj.at("bytes_tested").get<std::uint64_t>();
    memory.bad_words = mj.at("bad_words").get<std::uint64_t>();
    memory.bandwidth_bytes_per_second = mj.at("bandwidth_bytes_per_second").get<double>();
    for (const auto& w : mj.at("first_bad_words")) {
      memory.first_bad.push_back({w.at("offset").get<std::uint64_t>(), from_hex32(w.at("expected")),
                                  from_hex32(w.at("actual")), from_hex32(w.at("reread")),
                                  parse_pattern(w.at("pattern").get<std::string>())});
    }
    histogram_from_json(mj.at("flipped_bit_histogram"), memory.flipped_bits);
    const nlohmann::json& r = mj.at("retention");
    memory.retention_bytes = r.at("bytes").get<std::uint64_t>();
    memory.retention_bad_words = r.at("bad_words").get<std::uint64_t>();
    memory.retention_age_seconds = r.at("age_seconds").get<double>();
    result.memory = std::move(memory);
  }
}

}  // namespace substrate
