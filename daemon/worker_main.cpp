#include "daemon/worker_main.hpp"

#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <stdexcept>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "daemon/external_worker.hpp"
#include "daemon/gpu_inventory.hpp"
#include "daemon/worker_protocol.hpp"
#include "probes/core/probe_result.hpp"
#include "probes/core/registry.hpp"
#include "probes/diagnosis/dump.hpp"

namespace substrate::worker {
namespace {

using json = nlohmann::json;

// Never returns: the process-level drills, acted out after the device is open.
[[noreturn]] void act_out(const std::string& drill) {
  if (drill == "crash") {
    const rlimit no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    std::signal(SIGSEGV, SIG_DFL);  // a sanitizer's handler would turn the signal into an exit
    std::raise(SIGSEGV);
  }
  while (true) ::pause();  // "hang": like a kernel that never returns
}

int fail(const std::string& message) {
  spdlog::error("{}", message);
  (void)write_frame(k_worker_fd, {{"type", "error"}, {"message", message}});
  return 2;
}

// With "list_mig" (the daemon's first discovery), NVML's inventory is applied: board identity on
// each device, a MIG-enabled GPU's CUDA slice out of the list, and the frame carries the instances
// for the daemon to discover one by one ("mig_instances") and the GPUs left unprobed
// ("unprobed"); daemon/gpu_inventory.hpp.
int discover(const json& request, const WorkerHooks& hooks) {
  Discovery found = hooks.discover();
  open_for_listing(found);
  std::vector<DeviceInfo> devices;
  for (const DevicePtr& device : found.devices) devices.push_back(device->info());
  json frame = {{"type", "devices"}, {"notes", found.backend_notes}};
  if (request.value("list_mig", false)) {
    const MigPlan plan = apply_inventory(devices, nvml::read_inventory());
    frame["mig_instances"] = plan.instances;
    frame["unprobed"] = plan.unprobed;
  }
  frame["devices"] = devices;
  return write_frame(k_worker_fd, frame) ? 0 : 2;
}

// A run request's optional "repeat" (docs/worker-protocol.md): the spec list runs again and
// again, in order, until `duration_seconds` have passed since the first spec started (at least
// once) or `max_iterations` passes ran (0: no limit). Absent: one pass, as for a scheduled round.
struct Repeat {
  bool active = false;
  double duration_seconds = 0.0;
  std::uint64_t max_iterations = 0;
};

// Throws json exceptions (a malformed request) on a wrong type; out_of_range on a negative or
// non-finite duration.
Repeat repeat_of(const json& request) {
  Repeat repeat;
  const auto it = request.find("repeat");
  if (it == request.end() || it->is_null()) return repeat;
  repeat.active = true;
  repeat.duration_seconds = it->at("duration_seconds").get<double>();
  repeat.max_iterations = it->value("max_iterations", std::uint64_t{0});
  if (!std::isfinite(repeat.duration_seconds) || repeat.duration_seconds < 0) {
    throw std::out_of_range("repeat.duration_seconds must be a finite number >= 0");
  }
  return repeat;
}

int run(const json& request, const WorkerHooks& hooks) {
  const Repeat repeat = repeat_of(request);  // checked before the device opens
  const std::string id = request.at("device").get<std::string>();
  const std::string uuid = request.value("uuid", std::string());
  const std::uint64_t dump_bytes = request.value("dump_max_bytes", std::uint64_t{0});
  const std::string dump_root = request.value("dump_root", std::string());
  // A MIG instance ("mig_device": the daemon's DeviceInfo of it) is the one device its
  // CUDA_VISIBLE_DEVICES shows, found by its UUID under the id CUDA gives it there; what the
  // worker reports carries the daemon's id and MIG labels.
  const bool mig = request.contains("mig_device");
  const DeviceInfo planned = mig ? request.at("mig_device").get<DeviceInfo>() : DeviceInfo{};
  Discovery found = hooks.discover();
  DevicePtr device;
  for (DevicePtr& candidate : found.devices) {
    if (mig ? candidate->info().backend == "cuda" && candidate->info().uuid == uuid : candidate->info().id == id) {
      device = std::move(candidate);
    }
  }
  found.devices.clear();  // close every device but the one this worker is for
  if (!device) return fail("device " + id + " not found");
  if (!uuid.empty() && device->info().uuid != uuid) {
    return fail("device " + id + " has uuid " + device->info().uuid + ", expected " + uuid);
  }
  const bool exclusive_allowed = request.value("probe_exclusive_gpus", false);
  device->allow_exclusive_compute(exclusive_allowed);
  if (exclusive_allowed && device->info().backend == "cuda" && !mig && !device->info().pci_bus_id.empty()) {
    // An EXCLUSIVE_PROCESS GPU another program computes on is skipped without trying a context
    // (the driver would refuse it, but the attempt itself is what must not happen). Unknown when
    // NVML cannot say: the driver decides then.
    const auto processes = nvml::count_compute_processes(device->info().pci_bus_id);
    if (processes) {
      device->set_other_compute_processes(static_cast<int>(*processes));
    } else {
      spdlog::debug("{}: compute processes unknown: {}", id, processes.error().message);
    }
  }
  const auto labelled = [&](DeviceInfo info) {
    if (mig) take_planned_identity(info, planned);
    return info;
  };
  if (!write_frame(k_worker_fd, {{"type", "opened"}, {"device", labelled(device->info())}})) return 2;
  GoldenCache goldens(request.value("golden_cache_max_bytes", GoldenCache::k_default_max_bytes));
  const json& specs = request.at("specs");
  std::vector<std::string> first_fingerprints(specs.size());
  std::vector<bool> dumped(specs.size(), false);
  const auto began = std::chrono::steady_clock::now();
  for (std::uint64_t iteration = 0;; ++iteration) {
    for (std::size_t index = 0; index < specs.size(); ++index) {
      const json& item = specs[index];
      const ProbeSpec spec = item.at("spec").get<ProbeSpec>();
      if (!write_frame(k_worker_fd, {{"type", "started"}, {"index", index}, {"iteration", iteration}})) return 2;
      const std::string drill = item.value("drill", std::string());
      if (is_process_drill(drill)) act_out(drill);
      device->set_timeout_seconds(item.at("timeout_seconds").get<double>());
      ProbeResult result = run_probe(*device, spec, goldens, /*capture_tensors=*/dump_bytes > 0);
      mark_external_outcome(*device, result);
      result.device = labelled(std::move(result.device));
      // One dump per spec and worker: the first failing pass, the one that stands for the spec's
      // passes (daemon/checked_work.hpp); a fault that fails every pass of a repeat writes once.
      if (result.status == RunStatus::fail && result.error.empty() && dump_bytes > 0 && !dump_root.empty() &&
          !dumped[index]) {
        dumped[index] = true;
        auto kept = keep_failure_dump(dump_root, result, dump_bytes);
        if (kept) {
          spdlog::info("{} {}: failing run dumped to {}", id, spec_key(spec), *kept);
        } else {
          spdlog::warn("{} {}: could not keep the failure dump: {}", id, spec_key(spec), kept.error().message);
        }
      }
      result.tensors.reset();
      json frame = {{"type", "result"}, {"index", index}, {"iteration", iteration}, {"result", result}};
      if (repeat.active && !result.fingerprint.empty()) {
        // The first iteration's fingerprint is the reference of every later one: the kernels
        // are fixed-order, so the same spec and seed must give the same bits every time.
        if (first_fingerprints[index].empty()) first_fingerprints[index] = result.fingerprint;
        frame["fingerprint_matches_first"] = result.fingerprint == first_fingerprints[index];
      }
      if (!write_frame(k_worker_fd, frame)) return 2;
      if (const std::string sticky = device->sticky_error(); !sticky.empty()) {
        // The driver's context is unusable until this process ends (cuda.h): stop here; the
        // specs left are not run, and the next round gets a fresh worker.
        spdlog::warn("{}: sticky error, the worker ends after spec {} of {}: {}", id, index + 1, specs.size(), sticky);
        return write_frame(k_worker_fd, {{"type", "done"}, {"ended_early", sticky}}) ? 0 : 2;
      }
    }
    if (!repeat.active) break;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
    if (elapsed >= repeat.duration_seconds) break;
    if (repeat.max_iterations > 0 && iteration + 1 >= repeat.max_iterations) break;
  }
  return write_frame(k_worker_fd, {{"type", "done"}}) ? 0 : 2;
}

}  // namespace

int worker_main(const std::vector<std::string>& args, const WorkerHooks& given) {
  // First: never outlive the daemon. The parent may have died before prctl: then getppid() is
  // no longer the pid it passed.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  pid_t parent = 0;
  if (args.size() == 2 && args[0] == "--parent") parent = static_cast<pid_t>(std::atol(args[1].c_str()));
  if (parent <= 0 || ::getppid() != parent) return 3;

  auto logger = spdlog::stderr_color_mt("worker");
  logger->set_pattern("worker[%P]: %l: %v");
  spdlog::set_default_logger(logger);
  WorkerHooks hooks = given;

  auto request = read_frame(k_worker_fd);
  if (!request) return fail("request: " + request.error().message);
  try {
    if (!hooks.discover) {
      // The daemon's backend_preference, so the discovery and every run worker agree on which
      // backend's view of a GPU is the device.
      const auto preference = request->value("backend_preference", k_default_backend_preference);
      // External workers (docs/external-workers.md): a run worker for one of their devices
      // starts only that worker and no built-in backend; one for a built-in device starts none.
      const auto external = external_workers_from_json(request->value("external_workers", json::array()));
      const std::string id = request->value("device", std::string());
      hooks.discover = [preference, external, id] {
        if (!id.empty() && is_external_device_id(external, id)) return discover_external(external, id);
        Discovery found = discover_devices(preference);
        if (!id.empty()) return found;
        Discovery more = discover_external(external);
        for (DevicePtr& device : more.devices) found.devices.push_back(std::move(device));
        found.backend_notes.insert(found.backend_notes.end(), more.backend_notes.begin(), more.backend_notes.end());
        return found;
      };
    }
    spdlog::set_level(spdlog::level::from_str(request->value("log_level", std::string("info"))));
    // Before any driver is loaded: which devices CUDA shows this process (one MIG instance).
    if (const std::string visible = request->value("cuda_visible_devices", std::string()); !visible.empty()) {
      ::setenv("CUDA_VISIBLE_DEVICES", visible.c_str(), 1);
    }
    const std::string type = request->at("type").get<std::string>();
    if (type == "discover") return discover(*request, hooks);
    if (type == "run") return run(*request, hooks);
    return fail("unknown request type '" + type + "'");
  } catch (const json::exception& e) {
    return fail(std::string("malformed request: ") + e.what());
  } catch (const std::out_of_range& e) {
    return fail(std::string("malformed request: ") + e.what());
  }
}

}  // namespace substrate::worker
