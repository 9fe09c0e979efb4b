#include "daemon/control_commands.hpp"

#include <cstdio>
#include <memory>

#include "daemon/exit_code.hpp"
#include "daemon/probe_command.hpp"
#include "daemon/report.hpp"
#include "probes/core/registry.hpp"

namespace substrate {

using json = nlohmann::json;

namespace {

std::string human_bytes(std::uint64_t bytes) {
  char text[64];
  const double b = static_cast<double>(bytes);
  if (b >= 0x1p30) {
    std::snprintf(text, sizeof text, "%.1f GiB", b / 0x1p30);
  } else {
    std::snprintf(text, sizeof text, "%.1f MiB", b / 0x1p20);
  }
  return text;
}

}  // namespace

std::optional<std::string> memory_refusal(const DeviceInfo& device, const std::vector<ProbeSpec>& specs,
                                          std::uint64_t max_host_bytes) {
  for (const ProbeSpec& spec : specs) {
    const ProbeDescriptor* probe = probe_registry().find(spec.probe);
    if (!probe) continue;  // specs_for made it: cannot happen
    const MemoryNeeds needs = probe->memory_needs(spec, device);
    if (device.memory_bytes > 0 && needs.device_bytes > device.memory_bytes) {
      return spec_key(spec) + " needs about " + human_bytes(needs.device_bytes) + " of device memory, above " +
             device.id + "'s " + human_bytes(device.memory_bytes);
    }
    const std::uint64_t device_on_host = device.is_cpu() ? needs.device_bytes : 0;
    const std::uint64_t host =
        needs.host_bytes > UINT64_MAX - device_on_host ? UINT64_MAX : needs.host_bytes + device_on_host;
    if (host > max_host_bytes) {
      return spec_key(spec) + " needs about " + human_bytes(host) + " of host memory" +
             (device.is_cpu() ? " (" + device.id + "'s memory is host memory)" : "") +
             ", above on_demand.max_host_bytes (" + human_bytes(max_host_bytes) + ")";
    }
  }
  return std::nullopt;
}

ControlCommands::ControlCommands(std::vector<DeviceInfo> devices, Hooks hooks, std::uint64_t max_host_bytes)
    : devices_(std::move(devices)), hooks_(std::move(hooks)), max_host_bytes_(max_host_bytes) {}

void ControlCommands::handle(const json& request, std::function<void(json)> reply) const {
  const std::string command = request.at("command").get<std::string>();
  if (command == "status") {
    reply({{"ok", true}, {"status", hooks_.status()}});
    return;
  }
  if (command == "diag_result") {
    const auto summary = diag::parse_summary(request.value("diag", json()));
    const Expected<std::string> recorded =
        !summary             ? Expected<std::string>(summary.error())
        : hooks_.record_diag ? hooks_.record_diag(*summary)
                             : Expected<std::string>(Error{ErrorKind::unavailable, "this daemon records no diag"});
    reply(recorded ? json{{"ok", true}, {"device", *recorded}}
                   : json{{"ok", false}, {"error", recorded.error().message}});
    return;
  }
  if (command != "probe") {
    reply({{"ok", false}, {"error", "unknown command '" + command + "' (use probe or status)"}});
    return;
  }
  if (!request.contains("args") || !request["args"].is_array()) {
    reply({{"ok", false}, {"error", "probe needs \"args\": an array of strings"}});
    return;
  }
  std::vector<std::string> args;
  for (const auto& a : request["args"]) {
    if (!a.is_string()) {
      reply({{"ok", false}, {"error", "probe args must be strings"}});
      return;
    }
    args.push_back(a.get<std::string>());
  }
  const auto refuse = [&reply](const std::string& why) {
    reply({{"ok", false}, {"error", why}, {"exit_code", k_exit_cannot_run}});
  };
  auto parsed = parse_probe_request(args);
  if (!parsed) return refuse(parsed.error().message);
  std::vector<std::pair<std::size_t, std::vector<ProbeSpec>>> work;
  for (std::size_t i = 0; i < devices_.size(); ++i) {
    if (!device_matches(devices_[i], parsed->device)) continue;
    auto specs = specs_for(*parsed, devices_[i]);
    if (!specs) return refuse(specs.error().message);
    if (auto too_large = memory_refusal(devices_[i], *specs, max_host_bytes_)) return refuse(*too_large);
    work.emplace_back(i, std::move(specs.value()));
  }
  if (work.empty()) return refuse("no device matches '" + parsed->device + "'");

  // Each device runs the request in a worker of its own, with the request's timeout: what
  // happens there (even a hang) is the client's answer and never the scheduled verdict.
  struct Pending {
    std::size_t remaining = 0;
    std::vector<ProbeResult> results;
    std::string refused;  // the first device's refusal, if any
    std::function<void(json)> reply;
  };
  auto pending = std::make_shared<Pending>();
  pending->reply = std::move(reply);
  pending->remaining = work.size();
  for (auto& [device, specs] : work) {
    hooks_.run(device, std::move(specs), parsed->timeout_seconds,
               [pending, id = devices_[device].id](Expected<std::vector<ProbeResult>> results) {
                 if (!results) {
                   if (pending->refused.empty()) pending->refused = id + ": " + results.error().message;
                 } else {
                   for (auto& r : *results) pending->results.push_back(std::move(r));
                 }
                 if (--pending->remaining > 0) return;
                 if (!pending->refused.empty()) {
                   pending->reply({{"ok", false}, {"error", pending->refused}, {"exit_code", k_exit_cannot_run}});
                   return;
                 }
                 pending->reply({{"ok", true},
                                 {"exit_code", fold_exit_code(pending->results)},
                                 {"text", render_results(pending->results)},
                                 {"results", pending->results}});
               });
  }
}

}  // namespace substrate
