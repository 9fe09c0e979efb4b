#include "daemon/cli.hpp"

#include <algorithm>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "daemon/probe_command.hpp"
#include "daemon/report.hpp"
#include "probes/registry.hpp"

namespace substrate::cli {
namespace {

constexpr const char* k_usage =
    "usage: substrated <command> [options]\n"
    "\n"
    "commands:\n"
    "  devices            list every compute device with backend, driver, UUID and PCI bus id\n"
    "  probe              run the reference kernels on devices and check them (exit 0 pass, 1 fault, 2 cannot run)\n"
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
    "\n"
    "exit: 0 every check passed, 1 a check found a fault, 2 could not run\n";

constexpr const char* k_devices_usage = "usage: substrated devices [--json]\n";

bool has(const std::vector<std::string>& flags, const std::string& flag) {
  return std::find(flags.begin(), flags.end(), flag) != flags.end();
}

int fail(const std::string& message) {
  std::cerr << "substrated: " << message << "\n";
  return k_exit_cannot_run;
}

int list_probes() {
  std::cout << "ID         MATURITY DEFAULT BUDGET_S KERNELS             DESCRIPTION\n";
  for (const ProbeDescriptor& d : probe_registry().all()) {
    std::string kernels;
    for (const std::string& k : d.kernels) kernels += (kernels.empty() ? "" : ",") + k;
    char line[512];
    std::snprintf(line, sizeof line, "%-10s %-8s %-7s %-8.0f %-19s %s\n", d.id.c_str(), to_string(d.maturity),
                  d.enabled_by_default ? "yes" : "no", d.time_budget_seconds, kernels.c_str(), d.description.c_str());
    std::cout << line;
  }
  return k_exit_ok;
}

int devices_command(const std::vector<std::string>& args) {
  for (const std::string& arg : args) {
    if (arg == "--help" || arg == "-h") {
      std::cout << k_devices_usage;
      return k_exit_ok;
    }
    if (arg != "--json") return fail("devices: unknown option '" + arg + "'\n" + k_devices_usage);
  }
  Discovery found = discover_devices();
  std::vector<DeviceInfo> infos;
  for (const DevicePtr& device : found.devices) infos.push_back(device->info());
  if (has(args, "--json")) {
    std::cout << nlohmann::json{{"devices", infos}, {"notes", found.backend_notes}}.dump(2) << "\n";
  } else {
    std::cout << render_devices(infos, found.backend_notes);
  }
  return k_exit_ok;
}

int probe_command(const std::vector<std::string>& args) {
  std::vector<std::string> flags;
  auto request = parse_probe_request(args, flags);
  if (has(flags, "--help") || has(flags, "-h")) {
    std::cout << k_probe_usage;
    return k_exit_ok;
  }
  if (!request) return fail(request.error().message);
  for (const std::string& flag : flags) {
    if (flag != "--json" && flag != "--list") return fail("probe: unknown option '" + flag + "'");
  }
  if (has(flags, "--list")) return list_probes();

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

}  // namespace

int run(const std::vector<std::string>& args) {
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
  return fail("unknown command '" + command + "'\n" + k_usage);
}

}  // namespace substrate::cli
