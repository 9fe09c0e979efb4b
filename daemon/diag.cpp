#include "daemon/diag.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "daemon/checked_work.hpp"
#include "daemon/exit_code.hpp"
#include "probes/core/registry.hpp"

namespace substrate::diag {
namespace {

using json = nlohmann::json;

json optional_number(const std::optional<double>& value) { return value ? json(*value) : json(nullptr); }

bool failed(const ProbeResult& result) { return result.status == RunStatus::fail; }
bool could_not_run(const ProbeResult& result) {
  return result.status == RunStatus::error || result.status == RunStatus::hung || result.status == RunStatus::crashed;
}

// The largest power-of-two fraction of `size` (at least `floor`) whose device buffers take at
// most half of the device's memory: the rest is left to the memory probe and the driver.
template <typename Resize>
void fit_half_memory(const DeviceInfo& device, ProbeSpec& spec, std::uint32_t floor, Resize resize) {
  const ProbeDescriptor* descriptor = probe_registry().find(spec.probe);
  if (!descriptor || device.memory_bytes == 0) return;
  while (descriptor->memory_needs(spec, device).device_bytes > device.memory_bytes / 2 && resize(spec, floor)) {
  }
}

}  // namespace

Expected<int> parse_level(const std::string& text) {
  static const std::map<std::string, int> names = {{"1", 1},     {"2", 2},      {"3", 3},    {"4", 4},
                                                   {"quick", 1}, {"medium", 2}, {"long", 3}, {"extended", 4}};
  const auto it = names.find(text);
  if (it == names.end()) {
    return Error{ErrorKind::invalid_argument,
                 "--level must be 1, 2, 3, 4, quick, medium, long or extended, got '" + text + "'"};
  }
  return it->second;
}

double default_duration_seconds(int level) {
  switch (level) {
    case 1:
      return 0.0;
    case 2:
      return 120.0;
    case 3:
      return 900.0;
    default:
      return 3600.0;
  }
}

std::vector<ProbeSpec> level_specs(int level, const DeviceInfo& device) {
  std::vector<ProbeSpec> specs;
  if (level <= 1) {
    for (const ProbeDescriptor& d : probe_registry().all()) {
      if (!d.enabled_by_default || d.maturity != Maturity::stable) continue;
      for (ProbeSpec spec : d.default_specs(device)) specs.push_back(spec);
    }
    return specs;
  }
  const bool cpu = device.is_cpu();
  // GEMM: exact mode (bit-exact at every K, where random mode's bound goes blind past K ~ 2000),
  // every dtype (f16/bf16 take the tensor-core path on CUDA). A GPU: 4096 cubed at level 2, 8192
  // cubed at 3 and 4 (seconds of tensor-core work per pass; the CPU golden, computed once and
  // kept for the run, is the limit). lavapipe runs on the host's CPU, shared with everything
  // else there: 128 cubed keeps a whole pass well under a second, so a short --duration still
  // repeats.
  const std::uint32_t gemm = cpu ? 128 : level == 2 ? 4096 : 8192;
  for (Dtype dtype : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
    ProbeSpec spec;
    spec.probe = "gemm";
    spec.dtype = dtype;
    spec.mode = Mode::exact;
    spec.gemm = {gemm, gemm, gemm};
    fit_half_memory(device, spec, 256, [](ProbeSpec& s, std::uint32_t floor) {
      if (s.gemm.m / 2 < floor) return false;
      s.gemm = {s.gemm.m / 2, s.gemm.n / 2, s.gemm.k / 2};
      return true;
    });
    specs.push_back(spec);
  }
  // Attention: a GPU at 4x the probe's own sequence (2048 tokens, 16 heads of 128), lavapipe at
  // the probe's own 128 tokens; f32 and f16, causal: the masked softmax path inference uses.
  const std::uint32_t seq = cpu ? 128 : 2048;
  for (Dtype dtype : {Dtype::f32, Dtype::f16}) {
    ProbeSpec spec;
    spec.probe = "attention";
    spec.dtype = dtype;
    spec.mode = Mode::random;
    spec.attention = {seq, cpu ? 4u : 16u, cpu ? 64u : 128u, true};
    fit_half_memory(device, spec, 128, [](ProbeSpec& s, std::uint32_t floor) {
      if (s.attention.seq_len / 2 < floor) return false;
      s.attention.seq_len /= 2;
      return true;
    });
    specs.push_back(spec);
  }
  // Memory: 80% of the free memory the worker finds (level 4: 90%), no byte cap on a GPU; the
  // GEMM and attention buffers are freed between runs, so the share is of memory no workload
  // holds. lavapipe's "device memory" is the host's: 2%, at most 8 MiB (the probe's default).
  ProbeSpec memory;
  memory.probe = "memory";
  memory.mode = Mode::random;
  memory.memory =
      cpu ? MemoryShape{0.02, 8ull << 20, 4}
          : MemoryShape{level >= 4 ? 0.9 : 0.8, device.memory_bytes ? device.memory_bytes : 1ull << 40, 64ull << 20};
  specs.push_back(memory);
  return specs;
}

std::optional<double> throughput_of(const ProbeResult& result) {
  if (result.memory && result.memory->bandwidth_bytes_per_second > 0) return result.memory->bandwidth_bytes_per_second;
  const double flops = flops_of(result.spec);
  if (flops > 0 && result.device_seconds > 0) return flops / result.device_seconds;
  return std::nullopt;
}

TelemetrySample sample_of(const telemetry::Readings& readings, double t_seconds) {
  TelemetrySample sample;
  sample.t_seconds = t_seconds;
  // The GPU die's sensor where the source names one (NVML "gpu", amdgpu "edge"), else the first.
  for (const telemetry::TemperatureReading& t : readings.temperatures) {
    if (!sample.temperature_celsius || t.sensor == "gpu" || t.sensor == "edge") sample.temperature_celsius = t.celsius;
    if (t.sensor == "gpu" || t.sensor == "edge") break;
  }
  if (auto it = readings.clock_hertz.find("sm"); it != readings.clock_hertz.end()) sample.sm_clock_hertz = it->second;
  sample.power_watts = readings.power_watts;
  for (const auto& [reason, active] : readings.clock_event_reasons) {
    if (active) sample.throttle_reasons.push_back(reason);
  }
  for (const telemetry::EccCount& e : readings.ecc) {
    if (e.scope != "volatile" || e.location != "total") continue;
    (e.kind == "uncorrected" ? sample.ecc_uncorrected : sample.ecc_corrected) += e.count;
  }
  for (const telemetry::XidCount& x : readings.xids) sample.xid_events += x.count;
  return sample;
}

void DeviceRecord::add(ProbeResult result, std::size_t index, std::uint64_t iteration,
                       std::optional<bool> fingerprint_matches_first, double t_seconds, const TelemetrySample& newest) {
  mark_unrepeated_fingerprint(result, fingerprint_matches_first);
  if (iteration + 1 > iterations) iterations = iteration + 1;
  if (failed(result)) {
    ++fail_results;
    if (failed_pass_ != iteration) {
      failed_pass_ = iteration;
      ++failed_iterations;
    }
  }
  if (could_not_run(result)) ++error_results;
  if (failed(result) || result.status == RunStatus::pass) ++checked_results;
  TimelineEntry entry;
  entry.t_seconds = t_seconds;
  entry.probe = result.spec.probe;
  entry.spec_key = spec_key(result.spec);
  entry.iteration = iteration;
  entry.status = to_string(result.status);
  entry.throughput = result.status == RunStatus::pass || failed(result) ? throughput_of(result) : std::nullopt;
  entry.telemetry = newest;
  timeline.push_back(std::move(entry));
  // Kept: the first of each spec and every failing one for good, and the newest passing one of
  // each spec until a later pass replaces it (the last iteration's, at the end).
  const bool first = !seen_.count(index);
  const bool keep = first || failed(result) || could_not_run(result);
  seen_.insert(index);
  if (keep && !first && results.size() >= k_max_kept_results) {
    ++results_left_out;  // the timeline still has the iteration
    return;
  }
  if (keep) {
    results.push_back(std::move(result));
    return;
  }
  // Moved to the end, so `results` stays in the order the runs finished.
  if (const auto it = newest_.find(index); it != newest_.end()) {
    const std::size_t at = it->second;
    results.erase(results.begin() + static_cast<std::ptrdiff_t>(at));
    for (auto& [spec, position] : newest_) position -= position > at ? 1 : 0;
  }
  results.push_back(std::move(result));
  newest_[index] = results.size() - 1;
}

std::map<std::string, ThroughputSpread> throughput_spread(const DeviceRecord& record) {
  std::map<std::string, std::vector<double>> samples;
  for (const TimelineEntry& entry : record.timeline) {
    if (entry.status == "pass" && entry.throughput) samples[entry.spec_key].push_back(*entry.throughput);
  }
  std::map<std::string, ThroughputSpread> spreads;
  for (auto& [key, values] : samples) {
    std::sort(values.begin(), values.end());
    const std::size_t n = values.size();
    spreads[key] = {values.front(), n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2.0, values.back(),
                    n};
  }
  return spreads;
}

void compare_peers(std::vector<DeviceRecord>& records) {
  std::vector<std::map<std::string, double>> medians;
  for (const DeviceRecord& record : records) {
    std::map<std::string, double> median;
    for (const auto& [key, spread] : throughput_spread(record)) median[key] = spread.median;
    medians.push_back(std::move(median));
  }
  for (std::size_t i = 0; i < records.size(); ++i) {
    std::optional<double> share;
    for (const auto& [key, mine] : medians[i]) {
      double best = mine;
      bool peer = false;
      for (std::size_t j = 0; j < records.size(); ++j) {
        if (j == i || records[j].device.name != records[i].device.name ||
            records[j].device.backend != records[i].device.backend) {
          continue;
        }
        const auto theirs = medians[j].find(key);
        if (theirs == medians[j].end()) continue;
        peer = true;
        best = std::max(best, theirs->second);
      }
      if (peer && best > 0) share = std::min(share.value_or(1.0), mine / best);
    }
    records[i].peer_throughput_share = share;
  }
}

void decide_verdicts(std::vector<DeviceRecord>& records, double min_peer_share, bool interrupted) {
  for (DeviceRecord& record : records) {
    if (!record.refused.empty()) {
      record.verdict = "skipped";
    } else if (record.fail_results > 0 ||
               (record.peer_throughput_share && *record.peer_throughput_share < min_peer_share)) {
      record.verdict = "fail";
    } else if (record.checked_results == 0 && record.error_results == 0 && record.error.empty() &&
               !record.timeline.empty()) {
      record.verdict = "skipped";
    } else if (record.error_results > 0 || !record.error.empty() || record.timeline.empty() || interrupted) {
      record.verdict = "error";
    } else {
      record.verdict = "pass";
    }
  }
}

int exit_code_of(const std::vector<DeviceRecord>& records) {
  std::vector<Outcome> outcomes;
  for (const DeviceRecord& record : records) {
    outcomes.push_back(record.verdict == "pass"   ? Outcome::pass
                       : record.verdict == "fail" ? Outcome::fault
                                                  : Outcome::cannot_run);
  }
  return fold_exit_code(outcomes);
}

json to_json(const Summary& summary) {
  return {{"device", summary.device},
          {"level", summary.level},
          {"verdict", summary.verdict},
          {"reason", summary.reason},
          {"detail", summary.detail},
          {"started_at", summary.started_at},
          {"finished_at", summary.finished_at},
          {"iterations", summary.iterations},
          {"failed_iterations", summary.failed_iterations},
          {"interrupted", summary.interrupted}};
}

Expected<Summary> parse_summary(const json& in) {
  const auto bad = [](const std::string& why) { return Error{ErrorKind::invalid_argument, "diag summary: " + why}; };
  if (!in.is_object()) return bad("not an object");
  const auto field = [&](const char* name, auto check) -> const json* {
    const auto it = in.find(name);
    return it != in.end() && check(*it) ? &*it : nullptr;
  };
  const auto is_string = [](const json& j) { return j.is_string(); };
  const auto is_number = [](const json& j) { return j.is_number(); };
  const auto is_count = [](const json& j) { return j.is_number_unsigned(); };
  Summary summary;
  const json* device = field("device", is_string);
  if (!device || device->get<std::string>().empty()) return bad("'device' must be a non-empty string");
  summary.device = device->get<std::string>();
  const json* level = field("level", [](const json& j) { return j.is_number_integer(); });
  if (!level || *level < k_min_level || *level > k_max_level) return bad("'level' must be an integer from 1 to 4");
  summary.level = level->get<int>();
  const json* verdict = field("verdict", is_string);
  const std::set<std::string> verdicts = {"pass", "fail", "error", "skipped"};
  if (!verdict || !verdicts.count(verdict->get<std::string>()))
    return bad("'verdict' must be pass, fail, error or skipped");
  summary.verdict = verdict->get<std::string>();
  const json* reason = field("reason", is_string);
  const std::set<std::string> reasons = {"", "golden_mismatch", "fingerprint_change", "slowdown", "hardware_error"};
  if (!reason || !reasons.count(reason->get<std::string>()))
    return bad("'reason' must be golden_mismatch, fingerprint_change, slowdown, hardware_error or empty");
  summary.reason = reason->get<std::string>();
  if (summary.verdict == "fail" && summary.reason.empty()) return bad("a failed diag needs a 'reason'");
  const json* detail = field("detail", is_string);
  const json* started = field("started_at", is_number);
  const json* finished = field("finished_at", is_number);
  const json* iterations = field("iterations", is_count);
  const json* failed_iterations = field("failed_iterations", is_count);
  const json* interrupted = field("interrupted", [](const json& j) { return j.is_boolean(); });
  if (!detail) return bad("'detail' must be a string");
  if (!started || !finished) return bad("'started_at' and 'finished_at' must be numbers (unix seconds)");
  if (!iterations || !failed_iterations) return bad("'iterations' and 'failed_iterations' must be counts");
  if (!interrupted) return bad("'interrupted' must be true or false");
  summary.detail = detail->get<std::string>();
  summary.started_at = started->get<double>();
  summary.finished_at = finished->get<double>();
  summary.iterations = iterations->get<std::uint64_t>();
  summary.failed_iterations = failed_iterations->get<std::uint64_t>();
  summary.interrupted = interrupted->get<bool>();
  return summary;
}

std::vector<Summary> summaries(const Report& report) {
  std::vector<Summary> out;
  for (const DeviceRecord& record : report.devices) {
    if (!record.refused.empty()) continue;
    Summary summary;
    summary.device = record.device.uuid.empty() ? record.device.id : record.device.uuid;
    summary.level = report.level;
    summary.verdict = record.verdict;
    summary.started_at = report.started_at;
    summary.finished_at = report.finished_at;
    summary.iterations = record.iterations;
    summary.failed_iterations = record.failed_iterations;
    summary.interrupted = report.interrupted;
    if (record.verdict == "fail") {
      // The first failing result names what failed; without one, the peer share did.
      const auto failing = std::find_if(record.results.begin(), record.results.end(), failed);
      if (failing == record.results.end()) {
        summary.reason = "slowdown";
        summary.detail = "diag level " + std::to_string(report.level) + ": throughput " +
                         std::to_string(static_cast<int>(std::lround(record.peer_throughput_share.value_or(0) * 100))) +
                         "% of the best identical peer's";
      } else {
        // The verdict's reasons (daemon/baselines.cpp): bits that differ from the first
        // iteration's, the driver's own fault report (no check ran), or a failed check.
        const bool reported = failing->error_kind == ErrorKind::hardware_fault && !failing->error.empty();
        summary.reason = is_unrepeated_fingerprint(*failing) ? "fingerprint_change"
                         : reported                          ? "hardware_error"
                                                             : "golden_mismatch";
        summary.detail = "diag level " + std::to_string(report.level) + ": " + spec_key(failing->spec) + " failed in " +
                         std::to_string(record.failed_iterations) + " of " + std::to_string(record.iterations) +
                         " iteration(s)";
      }
    }
    out.push_back(std::move(summary));
  }
  return out;
}

json to_json(const Report& report) {
  json devices = json::array();
  for (const DeviceRecord& record : report.devices) {
    json timeline = json::array();
    for (const TimelineEntry& e : record.timeline) {
      timeline.push_back({{"t_seconds", e.t_seconds},
                          {"probe", e.probe},
                          {"spec_key", e.spec_key},
                          {"iteration", e.iteration},
                          {"status", e.status},
                          {"throughput", optional_number(e.throughput)},
                          {"temperature_celsius", optional_number(e.telemetry.temperature_celsius)},
                          {"sm_clock_hertz", optional_number(e.telemetry.sm_clock_hertz)},
                          {"power_watts", optional_number(e.telemetry.power_watts)},
                          {"throttle_reasons", e.telemetry.throttle_reasons}});
    }
    json samples = json::array();
    for (const TelemetrySample& s : record.telemetry) {
      samples.push_back({{"t_seconds", s.t_seconds},
                         {"temperature_celsius", optional_number(s.temperature_celsius)},
                         {"sm_clock_hertz", optional_number(s.sm_clock_hertz)},
                         {"power_watts", optional_number(s.power_watts)},
                         {"throttle_reasons", s.throttle_reasons},
                         {"ecc_corrected", s.ecc_corrected},
                         {"ecc_uncorrected", s.ecc_uncorrected},
                         {"xid_events", s.xid_events}});
    }
    json throughput = json::object(), spread = json::object();
    for (const auto& [key, s] : throughput_spread(record)) {
      throughput[key] = s.median;
      spread[key] = {{"min", s.min},
                     {"median", s.median},
                     {"max", s.max},
                     {"samples", s.samples},
                     {"min_over_median", s.median > 0 ? s.min / s.median : 0.0}};
    }
    json entry = {{"device", record.device},
                  {"verdict", record.verdict},
                  {"iterations", record.iterations},
                  {"failed_iterations", record.failed_iterations},
                  {"peer_throughput_share", optional_number(record.peer_throughput_share)},
                  {"median_throughput", throughput},
                  {"throughput_spread", spread},
                  {"results", record.results},
                  {"results_left_out", record.results_left_out},
                  {"timeline", timeline},
                  {"telemetry", samples},
                  {"telemetry_notes", record.telemetry_notes}};
    if (!record.refused.empty()) entry["refused"] = record.refused;
    if (!record.error.empty()) entry["error"] = record.error;
    devices.push_back(std::move(entry));
  }
  return {{"diag",
           {{"level", report.level},
            {"duration_seconds", report.duration_seconds},
            {"started_at", report.started_at},
            {"finished_at", report.finished_at},
            {"interrupted", report.interrupted},
            {"exit_code", exit_code_of(report.devices)},
            {"min_peer_throughput_share", report.min_peer_share},
            {"devices", devices}}}};
}

std::string render_text(const Report& report) {
  std::ostringstream out;
  out << "diag level " << report.level << (report.interrupted ? " (interrupted)" : "") << ", "
      << static_cast<long long>(std::lround(report.finished_at - report.started_at)) << " s\n";
  for (const DeviceRecord& record : report.devices) {
    out << record.device.id << "  " << record.verdict << "  " << record.iterations << " iteration(s), "
        << record.failed_iterations << " failed";
    if (record.peer_throughput_share)
      out << ", " << std::lround(*record.peer_throughput_share * 100) << "% of the best peer";
    out << "  " << record.device.name << "\n";
    if (!record.refused.empty()) out << "    not run: " << record.refused << "\n";
    if (!record.error.empty()) out << "    " << record.error << "\n";
    for (const std::string& note : record.telemetry_notes) out << "    telemetry: " << note << "\n";
    // Each failing spec once, at its first failure, with how often it failed and its replay.
    std::map<std::string, std::size_t> failures;
    for (const ProbeResult& result : record.results) {
      if (result.status != RunStatus::pass) ++failures[spec_key(result.spec)];
    }
    for (const ProbeResult& result : record.results) {
      const std::string key = spec_key(result.spec);
      const auto count = failures.find(key);
      if (result.status == RunStatus::pass || count == failures.end()) continue;
      out << "    " << key << ": " << to_string(result.status) << " in " << count->second << " iteration(s)";
      if (!result.error.empty()) out << ": " << result.error;
      if (!result.check.first_mismatches.empty()) {
        const Mismatch& m = result.check.first_mismatches.front();
        out << "; " << result.check.mismatched << " mismatching element(s), first at row " << m.row << ", col "
            << m.col;
      }
      out << "\n      replay: " << replay_command(result) << "\n";
      failures.erase(count);
    }
  }
  return out.str();
}

}  // namespace substrate::diag
