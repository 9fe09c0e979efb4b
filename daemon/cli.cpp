#include "daemon/cli.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>

#include <nlohmann/json.hpp>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "daemon/config.hpp"
#include "daemon/control_socket.hpp"
#include "daemon/diagnose_command.hpp"
#include "daemon/probe_command.hpp"
#include "daemon/report.hpp"
#include "daemon/service.hpp"
#include "probes/telemetry/join.hpp"
#include "probes/telemetry/reader.hpp"
#include "probes/registry.hpp"

namespace substrate::cli {
namespace {

constexpr const char* k_usage =
    "usage: substrated <command> [options]\n"
    "\n"
    "commands:\n"
    "  devices            list every compute device with backend, driver, UUID and PCI bus id\n"
    "  probe              run the reference kernels on devices and check them (exit 0 pass, 1 fault, 2 cannot run)\n"
    "  serve              run the daemon: scheduled probes, /metrics, control socket (systemd notify)\n"
    "  status             print the running daemon's verdicts\n"
    "  compare A [B]      compare tensor dumps or .npy files: cosine, errors, argmax, mismatch pattern\n"
    "  config check FILE  validate a configuration file (exit 0 valid, 1 invalid)\n"
    "  help               this text; `substrated <command> --help` for a command\n";

constexpr const char* k_probe_usage =
    "usage: substrated probe [--device SEL] [--kernel ID[,ID]] [--mode exact|random] [--dtype f32|f16|bf16]\n"
    "                        [--size SIZE] [--seed N] [--inject SPEC] [--timeout S] [--json] [--list]\n"
    "\n"
    "  --device SEL   device id (vulkan0), UUID or PCI bus id; default all\n"
    "  --kernel ID    probe ids from --list; default every stable probe enabled by default\n"
    "  --mode M       exact: integer inputs, bit-exact check; random: full mantissas, derived bound\n"
    "  --dtype T      input storage type (accumulation is fp32)\n"
    "  --size SIZE    gemm MxNxK or N; attention SEQxHEADSxDIM; memory bytes (64M, 1G); needs one --kernel\n"
    "  --seed N       generator seed (default 1); printed with every result so it replays\n"
    "  --inject SPEC  drill: the kernel flips bits of one output element before writing it:\n"
    "                 bit=B[,bit=B2][,row=R,col=C | ,element=N][,transient]\n"
    "  --timeout S    seconds before a kernel counts as hung (default 120)\n"
    "  --json         one JSON document with every result (schema: docs/probe-result.md)\n"
    "  --list         list the registered probes\n"
    "  --local        run in this process even when a daemon is running\n"
    "  --dump DIR     write inputs (regenerated on the CPU), device output, CPU golden (.npy) and the\n"
    "                 result JSON per run to DIR/<device>/<spec>-seed<N>/ (runs in this process)\n"
    "  --replay FILE  re-run exactly the spec and seed (and injection) of a stored result JSON on its\n"
    "                 device, or on --device SEL (A/B the hardware); reports whether the fingerprint matches\n"
    "  --no-inject    with --replay: drop the stored injection\n"
    "  --socket PATH  the daemon's control socket (default $SUBSTRATED_SOCKET or /run/substrated/control.sock)\n"
    "  --npd          node-problem-detector plugin: answer from the daemon's verdicts within 3 s;\n"
    "                 exit 0 healthy, 1 a device failed or hung, 2 unknown; one short line\n"
    "\n"
    "exit: 0 every check passed (probes a device does not implement are skipped, not failed),\n"
    "      1 a check found a fault, 2 could not run\n";

constexpr const char* k_devices_usage =
    "usage: substrated devices [--json] [--path.sysfs DIR]\n"
    "  every compute device, the telemetry sources joined to it (NVML, amdgpu, hwmon, accel), and notes\n"
    "  on absent backends; DIR replaces /sys for the sysfs readers\n";
constexpr const char* k_serve_usage =
    "usage: substrated serve [--config FILE]\n"
    "  FILE defaults to /etc/substrated/substrated.yaml; an invalid file exits 78 (EX_CONFIG).\n"
    "  SIGHUP reloads the file; SIGTERM/SIGINT stop after the running probe (bounded) and save state.\n";
constexpr const char* k_status_usage = "usage: substrated status [--socket PATH] [--json]\n";
constexpr const char* k_config_usage = "usage: substrated config check FILE\n";
constexpr const char* k_default_config = "/etc/substrated/substrated.yaml";

bool has(const std::vector<std::string>& flags, const std::string& flag) {
  return std::find(flags.begin(), flags.end(), flag) != flags.end();
}

int fail(const std::string& message) {
  std::cerr << "substrated: " << message << "\n";
  return k_exit_cannot_run;
}

int list_probes() {
  std::cout << "ID         MATURITY DEFAULT TIMEOUT_S KERNELS             DESCRIPTION\n";
  for (const ProbeDescriptor& d : probe_registry().all()) {
    std::string kernels;
    for (const std::string& k : d.kernels) kernels += (kernels.empty() ? "" : ",") + k;
    char line[512];
    std::snprintf(line, sizeof line, "%-10s %-8s %-7s %-9.0f %-19s %s\n", d.id.c_str(), to_string(d.maturity),
                  d.enabled_by_default ? "yes" : "no", d.default_timeout_seconds, kernels.c_str(), d.description.c_str());
    std::cout << line;
  }
  return k_exit_ok;
}

int devices_command(const std::vector<std::string>& args) {
  std::string sysfs_root = "/sys";
  bool json = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") {
      std::cout << k_devices_usage;
      return k_exit_ok;
    }
    if (args[i] == "--json") {
      json = true;
    } else if (args[i] == "--path.sysfs" && i + 1 < args.size()) {
      sysfs_root = args[++i];
    } else {
      return fail("devices: unknown option '" + args[i] + "'\n" + k_devices_usage);
    }
  }
  Discovery found = discover_devices();
  std::vector<DeviceInfo> infos;
  for (const DevicePtr& device : found.devices) infos.push_back(device->info());
  telemetry::TelemetryOptions options;
  options.sysfs_root = sysfs_root;
  const telemetry::Snapshot joined = telemetry::join_devices(telemetry::TelemetryReader(options).read(), infos);
  std::map<std::string, std::vector<std::string>> sources;
  for (const DeviceInfo& info : infos) sources[info.id] = telemetry::telemetry_sources(joined, info.id);
  std::vector<std::string> notes = found.backend_notes;
  notes.insert(notes.end(), joined.notes.begin(), joined.notes.end());
  if (json) {
    nlohmann::json devices = nlohmann::json::array();
    for (const DeviceInfo& info : infos) {
      nlohmann::json entry = info;
      entry["telemetry_sources"] = sources[info.id];
      devices.push_back(entry);
    }
    std::cout << nlohmann::json{{"devices", devices}, {"notes", notes}}.dump(2) << "\n";
  } else {
    std::cout << render_devices(infos, sources, notes);
  }
  return k_exit_ok;
}

std::string default_socket() {
  const char* env = std::getenv("SUBSTRATED_SOCKET");
  return env && *env ? env : "/run/substrated/control.sock";
}

// Removes "--socket PATH" from args; returns the socket path to use.
std::string take_socket(std::vector<std::string>& args) {
  std::string socket = default_socket();
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] != "--socket") continue;
    if (i + 1 < args.size()) socket = args[i + 1];
    args.erase(args.begin() + i, args.begin() + std::min(args.size(), i + 2));
    break;
  }
  return socket;
}

int print_daemon_probe(const nlohmann::json& reply, bool json) {
  if (!reply.value("ok", false)) {
    std::cerr << "substrated: daemon: " << reply.value("error", std::string("unknown error")) << "\n";
    return reply.value("exit_code", k_exit_cannot_run);
  }
  if (json) {
    std::cout << nlohmann::json{{"results", reply.at("results")}}.dump(2) << "\n";
  } else {
    std::cout << reply.value("text", std::string()) << "(run by the substrated daemon)\n";
  }
  return reply.value("exit_code", k_exit_cannot_run);
}

// node-problem-detector: answer from cached verdicts, never run kernels (plugin timeout 5 s).
int npd_check(const std::string& socket) {
  auto reply = control_request(socket, {{"command", "status"}}, 3.0);
  if (!reply || !reply->value("ok", false)) {
    std::cout << "substrated unreachable: verdict unknown\n";
    return k_exit_cannot_run;
  }
  std::vector<std::string> bad, unknown;
  int known = 0;
  for (const auto& device : reply->at("status").at("devices")) {
    const std::string id = device.at("device").at("id").get<std::string>();
    const std::string health = device.at("health").get<std::string>();
    if (health == "failed" || health == "hung") {
      std::string why = device.at("reasons").empty() ? "" : ": " + device.at("reasons").at(0).get<std::string>();
      bad.push_back(id + " " + health + why);
    }
    if (health == "unknown") unknown.push_back(id);
    if (health != "unknown") ++known;
  }
  if (!bad.empty()) {
    std::string line;
    for (const std::string& b : bad) line += (line.empty() ? "" : "; ") + b;
    std::cout << line.substr(0, 78) << "\n";
    return k_exit_fault;
  }
  if (!unknown.empty() || known == 0) {
    std::cout << (unknown.empty() ? std::string("no devices") : unknown.front() + " not probed yet") << ": verdict unknown\n";
    return k_exit_cannot_run;
  }
  std::cout << "all " << known << " device(s) trustworthy\n";
  return k_exit_ok;
}

int probe_command(std::vector<std::string> args) {
  const std::string socket = take_socket(args);
  auto diagnostic = take_diagnostic_options(args);
  if (!diagnostic) return fail(diagnostic.error().message);
  std::vector<std::string> daemon_args;
  for (const std::string& a : args) {
    if (a != "--json" && a != "--local") daemon_args.push_back(a);
  }
  std::vector<std::string> flags;
  auto request = parse_probe_request(args, flags);
  if (has(flags, "--help") || has(flags, "-h")) {
    std::cout << k_probe_usage;
    return k_exit_ok;
  }
  if (!request) return fail(request.error().message);
  for (const std::string& flag : flags) {
    if (flag != "--json" && flag != "--list" && flag != "--local" && flag != "--npd") {
      return fail("probe: unknown option '" + flag + "'");
    }
  }
  if (has(flags, "--list")) return list_probes();
  if (has(flags, "--npd")) return npd_check(socket);
  if (diagnostic->active()) return diagnostic_probe_command(args, *request, has(flags, "--json"), *diagnostic);
  if (!has(flags, "--local")) {
    // The daemon schedules the run on its own workers, so the CLI never fights it for the device.
    auto reply = control_request(socket, {{"command", "probe"}, {"args", daemon_args}}, request->timeout_seconds * 4 + 30);
    if (reply) return print_daemon_probe(*reply, has(flags, "--json"));
    if (reply.error().kind != ErrorKind::unavailable) return fail(reply.error().message);
  }

  Discovery found = discover_devices();
  std::vector<ProbeResult> results;
  GoldenCache goldens;
  bool any_device = false;
  for (const DevicePtr& device : found.devices) {
    if (!device_matches(device->info(), request->device)) continue;
    any_device = true;
    auto specs = specs_for(*request, device->info());
    if (!specs) return fail(specs.error().message);
    device->set_timeout_seconds(request->timeout_seconds);
    for (const ProbeSpec& spec : *specs) results.push_back(run_probe(*device, spec, goldens));
  }
  if (!any_device) {
    std::string message = "no device matches '" + request->device + "'";
    for (const std::string& note : found.backend_notes) message += "; " + note;
    return fail(message);
  }
  if (has(flags, "--json")) {
    std::cout << nlohmann::json{{"results", results}}.dump(2) << "\n";
  } else {
    std::cout << render_results(results);
  }
  bool fault = false, error = false;
  for (const ProbeResult& r : results) {
    fault = fault || r.status == RunStatus::fail;
    error = error || r.status == RunStatus::error;
  }
  return fault ? k_exit_fault : (error ? k_exit_cannot_run : k_exit_ok);
}

int serve_command(const std::vector<std::string>& args) {
  ServeOptions options;
  options.config_path = k_default_config;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") {
      std::cout << k_serve_usage;
      return k_exit_ok;
    }
    if (args[i] == "--config" && i + 1 < args.size()) {
      options.config_path = args[++i];
      continue;
    }
    return fail("serve: unexpected argument '" + args[i] + "'\n" + k_serve_usage);
  }
  return serve(std::move(options));
}

int status_command(std::vector<std::string> args) {
  const std::string socket = take_socket(args);
  for (const std::string& arg : args) {
    if (arg == "--help" || arg == "-h") {
      std::cout << k_status_usage;
      return k_exit_ok;
    }
    if (arg != "--json") return fail("status: unknown option '" + arg + "'");
  }
  auto reply = control_request(socket, {{"command", "status"}}, 10.0);
  if (!reply) return fail(reply.error().message);
  if (!reply->value("ok", false)) return fail("daemon: " + reply->value("error", std::string("unknown error")));
  const nlohmann::json& status = reply->at("status");
  if (has(args, "--json")) {
    std::cout << status.dump(2) << "\n";
    return k_exit_ok;
  }
  for (const auto& device : status.at("devices")) {
    std::cout << device.at("device").at("id").get<std::string>() << "  " << device.at("health").get<std::string>()
              << "  " << device.at("device").at("name").get<std::string>() << "\n";
    for (const auto& reason : device.at("reasons")) std::cout << "    " << reason.get<std::string>() << "\n";
    for (const auto& change : device.value("device_changes", nlohmann::json::array())) {
      std::cout << "    changed since the last run:";
      if (change.value("new_device", false)) std::cout << " new device in this slot (was uuid " << change.value("replaced_uuid", std::string()) << ")";
      for (const auto& field : change.at("changed")) {
        std::cout << " " << field.at("field").get<std::string>() << " '" << field.at("before").get<std::string>() << "' -> '"
                  << field.at("after").get<std::string>() << "'";
      }
      std::cout << (change.value("reset_baselines", false) ? "; baselines reset" : "") << "\n";
    }
    for (const auto& [probe, info] : device.at("probes").items()) {
      std::cout << "    " << probe << ": " << info.at("runs").get<std::uint64_t>() << " run(s)"
                << (info.at("drill").get<bool>() ? ", DRILL configured" : "") << "\n";
    }
  }
  if (!status.at("config_last_reload_successful").get<bool>()) std::cout << "warning: the last config reload failed\n";
  return k_exit_ok;
}

int config_command(const std::vector<std::string>& args) {
  if (args.size() != 2 || args[0] != "check") {
    if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
      std::cout << k_config_usage;
      return k_exit_ok;
    }
    return fail(std::string("config: expected 'check FILE'\n") + k_config_usage);
  }
  auto config = load_config(args[1]);
  if (!config) {
    std::cerr << config.error().message << "\n";
    return k_exit_fault;
  }
  std::cout << args[1] << ": valid\n";
  return k_exit_ok;
}

}  // namespace

int run(const std::vector<std::string>& args) {
  // Stdout carries results (tables, JSON); log lines go to stderr, warnings and up outside serve.
  if (!spdlog::get("cli")) {
    spdlog::set_default_logger(spdlog::stderr_color_mt("cli"));
    spdlog::set_level(spdlog::level::warn);
  }
  if (args.empty()) {
    std::cerr << k_usage;
    return k_exit_cannot_run;
  }
  const std::string& command = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (command == "help" || command == "--help" || command == "-h") {
    std::cout << k_usage;
    return k_exit_ok;
  }
  if (command == "--version") {
    std::cout << "substrated " << SUBSTRATE_VERSION << "\n";
    return k_exit_ok;
  }
  if (command == "devices") return devices_command(rest);
  if (command == "probe") return probe_command(rest);
  if (command == "serve") return serve_command(rest);
  if (command == "status") return status_command(rest);
  if (command == "config") return config_command(rest);
  if (command == "compare") return compare_command(rest);
  return fail("unknown command '" + command + "'\n" + k_usage);
}

}  // namespace substrate::cli
