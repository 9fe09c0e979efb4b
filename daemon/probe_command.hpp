#pragma once
// `substrated probe`: option parsing and spec selection, shared by the CLI and the control socket
// so a probe asked of the daemon means exactly what it means in-process.
#include <optional>
#include <string>
#include <vector>

#include "common/expected.hpp"
#include "daemon/command_line.hpp"
#include "probes/backends/compute_device.hpp"
#include "probes/core/registry.hpp"

namespace substrate {

struct ProbeRequest {
  std::string device = "all";        // id, uuid, pci bus id, or "all"
  std::vector<std::string> kernels;  // probe ids; empty = every probe enabled by default
  std::optional<Mode> mode;
  std::optional<Dtype> dtype;
  std::optional<std::string> size;
  std::uint64_t seed = 1;
  std::optional<std::string> inject;
  double timeout_seconds = 120.0;  // finite, > 0 and at most k_max_timeout_seconds
};

// The longest --timeout accepted (a day): beyond it a hang would go unseen for good.
inline constexpr double k_max_timeout_seconds = 86400.0;

// The options that make a probe request (--device, --kernel, --mode, --dtype, --size, --seed,
// --inject, --timeout), with their help text; `substrated probe` adds its own to these.
const cli::po::options_description& probe_request_options();

// The request a parsed command line asks for (options outside probe_request_options() are
// ignored). invalid_argument names the bad value, e.g. "--mode must be exact or random, got 'x'".
Expected<ProbeRequest> probe_request_from(const cli::CommandLine& line);

// Parses a request alone (the control socket's "args"): every argument must be one of
// probe_request_options(). invalid_argument names the bad argument or value in one line.
Expected<ProbeRequest> parse_probe_request(const std::vector<std::string>& args);

bool device_matches(const DeviceInfo& device, const std::string& selector);

// The specs to run on `device` for the request; invalid_argument when options do not fit.
Expected<std::vector<ProbeSpec>> specs_for(const ProbeRequest& request, const DeviceInfo& device);

}  // namespace substrate
