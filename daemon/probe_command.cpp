#include "daemon/probe_command.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace substrate {
namespace {

Error bad(const std::string& message) { return Error{ErrorKind::invalid_argument, message}; }

}  // namespace

const cli::po::options_description& probe_request_options() {
  static const cli::po::options_description options = [] {
    cli::po::options_description d;
    d.add_options()("device", cli::takes("SEL"), "device id (vulkan0), UUID or PCI bus id; default all")(
        "kernel", cli::takes("ID"),
        "probe ids from --list (comma-separated or repeated); default every stable probe\n"
        "enabled by default")("mode", cli::takes("M"),
                              "exact: integer inputs, bit-exact check; random: full mantissas, derived bound")(
        "dtype", cli::takes("T"), "input storage type (accumulation is fp32)")(
        "size", cli::takes("SIZE"),
        "gemm MxNxK or N; attention SEQxHEADSxDIM; memory bytes (64M, 1G); needs one --kernel")(
        "seed", cli::takes("N"), "generator seed (default 1); printed with every result so it replays")(
        "inject", cli::takes("SPEC"),
        "drill: the kernel flips bits of one output element before writing it (gemm, attention:\n"
        "count elements stride apart; count=all to the end of the output):\n"
        "bit=B[,bit=B2][,row=R,col=C | ,element=N][,count=N|all][,stride=S][,transient]")(
        "timeout", cli::takes("S"), "seconds before a kernel counts as hung (default 120)");
    return d;
  }();
  return options;
}

Expected<ProbeRequest> probe_request_from(const cli::CommandLine& line) {
  ProbeRequest request;
  if (auto device = line.last("device")) request.device = *device;
  for (const std::string& list : line.all("kernel")) {
    std::stringstream ids(list);
    std::string id;
    while (std::getline(ids, id, ',')) {
      if (!probe_registry().find(id)) return bad("unknown kernel '" + id + "' (see substrated probe --list)");
      request.kernels.push_back(id);
    }
  }
  if (auto text = line.last("mode")) {
    request.mode = parse_mode(*text);
    if (!request.mode) return bad("--mode must be exact or random, got '" + *text + "'");
  }
  if (auto text = line.last("dtype")) {
    request.dtype = parse_dtype(*text);
    if (!request.dtype) return bad("--dtype must be f32, f16 or bf16, got '" + *text + "'");
  }
  request.size = line.last("size");
  if (auto text = line.last("seed")) {
    auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), request.seed);
    if (ec != std::errc{} || ptr != text->data() + text->size()) {
      return bad("--seed needs a non-negative integer, got '" + *text + "'");
    }
  }
  request.inject = line.last("inject");
  if (auto text = line.last("timeout")) {
    char* end = nullptr;
    request.timeout_seconds = std::strtod(text->c_str(), &end);
    if (*end != '\0' || !std::isfinite(request.timeout_seconds) || !(request.timeout_seconds > 0) ||
        request.timeout_seconds > k_max_timeout_seconds) {
      return bad("--timeout needs seconds > 0 and at most " + std::to_string(static_cast<int>(k_max_timeout_seconds)) +
                 ", got '" + *text + "'");
    }
  }
  if (request.size && request.kernels.size() != 1) return bad("--size needs exactly one --kernel");
  return request;
}

Expected<ProbeRequest> parse_probe_request(const std::vector<std::string>& args) {
  TRY_ASSIGN(auto line, cli::parse_command_line(args, probe_request_options()));
  return probe_request_from(line);
}

bool device_matches(const DeviceInfo& device, const std::string& selector) {
  return selector == "all" || selector == device.id || (!device.uuid.empty() && selector == device.uuid) ||
         (!device.pci_bus_id.empty() && selector == device.pci_bus_id);
}

Expected<std::vector<ProbeSpec>> specs_for(const ProbeRequest& request, const DeviceInfo& device) {
  std::vector<const ProbeDescriptor*> probes;
  if (request.kernels.empty()) {
    for (const ProbeDescriptor& d : probe_registry().all()) {
      if (d.enabled_by_default && d.maturity == Maturity::stable) probes.push_back(&d);
    }
  } else {
    for (const std::string& id : request.kernels) probes.push_back(probe_registry().find(id));
  }
  std::vector<Mode> modes;
  std::vector<Dtype> dtypes;
  if (request.mode) modes.push_back(*request.mode);
  if (request.dtype) dtypes.push_back(*request.dtype);
  std::vector<ProbeSpec> specs;
  for (const ProbeDescriptor* probe : probes) {
    for (ProbeSpec spec : probe->default_specs(device)) {
      if (!spec_selected(*probe, spec, modes, dtypes)) continue;
      spec.seed = request.seed;
      if (request.size) {
        TRY(probe->apply_size(*request.size, spec));
      }
      if (request.inject) {
        TRY_ASSIGN(auto inject, parse_drill(*probe, *request.inject, spec));
        spec.inject = inject;
      }
      specs.push_back(spec);
    }
  }
  if (specs.empty()) return bad("no probe matches the given --kernel/--mode/--dtype");
  return specs;
}

}  // namespace substrate
