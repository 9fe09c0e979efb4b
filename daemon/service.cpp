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
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <random>
#include <set>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "daemon/baselines.hpp"
#include "daemon/checked_work.hpp"
#include "daemon/control_commands.hpp"
#include "daemon/control_socket.hpp"
#include "daemon/device_changes.hpp"
#include "daemon/device_worker.hpp"
#include "daemon/error_budget.hpp"
#include "daemon/exit_code.hpp"
#include "daemon/gpu_inventory.hpp"
#include "daemon/http_server.hpp"
#include "daemon/kubelet/pod_resources.hpp"
#include "daemon/logging.hpp"
#include "daemon/metrics_export.hpp"
#include "daemon/probe_command.hpp"
#include "daemon/scheduler.hpp"
#include "daemon/state_store.hpp"
#include "daemon/status.hpp"
#include "daemon/supervisor.hpp"
#include "daemon/telemetry_history.hpp"
#include "daemon/telemetry_reader.hpp"
#include "daemon/verdict.hpp"
#include "daemon/worker_protocol.hpp"
#include "probes/core/registry.hpp"
#include "probes/telemetry/join.hpp"
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
// The host name (uname's nodename, what node_exporter's node_uname_info says): substrate_node_info's
// `nodename`, so node_exporter's series join on it.
std::string host_name() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) return "unknown";
  return host;
}

// $NODE_NAME where Kubernetes sets it, else the host name: substrate_node_info's `node` (as
// kube-state-metrics names nodes) and `Hostname` (as dcgm-exporter does, from the same $NODE_NAME).
std::string node_name() {
  if (const char* env = std::getenv("NODE_NAME"); env != nullptr && *env != '\0') return env;
  return host_name();
}

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
  double repeat_seconds = 0.0;    // scheduled: how long the worker repeats the specs (0: one pass)
  ControlCommands::RunDone done;  // on-demand: a result for every spec, or why it was refused
};

// The job a device's worker is running.
struct Running {
  Job job;
  std::shared_ptr<WorkerProcess> worker;
  // Per spec: the result that stands for its passes (checked_work.hpp: keep_standing_result) and
  // the device seconds (kernel plus generation) of all of them, which the duty cycle is charged.
  std::vector<std::optional<ProbeResult>> results;
  std::vector<double> spent_seconds;
  std::optional<std::size_t> current;  // the spec the worker said it started last
  bool current_answered = false;       // the worker sent the result of that start
  Clock::time_point current_since = Clock::now();
  std::string error;        // from the worker's "error" frame
  std::string ended_early;  // from "done": why the worker stopped before its last spec (a sticky error)
};

// A device: what the daemon reports of it (DeviceStats) and its schedule and worker.
struct Slot : DeviceStats {
  std::map<std::string, std::unique_ptr<asio::steady_timer>> timers;
  std::map<std::string, double> last_cost;  // device seconds of the probe's last run
  DutyCycleBudget budget;
  std::deque<Job> on_demand;         // served before the next scheduled round
  std::vector<std::string> due;      // scheduled probes waiting for the next round
  std::unique_ptr<Running> running;  // at most one worker per device at a time
  unsigned hangs = 0;                // consecutive hung rounds (for the backoff)
  Clock::time_point retry_at;        // while hung: no scheduled run before this
};

class Service {
 public:
  Service(Config config, std::string config_path, FoundDevices found)
      : signals_(io_, SIGHUP, SIGTERM, SIGINT),
        config_(std::move(config)),
        config_path_(std::move(config_path)),
        store_(config_.state_directory),
        rng_(std::random_device{}()),
        backend_notes_(std::move(found.notes)),
        host_devices_(found.devices),

        unprobed_(std::move(found.unprobed)) {
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
    restore_telemetry_state();
    for (auto& slot : slots_) {
      const auto diag = state_.diags.find(state_device_key(slot->info));
      if (diag != state_.diags.end()) slot->last_diag = diag->second;
    }
    record_devices();
    std::map<std::string, std::string> log_devices;
    for (const auto& slot : slots_) log_devices[slot->info.id] = slot->info.uuid;
    set_log_devices(std::move(log_devices));

    // Replace, not throw, on invalid UTF-8 (a config path or device name is bytes, not text).
    HttpHandlers handlers{[this] { return render_metrics(view()); },
                          [this] { return status_json(view()).dump(2, ' ', false, json::error_handler_t::replace); }};
    auto http = HttpServer::start(io_, config_.listen_address, config_.listen_port, handlers, {}, web_security_);
    if (!http) {
      spdlog::error("cannot serve HTTP: {}", http.error().message);
      return k_exit_cannot_run;
    }
    http_ = std::move(http.value());
    std::error_code ignored;
    std::filesystem::create_directories(config_.runtime_directory, ignored);
    std::vector<DeviceInfo> infos;
    for (const auto& slot : slots_) infos.push_back(slot->info);
    ControlCommands::Hooks hooks;
    hooks.status = [this] { return status_json(view()); };
    hooks.run = [this](std::size_t device, std::vector<ProbeSpec> specs, double timeout,
                       ControlCommands::RunDone done) {
      run_on_demand(device, std::move(specs), timeout, std::move(done));
    };
    hooks.record_diag = [this](const diag::Summary& summary) { return record_diag(summary); };
    commands_ = std::make_unique<ControlCommands>(std::move(infos), std::move(hooks), config_.on_demand_max_host_bytes);
    auto control = ControlServer::start(
        io_, control_socket_path(),
        [this](const json& request, std::function<void(json)> reply) { commands_->handle(request, std::move(reply)); });
    if (!control) {
      spdlog::error("cannot open the control socket: {}", control.error().message);
      return k_exit_cannot_run;
    }
    control_ = std::move(control.value());

    telemetry::TelemetryOptions telemetry_options;
    telemetry_options.sysfs_root = config_.sysfs_root;
    telemetry_ = std::make_unique<telemetry::TelemetryReader>(telemetry_options);
    apply_kubelet_settings();
    for (const std::string& n : backend_notes_) spdlog::info("devices: {}", n);

    signals_.async_wait([this](const boost::system::error_code& ec, int signal) { on_signal(ec, signal); });
    for (auto& slot : slots_) start_device(*slot);
    schedule_telemetry(0.0);
    arm_systemd_watchdog();
    spdlog::info("serving on {}:{} with {} device(s); control socket {}", config_.listen_address, http_->port(),
                 slots_.size(), control_socket_path());
    notify("READY=1\nSTATUS=" + status_line());
    io_.run();
    return k_exit_ok;
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

  // A `substrated diag` result (docs/diag.md): kept in the state and /status as the device's last
  // diag; a failed one is folded into the verdict as a probe fault is. invalid_argument when no
  // device of this daemon matches.
  Expected<std::string> record_diag(const diag::Summary& summary) {
    for (auto& slot : slots_) {
      if (!device_matches(slot->info, summary.device)) continue;
      slot->last_diag = summary;
      state_.diags[state_device_key(slot->info)] = summary;
      spdlog::info("{}: diag level {}: {}{}", slot->info.id, summary.level, summary.verdict,
                   summary.detail.empty() ? "" : " (" + summary.detail + ")");
      if (summary.verdict == "fail") {
        RunFindings findings;
        for (Reason reason : k_all_reasons) {
          if (summary.reason == to_string(reason)) findings.reasons.insert(reason);
        }
        findings.detail = summary.detail;
        const Health before = slot->verdict.health;
        apply_run(slot->verdict, findings, config_.verdict);
        if (slot->verdict.health != before) {
          spdlog::info("{}: {} -> {} ({})", slot->info.id, to_string(before), to_string(slot->verdict.health),
                       findings.detail);
          notify("STATUS=" + status_line());
        }
      }
      save_state();
      return slot->info.id;
    }
    return Error{ErrorKind::invalid_argument, "no device matches '" + summary.device + "'"};
  }

  // The telemetry counters findings are judged against, and the verdicts telemetry events stand
  // in, come back from the state, so a restart neither forgets an event nor counts it again.
  void restore_telemetry_state() {
    telemetry_history_ = restore_counters(state_.telemetry_counters);
    have_telemetry_ = !telemetry_history_.devices.empty();
    for (auto& slot : slots_) {
      const auto it = state_.telemetry_verdicts.find(state_device_key(slot->info));
      if (it == state_.telemetry_verdicts.end()) continue;
      slot->verdict = restore_verdict(it->second);
      spdlog::info("{}: {} from telemetry events before the restart", slot->info.id, to_string(slot->verdict.health));
    }
  }

  // Copies the durable telemetry state into state_; true when it changed.
  bool store_telemetry_state() {
    bool changed = false;
    auto counters = durable_counters(telemetry_history_);
    if (counters != state_.telemetry_counters) {
      state_.telemetry_counters = std::move(counters);
      changed = true;
    }
    for (const auto& slot : slots_) {
      const std::string key = state_device_key(slot->info);
      const auto record = durable_verdict(slot->verdict);
      const auto it = state_.telemetry_verdicts.find(key);
      if (!record && it != state_.telemetry_verdicts.end()) {
        state_.telemetry_verdicts.erase(it);
        changed = true;
      } else if (record && (it == state_.telemetry_verdicts.end() || it->second != *record)) {
        state_.telemetry_verdicts[key] = *record;
        changed = true;
      }
    }
    return changed;
  }

  void save_state() {
    store_telemetry_state();
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

  // Sets the probe's timer `delay` seconds ahead and records why (substrate_probe_deferred).
  void arm(Slot& slot, const std::string& probe, double delay, Deferral deferral = Deferral::none) {
    const auto schedule = config_.probes.find(probe);
    if (schedule != config_.probes.end()) {
      slot.schedule[probe] = {schedule->second.interval_seconds, unix_now() + std::max(0.0, delay), deferral};
    }
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
      arm(slot, probe, seconds_until(slot.retry_at), Deferral::hung_backoff);
      return;
    }
    // Duty-cycle budget: device time accrues at max_duty_cycle per second of wall time.
    const double cost = slot.last_cost.count(probe) ? slot.last_cost[probe] : 0.0;
    double round = 0.0;
    for (const auto& [name, seconds] : slot.last_cost) round += seconds;
    const double wait = slot.budget.defer(cost, round, config_.max_duty_cycle, Clock::now());
    if (wait > 0.0) {
      spdlog::debug("{} {}: duty-cycle budget exhausted, deferred {:.0f} s", slot.info.id, probe, wait);
      arm(slot, probe, wait, Deferral::duty_cycle);
      return;
    }
    // Busy devices are deferred, but never beyond the maximum staleness.
    const auto ran = slot.probes.find(probe);
    const double last = ran == slot.probes.end() ? 0.0 : ran->second.last_run;
    const auto busy = utilization(slot);
    if (busy && *busy > config_.busy_utilization && last > 0 && unix_now() - last < config_.max_staleness_seconds) {
      spdlog::debug("{} {}: device busy ({:.0f}%), deferred", slot.info.id, probe, *busy * 100);
      arm(slot, probe, std::min(60.0, schedule.interval_seconds / 4), Deferral::busy);
      return;
    }
    slot.schedule[probe].deferral = Deferral::none;
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
    while (!slot.on_demand.empty()) {
      Job job = std::move(slot.on_demand.front());
      slot.on_demand.pop_front();
      // Checked again at its turn: the runs queued before it may have spent the budget.
      if (auto over = over_duty_cycle(slot)) {
        job.done(Error{ErrorKind::unavailable, *over});
        continue;
      }
      start_job(slot, std::move(job));
      return;
    }
    Job job;
    std::vector<double> intervals;  // of the probes in the round, for its repeat time
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
      if (!specs->empty()) intervals.push_back(schedule.interval_seconds);
    }
    slot.due.clear();
    if (job.specs.empty()) return;
    const auto enabled = std::count_if(config_.probes.begin(), config_.probes.end(),
                                       [](const auto& probe) { return probe.second.enabled; });
    job.repeat_seconds =
        round_repeat_seconds(intervals, static_cast<std::size_t>(enabled), config_.max_duty_cycle,
                             config_.coverage.duty_share, config_.coverage.max_round_seconds, slot.budget.tokens());
    start_job(slot, std::move(job));
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
                          {"probe_exclusive_gpus", config_.probe_exclusive_gpus},
                          {"external_workers", external_workers_to_json(config_.external_workers)},
                          // An on-demand worker runs each spec once: a cache would only hold memory
                          // the request's admission (memory_refusal) did not count.
                          {"golden_cache_max_bytes", job.on_demand ? 0 : config_.golden_cache_max_bytes},
                          {"dump_root", config_.state_directory + "/dumps"},
                          {"dump_max_bytes", job.on_demand ? 0 : config_.failure_dump_max_bytes},
                          {"specs", specs}};
    json request_with_repeat = request;
    if (job.repeat_seconds > 0.0) request_with_repeat["repeat"] = {{"duration_seconds", job.repeat_seconds}};
    slot.running = std::make_unique<Running>();
    slot.running->results.resize(job.specs.size());
    slot.running->spent_seconds.resize(job.specs.size());
    slot.running->job = std::move(job);
    Slot* s = &slot;
    auto worker = WorkerProcess::spawn(io_, k_worker_executable, run_request_for(slot.info, request_with_repeat),
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
          running->current_answered = false;
          running->current_since = Clock::now();
          running->worker->set_deadline(spec_deadline(running->job.specs[index].timeout_seconds));
        } else {
          ProbeResult result = frame.at("result").get<ProbeResult>();
          const auto matches = frame.find("fingerprint_matches_first");
          mark_unrepeated_fingerprint(
              result, matches == frame.end() ? std::nullopt : std::optional<bool>(matches->get<bool>()));
          if (running->current == index) running->current_answered = true;
          running->spent_seconds[index] += result.device_seconds + result.generate_seconds;
          if (!running->job.on_demand) count_checked_work(slot, running->job.specs[index].probe, result);
          keep_standing_result(running->results[index], std::move(result));
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
    // The spec the worker died on: the one it started and did not answer (in any pass of a
    // repeat), else the first that never got a result.
    std::size_t blamed = 0;
    while (blamed < results.size() && results[blamed]) ++blamed;
    if (running->current && !running->current_answered) blamed = *running->current;
    // A worker that ended early on purpose (a sticky driver error, already reported in its
    // result) and exited cleanly leaves the specs after it unrun, not blamed.
    const bool ended_early = !running->ended_early.empty() && exit.signal == 0 && exit.exit_code == 0 &&
                             !exit.deadline_passed && exit.protocol_error.empty();
    // A repeated pass cut short by the daemon's own shutdown: the spec's earlier passes stand.
    const bool cut_by_shutdown = stopping_ && exit.killed && blamed < results.size() && results[blamed].has_value();
    // How the worker ended, for the blamed spec; beside it (not instead) when an earlier pass of
    // the spec found a fault, so neither is lost.
    std::vector<ProbeResult> beside;
    if (cut_by_shutdown) {
      spdlog::debug("{}: worker {} stopped by the shutdown during a repeated pass", slot.info.id,
                    static_cast<int>(pid));
    } else if (ended_early) {
      spdlog::warn("{}: worker {} ended after a sticky error; {} spec(s) left for the next round", slot.info.id,
                   static_cast<int>(pid), results.size() - blamed);
    } else if (blamed < results.size()) {
      const PlannedSpec& planned = specs[blamed];
      const bool started = running->current && *running->current == blamed;
      const double elapsed = std::chrono::duration<double>(Clock::now() - running->current_since).count();
      char why[256];
      ProbeResult ended;
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
        ended = unanswered_result(slot.info, planned.spec, RunStatus::hung, ErrorKind::timeout, why,
                                  started ? elapsed : exit.elapsed_seconds);
      } else if (exit.signal != 0 && !exit.killed) {
        outcome = "crashed";
        ended = unanswered_result(slot.info, planned.spec, RunStatus::crashed, ErrorKind::device_error,
                                  "worker " + std::to_string(pid) + " killed by " + signal_name(exit.signal) +
                                      (started ? " while running the spec" : " before the spec started"),
                                  exit.elapsed_seconds);
      } else {
        outcome = "error";
        std::string message = !running->error.empty() ? running->error
                              : stopping_             ? "the daemon stopped before the run ended"
                                                      : describe_worker_exit(exit, pid) + " before reporting a result";
        ended = unanswered_result(slot.info, planned.spec, RunStatus::error, ErrorKind::device_error,
                                  std::move(message), exit.elapsed_seconds);
      }
      spdlog::error("{} {} seed {}: {}: {}", slot.info.id, spec_key(planned.spec), planned.spec.seed,
                    to_string(ended.status), ended.error);
      if (results[blamed] && results[blamed]->status == RunStatus::fail) {
        beside.push_back(std::move(ended));
      } else {
        results[blamed] = std::move(ended);
      }
    } else if (exit.signal != 0 || exit.exit_code != 0) {
      spdlog::debug("{}: {} after reporting every result", slot.info.id, describe_worker_exit(exit, pid));
    }
    ++slot.worker_exits[outcome];

    if (running->job.on_demand) {
      std::vector<ProbeResult> all;
      for (std::size_t i = 0; i < results.size(); ++i) {
        all.push_back(results[i]
                          ? std::move(*results[i])
                          : unanswered_result(slot.info, specs[i].spec, RunStatus::error, ErrorKind::device_error,
                                              "not run: the worker ended at an earlier spec", 0.0));
      }
      // On-demand device time counts against the device's duty cycle like a scheduled run's.
      double cost = 0.0;
      for (const ProbeResult& r : all) cost += r.device_seconds + r.generate_seconds;
      slot.budget.spend(cost);
      running->job.done(std::move(all));
    } else {
      std::vector<std::string> order;
      std::map<std::string, std::vector<ProbeResult>> by_probe;
      std::map<std::string, double> spent;  // device seconds of every pass, by probe
      for (std::size_t i = 0; i < results.size(); ++i) {
        const std::string& probe = specs[i].probe;
        if (std::find(order.begin(), order.end(), probe) == order.end()) order.push_back(probe);
        if (results[i]) by_probe[probe].push_back(std::move(*results[i]));
        spent[probe] += running->spent_seconds[i];
      }
      for (ProbeResult& result : beside) by_probe[specs[blamed].probe].push_back(std::move(result));
      for (const std::string& probe : order) {
        if (by_probe[probe].empty()) {
          // Never started (an earlier spec ended the worker): its next turn comes as usual.
          if (!stopping_) arm(slot, probe, next_delay(slot, probe));
        } else {
          on_scheduled_done(slot, probe, std::move(by_probe[probe]), spent[probe]);
        }
      }
    }
    if (stopping_) {
      maybe_finish_shutdown();
    } else {
      pump(slot);
    }
  }

  // Counts what one pass of a scheduled spec verified (substrate_checked_*_total).
  static void count_checked_work(Slot& slot, const std::string& probe, const ProbeResult& result) {
    const CheckedWork work = checked_work_of(result);
    if (work.runs == 0) return;  // nothing was checked
    ProbeStats& stats = slot.probes[probe];
    stats.checked_runs += work.runs;
    stats.checked_flops += work.flops;
    stats.checked_bytes += work.bytes;
  }

  // Seconds until the probe's next scheduled run: its jittered interval, or later while a hung
  // device waits out its backoff.
  double next_delay(Slot& slot, const std::string& probe) {
    double delay = jittered(config_.probes[probe].interval_seconds);
    if (slot.verdict.health == Health::hung) delay = std::max(delay, seconds_until(slot.retry_at));
    return delay;
  }

  // `spent`: device seconds (kernels plus generation) of every pass of the round's specs of the
  // probe, what its duty cycle is charged; the results are one standing result per spec.
  void on_scheduled_done(Slot& slot, const std::string& probe, std::vector<ProbeResult> results, double spent) {
    // A probe the device's backend does not implement is counted as skipped and nothing else: it
    // neither fails nor recovers the verdict, and gets no run series (no stale last success).
    const auto is_skipped = [](const ProbeResult& r) { return r.status == RunStatus::skipped; };
    if (!results.empty() && std::all_of(results.begin(), results.end(), is_skipped)) {
      ++slot.skipped[{probe, results.front().skip_kind}];
      slot.budget.spend(spent);  // passes before a skip may have used the device
      spdlog::debug("{} {}: skipped: {}", slot.info.id, probe, results.front().skip_reason);
      if (!stopping_) arm(slot, probe, next_delay(slot, probe));
      return;
    }
    ProbeStats& stats = slot.probes[probe];
    RoundAssessment round =
        assess_round(results, slot.info, state_.baselines, config_.verdict.slowdown_ratio, unix_now(), stats);
    RunFindings& findings = round.findings;
    const double cost = std::max(spent, round.cost);
    for (const std::string& change : round.fingerprint_changes) spdlog::warn("{} {}", slot.info.id, change);
    for (const ProbeResult& result : results) {
      if (result.status != RunStatus::pass && result.status != RunStatus::skipped) {
        spdlog::warn("{} {} seed {}: {}{} (replay: {})", slot.info.id, spec_key(result.spec), result.spec.seed,
                     to_string(result.status), result.drill() ? " [drill]" : "", replay_command(result));
      }
    }
    const ProbeSchedule& schedule = config_.probes[probe];
    if (schedule.drill && worker::is_process_drill(*schedule.drill)) stats.drill = true;
    stats.last_results = std::move(results);
    // Cross-device vote among same-model peers on this host, for each spec of the probe.
    std::vector<Ballot> ballots;
    for (const auto& peer : slots_) {
      const auto ran = peer->probes.find(probe);
      if (ran != peer->probes.end()) ballots.push_back({&peer->info, &ran->second.last_results});
    }
    const std::set<std::string> minority = cross_device_minority(ballots);
    for (auto& peer : slots_) {
      const auto ran = peer->probes.find(probe);
      if (ran != peer->probes.end()) ran->second.cross_device = minority.count(peer->info.id) > 0;
    }
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
    stats.spent_seconds += cost;
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

  // One telemetry snapshot every telemetry.interval_seconds, taken off the loop (a hung driver
  // must not block it); each source has telemetry.timeout_seconds (daemon/telemetry_reader.hpp).
  void schedule_telemetry(double delay) {
    telemetry_timer_.expires_after(seconds(delay));
    telemetry_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopping_) return;
      const double interval = config_.telemetry.interval_seconds;
      if (!telemetry_worker_->idle()) {
        // The previous snapshot has not been taken yet (reads are bounded by the timeout, so only
        // a loaded host gets here): counted, and visible as a stale
        // substrate_telemetry_last_read_timestamp_seconds.
        if (telemetry_overruns_++ == 0) spdlog::warn("telemetry: the previous read is still running; skipping reads");
        schedule_telemetry(interval);
        return;
      }
      std::vector<DeviceInfo> infos;
      for (auto& slot : slots_) infos.push_back(slot->info);
      const auto deadline = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::duration<double>(config_.telemetry.timeout_seconds));
      telemetry_worker_->submit([this, infos, deadline] {
        telemetry::Snapshot snapshot = telemetry::join_devices(telemetry_->read(deadline), infos);
        asio::post(io_, [this, snapshot = std::move(snapshot)]() mutable { on_telemetry(std::move(snapshot)); });
      });
      schedule_telemetry(interval);
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
    if (store_telemetry_state()) save_state();
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
        loaded->state_directory != config_.state_directory || loaded->external_workers != config_.external_workers) {
      spdlog::warn(
          "reload: listen, devices, external workers, runtime and state directories take effect at the next restart");
    }
    Config next = std::move(loaded.value());
    next.listen_address = config_.listen_address;
    next.listen_port = config_.listen_port;
    next.devices = config_.devices;
    next.external_workers = config_.external_workers;  // the devices they serve were found at start
    next.runtime_directory = config_.runtime_directory;
    next.state_directory = config_.state_directory;
    const std::map<std::string, ProbeSchedule> before = config_.probes;
    config_ = std::move(next);
    spdlog::set_level(spdlog::level::from_str(config_.log_level));
    web_security_ = security;
    if (http_) http_->set_security(std::move(security));
    apply_kubelet_settings();
    if (commands_) commands_->set_max_host_bytes(config_.on_demand_max_host_bytes);
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
        if (!schedule.enabled) slot->schedule.erase(probe);
        if (!schedule.enabled || is_pending(*slot, probe)) continue;
        std::uniform_real_distribution<double> first(0.0, std::min(2.0, schedule.interval_seconds));
        arm(*slot, probe, first(rng_));
      }
    }
    spdlog::info("reload: configuration from {} applied; {} probe schedule(s) changed", config_path_, changed);
    notify("READY=1\nSTATUS=" + status_line());
  }

  // Starts, restarts or stops the pod-resources watcher to match config_.kubelet.
  void apply_kubelet_settings() {
    const KubeletSettings& want = config_.kubelet;
    if (want == kubelet_settings_ && (pods_ || want.pod_resources_socket.empty())) return;
    kubelet_settings_ = want;
    pods_.reset();
    if (want.pod_resources_socket.empty()) return;
    pods_ = std::make_unique<kubelet::PodResourcesWatcher>(
        want.pod_resources_socket,
        std::chrono::milliseconds(static_cast<std::int64_t>(want.interval_seconds * 1000.0)));
    spdlog::info("pods: reading device assignments from the kubelet at {} every {} s", want.pod_resources_socket,
                 want.interval_seconds);
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
    // A telemetry read blocked in the kernel (a dead sysfs file, a stuck driver) must not hold the
    // exit: the snapshot in progress stops waiting for it, and the reader abandons its thread.
    if (telemetry_) telemetry_->cancel();
    if (!telemetry_worker_->stop(std::chrono::milliseconds(100))) {
      spdlog::warn("telemetry read still running at shutdown; abandoned");
      DeviceWorker::abandon(std::move(telemetry_worker_));
      (void)telemetry_.release();  // the abandoned read still uses the reader
    }
    save_state();
    io_.stop();
  }

  // Why an on-demand run may not start on the device now, or nullopt: it starts only while the
  // device's duty-cycle budget (the one scheduled rounds draw on) holds device time. Its cost is
  // unknown until it ran, so any time left admits it; what it used is then taken from the
  // budget (on_worker_exit), which may go into debt as after a scheduled round.
  std::optional<std::string> over_duty_cycle(Slot& slot) {
    double round = 0.0;
    for (const auto& [name, seconds] : slot.last_cost) round += seconds;
    constexpr double k_any_time = 1e-6;  // device seconds: "anything left"
    const double wait = slot.budget.defer(k_any_time, round, config_.max_duty_cycle, Clock::now());
    if (wait <= 0.0) return std::nullopt;
    char why[200];
    std::snprintf(why, sizeof why,
                  "over the duty cycle: the device-time budget (max_duty_cycle %g, on-demand runs included) is "
                  "spent; try again in %.0f s",
                  config_.max_duty_cycle, std::ceil(wait));
    return std::string(why);
  }

  // An on-demand request for one device: queued ahead of its next scheduled round
  // (daemon/control_commands.hpp says what the client gets).
  void run_on_demand(std::size_t device, std::vector<ProbeSpec> specs, double timeout_seconds,
                     ControlCommands::RunDone done) {
    Slot& slot = *slots_[device];
    if (auto over = over_duty_cycle(slot)) {
      done(Error{ErrorKind::unavailable, *over});
      return;
    }
    Job job;
    job.on_demand = true;
    for (const ProbeSpec& spec : specs) job.specs.push_back({spec.probe, spec, "", timeout_seconds});
    job.done = std::move(done);
    slot.on_demand.push_back(std::move(job));
    pump(slot);
  }

  // The daemon as /metrics and /status show it, valid until the loop changes it.
  DaemonView view() const {
    DaemonView v;
    for (const auto& slot : slots_) {
      const WorkerProcess* worker = slot->running ? slot->running->worker.get() : nullptr;
      v.devices.push_back({slot.get(), slot->running != nullptr, worker ? static_cast<int>(worker->pid()) : 0});
    }
    v.config_source = config_.source;
    v.reload_successful = reload_successful_;
    v.reload_timestamp = reload_timestamp_;
    v.backend_notes = &backend_notes_;
    v.unprobed = &unprobed_;
    v.telemetry = &telemetry_snapshot_;
    v.telemetry_read_at = telemetry_read_at_;
    v.telemetry_overruns = telemetry_overruns_;
    v.expected_devices = config_.expected_devices;
    v.node_name = node_name_;
    v.host_name = host_name_;
    v.max_staleness_seconds = config_.max_staleness_seconds;
    v.host_devices = host_devices_;
    if (pods_) {
      pod_snapshot_ = pods_->snapshot();
      v.pod_resources = &pod_snapshot_;
      v.pod_resources_socket = pods_->socket_path();
    }
    return v;
  }

  std::string status_line() const { return substrate::status_line(view()); }

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
  std::vector<DeviceInfo> host_devices_;  // every device discovery found, selected or not (identity labels)
  std::vector<UnprobedGpu> unprobed_;     // GPUs discovery found and does not probe (daemon/gpu_inventory.hpp)
  std::vector<std::unique_ptr<Slot>> slots_;
  std::unique_ptr<HttpServer> http_;
  WebFlags web_flags_;
  std::shared_ptr<WebSecurity> web_security_;
  std::unique_ptr<ControlCommands> commands_;
  std::unique_ptr<ControlServer> control_;
  std::unique_ptr<telemetry::TelemetryReader> telemetry_;
  const std::string node_name_ = node_name();
  const std::string host_name_ = host_name();
  KubeletSettings kubelet_settings_;
  std::unique_ptr<kubelet::PodResourcesWatcher> pods_;           // null: pod attribution off
  mutable kubelet::PodResourcesWatcher::Snapshot pod_snapshot_;  // what view() last lent the renderers
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
    return k_exit_config;
  }
  auto web = load_web_security(options.web, *config);
  if (!web) {
    std::fprintf(stderr, "substrated: %s\n", web.error().message.c_str());
    return k_exit_config;
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
    return k_exit_cannot_run;
  }
  FoundDevices found = discover_devices(k_worker_executable, config->log_level, config->backend_preference,
                                        external_workers_to_json(config->external_workers), k_open_seconds);
  int code = 0;
  {
    Service service(std::move(config.value()), options.config_path, std::move(found));
    service.set_web(std::move(options.web), std::move(web.value()));
    code = service.run();
  }  // the telemetry reader abandons, without waiting, a source whose read is still blocked
  ::close(*lock);
  if (DeviceWorker::any_abandoned()) {
    // A telemetry read never returned and its thread may still be blocked in the kernel: the
    // state is saved, so end here. Destructors, or a leak checker stopping every thread at exit,
    // would wait on that thread, and a read stuck in uninterruptible sleep never returns.
    spdlog::info("exiting with an abandoned telemetry read still blocked");
    spdlog::shutdown();
    std::fflush(nullptr);
    std::_Exit(code);
  }
  return code;
}

}  // namespace substrate
