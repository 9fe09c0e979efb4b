#include "daemon/cli/diagnose_command.hpp"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "common/file_io.hpp"
#include "daemon/exit_code.hpp"
#include "daemon/external_worker.hpp"
#include "daemon/report.hpp"
#include "probes/core/registry.hpp"
#include "probes/diagnosis/dump.hpp"
#include "probes/diagnosis/npy.hpp"

namespace substrate {
namespace {

Error bad(const std::string& message) { return Error{ErrorKind::invalid_argument, message}; }

int fail(const std::string& message) {
  std::cerr << "substrated: " << message << "\n";
  return k_exit_cannot_run;
}

ReplayEntry entry_from(const nlohmann::json& doc) {
  ReplayEntry entry;
  const nlohmann::json& spec_json = doc.contains("spec") ? doc.at("spec") : doc;
  entry.spec = spec_json.get<ProbeSpec>();
  if (doc.contains("fingerprint") && doc.at("fingerprint").is_string()) entry.fingerprint = doc.at("fingerprint");
  if (doc.contains("device") && doc.at("device").is_object()) {
    const nlohmann::json& d = doc.at("device");
    entry.device_id = d.value("id", std::string());
    entry.device_uuid = d.value("uuid", std::string());
    entry.device_pci_bus_id = d.value("pci_bus_id", std::string());
    entry.device_name = d.value("name", std::string());
  }
  return entry;
}

// The stored run's device among the present ones: by UUID when it had one, else by id.
ComputeDevice* stored_device(const Discovery& found, const ReplayEntry& entry) {
  for (const DevicePtr& d : found.devices) {
    if (!entry.device_uuid.empty() ? d->info().uuid == entry.device_uuid : d->info().id == entry.device_id) {
      return d.get();
    }
  }
  return nullptr;
}

}  // namespace

const cli::po::options_description& diagnostic_options() {
  static const cli::po::options_description options = [] {
    cli::po::options_description d;
    d.add_options()("dump", cli::takes("DIR"),
                    "write inputs (regenerated on the CPU), device output, CPU golden (.npy) and the\n"
                    "result JSON per run to DIR/<device>/<spec>-seed<N>/ (runs in this process)")(
        "replay", cli::takes("FILE"),
        "re-run exactly the spec and seed (and injection) of a stored result JSON on its\n"
        "device, or on --device SEL (A/B the hardware); reports whether the fingerprint matches")(
        "no-inject", "with --replay: drop the stored injection");
    return d;
  }();
  return options;
}

Expected<DiagnosticOptions> diagnostic_options_from(const cli::CommandLine& line) {
  DiagnosticOptions options;
  options.dump_dir = line.last("dump");
  options.replay_file = line.last("replay");
  options.no_inject = line.has("no-inject");
  if (options.no_inject && !options.replay_file) return bad("--no-inject only applies to --replay");
  return options;
}

Expected<std::vector<ReplayEntry>> read_replay_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return bad("--replay " + path + ": is a directory (give its result.json)");
  auto text = read_file(path);
  if (!text) {
    const ReadFileError& failure = text.error();
    return bad("--replay: cannot read " + path + ": " +
               (failure.error_number != 0 ? std::strerror(failure.error_number) : failure.message));
  }
  std::vector<ReplayEntry> entries;
  try {
    const nlohmann::json doc = nlohmann::json::parse(*text);
    if (doc.is_object() && doc.contains("results")) {
      for (const nlohmann::json& result : doc.at("results")) entries.push_back(entry_from(result));
    } else {
      entries.push_back(entry_from(doc));
    }
  } catch (const nlohmann::json::exception& e) {
    return bad("--replay " + path + ": not a probe result: " + e.what());
  }
  if (entries.empty()) return bad("--replay " + path + ": holds no results");
  for (const ReplayEntry& e : entries) {
    if (!probe_registry().find(e.spec.probe)) return bad("--replay " + path + ": unknown probe '" + e.spec.probe + "'");
  }
  return entries;
}

int diagnostic_probe_command(const cli::CommandLine& line, const ProbeRequest& request, bool json,
                             const DiagnosticOptions& options) {
  auto discovered = discover_in_process(line.last("config"));
  if (!discovered) return fail(discovered.error().message);
  Discovery found = std::move(discovered.value());
  GoldenCache goldens;
  // (device, spec, replay entry index or -1)
  struct Planned {
    ComputeDevice* device;
    ProbeSpec spec;
    int replay_index;
  };
  std::vector<Planned> plan;
  std::vector<ReplayEntry> entries;
  if (options.replay_file) {
    for (const char* option : {"kernel", "mode", "dtype", "size", "seed", "inject"}) {
      if (line.has(option)) return fail(std::string("--replay takes spec and seed from the file; drop --") + option);
    }
    auto read = read_replay_file(*options.replay_file);
    if (!read) return fail(read.error().message);
    entries = std::move(read.value());
    const bool chosen = line.has("device");
    for (std::size_t i = 0; i < entries.size(); ++i) {
      ProbeSpec spec = entries[i].spec;
      if (options.no_inject) spec.inject = Injection{};
      bool any = false;
      if (!chosen) {
        ComputeDevice* device = stored_device(found, entries[i]);
        if (!device) {
          if (entries[i].device_id.empty() && entries[i].device_uuid.empty()) {
            return fail("--replay " + *options.replay_file + " names no device; choose one with --device");
          }
          return fail("the stored device " + entries[i].device_id +
                      (entries[i].device_uuid.empty() ? "" : " (uuid " + entries[i].device_uuid + ")") +
                      " is not present; choose one with --device");
        }
        plan.push_back({device, spec, static_cast<int>(i)});
        continue;
      }
      for (const DevicePtr& d : found.devices) {
        if (!device_matches(d->info(), request.device)) continue;
        plan.push_back({d.get(), spec, static_cast<int>(i)});
        any = true;
      }
      if (!any) {
        std::string message = "no device matches '" + request.device + "'";
        for (const std::string& note : found.backend_notes) message += "; " + note;
        return fail(message);
      }
    }
  } else {
    bool any = false;
    for (const DevicePtr& d : found.devices) {
      if (!device_matches(d->info(), request.device)) continue;
      any = true;
      auto specs = specs_for(request, d->info());
      if (!specs) return fail(specs.error().message);
      for (const ProbeSpec& spec : *specs) plan.push_back({d.get(), spec, -1});
    }
    if (!any) {
      std::string message = "no device matches '" + request.device + "'";
      for (const std::string& note : found.backend_notes) message += "; " + note;
      return fail(message);
    }
  }

  std::vector<ProbeResult> results;
  std::vector<std::string> dumps;
  nlohmann::json replays = nlohmann::json::array();
  std::string replay_text;
  bool nondeterministic = false;
  for (const Planned& p : plan) {
    p.device->set_timeout_seconds(request.timeout_seconds);
    ProbeResult result = run_probe(*p.device, p.spec, goldens, options.dump_dir.has_value());
    mark_external_outcome(*p.device, result);
    if (options.dump_dir) {
      auto dir = write_dump(*options.dump_dir, result);
      if (!dir) return fail("--dump: " + dir.error().message);
      dumps.push_back(*dir);
    }
    if (p.replay_index >= 0) {
      const ReplayEntry& stored = entries[static_cast<std::size_t>(p.replay_index)];
      const bool same_device =
          !stored.device_uuid.empty() ? stored.device_uuid == result.device.uuid : stored.device_id == result.device.id;
      const bool same_injection = stored.spec.inject.enabled == p.spec.inject.enabled;
      const bool comparable = !stored.fingerprint.empty() && !result.fingerprint.empty();
      const bool match = comparable && stored.fingerprint == result.fingerprint;
      // The same device, spec, seed and injection must reproduce its output bits exactly.
      if (comparable && !match && same_device && same_injection && result.status != RunStatus::error) {
        nondeterministic = true;
      }
      replays.push_back({{"source", *options.replay_file},
                         {"spec_key", spec_key(p.spec)},
                         {"seed", p.spec.seed},
                         {"stored_device", stored.device_id},
                         {"stored_device_uuid", stored.device_uuid},
                         {"device", result.device.id},
                         {"same_device", same_device},
                         {"injection_removed", options.no_inject && stored.spec.inject.enabled},
                         {"stored_fingerprint", stored.fingerprint},
                         {"fingerprint", result.fingerprint},
                         {"fingerprint_match", match}});
      replay_text +=
          "replay " + spec_key(p.spec) + " seed " + std::to_string(p.spec.seed) + " on " + result.device.id +
          (same_device ? " (the stored device)" : " (stored on " + stored.device_id + ")") + ": fingerprint " +
          (result.fingerprint.empty() ? "-" : result.fingerprint) + " vs stored " +
          (stored.fingerprint.empty() ? "-" : stored.fingerprint) + ": " +
          (!comparable ? "not comparable"
           : match     ? "IDENTICAL"
           : same_device && same_injection
               ? "DIFFERENT (same device, spec, seed and injection: nondeterminism)"
               : (same_injection ? "DIFFERENT (another device: compare the dumps)" : "DIFFERENT (injection removed)")) +
          "\n";
    }
    results.push_back(std::move(result));
  }

  if (json) {
    nlohmann::json doc = {{"results", results}};
    if (options.dump_dir) doc["dumps"] = dumps;
    if (options.replay_file) doc["replay"] = replays;
    std::cout << doc.dump(2) << "\n";
  } else {
    std::cout << render_results(results);
    if (!replay_text.empty()) std::cout << "\n" << replay_text;
    if (!dumps.empty()) {
      std::cout << "\ndumps (inputs regenerated on the CPU; output as read back from the device):\n";
      for (const std::string& d : dumps) std::cout << "  " << d << "\n";
    }
  }
  std::vector<Outcome> outcomes;
  for (const ProbeResult& r : results) outcomes.push_back(outcome_of(r.status));
  if (nondeterministic) outcomes.push_back(Outcome::fault);
  return fold_exit_code(outcomes);
}

}  // namespace substrate
