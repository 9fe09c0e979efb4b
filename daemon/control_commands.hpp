#pragma once
// The control socket's commands (daemon/control_socket.hpp carries them): `status`, and `probe`,
// whose args mean what `substrated probe` means (daemon/probe_command.hpp). Holds no daemon
// state: the service passes its devices and two hooks, so every refusal is tested alone.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/expected.hpp"
#include "daemon/diag.hpp"
#include "probes/backends/compute_device.hpp"
#include "probes/core/probe_result.hpp"

namespace substrate {

class ControlCommands {
 public:
  // A result for every spec of the run, in order, or why the run was refused (one line).
  using RunDone = std::function<void(Expected<std::vector<ProbeResult>>)>;
  struct Hooks {
    std::function<nlohmann::json()> status;  // the /status document
    // Runs `specs` on devices[device] in a worker of its own, each spec with `timeout_seconds`;
    // calls `done` exactly once, possibly later, on the event loop.
    std::function<void(std::size_t device, std::vector<ProbeSpec> specs, double timeout_seconds, RunDone done)> run;
    // Records a `substrated diag` result (docs/diag.md): the id of the device it was recorded
    // for, or why not (no device matches).
    std::function<Expected<std::string>(const diag::Summary& summary)> record_diag;
  };

  // `max_host_bytes`: the config's on_demand.max_host_bytes.
  ControlCommands(std::vector<DeviceInfo> devices, Hooks hooks, std::uint64_t max_host_bytes);
  // A reload's new on_demand.max_host_bytes, for the requests that follow.
  void set_max_host_bytes(std::uint64_t bytes) { max_host_bytes_ = bytes; }

  // Answers one request: {"ok":true,"status":{...}} for status; for probe, once every matching
  // device has answered, {"ok":true,"exit_code":N,"text":TABLE,"results":[...]} (N folded by
  // daemon/exit_code.hpp). Refusals are {"ok":false,"error":ONE_LINE} plus "exit_code":2 when
  // the request cannot run as asked (bad args, no matching device, a spec too large for the
  // device's or the host's memory: memory_refusal, a run the service refused); nothing is started
  // for a request refused before its runs. `request` has a string "command" (the control server
  // checks that before calling). diag_result: {"ok":true,"device":ID} once hooks.record_diag
  // kept request["diag"], else {"ok":false,"error":ONE_LINE} (a malformed summary, no device).
  void handle(const nlohmann::json& request, std::function<void(nlohmann::json)> reply) const;

 private:
  std::vector<DeviceInfo> devices_;
  Hooks hooks_;
  std::uint64_t max_host_bytes_;
};

// Why `specs` cannot run on `device` within its memory and `max_host_bytes` of host memory, in
// one line naming the spec and the limit ("gemm/f32/exact/4096x4096x4096 needs about 320.0 MiB
// of host memory, above on_demand.max_host_bytes (192.0 MiB)"); nullopt when every spec fits.
// Each spec is judged alone (a worker runs its specs one after another, and on-demand workers keep
// no goldens between specs), by the probe's MemoryNeeds; on a CPU device its device bytes are
// host memory too. The device's memory is checked only when the backend reports it.
std::optional<std::string> memory_refusal(const DeviceInfo& device, const std::vector<ProbeSpec>& specs,
                                          std::uint64_t max_host_bytes);

}  // namespace substrate
