#pragma once
// External workers (docs/external-workers.md): programs the project did not compile in, named in
// the config (`external_workers`), that run GEMM and attention on devices the built-in backends
// cannot reach (an NPU through PyTorch: probes/backends/torch/substrate_torch_worker.py). Each is
// a process started with its argv and environment, spoken to over fd 3 with the frames of the
// worker protocol (daemon/worker_protocol.hpp, same length prefix, same "v"). Its devices are
// ComputeDevices of backend "external": the probes, the CPU goldens, the check, fingerprints,
// dumps, baselines and verdicts are the built-in ones; the external worker only generates the
// inputs (the shared generator, on its host) and returns the raw output words.
//
// A worker that misbehaves (a malformed, oversized or other-version frame, an output of the
// wrong size, an answer past the deadline, death by a signal) fails that call with a one-line
// error naming the worker; it is killed, and the device stays unusable in this process (sticky),
// so a daemon's run worker reports what it has and the next round starts a fresh one.
#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "probes/backends/compute_device.hpp"
#include "probes/core/probe_result.hpp"

namespace substrate {

inline constexpr const char* k_external_backend = "external";

// One `external_workers` entry of the config.
struct ExternalWorkerConfig {
  std::string name;               // device ids are <name><index>: [a-z][a-z0-9_-]*, not ending in a digit
  std::vector<std::string> argv;  // argv[0] is run as given (absolute path, or found on PATH)
  // Device strings the worker is asked for (torch: "cpu", "cuda:1", "npu"); a bare type matches
  // every device of that type. Empty: every device the worker reports.
  std::vector<std::string> devices;
  std::map<std::string, std::string> environment;  // set on top of the daemon's environment
  double start_timeout_seconds = 60.0;             // from start to the `devices` answer
  bool operator==(const ExternalWorkerConfig&) const = default;
};

// The entries as JSON for a worker request, and back (throws nlohmann::json exceptions when malformed).
nlohmann::json external_workers_to_json(const std::vector<ExternalWorkerConfig>& workers);
std::vector<ExternalWorkerConfig> external_workers_from_json(const nlohmann::json& in);

// Whether `id` is a device id of one of `workers` (<name><digits>).
bool is_external_device_id(const std::vector<ExternalWorkerConfig>& workers, const std::string& id);

// Starts each worker, asks it for its devices (`discover`), keeps those that `devices` selects.
// One process per worker serves all of its devices and lives as long as they do. A worker that
// cannot start or answers wrongly leaves a note ("external torch: ..."), never an exception.
// `only_id` non-empty: only the worker whose device that is starts (a run worker for one device).
Discovery discover_external(const std::vector<ExternalWorkerConfig>& workers, const std::string& only_id = "");

// The devices of an in-process probe run (`substrated probe --local`, `--dump`, `--replay`): every
// built-in backend's, plus, with `config_path`, the external workers that config names.
// invalid_argument or io_error when the config cannot be loaded.
Expected<Discovery> discover_in_process(const std::optional<std::string>& config_path);

// After run_probe on an external device: a run whose worker was killed at the deadline becomes
// RunStatus::hung, one whose worker died by a signal RunStatus::crashed (as the daemon marks its
// own workers, docs/worker-protocol.md); any other result is left alone.
void mark_external_outcome(const ComputeDevice& device, ProbeResult& result);

}  // namespace substrate
