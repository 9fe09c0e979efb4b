#pragma once
// `substrated probe`: option parsing and spec selection, shared by the CLI and the control socket
// so a probe asked of the daemon means exactly what it means in-process.
#include <optional>
#include <string>
#include <vector>

#include "kernels/expected.hpp"
#include "probes/compute_device.hpp"
#include "probes/registry.hpp"

namespace substrate {

struct ProbeRequest {
  std::string device = "all";          // id, uuid, pci bus id, or "all"
  std::vector<std::string> kernels;    // probe ids; empty = every probe enabled by default
  std::optional<Mode> mode;
  std::optional<Dtype> dtype;
  std::optional<std::string> size;
  std::uint64_t seed = 1;
  std::optional<std::string> inject;
  double timeout_seconds = 120.0;  // finite, > 0 and at most k_max_timeout_seconds
};

// The longest --timeout accepted (a day): beyond it a hang would go unseen for good.
inline constexpr double k_max_timeout_seconds = 86400.0;

// Parses probe options (everything after `probe`). `rest` receives flags the caller handles
// (--json, --list, --local, --npd, --help). invalid_argument names the bad option.
Expected<ProbeRequest> parse_probe_request(const std::vector<std::string>& args, std::vector<std::string>& rest);

bool device_matches(const DeviceInfo& device, const std::string& selector);

// The specs to run on `device` for the request; invalid_argument when options do not fit.
Expected<std::vector<ProbeSpec>> specs_for(const ProbeRequest& request, const DeviceInfo& device);

}  // namespace substrate
