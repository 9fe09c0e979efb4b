#pragma once
// Worker mode: `substrated __worker --parent PID`, started by the daemon (daemon/supervisor.hpp),
// never by hand. It takes one request frame on fd 3 (daemon/worker_protocol.hpp), does the
// device work the request asks for (discover the devices, or open one device and run specs),
// reports every result as a frame, and exits. Protocol: docs/worker-protocol.md.
#include <functional>
#include <string>
#include <vector>

#include "probes/backends/compute_device.hpp"

namespace substrate::worker {

struct WorkerHooks {
  // How devices are found; empty: discover_devices() with the request's backend_preference.
  // Tests wrap the real devices here.
  std::function<Discovery()> discover;
};

// Runs worker mode with the arguments after `__worker`. Returns the process exit code: 0 after
// the request was answered (whatever the probes found), 2 on a protocol or device-open error
// (reported in an "error" frame when the channel still works), 3 when the parent named by
// --parent is not (or no longer) the parent.
int worker_main(const std::vector<std::string>& args, const WorkerHooks& hooks = {});

}  // namespace substrate::worker
