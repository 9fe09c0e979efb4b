#include "daemon/probe_command.hpp"

#include <charconv>
#include <cmath>
#include <sstream>

namespace substrate {
namespace {

Error bad(const std::string& message) { return Error{ErrorKind::invalid_argument, message}; }

}  // namespace

Expected<ProbeRequest> parse_probe_request(const std::vector<std::string>& args, std::vector<std::string>& rest) {
  ProbeRequest request;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    auto value = [&]() -> std::optional<std::string> {
      if (i + 1 >= args.size()) return std::nullopt;
      return args[++i];
    };
    const bool takes_value = arg == "--device" || arg == "--kernel" || arg == "--mode" || arg == "--dtype" ||
                             arg == "--size" || arg == "--seed" || arg == "--inject" || arg == "--timeout";
    if (!takes_value) {
      if (arg.rfind("--", 0) == 0) {
        rest.push_back(arg);
        continue;
      }
      return bad("unexpected argument '" + arg + "'");
    }
    const auto text = value();
    if (!text) return bad(arg + " needs a value");
    if (arg == "--device") {
      request.device = *text;
    } else if (arg == "--kernel") {
      std::stringstream ids(*text);
      std::string id;
      while (std::getline(ids, id, ',')) {
        if (!probe_registry().find(id)) return bad("unknown kernel '" + id + "' (see substrated probe --list)");
        request.kernels.push_back(id);
      }
    } else if (arg == "--mode") {
      request.mode = parse_mode(*text);
      if (!request.mode) return bad("--mode must be exact or random, got '" + *text + "'");
    } else if (arg == "--dtype") {
      request.dtype = parse_dtype(*text);
      if (!request.dtype) return bad("--dtype must be f32, f16 or bf16, got '" + *text + "'");
    } else if (arg == "--size") {
      request.size = *text;
    } else if (arg == "--seed") {
      auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), request.seed);
      if (ec != std::errc{} || ptr != text->data() + text->size() || text->empty()) {
        return bad("--seed needs a non-negative integer, got '" + *text + "'");
      }
    } else if (arg == "--inject") {
      request.inject = *text;
    } else if (arg == "--timeout") {
      char* end = nullptr;
      request.timeout_seconds = std::strtod(text->c_str(), &end);
      if (*end != '\0' || text->empty() || !std::isfinite(request.timeout_seconds) || !(request.timeout_seconds > 0) ||
          request.timeout_seconds > k_max_timeout_seconds) {
        return bad("--timeout needs seconds > 0 and at most " + std::to_string(static_cast<int>(k_max_timeout_seconds)) +
                   ", got '" + *text + "'");
      }
    }
  }
  if (request.size && request.kernels.size() != 1) return bad("--size needs exactly one --kernel");
  return request;
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
  std::vector<ProbeSpec> specs;
  for (const ProbeDescriptor* probe : probes) {
    for (ProbeSpec spec : probe->default_specs(device)) {
      if (request.mode && spec.probe != "memory" && spec.mode != *request.mode) continue;
      if (request.dtype && spec.probe != "memory" && spec.dtype != *request.dtype) continue;
      spec.seed = request.seed;
      if (request.size) {
        Status sized = probe->apply_size(*request.size, spec);
        if (!sized) return sized.error();
      }
      if (request.inject) {
        const std::uint64_t row_length = spec.probe == "gemm" ? spec.gemm.n
                                         : spec.probe == "attention" ? spec.attention.head_dim
                                                                     : 1;
        auto inject = parse_injection(*request.inject, row_length);
        if (!inject) return inject.error();
        spec.inject = *inject;
      }
      specs.push_back(spec);
    }
  }
  if (specs.empty()) return bad("no probe matches the given --kernel/--mode/--dtype");
  return specs;
}

}  // namespace substrate
