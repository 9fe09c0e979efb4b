#include "daemon/service.hpp"

#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <random>
#include <set>

#include <nlohmann/json.hpp>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "daemon/exit_code.hpp"
#include "daemon/control_socket.hpp"
#include "daemon/device_changes.hpp"
#include "daemon/device_worker.hpp"
#include "daemon/http_server.hpp"
#include "daemon/probe_command.hpp"
#include "daemon/report.hpp"
#include "daemon/state_store.hpp"
#include "daemon/verdict.hpp"
#include "probes/dump.hpp"
#include "probes/registry.hpp"
#include "probes/telemetry/join.hpp"
#include "probes/telemetry/metrics.hpp"
#include "probes/telemetry/reader.hpp"
#include "probes/telemetry/verdict.hpp"

namespace substrate {
namespace {

using Clock = std::chrono::steady_clock;
namespace asio = boost::asio;

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::chrono::nanoseconds seconds(double s) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(std::max(0.0, s)));
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

struct Slot {
  DevicePtr device;
  std::unique_ptr<DeviceWorker> worker = std::make_unique<DeviceWorker>();
  VerdictState verdict;
  std::vector<TelemetryFinding> telemetry_conditions;
  std::map<std::string, ProbeStats> probes;  // probes that ran on the device (not only skipped)
  std::map<std::pair<std::string, SkipKind>, std::uint64_t> skipped;  // scheduled rounds, by probe and kind
  std::map<std::string, std::unique_ptr<asio::steady_timer>> timers;
  std::map<std::string, double> last_cost;  // device seconds of the probe's last run
  double budget_seconds = 0.0;             // duty-cycle tokens (device seconds)
  bool budget_started = false;
  Clock::time_point budget_updated = Clock::now();
  std::string running_probe;
  double running_timeout = 0.0;
  bool hung = false;
  std::map<std::string, std::uint64_t> baseline_resets;  // by reason label
  std::map<std::string, std::uint64_t> device_changes;   // by changed field ("what"); new_device
  nlohmann::json recorded_changes = nlohmann::json::array();  // for /status (daemon/device_changes.hpp)
};

std::string state_device_key(const DeviceInfo& info) { return info.uuid.empty() ? info.id : info.uuid; }

class Service {
 public:
  Service(Config config, std::string config_path, Discovery discovery)
      : signals_(io_, SIGHUP, SIGTERM, SIGINT),
        config_(std::move(config)),
        config_path_(std::move(config_path)),
        store_(config_.state_directory),
        rng_(std::random_device{}()),
        backend_notes_(std::move(discovery.backend_notes)) {
    for (DevicePtr& device : discovery.devices) {
      bool selected = false;
      for (const std::string& selector : config_.devices) selected = selected || device_matches(device->info(), selector);
      if (!selected) continue;
      auto slot = std::make_unique<Slot>();
      slot->device = std::move(device);
      slots_.push_back(std::move(slot));
    }
  }

  int run() {
    std::string note;
    state_ = store_.load(&note);
    if (!note.empty()) spdlog::info("state: {}", note);
    record_devices();

    HttpHandlers handlers{[this] { return metrics_text(); }, [this] { return status_json().dump(2); }};
    auto http = HttpServer::start(io_, config_.listen_address, config_.listen_port, handlers);
    if (!http) {
      spdlog::error("cannot serve HTTP: {}", http.error().message);
      return cli::k_exit_cannot_run;
    }
    http_ = std::move(http.value());
    std::error_code ignored;
    std::filesystem::create_directories(config_.runtime_directory, ignored);
    auto control = ControlServer::start(io_, control_socket_path(),
                                        [this](const nlohmann::json& request, std::function<void(nlohmann::json)> reply) {
                                          handle_control(request, std::move(reply));
                                        });
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
    schedule_watchdog();
    schedule_telemetry(0.0);
    arm_systemd_watchdog();
    spdlog::info("serving on {}:{} with {} device(s); control socket {}", config_.listen_address, http_->port(),
                 slots_.size(), control_socket_path());
    notify("READY=1\nSTATUS=" + status_line());
    io_.run();
    return cli::k_exit_ok;
  }

 private:
  std::string control_socket_path() const { return config_.runtime_directory + "/control.sock"; }

  // Device identity: a driver or kernel-build change resets that device's baselines (and says
  // so) instead of raising a false fingerprint alarm.
  void record_devices() {
    for (auto& slot : slots_) {
      const DeviceInfo& info = slot->device->info();
      const std::string key = state_device_key(info);
      const DeviceRecord current = device_record(info, unix_now());
      const DeviceChanges changes = detect_device_changes(state_.devices, key, current);
      if (changes.any()) {
        spdlog::warn("{}: device changed since the last run: {}", info.id, describe(changes));
        for (const std::string& what : changes.what()) ++slot->device_changes[what];
        nlohmann::json entry = changes;
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
      if (t.device != slot.device->info().id) continue;
      auto it = t.readings.utilization_ratio.find("gpu");
      if (it != t.readings.utilization_ratio.end()) return it->second;
    }
    return std::nullopt;
  }

  void on_timer(Slot& slot, const std::string& probe) {
    if (stopping_ || slot.hung) return;
    auto schedule_it = config_.probes.find(probe);
    if (schedule_it == config_.probes.end() || !schedule_it->second.enabled) return;
    const ProbeSchedule& schedule = schedule_it->second;
    // Duty-cycle budget: device time accrues at max_duty_cycle per second of wall time.
    const auto now = Clock::now();
    // The bucket holds a few rounds of every probe and starts full, so the start-up round does
    // not put later runs into debt.
    const double cost = slot.last_cost.count(probe) ? slot.last_cost[probe] : 0.0;
    double round = 0.0;
    for (const auto& [name, seconds] : slot.last_cost) round += seconds;
    const double cap = std::max(5.0, 3.0 * round);
    if (!slot.budget_started) {
      slot.budget_seconds = cap;
      slot.budget_started = true;
    }
    slot.budget_seconds = std::min(cap, slot.budget_seconds + config_.max_duty_cycle *
                                                                 std::chrono::duration<double>(now - slot.budget_updated).count());
    slot.budget_updated = now;
    if (cost > 0.0 && slot.budget_seconds < cost) {
      const double wait = (cost - slot.budget_seconds) / config_.max_duty_cycle;
      spdlog::debug("{} {}: duty-cycle budget exhausted, deferred {:.0f} s", slot.device->info().id, probe, wait);
      arm(slot, probe, std::max(1.0, wait));
      return;
    }
    // Busy devices are deferred, but never beyond the maximum staleness.
    const auto ran = slot.probes.find(probe);
    const double last = ran == slot.probes.end() ? 0.0 : ran->second.last_run;
    const auto busy = utilization(slot);
    if (busy && *busy > config_.busy_utilization && last > 0 && unix_now() - last < config_.max_staleness_seconds) {
      spdlog::debug("{} {}: device busy ({:.0f}%), deferred", slot.device->info().id, probe, *busy * 100);
      arm(slot, probe, std::min(60.0, schedule.interval_seconds / 4));
      return;
    }
    run_scheduled(slot, probe, schedule);
  }

  Expected<std::vector<ProbeSpec>> scheduled_specs(const Slot& slot, const std::string& probe,
                                                   const ProbeSchedule& schedule) const {
    ProbeRequest request;
    request.kernels = {probe};
    request.size = schedule.size;
    request.seed = schedule.seed;
    request.inject = schedule.drill;
    auto specs = specs_for(request, slot.device->info());
    if (!specs) return specs;
    const ProbeDescriptor& descriptor = *probe_registry().find(probe);
    std::vector<ProbeSpec> chosen;
    for (const ProbeSpec& spec : *specs) {
      if (spec_selected(descriptor, spec, schedule.modes, schedule.dtypes)) chosen.push_back(spec);
    }
    return chosen;
  }

  void run_scheduled(Slot& slot, const std::string& probe, const ProbeSchedule& schedule) {
    auto specs = scheduled_specs(slot, probe, schedule);
    if (!specs) {
      spdlog::error("{} {}: {}", slot.device->info().id, probe, specs.error().message);
      arm(slot, probe, jittered(schedule.interval_seconds));
      return;
    }
    const double timeout = schedule.timeout_seconds;
    slot.running_probe = probe;
    slot.running_timeout = timeout;
    const std::uint64_t dump_bytes = config_.failure_dump_max_bytes;
    const std::string dump_root = config_.state_directory + "/dumps";
    slot.worker->submit([this, &slot, probe, specs = std::move(specs.value()), timeout, dump_bytes, dump_root] {
      slot.device->set_timeout_seconds(timeout);
      std::vector<ProbeResult> results;
      for (const ProbeSpec& spec : specs) {
        ProbeResult result = run_probe(*slot.device, spec, goldens_, /*capture_tensors=*/dump_bytes > 0);
        // The evidence of a failing run is written here, off the loop, and then let go.
        if (result.status == RunStatus::fail && dump_bytes > 0) {
          auto kept = keep_failure_dump(dump_root, result, dump_bytes);
          if (kept) {
            spdlog::info("{} {}: failing run dumped to {}", slot.device->info().id, spec_key(spec), *kept);
          } else {
            spdlog::warn("{} {}: could not keep the failure dump: {}", slot.device->info().id, spec_key(spec),
                         kept.error().message);
          }
        }
        result.tensors.reset();
        results.push_back(std::move(result));
      }
      asio::post(io_, [this, &slot, probe, results = std::move(results)]() mutable {
        on_scheduled_done(slot, probe, std::move(results));
      });
    });
  }

  // Compares one result with the device's baseline (fingerprint, duration) and its peers.
  std::set<Reason> assess(Slot& slot, ProbeResult& result, ProbeStats& stats) {
    std::set<Reason> reasons;
    if (result.status == RunStatus::error) {
      reasons.insert(result.error_kind == ErrorKind::timeout ? Reason::timeout : Reason::error);
      return reasons;
    }
    if (result.status == RunStatus::fail) reasons.insert(Reason::golden_mismatch);
    if (result.drill() || result.status != RunStatus::pass) return reasons;
    const DeviceInfo& info = slot.device->info();
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
      const DeviceInfo& info = slot->device->info();
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
      if (ran != slot->probes.end()) ran->second.cross_device = minority.count(slot->device->info().id) > 0;
    }
  }

  void on_scheduled_done(Slot& slot, const std::string& probe, std::vector<ProbeResult> results) {
    slot.running_probe.clear();
    if (slot.hung) return;  // the watchdog already gave up on this device
    // A probe the device's backend does not implement is counted as skipped and nothing else: it
    // neither fails nor recovers the verdict, and gets no run series (no stale last success).
    const auto is_skipped = [](const ProbeResult& r) { return r.status == RunStatus::skipped; };
    if (!results.empty() && std::all_of(results.begin(), results.end(), is_skipped)) {
      ++slot.skipped[{probe, results.front().skip_kind}];
      spdlog::debug("{} {}: skipped: {}", slot.device->info().id, probe, results.front().skip_reason);
      if (!stopping_) arm(slot, probe, jittered(config_.probes[probe].interval_seconds));
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
                          (result.status == RunStatus::error ? ": " + result.error
                                                             : ": " + std::to_string(result.check.mismatched) +
                                                                   " element(s) wrong");
      }
      if (result.status != RunStatus::pass && result.status != RunStatus::skipped) {
        spdlog::warn("{} {} seed {}: {}{} (replay: {})", slot.device->info().id, spec_key(result.spec),
                     result.spec.seed, to_string(result.status), result.drill() ? " [drill]" : "", replay_command(result));
      }
    }
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
    slot.budget_seconds -= cost;
    const Health before = slot.verdict.health;
    apply_run(slot.verdict, findings, config_.verdict);
    if (slot.verdict.health != before) {
      spdlog::info("{}: {} -> {}{}", slot.device->info().id, to_string(before), to_string(slot.verdict.health),
                   findings.detail.empty() ? "" : " (" + findings.detail + ")");
      notify("STATUS=" + status_line());
    }
    save_state();
    if (slot.verdict.health == Health::hung) {
      mark_hung(slot);
      return;
    }
    if (!stopping_) arm(slot, probe, jittered(config_.probes[probe].interval_seconds));
  }

  void mark_hung(Slot& slot) {
    slot.hung = true;
    for (auto& [probe, timer] : slot.timers) timer->cancel();
    spdlog::error("{}: hung: no more probes on this device until the daemon restarts", slot.device->info().id);
    notify("STATUS=" + status_line());
  }

  // A kernel that never returns (even the backend's own timeout did not fire) marks the device
  // hung from the loop; the loop itself stays responsive.
  void schedule_watchdog() {
    watchdog_.expires_after(std::chrono::seconds(1));
    watchdog_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopping_) return;
      for (auto& slot : slots_) {
        auto since = slot->worker->running_since();
        if (!since || slot->hung || slot->running_probe.empty()) continue;
        const double running = std::chrono::duration<double>(Clock::now() - *since).count();
        if (running <= slot->running_timeout * 1.5 + 1.0) continue;
        RunFindings findings{{Reason::timeout}, slot->running_probe + " still running after " +
                                                    std::to_string(static_cast<int>(running)) + " s"};
        ++slot->probes[slot->running_probe].failures[Reason::timeout];
        apply_run(slot->verdict, findings, config_.verdict);
        mark_hung(*slot);
      }
      schedule_watchdog();
    });
  }

  // Telemetry is read on its own thread (a hung driver must not block the loop) every 15 s.
  void schedule_telemetry(double delay) {
    telemetry_timer_.expires_after(seconds(delay));
    telemetry_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopping_ || !telemetry_worker_.idle()) {
        if (!ec && !stopping_) schedule_telemetry(15.0);
        return;
      }
      std::vector<DeviceInfo> infos;
      for (auto& slot : slots_) infos.push_back(slot->device->info());
      telemetry_worker_.submit([this, infos] {
        telemetry::Snapshot snapshot = telemetry::join_devices(telemetry_->read(), infos);
        asio::post(io_, [this, snapshot = std::move(snapshot)]() mutable { on_telemetry(std::move(snapshot)); });
      });
      schedule_telemetry(15.0);
    });
  }

  void on_telemetry(telemetry::Snapshot snapshot) {
    for (auto& slot : slots_) {
      const auto findings = telemetry::findings_for(slot->device->info(), have_telemetry_ ? &telemetry_snapshot_ : nullptr,
                                                    snapshot);
      std::vector<TelemetryFinding> events, conditions;
      for (const auto& f : findings) {
        TelemetryFinding converted{f.severity == telemetry::Severity::failed, f.reason};
        (converted.failed ? events : conditions).push_back(converted);
      }
      const Health before = slot->verdict.health;
      apply_telemetry_events(slot->verdict, events);
      if (slot->verdict.health != before) spdlog::warn("{}: {} -> failed (telemetry)", slot->device->info().id, to_string(before));
      slot->telemetry_conditions = std::move(conditions);
    }
    telemetry_snapshot_ = std::move(snapshot);
    have_telemetry_ = true;
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
    config_ = std::move(next);
    goldens_.set_max_bytes(config_.golden_cache_max_bytes);
    spdlog::set_level(spdlog::level::from_str(config_.log_level));
    reload_successful_ = true;
    reload_timestamp_ = unix_now();
    for (auto& slot : slots_) {
      if (slot->hung) continue;
      for (auto& [probe, timer] : slot->timers) timer->cancel();
      start_device(*slot);
    }
    spdlog::info("reload: configuration from {} applied", config_path_);
    notify("READY=1\nSTATUS=" + status_line());
  }

  void shutdown() {
    if (stopping_) return;
    stopping_ = true;
    notify("STOPPING=1");
    for (auto& slot : slots_) {
      for (auto& [probe, timer] : slot->timers) timer->cancel();
    }
    watchdog_.cancel();
    telemetry_timer_.cancel();
    systemd_watchdog_.cancel();
    signals_.cancel();
    if (http_) http_->stop();
    if (control_) control_->stop();
    const auto grace = std::chrono::milliseconds(static_cast<long>(config_.shutdown_grace_seconds * 1000));
    for (auto& slot : slots_) {
      if (!slot->worker->stop(grace)) {
        spdlog::warn("{}: probe still running after {} s; abandoned", slot->device->info().id,
                     config_.shutdown_grace_seconds);
        DeviceWorker::abandon(std::move(slot->worker));
        (void)slot.release();  // the abandoned job still uses the device
      }
    }
    if (!telemetry_worker_.stop(grace)) spdlog::warn("telemetry read still running at shutdown");
    save_state();
    io_.stop();
  }

  void handle_control(const nlohmann::json& request, std::function<void(nlohmann::json)> reply) {
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
      std::function<void(nlohmann::json)> reply;
    };
    auto pending = std::make_shared<Pending>();
    pending->reply = std::move(reply);
    std::vector<std::pair<Slot*, std::vector<ProbeSpec>>> work;
    for (auto& slot : slots_) {
      if (!slot || !device_matches(slot->device->info(), parsed->device)) continue;
      auto specs = specs_for(*parsed, slot->device->info());
      if (!specs) {
        pending->reply({{"ok", false}, {"error", specs.error().message}, {"exit_code", cli::k_exit_cannot_run}});
        return;
      }
      work.emplace_back(slot.get(), std::move(specs.value()));
    }
    if (work.empty()) {
      pending->reply({{"ok", false}, {"error", "no device matches '" + parsed->device + "'"},
                      {"exit_code", cli::k_exit_cannot_run}});
      return;
    }
    pending->remaining = work.size();
    const double timeout = parsed->timeout_seconds;
    for (auto& [slot, specs] : work) {
      slot->worker->submit(
          [this, slot, specs = std::move(specs), pending, timeout] {
            slot->device->set_timeout_seconds(timeout);
            std::vector<ProbeResult> results;
            for (const ProbeSpec& spec : specs) results.push_back(run_probe(*slot->device, spec, goldens_));
            asio::post(io_, [pending, results = std::move(results)]() mutable {
              for (auto& r : results) pending->results.push_back(std::move(r));
              if (--pending->remaining > 0) return;
              pending->reply({{"ok", true},
                              {"exit_code", cli::fold_exit_code(pending->results)},
                              {"text", render_results(pending->results)},
                              {"results", pending->results}});
            });
          },
          /*urgent=*/true);
    }
  }

  std::string status_line() const {
    std::map<Health, int> counts;
    for (const auto& slot : slots_) {
      if (slot) ++counts[effective_verdict(slot->verdict, slot->telemetry_conditions).health];
    }
    std::string line;
    for (Health h : k_all_health) {
      if (counts[h]) line += (line.empty() ? "" : ", ") + std::to_string(counts[h]) + " " + to_string(h);
    }
    return line.empty() ? "no devices" : line;
  }

  nlohmann::json status_json() const {
    nlohmann::json devices = nlohmann::json::array();
    for (const auto& slot : slots_) {
      if (!slot) continue;
      const EffectiveVerdict verdict = effective_verdict(slot->verdict, slot->telemetry_conditions);
      nlohmann::json probes = nlohmann::json::object();
      for (const auto& [probe, stats] : slot->probes) {
        nlohmann::json results = nlohmann::json::array();
        for (const ProbeResult& r : stats.last_results) {
          results.push_back({{"spec", spec_key(r.spec)}, {"seed", r.spec.seed}, {"status", to_string(r.status)},
                             {"fingerprint", r.fingerprint}, {"error_budget_used", r.check.budget_used},
                             {"mismatched_elements", r.check.mismatched}, {"drill", r.drill()}, {"error", r.error}});
        }
        probes[probe] = {{"runs", stats.runs},         {"last_run", stats.last_run},
                         {"last_success", stats.last_success}, {"drill", stats.drill},
                         {"cross_device_mismatch", stats.cross_device}, {"results", results}};
      }
      devices.push_back({{"device", slot->device->info()},
                         {"health", to_string(verdict.health)},
                         {"reasons", verdict.reasons},
                         {"telemetry_sources", telemetry::telemetry_sources(telemetry_snapshot_, slot->device->info().id)},
                         {"device_changes", slot->recorded_changes},
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
  asio::steady_timer watchdog_{io_};
  asio::steady_timer telemetry_timer_{io_};
  asio::steady_timer systemd_watchdog_{io_};
  std::chrono::microseconds systemd_watchdog_period_{0};
  Config config_;
  std::string config_path_;
  StateStore store_;
  State state_;
  GoldenCache goldens_{config_.golden_cache_max_bytes};
  std::mt19937_64 rng_;
  std::vector<std::string> backend_notes_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<ControlServer> control_;
  std::unique_ptr<telemetry::TelemetryReader> telemetry_;
  DeviceWorker telemetry_worker_;
  telemetry::Snapshot telemetry_snapshot_;
  bool have_telemetry_ = false;
  bool reload_successful_ = true;
  double reload_timestamp_ = unix_now();
  bool stopping_ = false;
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
  Families f;
  const std::string last = " From the last scheduled run, not computed at scrape time.";
  std::string kernel_build;
  for (const auto& slot : slots_) {
    if (slot) kernel_build = slot->device->info().kernel_build;
  }
  f.gauge("substrate_build_info", "Build of substrated; kernel_build hashes the embedded kernel binaries.",
          {{"version", SUBSTRATE_VERSION}, {"kernel_build", kernel_build}}, 1);
  f.gauge("substrate_config_last_reload_successful", "1 when the last configuration (re)load succeeded.", {},
          reload_successful_ ? 1 : 0);
  f.gauge("substrate_config_last_reload_success_timestamp_seconds", "Time of the last successful configuration load.",
          {}, reload_timestamp_);
  // Families a healthy host has no series for still appear (with their TYPE) so dashboards and
  // rules see every name.
  f.family("substrate_probe_failures_total", "Failed scheduled probe runs by reason." + last,
           prometheus::MetricType::Counter);
  f.family("substrate_probe_skipped_total",
           "Scheduled probe runs skipped by reason (not_implemented: the device's backend lacks the probe).",
           prometheus::MetricType::Counter);
  f.family("substrate_baseline_resets_total", "Baselines reset because the driver or kernel build changed.",
           prometheus::MetricType::Counter);
  f.family("substrate_device_changes_total",
           "Recorded device identity/environment fields that changed since the last run (new_device: another GPU in the slot).",
           prometheus::MetricType::Counter);
  for (const auto& slot : slots_) {
    if (!slot) continue;
    const DeviceInfo& info = slot->device->info();
    const std::string& d = info.id;
    f.gauge("substrate_device_info", "Compute device identity.",
            {{"device", d}, {"uuid", info.uuid}, {"name", info.name}, {"vendor", info.vendor}, {"driver", info.driver},
             {"backend", info.backend}, {"pci_bus_id", info.pci_bus_id}},
            1);
    const Health health = effective_verdict(slot->verdict, slot->telemetry_conditions).health;
    for (Health h : k_all_health) {
      f.gauge("substrate_device_health", "1 for the device's current verdict, 0 for the other states." + last,
              {{"device", d}, {"state", to_string(h)}}, h == health ? 1 : 0);
    }
    for (const auto& [reason, count] : slot->baseline_resets) {
      f.counter("substrate_baseline_resets_total", "", {{"device", d}, {"reason", reason}}, static_cast<double>(count));
    }
    for (const auto& [what, count] : slot->device_changes) {
      f.counter("substrate_device_changes_total", "", {{"device", d}, {"what", what}}, static_cast<double>(count));
    }
    for (const auto& [skip, count] : slot->skipped) {
      f.counter("substrate_probe_skipped_total", "", {{"device", d}, {"probe", skip.first}, {"reason", to_string(skip.second)}},
                static_cast<double>(count));
    }
    double bandwidth = -1, bad_words = -1;
    for (const auto& [probe, s] : slot->probes) {
      const std::vector<prometheus::ClientMetric::Label> labels{{"device", d}, {"probe", probe}};
      f.counter("substrate_probe_runs_total", "Completed scheduled probe runs.", labels, static_cast<double>(s.runs));
      // Every reason from the first run on, zeros included, so increase() sees the first failure.
      for (Reason reason : k_all_reasons) {
        const auto it = s.failures.find(reason);
        f.counter("substrate_probe_failures_total", "", {{"device", d}, {"probe", probe}, {"reason", to_string(reason)}},
                  it == s.failures.end() ? 0.0 : static_cast<double>(it->second));
      }
      f.gauge("substrate_probe_error_budget_ratio", "Max over elements of error divided by the derived bound." + last,
              labels, s.budget);
      f.gauge("substrate_probe_mismatched_elements", "Elements outside the bound or not bit-exact." + last, labels,
              static_cast<double>(s.mismatched));
      f.gauge("substrate_probe_duration_seconds", "Device time of the checked kernels." + last, labels, s.device_seconds);
      f.gauge("substrate_probe_wall_seconds", "Wall time of the run including generation, golden and check." + last,
              labels, s.wall_seconds);
      f.gauge("substrate_probe_slowdown_ratio", "Device time divided by the device's baseline (0: no baseline yet)." + last,
              labels, s.slowdown_ratio);
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
        f.gauge("substrate_kernel_fingerprint_info",
                "Hash of the output bits of a probe spec; equal model, driver, kernel build and spec must agree." + last,
                {{"device", d}, {"probe", probe}, {"spec", spec_key(r.spec) + "#" + std::to_string(r.spec.seed)},
                 {"fingerprint", r.fingerprint}, {"model", info.name}, {"driver", info.driver},
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
  return prometheus::TextSerializer().Serialize(families);
}

void configure_logging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("substrated");
  if (!isatty(STDERR_FILENO)) {
    // journald adds time and unit; one line per event, no colour.
    logger->set_pattern("%l: %v");
  }
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
}

}  // namespace

int serve(ServeOptions options) {
  auto config = load_config(options.config_path);
  if (!config) {
    std::fprintf(stderr, "substrated: %s\n", config.error().message.c_str());
    return cli::k_exit_config;
  }
  if (!spdlog::get("substrated")) configure_logging(config->log_level);
  Discovery discovery = options.devices ? std::move(*options.devices) : discover_devices();
  Service service(std::move(config.value()), options.config_path, std::move(discovery));
  return service.run();
}

}  // namespace substrate
