#include "daemon/report.hpp"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "probes/core/registry.hpp"

namespace substrate {
namespace {

std::string format(const char* pattern, double value) {
  char text[64];
  std::snprintf(text, sizeof text, pattern, value);
  return text;
}

std::string bits_list(std::uint32_t mask) {
  std::string out;
  for (int bit = 31; bit >= 0; --bit) {
    if (mask & (1u << bit)) out += (out.empty() ? "" : ",") + std::to_string(bit);
  }
  return out;
}

// Random mode: the flipped bits a deviation within the bound cannot explain, when they differ.
std::string beyond_rounding(const Mismatch& m) {
  if (m.significant_xor_bits == m.xor_bits) return "";
  return " (beyond rounding: " + (m.significant_xor_bits ? bits_list(m.significant_xor_bits) : "none") + ")";
}

// Runs checked within a derived bound: random mode of a probe with modes (not memory's patterns).
bool has_error_budget(const ProbeSpec& spec) {
  const ProbeDescriptor* probe = probe_registry().find(spec.probe);
  return probe && !probe->modes.empty() && spec.mode == Mode::random;
}

// What the golden check can see (docs/error-bounds.md): "bit B, S%" when a flip of bit B or higher
// is guaranteed detected at share S of the elements, "none" when nowhere, "-" when nothing was checked.
std::string guarantee(const ProbeResult& r) {
  if ((r.status != RunStatus::pass && r.status != RunStatus::fail) || r.check.checked == 0) return "-";
  if (r.check.guaranteed_bit > 31 || r.check.guaranteed_elements == 0) return "none";
  const double share = 100.0 * static_cast<double>(r.check.guaranteed_elements) / static_cast<double>(r.check.checked);
  // Never round a partial share up to 100%.
  const std::string percent =
      r.check.guaranteed_elements == r.check.checked ? "100" : format("%.1f", std::min(share, 99.9));
  return "bit " + std::to_string(r.check.guaranteed_bit) + ", " + percent + "%";
}

std::string pad(const std::string& text, std::size_t width) {
  return text.size() >= width ? text + " " : text + std::string(width - text.size(), ' ');
}

}  // namespace

std::string render_results(const std::vector<ProbeResult>& results) {
  std::ostringstream out;
  out << pad("DEVICE", 10) << pad("SPEC", 34) << pad("SEED", 6) << pad("STATUS", 7) << pad("MISMATCH", 9)
      << pad("BUDGET", 10) << pad("GUARANTEED", 15) << pad("FINGERPRINT", 17) << pad("DEVICE_MS", 10) << "WALL_MS\n";
  for (const ProbeResult& r : results) {
    std::string status = to_string(r.status);
    if (r.drill()) status += "*";
    out << pad(r.device.id, 10) << pad(spec_key(r.spec), 34) << pad(std::to_string(r.spec.seed), 6) << pad(status, 7)
        << pad(std::to_string(r.check.mismatched), 9)
        << pad(has_error_budget(r.spec) ? format("%.2e", r.check.budget_used) : "-", 10) << pad(guarantee(r), 15)
        << pad(r.fingerprint.empty() ? "-" : r.fingerprint, 17) << pad(format("%.2f", r.device_seconds * 1e3), 10)
        << format("%.1f", r.wall_seconds * 1e3) << "\n";
  }
  bool drill = false;
  for (const ProbeResult& r : results) {
    drill = drill || r.drill();
    if (r.status == RunStatus::error || r.status == RunStatus::hung || r.status == RunStatus::crashed) {
      out << "\n"
          << r.device.id << " " << spec_key(r.spec) << ": "
          << (r.status == RunStatus::error ? "could not run" : to_string(r.status)) << ": " << r.error << "\n";
      continue;
    }
    if (r.status == RunStatus::skipped) {
      out << "\n" << r.device.id << " " << spec_key(r.spec) << ": skipped: " << r.skip_reason << "\n";
      continue;
    }
    if (r.status != RunStatus::fail) continue;
    out << "\n"
        << r.device.id << " " << spec_key(r.spec) << " seed " << r.spec.seed << " FAILED"
        << (r.drill() ? " (DRILL: injected fault)" : "") << ": " << r.check.mismatched << " of " << r.check.checked
        << " elements wrong\n";
    for (const Mismatch& m : r.check.first_mismatches) {
      char line[384];
      std::snprintf(
          line, sizeof line,
          "  element %llu (row %llu, col %llu): expected %.9g [0x%08x] got %.9g [0x%08x] xor 0x%08x bits %s%s\n",
          static_cast<unsigned long long>(m.index), static_cast<unsigned long long>(m.row),
          static_cast<unsigned long long>(m.col), m.expected, m.expected_bits, m.actual, m.actual_bits, m.xor_bits,
          bits_list(m.xor_bits).c_str(), beyond_rounding(m).c_str());
      out << line;
    }
    if (r.memory && r.status != RunStatus::error) {
      for (const BadWord& bad : r.memory->first_bad) {
        char line[256];
        std::snprintf(line, sizeof line,
                      "  offset 0x%llx (%s): expected 0x%08x got 0x%08x xor 0x%08x bits %s, re-read 0x%08x: %s\n",
                      static_cast<unsigned long long>(bad.offset), to_string(bad.pattern), bad.expected, bad.actual,
                      bad.expected ^ bad.actual, bits_list(bad.expected ^ bad.actual).c_str(), bad.reread,
                      persistence(bad));
        out << line;
      }
    }
    out << "  flipped bits:";
    for (int bit = 31; bit >= 0; --bit) {
      if (r.check.flipped_bits[bit]) out << " " << bit << "x" << r.check.flipped_bits[bit];
    }
    out << "\n  replay: " << replay_command(r) << "\n";
  }
  for (const ProbeResult& r : results) {
    if (r.memory && r.status != RunStatus::error) {
      out << "\n"
          << r.device.id << " memory: " << r.memory->bytes_tested << " bytes, "
          << format("%.2f", r.memory->bandwidth_bytes_per_second / 1e9) << " GB/s (read+written), retention block "
          << r.memory->retention_bytes << " bytes aged " << format("%.1f", r.memory->retention_age_seconds) << " s\n";
    }
  }
  for (const ProbeResult& r : results) {
    if (!r.canary || r.status == RunStatus::error) continue;
    const CanaryDetails& c = *r.canary;
    out << "\n" << r.device.id << " canary per layer (" << spec_key(r.spec) << " seed " << r.spec.seed << "):\n";
    for (const CanaryLayerReport& l : c.layers) {
      char line[256];
      std::snprintf(line, sizeof line, "  %-18s %4ux%-5u mismatched %-6llu cosine %.9f max_err %.3e budget %.2e\n",
                    l.name.c_str(), l.rows, l.cols, static_cast<unsigned long long>(l.mismatched), l.cosine,
                    l.max_abs_error, l.budget_used);
      out << line;
    }
    out << "  next-token argmax agrees on " << c.argmax_agreeing_tokens << "/" << c.tokens
        << " tokens (top-5: " << c.top5_agreeing_tokens << "/" << c.tokens << ")";
    if (c.first_diverging_layer.empty()) {
      out << "; every layer within its bound\n";
    } else {
      out << "; first diverging layer: " << c.first_diverging_layer
          << (c.argmax_agreeing_tokens == c.tokens ? " (logits off but tokens still agree)" : " (tokens diverge)")
          << "\n";
    }
  }
  if (drill) out << "\n* DRILL: a fault was injected on purpose (--inject); the failure above is expected.\n";
  return out.str();
}

std::string render_devices(const std::vector<DeviceInfo>& devices,
                           const std::map<std::string, std::vector<std::string>>& telemetry_sources,
                           const std::vector<std::string>& notes) {
  std::ostringstream out;
  for (const DeviceInfo& d : devices) {
    out << d.id << "\n"
        << "  backend:     " << d.backend << " " << d.api_version << "\n"
        << "  name:        " << d.name << "\n"
        << "  vendor:      " << d.vendor << "\n"
        << "  driver:      " << d.driver << "\n"
        << "  type:        " << d.device_type << "\n"
        << "  uuid:        " << (d.uuid.empty() ? "-" : d.uuid) << "\n"
        << "  pci bus id:  " << (d.pci_bus_id.empty() ? "-" : d.pci_bus_id) << "\n"
        << "  memory:      " << d.memory_bytes << " bytes\n"
        << "  kernels:     " << d.kernel_build << (d.kernel_image.empty() ? "" : " (" + d.kernel_image + ")") << "\n";
    std::string sources;
    if (auto it = telemetry_sources.find(d.id); it != telemetry_sources.end()) {
      for (const std::string& source : it->second) sources += (sources.empty() ? "" : ", ") + source;
    }
    out << "  telemetry:   " << (sources.empty() ? "none joined" : sources) << "\n";
  }
  if (devices.empty()) out << "no compute devices found\n";
  for (const std::string& note : notes) out << "note: " << note << "\n";
  return out.str();
}

}  // namespace substrate
