#include "daemon/cli/cli.hpp"

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "daemon/cli/diag_command.hpp"
#include "daemon/cli/diagnose_command.hpp"
#include "daemon/cli/report_command.hpp"
#include "daemon/command_line.hpp"
#include "daemon/config.hpp"
#include "daemon/control_socket.hpp"
#include "daemon/external_worker.hpp"
#include "daemon/probe_command.hpp"
#include "daemon/report.hpp"
#include "daemon/service.hpp"
#include "daemon/telemetry_reader.hpp"
#include "daemon/web_config.hpp"
#include "probes/core/registry.hpp"
#include "probes/telemetry/join.hpp"

namespace substrate::cli {
namespace {

constexpr const char* k_usage =
    "usage: substrated <command> [options]\n"
    "\n"
    "commands:\n"
    "  devices            list every compute device with backend, driver, UUID and PCI bus id\n"
    "  probe              run the reference kernels on devices and check them (exit 0 pass, 1 fault, 2 cannot run)\n"
    "  diag               deep check under load: --level 1|2|3|4, telemetry, peer comparison (exit 0/1/2)\n"
    "  serve              run the daemon: scheduled probes, /metrics, control socket (systemd notify)\n"
    "  status             print the running daemon's verdicts\n"
    "  compare A [B]      compare tensor dumps or .npy files: cosine, errors, argmax, mismatch pattern\n"
    "  report IN -o FILE  the HTML report of a diag or probe --json run: timelines, heatmaps, replay commands\n"
    "  config check FILE  validate a configuration file (exit 0 valid, 1 invalid)\n"
    "  version            print the version (also --version)\n"
    "  help               this text (also --help); `substrated <command> --help` for a command\n";
constexpr const char* k_default_config = "/etc/substrated/substrated.yaml";

const po::options_description& help_option() {
  static const po::options_description options = [] {
    po::options_description d;
    d.add_options()("help,h", "this text");
    return d;
  }();
  return options;
}

const po::options_description& socket_option() {
  static const po::options_description options = [] {
    po::options_description d;
    d.add_options()("socket", takes("PATH"),
                    "the daemon's control socket (default $SUBSTRATED_SOCKET or /run/substrated/control.sock)");
    return d;
  }();
  return options;
}

// `probe` takes the request options, the diagnosis options and these.
const po::options_description& probe_options() {
  static const po::options_description options = [] {
    po::options_description own;
    own.add_options()("json", "one JSON document with every result (schema: docs/probe-result.md)")(
        "list", "list the registered probes")("local", "run in this process even when a daemon is running")(
        "config", takes("FILE"),
        "without a daemon (and with --dump, --replay): also probe the external workers\nthis config names "
        "(docs/external-workers.md)");
    po::options_description npd;
    npd.add_options()("npd",
                      "node-problem-detector plugin: answer from the daemon's verdicts within 3 s;\n"
                      "exit 0 healthy, 1 a device failed or hung, 2 unknown; one short line");
    po::options_description d;
    d.add(probe_request_options()).add(own).add(diagnostic_options()).add(socket_option()).add(npd).add(help_option());
    return d;
  }();
  return options;
}

std::string probe_usage() {
  return "usage: substrated probe [--device SEL] [--kernel ID[,ID]] [--mode exact|random] [--dtype f32|f16|bf16]\n"
         "                        [--size SIZE] [--seed N] [--inject SPEC] [--timeout S] [--json] [--list]\n"
         "\n" +
         render_options(probe_options(), 17) +
         "\n"
         "Options take their value as --name VALUE or --name=VALUE.\n"
         "exit: 0 every check passed (probes a device does not implement are skipped, not failed),\n"
         "      1 a check found a fault, 2 could not run\n";
}

const po::options_description& devices_options() {
  static const po::options_description options = [] {
    po::options_description d;
    d.add_options()("json", "one JSON document")("path.sysfs", takes("DIR"), "replaces /sys for the sysfs readers");
    d.add(help_option());
    return d;
  }();
  return options;
}

std::string devices_usage() {
  return "usage: substrated devices [--json] [--path.sysfs DIR]\n"
         "  every compute device, the telemetry sources joined to it (NVML, amdgpu, hwmon, accel), and notes\n"
         "  on absent backends\n"
         "\n" +
         render_options(devices_options(), 20);
}

const po::options_description& serve_options() {
  static const po::options_description options = [] {
    po::options_description d;
    d.add_options()("config", takes("FILE"), "the configuration (default /etc/substrated/substrated.yaml)")(
        "web.config.file", takes("FILE"),
        "TLS and basic auth in the exporter-toolkit format (overrides listen.web_config_file)")(
        "web.listen-address", takes("HOST:PORT"), "address to serve /metrics on (overrides listen.address and port)")(
        "log.format", takes("FORMAT"),
        "human (default; the journal with priorities and fields under systemd), logfmt or json, with timestamps");
    d.add(help_option());
    return d;
  }();
  return options;
}

std::string serve_usage() {
  return "usage: substrated serve [--config FILE] [--web.config.file FILE] [--web.listen-address HOST:PORT]\n"
         "                       [--log.format human|logfmt|json]\n"
         "  FILE defaults to /etc/substrated/substrated.yaml; an invalid file exits 78 (EX_CONFIG).\n"
         "  SIGHUP reloads the file; SIGTERM/SIGINT stop after the running probe (bounded) and save state.\n"
         "\n" +
         render_options(serve_options(), 33);
}

const po::options_description& status_options() {
  static const po::options_description options = [] {
    po::options_description d;
    d.add_options()("json", "the daemon's status document");
    d.add(socket_option()).add(help_option());
    return d;
  }();
  return options;
}

std::string status_usage() {
  return "usage: substrated status [--socket PATH] [--json]\n"
         "  the running daemon's verdict per device, with reasons, device changes and probe runs\n"
         "\n" +
         render_options(status_options(), 17);
}

std::string config_usage() {
  return "usage: substrated config check FILE\n"
         "  validates FILE as the daemon would load it: exit 0 valid, 1 invalid (the problem on stderr)\n"
         "\n" +
         render_options(help_option(), 10);
}

int fail(const std::string& message) {
  std::cerr << "substrated: " << message << "\n";
  return k_exit_cannot_run;
}

// Parses the arguments of `command`; on a syntax error prints one line naming it (and where the
// options are listed) and returns nullopt.
std::optional<CommandLine> parse(const std::string& command, const std::vector<std::string>& args,
                                 const po::options_description& options, bool positional_allowed = false) {
  auto line = parse_command_line(args, options, positional_allowed);
  if (line) return std::move(line.value());
  fail(command + ": " + line.error().message + " (see substrated " + command + " --help)");
  return std::nullopt;
}

int list_probes() {
  std::cout << "ID         MATURITY DEFAULT TIMEOUT_S KERNELS             DESCRIPTION\n";
  for (const ProbeDescriptor& d : probe_registry().all()) {
    std::string kernels;
    for (const std::string& k : d.kernels) kernels += (kernels.empty() ? "" : ",") + k;
    char line[512];
    std::snprintf(line, sizeof line, "%-10s %-8s %-7s %-9.0f %-19s %s\n", d.id.c_str(), to_string(d.maturity),
                  d.enabled_by_default ? "yes" : "no", d.default_timeout_seconds, kernels.c_str(),
                  d.description.c_str());
    std::cout << line;
  }
  return k_exit_ok;
}

int devices_command(const std::vector<std::string>& args) {
  const auto line = parse("devices", args, devices_options());
  if (!line) return k_exit_cannot_run;
  if (line->has("help")) {
    std::cout << devices_usage();
    return k_exit_ok;
  }
  const std::string sysfs_root = line->last("path.sysfs").value_or("/sys");
  const bool json = line->has("json");
  Discovery found = discover_devices();
  open_for_listing(found);
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

// The control socket: --socket PATH, else $SUBSTRATED_SOCKET, else the systemd unit's path.
std::string socket_path(const CommandLine& line) {
  if (auto socket = line.last("socket")) return *socket;
  const char* env = std::getenv("SUBSTRATED_SOCKET");
  return env && *env ? env : "/run/substrated/control.sock";
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

// One device of a status reply, checked without exceptions: what npd_check needs.
struct NpdDevice {
  std::string id;
  std::string health;
  std::string newest_reason;  // the last of `reasons` (newest last), "" when none
};

// The devices of a control-socket status reply; invalid_argument naming the first field that is
// missing or of the wrong type (a daemon of another version, a truncated reply).
Expected<std::vector<NpdDevice>> npd_devices(const nlohmann::json& reply) {
  auto malformed = [](const std::string& what) { return Error{ErrorKind::invalid_argument, what}; };
  if (!reply.is_object() || !reply.contains("status") || !reply["status"].is_object())
    return malformed("the reply has no 'status' object");
  const nlohmann::json& status = reply["status"];
  if (!status.contains("devices") || !status["devices"].is_array())
    return malformed("the status has no 'devices' list");
  std::vector<NpdDevice> devices;
  for (const nlohmann::json& device : status["devices"]) {
    const std::string which = "device " + std::to_string(devices.size());
    if (!device.is_object()) return malformed(which + " is not an object");
    const auto id = device.find("device");
    if (id == device.end() || !id->is_object() || !id->contains("id") || !(*id)["id"].is_string())
      return malformed(which + " has no 'device.id' string");
    const auto health = device.find("health");
    if (health == device.end() || !health->is_string()) return malformed(which + " has no 'health' string");
    const auto reasons = device.find("reasons");
    if (reasons == device.end() || !reasons->is_array()) return malformed(which + " has no 'reasons' list");
    NpdDevice out{(*id)["id"].get<std::string>(), health->get<std::string>(), ""};
    if (!reasons->empty()) {
      if (!reasons->back().is_string()) return malformed(which + " has a reason that is not a string");
      out.newest_reason = reasons->back().get<std::string>();
    }
    devices.push_back(std::move(out));
  }
  return devices;
}

// The node condition's message for failed or hung devices, at most 78 characters: every bad
// device is named first (an operator cordons or taints on it: docs/operations.md), then the
// newest reason of the first one, cut to fit. When the names alone do not fit, only the ids
// (eight "cudaN" ids take 73 characters).
std::string npd_fault_message(const std::vector<NpdDevice>& bad) {
  constexpr std::size_t k_limit = 78;
  std::string names, ids;
  for (const NpdDevice& device : bad) {
    names += (names.empty() ? "" : ", ") + device.id + " " + device.health;
    ids += (ids.empty() ? "" : ",") + device.id;
  }
  if (names.size() > k_limit) return std::to_string(bad.size()) + " devices failed or hung: " + ids;
  std::string line = names;
  const NpdDevice& first = bad.front();
  if (!first.newest_reason.empty()) {
    line += (bad.size() == 1 ? ": " : "; " + first.id + ": ") + first.newest_reason;
  }
  return line.substr(0, k_limit);
}

// node-problem-detector: answer from cached verdicts, never run kernels (plugin timeout 5 s).
// stdout is the node condition's message (NPD keeps 80 characters): each bad device with its
// newest reason, cut to fit; a malformed reply is one line on stderr and exit 2 (unknown).
int npd_check(const std::string& socket) {
  auto reply = control_request(socket, {{"command", "status"}}, 3.0);
  if (!reply || !reply->value("ok", false)) {
    std::cout << "substrated unreachable: verdict unknown\n";
    return k_exit_cannot_run;
  }
  auto devices = npd_devices(*reply);
  if (!devices) {
    std::cerr << "substrated probe --npd: malformed status reply from the daemon: " << devices.error().message << "\n";
    std::cout << "substrated reply malformed: verdict unknown\n";
    return k_exit_cannot_run;
  }
  std::vector<NpdDevice> bad;
  std::vector<std::string> unknown;
  std::vector<Outcome> outcomes;
  for (const NpdDevice& device : *devices) {
    const bool is_bad = device.health == "failed" || device.health == "hung";
    if (is_bad) bad.push_back(device);
    if (device.health == "unknown") unknown.push_back(device.id);
    outcomes.push_back(is_bad ? Outcome::fault : device.health == "unknown" ? Outcome::cannot_run : Outcome::pass);
  }
  const int code = fold_exit_code(outcomes);  // no device at all: unknown
  if (code == k_exit_fault) {
    std::cout << npd_fault_message(bad) << "\n";
  } else if (code != k_exit_ok) {
    std::cout << (unknown.empty() ? std::string("no devices") : unknown.front() + " not probed yet")
              << ": verdict unknown\n";
  } else {
    std::cout << "all " << outcomes.size() << " device(s) trustworthy\n";
  }
  return code;
}

int probe_command(const std::vector<std::string>& args) {
  const auto line = parse("probe", args, probe_options());
  if (!line) return k_exit_cannot_run;
  if (line->has("help")) {
    std::cout << probe_usage();
    return k_exit_ok;
  }
  auto diagnostic = diagnostic_options_from(*line);
  if (!diagnostic) return fail(diagnostic.error().message);
  auto request = probe_request_from(*line);
  if (!request) return fail(request.error().message);
  const bool json = line->has("json");
  if (line->has("list")) return list_probes();
  const std::string socket = socket_path(*line);
  if (line->has("npd")) return npd_check(socket);
  if (diagnostic->active()) return diagnostic_probe_command(*line, *request, json, *diagnostic);
  if (!line->has("local")) {
    // The daemon schedules the run on its own workers, so the CLI never fights it for the device.
    const nlohmann::json daemon_request = {{"command", "probe"}, {"args", line->args_for(probe_request_options())}};
    auto reply = control_request(socket, daemon_request, request->timeout_seconds * 4 + 30);
    if (reply) return print_daemon_probe(*reply, json);
    if (reply.error().kind != ErrorKind::unavailable) return fail(reply.error().message);
  }

  auto discovered = discover_in_process(line->last("config"));
  if (!discovered) return fail(discovered.error().message);
  Discovery found = std::move(discovered.value());
  std::vector<ProbeResult> results;
  GoldenCache goldens;
  bool any_device = false;
  for (const DevicePtr& device : found.devices) {
    if (!device_matches(device->info(), request->device)) continue;
    any_device = true;
    auto specs = specs_for(*request, device->info());
    if (!specs) return fail(specs.error().message);
    device->set_timeout_seconds(request->timeout_seconds);
    for (const ProbeSpec& spec : *specs) {
      results.push_back(run_probe(*device, spec, goldens));
      mark_external_outcome(*device, results.back());
    }
  }
  if (!any_device) {
    std::string message = "no device matches '" + request->device + "'";
    for (const std::string& note : found.backend_notes) message += "; " + note;
    return fail(message);
  }
  if (json) {
    std::cout << nlohmann::json{{"results", results}}.dump(2) << "\n";
  } else {
    std::cout << render_results(results);
  }
  return fold_exit_code(results);
}

int serve_command(const std::vector<std::string>& args) {
  const auto line = parse("serve", args, serve_options());
  if (!line) return k_exit_cannot_run;
  if (line->has("help")) {
    std::cout << serve_usage();
    return k_exit_ok;
  }
  ServeOptions options;
  options.config_path = line->last("config").value_or(k_default_config);
  options.web.config_file = line->last("web.config.file").value_or("");
  options.web.listen_address = line->last("web.listen-address").value_or("");
  auto format = parse_log_format(line->last("log.format").value_or("human"));
  if (!format) return fail(format.error().message);
  options.log_format = *format;
  return serve(std::move(options));
}

int status_command(const std::vector<std::string>& args) {
  const auto line = parse("status", args, status_options());
  if (!line) return k_exit_cannot_run;
  if (line->has("help")) {
    std::cout << status_usage();
    return k_exit_ok;
  }
  auto reply = control_request(socket_path(*line), {{"command", "status"}}, 10.0);
  if (!reply) return fail(reply.error().message);
  if (!reply->value("ok", false)) return fail("daemon: " + reply->value("error", std::string("unknown error")));
  const nlohmann::json& status = reply->at("status");
  if (line->has("json")) {
    std::cout << status.dump(2) << "\n";
    return k_exit_ok;
  }
  for (const auto& device : status.at("devices")) {
    std::cout << device.at("device").at("id").get<std::string>() << "  " << device.at("health").get<std::string>()
              << "  " << device.at("device").at("name").get<std::string>() << "\n";
    for (const auto& reason : device.at("reasons")) std::cout << "    " << reason.get<std::string>() << "\n";
    for (const auto& change : device.value("device_changes", nlohmann::json::array())) {
      std::cout << "    changed since the last run:";
      if (change.value("new_device", false))
        std::cout << " new device in this slot (was uuid " << change.value("replaced_uuid", std::string()) << ")";
      for (const auto& field : change.at("changed")) {
        std::cout << " " << field.at("field").get<std::string>() << " '" << field.at("before").get<std::string>()
                  << "' -> '" << field.at("after").get<std::string>() << "'";
      }
      std::cout << (change.value("reset_baselines", false) ? "; baselines reset" : "") << "\n";
    }
    if (const auto diag = device.value("last_diag", nlohmann::json()); diag.is_object()) {
      std::cout << "    last diag: level " << diag.value("level", 0) << ", " << diag.value("verdict", std::string())
                << ", " << diag.value("iterations", std::uint64_t{0}) << " iteration(s)"
                << (diag.value("interrupted", false) ? ", interrupted" : "") << "\n";
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
  const auto line = parse("config", args, help_option(), /*positional_allowed=*/true);
  if (!line) return k_exit_cannot_run;
  if (line->has("help")) {
    std::cout << config_usage();
    return k_exit_ok;
  }
  if (line->positional.size() != 2 || line->positional[0] != "check") {
    return fail("config: expected 'check FILE' (see substrated config --help)");
  }
  const std::string& path = line->positional[1];
  auto config = load_config(path);
  if (!config) {
    std::cerr << config.error().message << "\n";
    return fold_exit_code({Outcome::fault});  // `config check` reports the file, it is not the daemon's start
  }
  // The web configuration it names is read at start too (TLS files, bcrypt hashes): a file that
  // passes the check must not stop the daemon at start or reload.
  if (auto web = load_web_security({}, *config); !web) {
    std::cerr << web.error().message << "\n";
    return fold_exit_code({Outcome::fault});
  }
  std::cout << path << ": valid\n";
  return k_exit_ok;
}

int version_command() {
  std::cout << "substrated " << SUBSTRATE_VERSION << "\n";
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
  if (command == "version" || command == "--version") return version_command();
  if (command == "devices") return devices_command(rest);
  if (command == "probe") return probe_command(rest);
  if (command == "diag") return diag_command(rest);
  if (command == "serve") return serve_command(rest);
  if (command == "status") return status_command(rest);
  if (command == "config") return config_command(rest);
  if (command == "compare") return compare_command(rest);
  if (command == "report") return report_command(rest);
  return fail("unknown command '" + command + "' (see substrated --help)");
}

}  // namespace substrate::cli
