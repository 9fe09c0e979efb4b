#include "daemon/service.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <random>
#include <set>

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "daemon/control_socket.hpp"
#include "daemon/device_changes.hpp"
#include "daemon/device_worker.hpp"
#include "daemon/exit_code.hpp"
#include "daemon/git_revision.hpp"
#include "daemon/http_server.hpp"
#include "daemon/logging.hpp"
#include "daemon/probe_command.hpp"
#include "daemon/process_metrics.hpp"
#include "daemon/report.hpp"
#include "daemon/scheduler.hpp"
#include "daemon/state_store.hpp"
#include "daemon/supervisor.hpp"
#include "daemon/telemetry_history.hpp"
#include "daemon/telemetry_reader.hpp"
#include "daemon/verdict.hpp"
#include "daemon/worker_protocol.hpp"
#include "probes/core/registry.hpp"
#include "probes/telemetry/join.hpp"
#include "probes/telemetry/metrics.hpp"
#include "probes/telemetry/verdict.hpp"

namespace substrate {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
namespace asio = boost::asio;

// Workers are this very binary (daemon/worker_main.hpp); /proc/self/exe still starts it after
// a package upgrade replaced the file, so daemon and workers always speak the same protocol.
constexpr const char* k_worker_executable = "/proc/self/exe";
// Deadlines of the phases around the specs: spawn to the device open, one result to the next
// start (goldens are computed while the device runs, so this gap is short), "done" to exit.
constexpr double k_open_seconds = 60.0;
constexpr double k_exit_seconds = 10.0;
double unix_now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

std::chrono::nanoseconds seconds(double s) { return clamped_delay(s); }

double seconds_until(Clock::time_point when) { return std::chrono::duration<double>(when - Clock::now()).count(); }

// A spec's result must come within this many seconds of its start (the backend's own fence
// timeout is `timeout`; the margin lets that report come first).
double spec_deadline(double timeout) { return timeout * 1.5 + 1.0; }

// Wait before a hung device is probed again: the probe's interval but at least 5 s, doubled for
// each consecutive hang, at most an hour.
double hung_backoff(unsigned hangs, double interval) {
  const double base = std::max(5.0, interval);
  return std::min(3600.0, base * std::pow(2.0, std::min(hangs, 20u) - 1.0));
}

void notify(const std::string& message) { sd_notify(0, message.c_str()); }

// Metrics of one probe on one device, from its last scheduled run.
struct ProbeStats {
  std::uint64_t runs = 0;
  std::map<Reason, std::uint64_t> failures;
  std::uint64_t fingerprint_changes = 0;
  double budget = 0.0;
  std::uint64_t mismatched = 0;
  double device_seconds = 0.0;
  double wall_seconds = 0.0;
  double slowdown_ratio = 0.0;
  double last_run = 0.0;
  double last_success = 0.0;
  bool drill = false;
  bool cross_device = false;
  std::vector<ProbeResult> last_results;
};

// One spec as a worker runs it.
struct PlannedSpec {
  std::string probe;
  ProbeSpec spec;
  std::string drill;  // a process drill (worker::is_process_drill) or empty
  double timeout_seconds = 0.0;
};

// What one worker runs: a scheduled round (every probe of the device that is due) or one
// on-demand request.
struct Job {
  bool on_demand = false;
  std::vector<PlannedSpec> specs;
  std::function<void(std::vector<ProbeResult>)> done;  // on-demand: a result for every spec
};

// The job a device's worker is running.
struct Running {
  Job job;
  std::shared_ptr<WorkerProcess> worker;
  std::vector<std::optional<ProbeResult>> results;
  std::optional<std::size_t> current;  // the spec the worker said it started last
  Clock::time_point current_since = Clock::now();
  std::string error;        // from the worker's "error" frame
  std::string ended_early;  // from "done": why the worker stopped before its last spec (a sticky error)
};

struct Slot {
  DeviceInfo info;
  VerdictState verdict;
  std::vector<TelemetryFinding> telemetry_conditions;
  std::map<std::string, ProbeStats> probes;  // probes that ran on the device (not only skipped)
  std::map<std::pair<std::string, SkipKind>, std::uint64_t> skipped;  // scheduled rounds, by probe and kind
  std::map<std::string, std::unique_ptr<asio::steady_timer>> timers;
  std::map<std::string, double> last_cost;  // device seconds of the probe's last run
  DutyCycleBudget budget;
  std::deque<Job> on_demand;                             // served before the next scheduled round
  std::vector<std::string> due;                          // scheduled probes waiting for the next round
  std::unique_ptr<Running> running;                      // at most one worker per device at a time
  unsigned hangs = 0;                                    // consecutive hung rounds (for the backoff)
  Clock::time_point retry_at;                            // while hung: no scheduled run before this
  std::map<std::string, std::uint64_t> worker_exits;     // by outcome: ok, hung, crashed, error
  std::map<std::string, std::uint64_t> baseline_resets;  // by reason label
  std::map<std::string, std::uint64_t> device_changes;   // by changed field ("what"); new_device
  json recorded_changes = json::array();                 // for /status (daemon/device_changes.hpp)
};

std::string state_device_key(const DeviceInfo& info) { return info.uuid.empty() ? info.id : info.uuid; }

// A result for a spec whose worker gave none.
ProbeResult unfinished(const DeviceInfo& info, const ProbeSpec& spec, RunStatus status, ErrorKind kind, std::string why,
                       double wall_seconds) {
  ProbeResult result;
  result.device = info;
  result.spec = spec;
  result.status = status;
  result.error_kind = kind;
  result.error = std::move(why);
  result.check.pass = false;
  result.wall_seconds = wall_seconds;
  result.finished_at = unix_now();
  return result;
}

bool is_error_status(RunStatus status) {
  return status == RunStatus::error || status == RunStatus::hung || status == RunStatus::crashed;
}

std::string describe(const WorkerExit& exit, pid_t pid) {
  if (exit.deadline_passed) return "worker " + std::to_string(pid) + " killed at its deadline";
  if (!exit.protocol_error.empty()) return "worker " + std::to_string(pid) + ": protocol error: " + exit.protocol_error;
  if (exit.signal) return "worker " + std::to_string(pid) + " killed by " + signal_name(exit.signal);
  return "worker " + std::to_string(pid) + " exited with code " + std::to_string(exit.exit_code);
}

struct FoundDevices {
  std::vector<DeviceInfo> devices;
  std::vector<std::string> notes;  // the backends' notes, or why discovery failed
};

// The device list, found by a worker so the daemon never loads a GPU driver. Runs before the
// event loop starts, on its own io_context; a worker that does not answer within
// k_open_seconds is killed and the daemon serves with no devices, saying why in the notes.
FoundDevices discover_in_worker(const std::string& log_level, const std::vector<std::string>& backend_preference) {
  FoundDevices found;
  asio::io_context io;
  bool answered = false;
  std::string failure;
  pid_t pid = 0;
  auto worker =
      WorkerProcess::spawn(io, k_worker_executable,
                           {{"type", "discover"}, {"log_level", log_level}, {"backend_preference", backend_preference}},
                           {[&](const json& frame) {
                              try {
                                if (frame.at("type") == "devices") {
                                  found.devices = frame.at("devices").get<std::vector<DeviceInfo>>();
                                  found.notes = frame.at("notes").get<std::vector<std::string>>();
                                  answered = true;
                                } else if (frame.at("type") == "error") {
                                  failure = frame.at("message").get<std::string>();
                                }
                              } catch (const json::exception& e) {
                                failure = std::string("malformed device list: ") + e.what();
                              }
                            },
                            [&](const WorkerExit& exit) {
                              if (!answered && failure.empty()) failure = describe(exit, pid);
                            }});
  if (!worker) {
    found.notes.push_back("discovery: " + worker.error().message);
    return found;
  }
  pid = (*worker)->pid();
  (*worker)->set_deadline(k_open_seconds);
  io.run_for(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(k_open_seconds + 5)));
  if (!answered) {
    found.devices.clear();
    found.notes.push_back("discovery failed: " + (failure.empty() ? "no answer from the worker" : failure));
    spdlog::error("device discovery failed: {}", failure);
  }
  return found;
}

class Service {
 public:
  Service(Config config, std::string config_path, FoundDevices found)
      : signals_(io_, SIGHUP, SIGTERM, SIGINT),
        config_(std::move(config)),
        config_path_(std::move(config_path)),
        store_(config_.state_directory),
        rng_(std::random_device{}()),
        backend_notes_(std::move(found.notes)) {
    for (DeviceInfo& info : found.devices) {
      bool selected = false;
      for (const std::string& selector : config_.devices) selected = selected || device_matches(info, selector);
      if (!selected) continue;
      auto slot = std::make_unique<Slot>();
      slot->info = std::move(info);
      slots_.push_back(std::move(slot));
    }
  }

  // The web configuration checked at start, and the flags that override the YAML at each reload.
  void set_web(WebFlags flags, std::shared_ptr<WebSecurity> security) {
    web_flags_ = std::move(flags);
    web_security_ = std::move(security);
  }

  int run() {
    std::string note;
    state_ = store_.load(&note);
    if (!note.empty()) spdlog::info("state: {}", note);
    record_devices();
    std::map<std::string, std::string> log_devices;
    for (const auto& slot : slots_) log_devices[slot->info.id] = slot->info.uuid;
    set_log_devices(std::move(log_devices));

    // Replace, not throw, on invalid UTF-8 (a config path or device name is bytes, not text).
    HttpHandlers handlers{[this] { return metrics_text(); },
                          [this] { return status_json().dump(2, ' ', false, json::error_handler_t::replace); }};
    auto http = HttpServer::start(io_, config_.listen_address, config_.listen_port, handlers, {}, web_security_);
    if (!http) {
      spdlog::error("cannot serve HTTP: {}", http.error().message);
      return cli::k_exit_cannot_run;
    }
    http_ = std::move(http.value());
    std::error_code ignored;
    std::filesystem::create_directories(config_.runtime_directory, ignored);
    auto control = ControlServer::start(
        io_, control_socket_path(),
        [this](const json& request, std::function<void(json)> reply) { handle_control(request, std::move(reply)); });
    if (!control) {
      spdlog::error("cannot open the control socket: {}", control.error().message);
      return cli::k_exit_cannot_run;
    }
    control_ = std::move(control.value());

    telemetry::TelemetryOptions telemetry_options;
    telemetry_options.sysfs_root = config_.sysfs_root;
    telemetry_ = std::make_unique<telemetry::TelemetryReader>(telemetry_options);
    for (const std::string& n : backend_notes_) spdlog::info("devices: {}", n);

    signals_.async_wait([this](const boost::system::error_code& ec, int signal) { on_signal(ec, signal); });
    for (auto& slot : slots_) start_device(*slot);
    schedule_telemetry(0.0);
    arm_systemd_watchdog();
    spdlog::info("serving on {}:{} with {} device(s); control socket {}", config_.listen_address, http_->port(),
                 slots_.size(), control_socket_path());
    notify("READY=1\nSTATUS=" + status_line());
    io_.run();
    return cli::k_exit_ok;
  }

 private:
  std::string control_socket_path() const { return substrate::control_socket_path(config_); }

  // Device identity: a driver or kernel-build change resets that device's baselines (and says
  // so) instead of raising a false fingerprint alarm.
  void record_devices() {
    for (auto& slot : slots_) {
      const DeviceInfo& info = slot->info;
      const std::string key = state_device_key(info);
      const DeviceRecord current = device_record(info, unix_now());
      const DeviceChanges changes = detect_device_changes(state_.devices, key, current);
      if (changes.any()) {
        spdlog::warn("{}: device changed since the last run: {}", info.id, describe(changes));
        for (const std::string& what : changes.what()) ++slot->device_changes[what];
        json entry = changes;
        entry["at"] = current.updated_at;
        slot->recorded_changes.push_back(std::move(entry));
      }
      if (changes.reset_baselines) {
        for (const std::string& reason : changes.reset_reasons) ++slot->baseline_resets[reason];
        std::erase_if(state_.baselines, [&](const auto& entry) {
          return entry.first.device_uuid == key || entry.first.device_uuid == changes.replaced_key.value_or(key);
        });
      }
      if (changes.replaced_key) state_.devices.erase(*changes.replaced_key);
      state_.devices[key] = current;
    }
    save_state();
  }

  void save_state() {
    Status saved = store_.save(state_);
    if (!saved) spdlog::error("state: {}", saved.error().message);
  }

  void start_device(Slot& slot) {
    for (const auto& [probe, schedule] : config_.probes) {
      if (!schedule.enabled) continue;
      std::uniform_real_distribution<double> first(0.0, std::min(2.0, schedule.interval_seconds));
      arm(slot, probe, first(rng_));
    }
  }

  void arm(Slot& slot, const std::string& probe, double delay) {
    auto& timer = slot.timers[probe];
    if (!timer) timer = std::make_unique<asio::steady_timer>(io_);
    timer->expires_after(seconds(delay));
    timer->async_wait([this, &slot, probe](const boost::system::error_code& ec) {
      if (!ec) on_timer(slot, probe);
    });
  }

  double jittered(double interval) {
    std::uniform_real_distribution<double> jitter(-config_.jitter_ratio, config_.jitter_ratio);
    return interval * (1.0 + jitter(rng_));
  }

  std::optional<double> utilization(const Slot& slot) const {
    for (const telemetry::TelemetryDevice& t : telemetry_snapshot_.devices) {
      if (t.device != slot.info.id) continue;
      auto it = t.readings.utilization_ratio.find("gpu");
      if (it != t.readings.utilization_ratio.end()) return it->second;
    }
    return std::nullopt;
  }

  void on_timer(Slot& slot, const std::string& probe) {
    if (stopping_) return;
    auto schedule_it = config_.probes.find(probe);
    if (schedule_it == config_.probes.end() || !schedule_it->second.enabled) return;
    const ProbeSchedule& schedule = schedule_it->second;
    // A hung device is retried only once its backoff has passed.
    if (slot.verdict.health == Health::hung && seconds_until(slot.retry_at) > 0) {
      arm(slot, probe, seconds_until(slot.retry_at));
      return;
    }
    // Duty-cycle budget: device time accrues at max_duty_cycle per second of wall time.
    const double cost = slot.last_cost.count(probe) ? slot.last_cost[probe] : 0.0;
    double round = 0.0;
    for (const auto& [name, seconds] : slot.last_cost) round += seconds;
    const double wait = slot.budget.defer(cost, round, config_.max_duty_cycle, Clock::now());
    if (wait > 0.0) {
      spdlog::debug("{} {}: duty-cycle budget exhausted, deferred {:.0f} s", slot.info.id, probe, wait);
      arm(slot, probe, wait);
      return;
    }
    // Busy devices are deferred, but never beyond the maximum staleness.
    const auto ran = slot.probes.find(probe);
    const double last = ran == slot.probes.end() ? 0.0 : ran->second.last_run;
    const auto busy = utilization(slot);
    if (busy && *busy > config_.busy_utilization && last > 0 && unix_now() - last < config_.max_staleness_seconds) {
      spdlog::debug("{} {}: device busy ({:.0f}%), deferred", slot.info.id, probe, *busy * 100);
      arm(slot, probe, std::min(60.0, schedule.interval_seconds / 4));
      return;
    }
    slot.due.push_back(probe);
    pump(slot);
  }

  Expected<std::vector<ProbeSpec>> scheduled_specs(const Slot& slot, const std::string& probe,
                                                   const ProbeSchedule& schedule) const {
    ProbeRequest request;
    request.kernels = {probe};
    request.size = schedule.size;
    request.seed = schedule.seed;
    if (schedule.drill && !worker::is_process_drill(*schedule.drill)) request.inject = schedule.drill;
    TRY_ASSIGN(auto specs, specs_for(request, slot.info));
    const ProbeDescriptor& descriptor = *probe_registry().find(probe);
    std::vector<ProbeSpec> chosen;
    for (const ProbeSpec& spec : specs) {
      if (spec_selected(descriptor, spec, schedule.modes, schedule.dtypes)) chosen.push_back(spec);
    }
    return chosen;
  }

  // Starts the device's next worker when none runs: on-demand requests first, then a round of
  // every scheduled probe that is due.
  void pump(Slot& slot) {
    if (stopping_ || slot.running) return;
    if (!slot.on_demand.empty()) {
      Job job = std::move(slot.on_demand.front());
      slot.on_demand.pop_front();
      start_job(slot, std::move(job));
      return;
    }
    Job job;
    for (const std::string& probe : slot.due) {
      const ProbeSchedule& schedule = config_.probes[probe];
      auto specs = scheduled_specs(slot, probe, schedule);
      if (!specs) {
        spdlog::error("{} {}: {}", slot.info.id, probe, specs.error().message);
        arm(slot, probe, jittered(schedule.interval_seconds));
        continue;
      }
      const std::string drill = schedule.drill && worker::is_process_drill(*schedule.drill) ? *schedule.drill : "";
      for (const ProbeSpec& spec : *specs) job.specs.push_back({probe, spec, drill, schedule.timeout_seconds});
    }
    slot.due.clear();
    if (!job.specs.empty()) start_job(slot, std::move(job));
  }

  void start_job(Slot& slot, Job job) {
    json specs = json::array();
    for (const PlannedSpec& p : job.specs) {
      specs.push_back({{"spec", p.spec}, {"drill", p.drill}, {"timeout_seconds", p.timeout_seconds}});
    }
    const json request = {{"type", "run"},
                          {"device", slot.info.id},
                          {"uuid", slot.info.uuid},
                          {"log_level", config_.log_level},
                          {"backend_preference", config_.backend_preference},
                          {"golden_cache_max_bytes", config_.golden_cache_max_bytes},
                          {"dump_root", config_.state_directory + "/dumps"},
                          {"dump_max_bytes", job.on_demand ? 0 : config_.failure_dump_max_bytes},
                          {"specs", specs}};
    slot.running = std::make_unique<Running>();
    slot.running->results.resize(job.specs.size());
    slot.running->job = std::move(job);
    Slot* s = &slot;
    auto worker = WorkerProcess::spawn(io_, k_worker_executable, request,
                                       {[this, s](const json& frame) { on_worker_frame(*s, frame); },
                                        [this, s](const WorkerExit& exit) { on_worker_exit(*s, exit); }});
    if (!worker) {
      spdlog::error("{}: {}", slot.info.id, worker.error().message);
      slot.running->error = worker.error().message;
      WorkerExit none;
      none.exit_code = 127;
      on_worker_exit(slot, none);
      return;
    }
    slot.running->worker = std::move(worker.value());
    slot.running->worker->set_deadline(k_open_seconds);
    spdlog::debug("{}: worker {} started for {} spec(s)", slot.info.id, slot.running->worker->pid(),
                  slot.running->job.specs.size());
  }

  void on_worker_frame(Slot& slot, const json& frame) {
    Running* running = slot.running.get();
    if (!running || !running->worker) return;
    try {
      const std::string type = frame.at("type").get<std::string>();
      if (type == "started" || type == "result") {
        const std::size_t index = frame.at("index").get<std::size_t>();
        if (index >= running->results.size()) throw std::out_of_range("spec index " + std::to_string(index));
        if (type == "started") {
          running->current = index;
          running->current_since = Clock::now();
          running->worker->set_deadline(spec_deadline(running->job.specs[index].timeout_seconds));
        } else {
          running->results[index] = frame.at("result").get<ProbeResult>();
          running->worker->set_deadline(k_open_seconds);
        }
      } else if (type == "done") {
        running->ended_early = frame.value("ended_early", std::string());
        running->worker->set_deadline(k_exit_seconds);
      } else if (type == "error") {
        running->error = frame.at("message").get<std::string>();
      }
      // "opened" and types of later protocol revisions need nothing here.
    } catch (const std::exception& e) {
      spdlog::error("{}: worker {} sent a malformed frame ({}); killed", slot.info.id, running->worker->pid(),
                    e.what());
      running->error = std::string("malformed frame from the worker: ") + e.what();
      running->worker->kill();
    }
  }

  // The worker is gone (reaped): the first spec without a result is the one it died on.
  void on_worker_exit(Slot& slot, const WorkerExit& exit) {
    std::unique_ptr<Running> running = std::move(slot.running);
    const pid_t pid = running->worker ? running->worker->pid() : 0;
    std::vector<std::optional<ProbeResult>>& results = running->results;
    const std::vector<PlannedSpec>& specs = running->job.specs;
    std::string outcome = "ok";
    std::size_t blamed = 0;
    while (blamed < results.size() && results[blamed]) ++blamed;
    // A worker that ended early on purpose (a sticky driver error, already reported in its
    // result) and exited cleanly leaves the specs after it unrun, not blamed.
    const bool ended_early = !running->ended_early.empty() && exit.signal == 0 && exit.exit_code == 0 &&
                             !exit.deadline_passed && exit.protocol_error.empty();
    if (ended_early) {
      spdlog::warn("{}: worker {} ended after a sticky error; {} spec(s) left for the next round", slot.info.id,
                   static_cast<int>(pid), results.size() - blamed);
    } else if (blamed < results.size()) {
      const PlannedSpec& planned = specs[blamed];
      const bool started = running->current && *running->current == blamed;
      const double elapsed = std::chrono::duration<double>(Clock::now() - running->current_since).count();
      char why[256];
      if (exit.deadline_passed) {
        outcome = "hung";
        if (started) {
          std::snprintf(why, sizeof why, "no result after %.1f s (deadline %.1f s): worker %d killed, run abandoned",
                        elapsed, spec_deadline(planned.timeout_seconds), static_cast<int>(pid));
        } else {
          std::snprintf(why, sizeof why, "worker %d did not %s within %.0f s: killed, run abandoned",
                        static_cast<int>(pid), running->current ? "start its next spec" : "open the device",
                        k_open_seconds);
        }
        results[blamed] = unfinished(slot.info, planned.spec, RunStatus::hung, ErrorKind::timeout, why,
                                     started ? elapsed : exit.elapsed_seconds);
      } else if (exit.signal != 0 && !exit.killed) {
        outcome = "crashed";
        results[blamed] = unfinished(slot.info, planned.spec, RunStatus::crashed, ErrorKind::device_error,
                                     "worker " + std::to_string(pid) + " killed by " + signal_name(exit.signal) +
                                         (started ? " while running the spec" : " before the spec started"),
                                     exit.elapsed_seconds);
      } else {
        outcome = "error";
        std::string message = !running->error.empty() ? running->error
                              : stopping_             ? "the daemon stopped before the run ended"
                                                      : describe(exit, pid) + " before reporting a result";
        results[blamed] = unfinished(slot.info, planned.spec, RunStatus::error, ErrorKind::device_error,
                                     std::move(message), exit.elapsed_seconds);
      }
      spdlog::error("{} {} seed {}: {}: {}", slot.info.id, spec_key(planned.spec), planned.spec.seed,
                    to_string(results[blamed]->status), results[blamed]->error);
    } else if (exit.signal != 0 || exit.exit_code != 0) {
      spdlog::debug("{}: {} after reporting every result", slot.info.id, describe(exit, pid));
    }
    ++slot.worker_exits[outcome];

    if (running->job.on_demand) {
      std::vector<ProbeResult> all;
      for (std::size_t i = 0; i < results.size(); ++i) {
        all.push_back(results[i] ? std::move(*results[i])
                                 : unfinished(slot.info, specs[i].spec, RunStatus::error, ErrorKind::device_error,
                                              "not run: the worker ended at an earlier spec", 0.0));
      }
      running->job.done(std::move(all));
    } else {
      std::vector<std::string> order;
      std::map<std::string, std::vector<ProbeResult>> by_probe;
      for (std::size_t i = 0; i < results.size(); ++i) {
        const std::string& probe = specs[i].probe;
        if (std::find(order.begin(), order.end(), probe) == order.end()) order.push_back(probe);
        if (results[i]) by_probe[probe].push_back(std::move(*results[i]));
      }
      for (const std::string& probe : order) {
        if (by_probe[probe].empty()) {
          // Never started (an earlier spec ended the worker): its next turn comes as usual.
          if (!stopping_) arm(slot, probe, next_delay(slot, probe));
        } else {
          on_scheduled_done(slot, probe, std::move(by_probe[probe]));
        }
      }
    }
    if (stopping_) {
      maybe_finish_shutdown();
    } else {
      pump(slot);
    }
  }

  // Seconds until the probe's next scheduled run: its jittered interval, or later while a hung
  // device waits out its backoff.
  double next_delay(Slot& slot, const std::string& probe) {
    double delay = jittered(config_.probes[probe].interval_seconds);
    if (slot.verdict.health == Health::hung) delay = std::max(delay, seconds_until(slot.retry_at));
    return delay;
  }

  // Compares one result with the device's baseline (fingerprint, duration) and its peers.
  std::set<Reason> assess(Slot& slot, ProbeResult& result, ProbeStats& stats) {
    std::set<Reason> reasons;
    if (result.status == RunStatus::hung) return {Reason::timeout};
    if (result.status == RunStatus::crashed) return {Reason::crashed};
    if (result.status == RunStatus::error) {
      reasons.insert(result.error_kind == ErrorKind::timeout ? Reason::timeout : Reason::error);
      return reasons;
    }
    if (result.status == RunStatus::fail) {
      // A fail with an error is the device's own report of an uncorrectable fault (no check ran).
      reasons.insert(result.error_kind == ErrorKind::hardware_fault && !result.error.empty() ? Reason::hardware_error
                                                                                             : Reason::golden_mismatch);
    }
    if (result.drill() || result.status != RunStatus::pass) return reasons;
    const DeviceInfo& info = slot.info;
    const BaselineKey key{state_device_key(info), info.driver, info.kernel_build,
                          spec_key(result.spec) + "#" + std::to_string(result.spec.seed)};
    Baseline& baseline = state_.baselines[key];
    if (!result.fingerprint.empty() && !baseline.fingerprint.empty() && baseline.fingerprint != result.fingerprint) {
      reasons.insert(Reason::fingerprint_change);
      ++stats.fingerprint_changes;
      spdlog::warn("{} {} seed {}: fingerprint changed from {} to {} without a baseline reset", info.id,
                   spec_key(result.spec), result.spec.seed, baseline.fingerprint, result.fingerprint);
    }
    if (!result.fingerprint.empty()) baseline.fingerprint = result.fingerprint;
    const double cost = result.device_seconds;
    if (baseline.runs >= 5 && baseline.device_seconds > 0) {
      const double ratio = cost / baseline.device_seconds;
      stats.slowdown_ratio = std::max(stats.slowdown_ratio, ratio);
      if (ratio > config_.verdict.slowdown_ratio) reasons.insert(Reason::slowdown);
    }
    if (!reasons.count(Reason::slowdown)) {
      baseline.device_seconds = baseline.runs == 0 ? cost : 0.8 * baseline.device_seconds + 0.2 * cost;
    }
    ++baseline.runs;
    baseline.budget_history.push_back(result.check.budget_used);
    while (baseline.budget_history.size() > 64) baseline.budget_history.pop_front();
    baseline.updated_at = unix_now();
    return reasons;
  }

  // Cross-device vote among same-model peers on this host for each spec of the probe.
  void vote(const std::string& probe) {
    std::map<std::string, std::map<std::string, std::string>> groups;  // peer group + spec -> device -> print
    for (auto& slot : slots_) {
      const DeviceInfo& info = slot->info;
      const auto ran = slot->probes.find(probe);
      if (ran == slot->probes.end()) continue;
      for (const ProbeResult& r : ran->second.last_results) {
        if (r.status != RunStatus::pass || r.drill() || r.fingerprint.empty()) continue;
        groups[info.name + "|" + info.driver + "|" + info.kernel_build + "|" + spec_key(r.spec) + "#" +
               std::to_string(r.spec.seed)][info.id] = r.fingerprint;
      }
    }
    std::set<std::string> minority;
    for (const auto& [group, prints] : groups) {
      for (const std::string& device : fingerprint_minority(prints)) minority.insert(device);
    }
    for (auto& slot : slots_) {
      const auto ran = slot->probes.find(probe);
      if (ran != slot->probes.end()) ran->second.cross_device = minority.count(slot->info.id) > 0;
    }
  }

  void on_scheduled_done(Slot& slot, const std::string& probe, std::vector<ProbeResult> results) {
    // A probe the device's backend does not implement is counted as skipped and nothing else: it
    // neither fails nor recovers the verdict, and gets no run series (no stale last success).
    const auto is_skipped = [](const ProbeResult& r) { return r.status == RunStatus::skipped; };
    if (!results.empty() && std::all_of(results.begin(), results.end(), is_skipped)) {
      ++slot.skipped[{probe, results.front().skip_kind}];
      spdlog::debug("{} {}: skipped: {}", slot.info.id, probe, results.front().skip_reason);
      if (!stopping_) arm(slot, probe, next_delay(slot, probe));
      return;
    }
    ProbeStats& stats = slot.probes[probe];
    RunFindings findings;
    stats.budget = 0.0;
    stats.mismatched = 0;
    stats.device_seconds = 0.0;
    stats.wall_seconds = 0.0;
    stats.slowdown_ratio = 0.0;
    stats.drill = false;
    double cost = 0.0;
    for (ProbeResult& result : results) {
      const std::set<Reason> reasons = assess(slot, result, stats);
      stats.budget = std::max(stats.budget, result.check.budget_used);
      stats.mismatched += result.check.mismatched;
      stats.device_seconds += result.device_seconds;
      stats.wall_seconds += result.wall_seconds;
      stats.drill = stats.drill || result.drill();
      cost += result.device_seconds + result.generate_seconds;
      for (Reason r : reasons) {
        ++stats.failures[r];
        findings.reasons.insert(r);
      }
      if (!reasons.empty() && findings.detail.empty()) {
        findings.detail = spec_key(result.spec) + " seed " + std::to_string(result.spec.seed) +
                          (result.drill() ? " (drill)" : "") +
                          (is_error_status(result.status) || !result.error.empty()
                               ? ": " + result.error
                               : ": " + std::to_string(result.check.mismatched) + " element(s) wrong");
      }
      if (result.status != RunStatus::pass && result.status != RunStatus::skipped) {
        spdlog::warn("{} {} seed {}: {}{} (replay: {})", slot.info.id, spec_key(result.spec), result.spec.seed,
                     to_string(result.status), result.drill() ? " [drill]" : "", replay_command(result));
      }
    }
    const ProbeSchedule& schedule = config_.probes[probe];
    if (schedule.drill && worker::is_process_drill(*schedule.drill)) stats.drill = true;
    stats.last_results = std::move(results);
    vote(probe);
    if (stats.cross_device) {
      findings.reasons.insert(Reason::cross_device);
      ++stats.failures[Reason::cross_device];
      if (findings.detail.empty()) findings.detail = probe + ": fingerprint differs from the same-model peers";
    }
    ++stats.runs;
    stats.last_run = unix_now();
    if (findings.reasons.empty()) stats.last_success = stats.last_run;
    slot.last_cost[probe] = cost;
    slot.budget.spend(cost);
    const Health before = slot.verdict.health;
    apply_run(slot.verdict, findings, config_.verdict);
    if (findings.reasons.count(Reason::timeout)) {
      ++slot.hangs;
      const double backoff = hung_backoff(slot.hangs, schedule.interval_seconds);
      slot.retry_at = Clock::now() + seconds(backoff);
      spdlog::error("{}: hung ({}); probes resume in {:.0f} s, healthy again after {} clean run(s)", slot.info.id,
                    findings.detail, backoff, config_.verdict.passes_to_recover);
    } else if (slot.verdict.health != Health::hung) {
      slot.hangs = 0;
    }
    if (slot.verdict.health != before) {
      spdlog::info("{}: {} -> {}{}", slot.info.id, to_string(before), to_string(slot.verdict.health),
                   findings.detail.empty() ? "" : " (" + findings.detail + ")");
      notify("STATUS=" + status_line());
    }
    save_state();
    if (!stopping_) arm(slot, probe, next_delay(slot, probe));
  }

  // Telemetry is read on its own thread (a hung driver must not block the loop) every 15 s.
  void schedule_telemetry(double delay) {
    telemetry_timer_.expires_after(seconds(delay));
    telemetry_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopping_) return;
      if (!telemetry_worker_->idle()) {
        // The previous read has not returned (a sysfs file that blocks, a stuck driver call):
        // counted, and visible as a stale substrate_telemetry_last_read_timestamp_seconds.
        if (telemetry_overruns_++ == 0) spdlog::warn("telemetry: the previous read is still running; skipping reads");
        schedule_telemetry(15.0);
        return;
      }
      std::vector<DeviceInfo> infos;
      for (auto& slot : slots_) infos.push_back(slot->info);
      telemetry_worker_->submit([this, infos] {
        telemetry::Snapshot snapshot = telemetry::join_devices(telemetry_->read(), infos);
        asio::post(io_, [this, snapshot = std::move(snapshot)]() mutable { on_telemetry(std::move(snapshot)); });
      });
      schedule_telemetry(15.0);
    });
  }

  void on_telemetry(telemetry::Snapshot snapshot) {
    for (auto& slot : slots_) {
      // Judged against durable per-device history, events told from conditions: see
      // daemon/telemetry_history.hpp.
      std::vector<TelemetryFinding> events, conditions;
      for (TelemetryFinding& f :
           classify_telemetry(slot->info, have_telemetry_ ? &telemetry_history_ : nullptr, snapshot))
        (f.failed || f.event ? events : conditions).push_back(std::move(f));
      const Health before = slot->verdict.health;
      apply_telemetry_events(slot->verdict, events);
      if (slot->verdict.health != before)
        spdlog::warn("{}: {} -> {} (telemetry)", slot->info.id, to_string(before), to_string(slot->verdict.health));
      slot->telemetry_conditions = std::move(conditions);
    }
    remember_telemetry(telemetry_history_, snapshot);
    telemetry_snapshot_ = std::move(snapshot);
    have_telemetry_ = true;
    telemetry_read_at_ = unix_now();
  }

  void arm_systemd_watchdog() {
    std::uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return;
    systemd_watchdog_period_ = std::chrono::microseconds(usec / 2);
    pet_systemd_watchdog();
  }

  void pet_systemd_watchdog() {
    notify("WATCHDOG=1");
    systemd_watchdog_.expires_after(systemd_watchdog_period_);
    systemd_watchdog_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec && !stopping_) pet_systemd_watchdog();
    });
  }

  void on_signal(const boost::system::error_code& ec, int signal) {
    if (ec) return;
    if (signal == SIGHUP) {
      reload();
      signals_.async_wait([this](const boost::system::error_code& e, int s) { on_signal(e, s); });
      return;
    }
    spdlog::info("signal {}: stopping", signal);
    shutdown();
  }

  void reload() {
    notify("RELOADING=1");
    auto loaded = load_config(config_path_);
    std::shared_ptr<WebSecurity> security;
    if (loaded) {
      // A bad web config fails the whole reload, so the endpoint keeps its old TLS and users.
      auto web = load_web_security(web_flags_, *loaded);
      if (web)
        security = std::move(web.value());
      else
        loaded = web.error();
    }
    if (!loaded) {
      spdlog::error("reload: {}; keeping the previous configuration", loaded.error().message);
      reload_successful_ = false;
      notify("READY=1\nSTATUS=reload failed: " + loaded.error().message.substr(0, 200));
      return;
    }
    if (loaded->listen_address != config_.listen_address || loaded->listen_port != config_.listen_port ||
        loaded->devices != config_.devices || loaded->runtime_directory != config_.runtime_directory ||
        loaded->state_directory != config_.state_directory) {
      spdlog::warn("reload: listen, devices, runtime and state directories take effect at the next restart");
    }
    Config next = std::move(loaded.value());
    next.listen_address = config_.listen_address;
    next.listen_port = config_.listen_port;
    next.devices = config_.devices;
    next.runtime_directory = config_.runtime_directory;
    next.state_directory = config_.state_directory;
    const std::map<std::string, ProbeSchedule> before = config_.probes;
    config_ = std::move(next);
    spdlog::set_level(spdlog::level::from_str(config_.log_level));
    web_security_ = security;
    if (http_) http_->set_security(std::move(security));
    reload_successful_ = true;
    reload_timestamp_ = unix_now();
    // Only probes whose schedule changed are re-armed (within 2 s, so a new drill shows at
    // once); the others keep their due time, so a fleet-wide config push does not line every
    // host's probes up. Probes that are due or running re-arm when their round ends.
    std::size_t changed = 0;
    for (const auto& [probe, schedule] : config_.probes) {
      const auto old = before.find(probe);
      if (old != before.end() && old->second == schedule) continue;
      ++changed;
      for (auto& slot : slots_) {
        auto timer = slot->timers.find(probe);
        if (timer != slot->timers.end()) timer->second->cancel();
        if (!schedule.enabled || is_pending(*slot, probe)) continue;
        std::uniform_real_distribution<double> first(0.0, std::min(2.0, schedule.interval_seconds));
        arm(*slot, probe, first(rng_));
      }
    }
    spdlog::info("reload: configuration from {} applied; {} probe schedule(s) changed", config_path_, changed);
    notify("READY=1\nSTATUS=" + status_line());
  }

  // Is the probe waiting for a round or running in the device's worker?
  static bool is_pending(const Slot& slot, const std::string& probe) {
    if (std::find(slot.due.begin(), slot.due.end(), probe) != slot.due.end()) return true;
    if (!slot.running || slot.running->job.on_demand) return false;
    for (const PlannedSpec& p : slot.running->job.specs) {
      if (p.probe == probe) return true;
    }
    return false;
  }

  // SIGTERM: no new workers; running ones get most of shutdown_grace_seconds to finish, then
  // are killed; the daemon exits within the grace period whether or not they could be reaped.
  void shutdown() {
    if (stopping_) return;
    stopping_ = true;
    notify("STOPPING=1");
    for (auto& slot : slots_) {
      for (auto& [probe, timer] : slot->timers) timer->cancel();
      slot->on_demand.clear();
      slot->due.clear();
    }
    telemetry_timer_.cancel();
    systemd_watchdog_.cancel();
    signals_.cancel();
    if (http_) http_->stop();
    if (control_) control_->stop();
    const double grace = config_.shutdown_grace_seconds;
    grace_timer_.expires_after(seconds(grace * 0.8));
    grace_timer_.async_wait([this, grace](const boost::system::error_code& ec) {
      if (ec) return;
      for (auto& slot : slots_) {
        if (!slot->running || !slot->running->worker) continue;
        spdlog::warn("{}: worker {} still running at shutdown; killed, run abandoned", slot->info.id,
                     slot->running->worker->pid());
        slot->running->worker->kill();
      }
      // Reaping a killed worker can wait on the driver: give it what is left of the grace.
      grace_timer_.expires_after(seconds(grace * 0.15));
      grace_timer_.async_wait([this](const boost::system::error_code& e) {
        if (!e) finish_shutdown();
      });
    });
    maybe_finish_shutdown();
  }

  void maybe_finish_shutdown() {
    for (const auto& slot : slots_) {
      if (slot->running) return;
    }
    finish_shutdown();
  }

  void finish_shutdown() {
    if (finished_) return;
    finished_ = true;
    grace_timer_.cancel();
    // A telemetry read blocked in the kernel (a FIFO, a dead sysfs file) must not hold the exit.
    if (!telemetry_worker_->stop(std::chrono::milliseconds(100))) {
      spdlog::warn("telemetry read still running at shutdown; abandoned");
      DeviceWorker::abandon(std::move(telemetry_worker_));
      (void)telemetry_.release();  // the abandoned read still uses the reader
    }
    save_state();
    io_.stop();
  }

  void handle_control(const json& request, std::function<void(json)> reply) {
    const std::string command = request.at("command").get<std::string>();
    if (command == "status") {
      reply({{"ok", true}, {"status", status_json()}});
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
    auto parsed = parse_probe_request(args);
    if (!parsed) {
      reply({{"ok", false}, {"error", parsed.error().message}, {"exit_code", cli::k_exit_cannot_run}});
      return;
    }
    struct Pending {
      std::size_t remaining = 0;
      std::vector<ProbeResult> results;
      std::function<void(json)> reply;
    };
    auto pending = std::make_shared<Pending>();
    pending->reply = std::move(reply);
    std::vector<std::pair<Slot*, std::vector<ProbeSpec>>> work;
    for (auto& slot : slots_) {
      if (!device_matches(slot->info, parsed->device)) continue;
      auto specs = specs_for(*parsed, slot->info);
      if (!specs) {
        pending->reply({{"ok", false}, {"error", specs.error().message}, {"exit_code", cli::k_exit_cannot_run}});
        return;
      }
      work.emplace_back(slot.get(), std::move(specs.value()));
    }
    if (work.empty()) {
      pending->reply({{"ok", false},
                      {"error", "no device matches '" + parsed->device + "'"},
                      {"exit_code", cli::k_exit_cannot_run}});
      return;
    }
    pending->remaining = work.size();
    // Each device runs the request in a worker of its own, with the request's timeout: what
    // happens there (even a hang) is the client's answer and never the scheduled verdict.
    for (auto& [slot, specs] : work) {
      Job job;
      job.on_demand = true;
      for (const ProbeSpec& spec : specs) job.specs.push_back({spec.probe, spec, "", parsed->timeout_seconds});
      job.done = [pending](std::vector<ProbeResult> results) {
        for (auto& r : results) pending->results.push_back(std::move(r));
        if (--pending->remaining > 0) return;
        pending->reply({{"ok", true},
                        {"exit_code", cli::fold_exit_code(pending->results)},
                        {"text", render_results(pending->results)},
                        {"results", pending->results}});
      };
      slot->on_demand.push_back(std::move(job));
      pump(*slot);
    }
  }

  std::string status_line() const {
    std::map<Health, int> counts;
    for (const auto& slot : slots_) ++counts[effective_verdict(slot->verdict, slot->telemetry_conditions).health];
    std::string line;
    for (Health h : k_all_health) {
      if (counts[h]) line += (line.empty() ? "" : ", ") + std::to_string(counts[h]) + " " + to_string(h);
    }
    return line.empty() ? "no devices" : line;
  }

  json status_json() const {
    json devices = json::array();
    for (const auto& slot : slots_) {
      const EffectiveVerdict verdict = effective_verdict(slot->verdict, slot->telemetry_conditions);
      json probes = json::object();
      for (const auto& [probe, stats] : slot->probes) {
        json results = json::array();
        for (const ProbeResult& r : stats.last_results) {
          results.push_back({{"spec", spec_key(r.spec)},
                             {"seed", r.spec.seed},
                             {"status", to_string(r.status)},
                             {"fingerprint", r.fingerprint},
                             {"error_budget_used", r.check.budget_used},
                             {"mismatched_elements", r.check.mismatched},
                             {"drill", r.drill()},
                             {"error", r.error}});
        }
        probes[probe] = {{"runs", stats.runs},
                         {"last_run", stats.last_run},
                         {"last_success", stats.last_success},
                         {"drill", stats.drill},
                         {"cross_device_mismatch", stats.cross_device},
                         {"results", results}};
      }
      json worker = {{"running", slot->running != nullptr}, {"exits", slot->worker_exits}};
      if (slot->running && slot->running->worker) worker["pid"] = slot->running->worker->pid();
      devices.push_back({{"device", slot->info},
                         {"health", to_string(verdict.health)},
                         {"reasons", verdict.reasons},
                         {"telemetry_sources", telemetry::telemetry_sources(telemetry_snapshot_, slot->info.id)},
                         {"device_changes", slot->recorded_changes},
                         {"worker", worker},
                         {"probes", probes}});
    }
    return {{"version", SUBSTRATE_VERSION},
            {"config", config_.source},
            {"config_last_reload_successful", reload_successful_},
            {"devices", devices},
            {"backend_notes", backend_notes_},
            {"telemetry_notes", telemetry_snapshot_.notes}};
  }

  std::string metrics_text() const;

  asio::io_context io_;
  asio::signal_set signals_;
  asio::steady_timer telemetry_timer_{io_};
  asio::steady_timer systemd_watchdog_{io_};
  asio::steady_timer grace_timer_{io_};
  std::chrono::microseconds systemd_watchdog_period_{0};
  Config config_;
  std::string config_path_;
  StateStore store_;
  State state_;
  std::mt19937_64 rng_;
  std::vector<std::string> backend_notes_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::unique_ptr<HttpServer> http_;
  WebFlags web_flags_;
  std::shared_ptr<WebSecurity> web_security_;
  std::unique_ptr<ControlServer> control_;
  std::unique_ptr<telemetry::TelemetryReader> telemetry_;
  std::unique_ptr<DeviceWorker> telemetry_worker_ = std::make_unique<DeviceWorker>();
  telemetry::Snapshot telemetry_snapshot_;
  telemetry::Snapshot telemetry_history_;  // every telemetry device's newest counters: remember_telemetry
  bool have_telemetry_ = false;
  double telemetry_read_at_ = 0.0;        // unix time the last telemetry read completed
  std::uint64_t telemetry_overruns_ = 0;  // reads skipped: the previous one still ran
  bool reload_successful_ = true;
  double reload_timestamp_ = unix_now();
  bool stopping_ = false;
  bool finished_ = false;
};

// --- /metrics -------------------------------------------------------------------------------

class Families {
 public:
  prometheus::MetricFamily& family(const std::string& name, const std::string& help, prometheus::MetricType type) {
    auto it = index_.find(name);
    if (it != index_.end()) return families_[it->second];
    index_[name] = families_.size();
    families_.push_back(prometheus::MetricFamily{name, help, type, {}});
    return families_.back();
  }
  void gauge(const std::string& name, const std::string& help, std::vector<prometheus::ClientMetric::Label> labels,
             double value) {
    prometheus::ClientMetric metric;
    metric.label = std::move(labels);
    metric.gauge.value = value;
    family(name, help, prometheus::MetricType::Gauge).metric.push_back(std::move(metric));
  }
  void counter(const std::string& name, const std::string& help, std::vector<prometheus::ClientMetric::Label> labels,
               double value) {
    prometheus::ClientMetric metric;
    metric.label = std::move(labels);
    metric.counter.value = value;
    family(name, help, prometheus::MetricType::Counter).metric.push_back(std::move(metric));
  }
  std::vector<prometheus::MetricFamily>& all() { return families_; }

 private:
  std::vector<prometheus::MetricFamily> families_;
  std::map<std::string, std::size_t> index_;
};

std::string Service::metrics_text() const {
  const auto scrape_started = std::chrono::steady_clock::now();
  Families f;
  const std::string last = " From the last scheduled run, not computed at scrape time.";
  std::string kernel_build;
  for (const auto& slot : slots_) kernel_build = slot->info.kernel_build;
  f.gauge("substrate_build_info",
          "Build of substrated; revision is the git commit it was built from, kernel_build hashes the embedded kernel "
          "binaries.",
          {{"version", SUBSTRATE_VERSION}, {"revision", git_revision()}, {"kernel_build", kernel_build}}, 1);
  // Zero devices is not silent: a count per backend (0 included) and the discovery problems.
  std::map<std::string, std::size_t> devices_by_backend{{"cuda", 0}, {"vulkan", 0}};
  for (const auto& slot : slots_) ++devices_by_backend[slot->info.backend];
  for (const auto& [backend, count] : devices_by_backend) {
    f.gauge("substrate_devices",
            "Compute devices this daemon checks (found at start and selected by `devices:`), by backend.",
            {{"backend", backend}}, static_cast<double>(count));
  }
  std::map<std::string, std::size_t> discovery_errors{{"cuda", 0}, {"vulkan", 0}, {"discovery", 0}};
  for (const std::string& note : backend_notes_) {
    const std::string prefix = note.substr(0, note.find(':'));
    ++discovery_errors[prefix == "cuda" || prefix == "vulkan" ? prefix : std::string("discovery")];
  }
  for (const auto& [backend, count] : discovery_errors) {
    f.gauge("substrate_device_discovery_errors",
            "Problems device discovery reported at start, by backend (discovery: the discovery worker itself "
            "failed): not compiled in, no driver, no devices, a device unusable. Texts in /status backend_notes.",
            {{"backend", backend}}, static_cast<double>(count));
  }
  f.gauge("substrate_config_last_reload_successful", "1 when the last configuration (re)load succeeded.", {},
          reload_successful_ ? 1 : 0);
  f.gauge("substrate_config_last_reload_success_timestamp_seconds", "Time of the last successful configuration load.",
          {}, reload_timestamp_);
  f.gauge("substrate_telemetry_last_read_timestamp_seconds",
          "End of the last completed telemetry read (0: none yet); stale while a read is blocked.", {},
          telemetry_read_at_);
  f.counter("substrate_telemetry_read_overruns_total",
            "Telemetry reads skipped because the previous read had not returned.", {},
            static_cast<double>(telemetry_overruns_));
  // Families a healthy host has no series for still appear (with their TYPE) so dashboards and
  // rules see every name.
  f.family("substrate_probe_failures_total", "Failed scheduled probe runs by reason." + last,
           prometheus::MetricType::Counter);
  f.family("substrate_probe_skipped_total",
           "Scheduled probe runs skipped by reason (not_implemented: the device's backend lacks the probe; "
           "out_of_memory: too little free device memory; device_busy: the device refused this process).",
           prometheus::MetricType::Counter);
  f.family("substrate_baseline_resets_total", "Baselines reset because the driver or kernel build changed.",
           prometheus::MetricType::Counter);
  f.family("substrate_device_changes_total",
           "Recorded device identity/environment fields that changed since the last run (new_device: another GPU in "
           "the slot).",
           prometheus::MetricType::Counter);
  f.family("substrate_worker_exits_total",
           "Worker processes that ended, by outcome: ok, hung (killed at its deadline), crashed (died by a signal), "
           "error (could not start, or exited without its results).",
           prometheus::MetricType::Counter);
  for (const auto& slot : slots_) {
    const DeviceInfo& info = slot->info;
    const std::string& d = info.id;
    f.gauge("substrate_device_info", "Compute device identity.",
            {{"device", d},
             {"uuid", info.uuid},
             {"name", info.name},
             {"vendor", info.vendor},
             {"driver", info.driver},
             {"backend", info.backend},
             {"pci_bus_id", info.pci_bus_id}},
            1);
    const Health health = effective_verdict(slot->verdict, slot->telemetry_conditions).health;
    for (Health h : k_all_health) {
      f.gauge("substrate_device_health", "1 for the device's current verdict, 0 for the other states." + last,
              {{"device", d}, {"state", to_string(h)}}, h == health ? 1 : 0);
    }
    for (const auto& [reason, count] : slot->baseline_resets) {
      f.counter("substrate_baseline_resets_total", "", {{"device", d}, {"reason", reason}}, static_cast<double>(count));
    }
    for (const char* outcome : {"ok", "hung", "crashed", "error"}) {
      const auto it = slot->worker_exits.find(outcome);
      f.counter("substrate_worker_exits_total", "", {{"device", d}, {"outcome", outcome}},
                it == slot->worker_exits.end() ? 0.0 : static_cast<double>(it->second));
    }
    for (const auto& [what, count] : slot->device_changes) {
      f.counter("substrate_device_changes_total", "", {{"device", d}, {"what", what}}, static_cast<double>(count));
    }
    for (const auto& [skip, count] : slot->skipped) {
      f.counter("substrate_probe_skipped_total", "",
                {{"device", d}, {"probe", skip.first}, {"reason", to_string(skip.second)}}, static_cast<double>(count));
    }
    double bandwidth = -1, bad_words = -1;
    for (const auto& [probe, s] : slot->probes) {
      const std::vector<prometheus::ClientMetric::Label> labels{{"device", d}, {"probe", probe}};
      f.counter("substrate_probe_runs_total", "Completed scheduled probe runs.", labels, static_cast<double>(s.runs));
      // Every reason from the first run on, zeros included, so increase() sees the first failure.
      for (Reason reason : k_all_reasons) {
        const auto it = s.failures.find(reason);
        f.counter("substrate_probe_failures_total", "",
                  {{"device", d}, {"probe", probe}, {"reason", to_string(reason)}},
                  it == s.failures.end() ? 0.0 : static_cast<double>(it->second));
      }
      f.gauge("substrate_probe_error_budget_ratio", "Max over elements of error divided by the derived bound." + last,
              labels, s.budget);
      f.gauge("substrate_probe_mismatched_elements", "Elements outside the bound or not bit-exact." + last, labels,
              static_cast<double>(s.mismatched));
      f.gauge("substrate_probe_duration_seconds", "Device time of the checked kernels." + last, labels,
              s.device_seconds);
      f.gauge("substrate_probe_wall_seconds", "Wall time of the run including generation, golden and check." + last,
              labels, s.wall_seconds);
      f.gauge("substrate_probe_slowdown_ratio",
              "Device time divided by the device's baseline (0: no baseline yet)." + last, labels, s.slowdown_ratio);
      f.gauge("substrate_probe_last_run_timestamp_seconds", "End of the last scheduled run.", labels, s.last_run);
      f.gauge("substrate_probe_last_success_timestamp_seconds", "End of the last scheduled run that passed.", labels,
              s.last_success);
      f.gauge("substrate_probe_drill", "1 while a fault-injection drill is configured for the probe.", labels,
              s.drill ? 1 : 0);
      f.counter("substrate_fingerprint_changes_total",
                "Output fingerprint differed from the previous run of the same key without a baseline reset.", labels,
                static_cast<double>(s.fingerprint_changes));
      f.gauge("substrate_cross_device_mismatch", "1 when the device is in the minority of its same-model peers." + last,
              labels, s.cross_device ? 1 : 0);
      for (const ProbeResult& r : s.last_results) {
        if (r.fingerprint.empty() || r.drill()) continue;
        f.gauge(
            "substrate_kernel_fingerprint_info",
            "Hash of the output bits of a probe spec; equal model, driver, kernel build and spec must agree." + last,
            {{"device", d},
             {"probe", probe},
             {"spec", spec_key(r.spec) + "#" + std::to_string(r.spec.seed)},
             {"fingerprint", r.fingerprint},
             {"model", info.name},
             {"driver", info.driver},
             {"kernel_build", info.kernel_build}},
            1);
      }
      for (const ProbeResult& r : s.last_results) {
        if (!r.memory) continue;
        bandwidth = r.memory->bandwidth_bytes_per_second;
        bad_words = static_cast<double>(r.memory->bad_words + r.memory->retention_bad_words);
      }
    }
    if (bandwidth >= 0) {
      f.gauge("substrate_memory_bandwidth_bytes_per_second", "Achieved by the memory probe (read plus written)." + last,
              {{"device", d}}, bandwidth);
      f.gauge("substrate_memory_bad_words", "Bad words in the last memory probe run, retention block included." + last,
              {{"device", d}}, bad_words);
    }
  }
  std::vector<prometheus::MetricFamily> families = std::move(f.all());
  for (auto& family : telemetry::to_metric_families(telemetry_snapshot_)) families.push_back(std::move(family));
  for (auto& family : process_metric_families(scrape_started)) families.push_back(std::move(family));
  return prometheus::TextSerializer().Serialize(families);
}

// Holds an exclusive flock on <state_directory>/substrated.lock for the daemon's life (the fd
// is returned; the lock goes with the process). unavailable, naming the holder's pid, when
// another daemon holds it; io_error when the file cannot be created.
Expected<int> lock_state_directory(const std::string& directory) {
  std::error_code ignored;
  std::filesystem::create_directories(directory, ignored);
  const std::string path = directory + "/substrated.lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Error{ErrorKind::io_error, "cannot open the lock file " + path + ": " + std::strerror(errno)};
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char holder[32] = {};
    const ssize_t n = ::pread(fd, holder, sizeof holder - 1, 0);
    ::close(fd);
    if (err != EWOULDBLOCK) return Error{ErrorKind::io_error, "cannot lock " + path + ": " + std::strerror(err)};
    std::string pid = n > 0 ? std::string(holder, static_cast<std::size_t>(n)) : "?";
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    return Error{ErrorKind::unavailable, "another substrated (pid " + pid + ") uses the state directory " + directory +
                                             "; one state directory serves one daemon"};
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    spdlog::debug("could not write the pid into {}: {}", path, std::strerror(errno));
  }
  return fd;
}

}  // namespace

int serve(ServeOptions options) {
  auto config = load_config(options.config_path);
  if (!config) {
    std::fprintf(stderr, "substrated: %s\n", config.error().message.c_str());
    return cli::k_exit_config;
  }
  auto web = load_web_security(options.web, *config);
  if (!web) {
    std::fprintf(stderr, "substrated: %s\n", web.error().message.c_str());
    return cli::k_exit_config;
  }
  if (!spdlog::get("substrated")) configure_logging(config->log_level, options.log_format);
  // A closed stderr pipe (`serve 2>&1 | head`) or a stray user signal must not end the daemon;
  // workers get SIGUSR1/SIGUSR2 back at their defaults (daemon/supervisor.cpp).
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGUSR1, SIG_IGN);
  std::signal(SIGUSR2, SIG_IGN);
  auto lock = lock_state_directory(config->state_directory);
  if (!lock) {
    spdlog::error("{}", lock.error().message);
    return cli::k_exit_cannot_run;
  }
  FoundDevices found = discover_in_worker(config->log_level, config->backend_preference);
  Service service(std::move(config.value()), options.config_path, std::move(found));
  service.set_web(std::move(options.web), std::move(web.value()));
  const int code = service.run();
  ::close(*lock);
  return code;
}

}  // namespace substrate
