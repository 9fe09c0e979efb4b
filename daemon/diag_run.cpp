#include "daemon/diag_run.hpp"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <memory>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>

#include "daemon/probe_command.hpp"
#include "daemon/supervisor.hpp"
#include "daemon/telemetry_reader.hpp"
#include "probes/core/registry.hpp"
#include "probes/telemetry/join.hpp"

namespace substrate::diag {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
namespace asio = boost::asio;

// The worker's phase deadlines, as the daemon's (docs/worker-protocol.md): spawn to `opened`,
// one result to the next `started`, `done` to exit. A spec's result is due 1.5 x its timeout + 1 s
// after its start, so the backend's own fence timeout reports first.
constexpr double k_open_seconds = 60.0;
constexpr double k_exit_seconds = 10.0;
double spec_deadline(double timeout) { return timeout * 1.5 + 1.0; }

double unix_now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

// Telemetry of the diag's devices, read every `period` on a thread of its own (a read may block
// up to its deadline; the event loop must not). newest() is what a result arriving now is drawn
// with.
class TelemetrySampler {
 public:
  TelemetrySampler(telemetry::TelemetryReader& reader, std::vector<DeviceInfo> devices, double period,
                   Clock::time_point started)
      : reader_(reader), devices_(std::move(devices)), period_(period), started_(started) {
    newest_.resize(devices_.size());
    samples_.resize(devices_.size());
    thread_ = std::thread([this] { loop(); });
  }
  ~TelemetrySampler() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    reader_.cancel();
    wake_.notify_all();
    thread_.join();
  }
  TelemetrySampler(const TelemetrySampler&) = delete;
  TelemetrySampler& operator=(const TelemetrySampler&) = delete;

  TelemetrySample newest(std::size_t device) const {
    std::lock_guard lock(mutex_);
    return newest_[device].value_or(TelemetrySample{});
  }
  std::vector<TelemetrySample> samples(std::size_t device) const {
    std::lock_guard lock(mutex_);
    return samples_[device];
  }

 private:
  void loop() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      lock.unlock();
      const auto deadline = std::chrono::milliseconds(static_cast<long>(std::max(0.5, period_) * 1000));
      const telemetry::Snapshot snapshot = telemetry::join_devices(reader_.read(deadline), devices_);
      const double t = std::chrono::duration<double>(Clock::now() - started_).count();
      lock.lock();
      for (const telemetry::TelemetryDevice& source : snapshot.devices) {
        for (std::size_t i = 0; i < devices_.size(); ++i) {
          if (source.device != devices_[i].id) continue;
          newest_[i] = sample_of(source.readings, t);
          samples_[i].push_back(*newest_[i]);
        }
      }
      wake_.wait_for(lock, std::chrono::duration<double>(period_), [this] { return stopping_; });
    }
  }

  telemetry::TelemetryReader& reader_;
  const std::vector<DeviceInfo> devices_;
  const double period_;
  const Clock::time_point started_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::optional<TelemetrySample>> newest_;
  std::vector<std::vector<TelemetrySample>> samples_;
  bool stopping_ = false;
  std::thread thread_;
};

// One device's worker as the loop sees it.
struct Active {
  std::size_t record = 0;  // index into the report's devices
  std::vector<ProbeSpec> specs;
  std::shared_ptr<WorkerProcess> worker;
  std::optional<std::pair<std::size_t, std::uint64_t>> current;  // (spec, pass) started, no result yet
  Clock::time_point current_since = Clock::now();
  bool done = false;  // the worker sent "done"
  bool finished = false;
};

std::string progress_line(const DeviceRecord& record, double elapsed, double duration) {
  char line[256];
  const std::uint64_t errors = record.fail_results + record.error_results;
  std::snprintf(line, sizeof line, "%-10s %6.0f s elapsed, %6.0f s left, %llu iteration(s), %llu error(s)%s",
                record.device.id.c_str(), elapsed, std::max(0.0, duration - elapsed),
                static_cast<unsigned long long>(record.iterations), static_cast<unsigned long long>(errors),
                record.refused.empty() ? "" : " (not run)");
  return line;
}

// The worker's golden cache for a repeat: room for every spec's golden at once, so the golden is
// computed once and each pass is checked against it (docs/diag.md, "Golden cadence").
std::uint64_t golden_bytes(const std::vector<ProbeSpec>& specs, const DeviceInfo& device) {
  std::uint64_t total = GoldenCache::k_default_max_bytes;
  for (const ProbeSpec& spec : specs) {
    if (const ProbeDescriptor* d = probe_registry().find(spec.probe)) total += d->memory_needs(spec, device).host_bytes;
  }
  return total;
}

}  // namespace

Expected<Report> run(const RunOptions& options) {
  Report report;
  report.level = options.level;
  report.duration_seconds = options.duration_seconds;
  report.min_peer_share = options.min_peer_share;
  report.started_at = unix_now();
  const Clock::time_point started = Clock::now();

  FoundDevices found =
      discover_devices(options.executable, "warn", options.backend_preference, nlohmann::json::array(), k_open_seconds);
  std::vector<DeviceInfo> chosen;
  for (const DeviceInfo& info : found.devices) {
    if (device_matches(info, options.device)) chosen.push_back(info);
  }
  if (chosen.empty()) {
    std::string message = "no device matches '" + options.device + "'";
    for (const std::string& note : found.notes) message += "; " + note;
    return Error{ErrorKind::invalid_argument, message};
  }

  // Specs first: a drill that does not fit is the caller's mistake, found before any work.
  const ProbeDescriptor* gemm = probe_registry().find("gemm");
  std::vector<std::vector<ProbeSpec>> plans;
  for (const DeviceInfo& info : chosen) {
    std::vector<ProbeSpec> specs = level_specs(options.level, info);
    bool drilled = false;
    for (ProbeSpec& spec : specs) {
      spec.seed = options.seed;
      if (!options.inject || spec.probe != "gemm") continue;
      TRY_ASSIGN(spec.inject, parse_drill(*gemm, *options.inject, spec));
      drilled = true;
    }
    if (options.inject && !drilled) return Error{ErrorKind::invalid_argument, "--inject: no GEMM spec to drill"};
    plans.push_back(std::move(specs));
  }

  telemetry::TelemetryOptions telemetry_options;
  telemetry_options.sysfs_root = options.sysfs_root;
  telemetry::TelemetryReader reader(telemetry_options);
  // The first reading decides who is busy, before any worker starts.
  const telemetry::Snapshot first = telemetry::join_devices(reader.read(), chosen);
  for (std::size_t i = 0; i < chosen.size(); ++i) {
    DeviceRecord record;
    record.device = chosen[i];
    const auto sources = telemetry::telemetry_sources(first, chosen[i].id);
    if (sources.empty()) {
      record.telemetry_notes.push_back(
          chosen[i].is_cpu() ? "none: a CPU device (lavapipe) has no temperature, clock, power, ECC or XID telemetry"
                             : "none: no telemetry source (NVML, amdgpu, hwmon, accel) is joined to this device");
    }
    for (const telemetry::TelemetryDevice& t : first.devices) {
      if (t.device != chosen[i].id) continue;
      const auto busy = t.readings.utilization_ratio.find("gpu");
      if (busy == t.readings.utilization_ratio.end() || busy->second <= options.busy_utilization) continue;
      char why[160];
      std::snprintf(why, sizeof why, "device busy: %.0f%% utilisation (above %.0f%%); --force runs it anyway",
                    busy->second * 100, options.busy_utilization * 100);
      if (options.force) {
        record.telemetry_notes.push_back(std::string("forced: ") + why);
      } else {
        record.refused = why;
      }
    }
    report.devices.push_back(std::move(record));
  }

  asio::io_context io;
  std::vector<std::unique_ptr<Active>> actives;
  bool interrupted = false;
  std::size_t running = 0;
  TelemetrySampler sampler(reader, chosen, options.telemetry_period_seconds, started);
  const auto since_start = [&] { return std::chrono::duration<double>(Clock::now() - started).count(); };

  asio::signal_set signals(io, SIGINT, SIGTERM);
  asio::steady_timer ticker(io);
  bool drawn = false;
  const auto draw = [&] {
    if (!options.progress) return;
    std::ostream& out = *options.progress;
    if (options.progress_redraw && drawn) out << "\x1b[" << report.devices.size() << "A";
    for (const DeviceRecord& record : report.devices) {
      out << (options.progress_redraw ? "\r\x1b[K" : "")
          << progress_line(record, since_start(), options.duration_seconds) << "\n";
    }
    out.flush();
    drawn = true;
  };
  const auto finish_one = [&](Active& active) {
    active.finished = true;
    if (--running == 0) {
      signals.cancel();
      ticker.cancel();
    }
  };

  for (std::size_t i = 0; i < chosen.size(); ++i) {
    DeviceRecord& record = report.devices[i];
    if (!record.refused.empty()) continue;
    auto active = std::make_unique<Active>();
    active->record = i;
    active->specs = plans[i];
    json specs = json::array();
    for (const ProbeSpec& spec : active->specs) {
      specs.push_back({{"spec", spec}, {"drill", ""}, {"timeout_seconds", options.timeout_seconds}});
    }
    json request = {{"type", "run"},
                    {"device", chosen[i].id},
                    {"uuid", chosen[i].uuid},
                    {"log_level", "warn"},
                    {"golden_cache_max_bytes", golden_bytes(active->specs, chosen[i])},
                    {"dump_max_bytes", 0},
                    {"specs", specs}};
    if (!options.backend_preference.empty()) request["backend_preference"] = options.backend_preference;
    if (options.level > 1 || options.duration_seconds > 0) {
      request["repeat"] = {{"duration_seconds", options.duration_seconds}};
    }
    Active* a = active.get();
    auto on_frame = [&, a](const json& frame) {
      DeviceRecord& rec = report.devices[a->record];
      try {
        const std::string type = frame.at("type").get<std::string>();
        if (type == "started") {
          const std::size_t index = frame.at("index").get<std::size_t>();
          if (index >= a->specs.size()) throw std::out_of_range("spec index " + std::to_string(index));
          a->current = {{index, frame.value("iteration", std::uint64_t{0})}};
          a->current_since = Clock::now();
          a->worker->set_deadline(spec_deadline(options.timeout_seconds));
        } else if (type == "result") {
          const std::size_t index = frame.at("index").get<std::size_t>();
          if (index >= a->specs.size()) throw std::out_of_range("spec index " + std::to_string(index));
          std::optional<bool> same;
          if (frame.contains("fingerprint_matches_first")) same = frame["fingerprint_matches_first"].get<bool>();
          rec.add(frame.at("result").get<ProbeResult>(), index, frame.value("iteration", std::uint64_t{0}), same,
                  since_start(), sampler.newest(a->record));
          a->current.reset();
          a->worker->set_deadline(k_open_seconds);
        } else if (type == "done") {
          a->done = true;
          a->worker->set_deadline(k_exit_seconds);
        } else if (type == "error") {
          rec.error = "worker: " + frame.at("message").get<std::string>();
        }
      } catch (const std::exception& e) {
        rec.error = std::string("malformed frame from the worker: ") + e.what();
        a->worker->kill();
      }
    };
    auto on_exit = [&, a](const WorkerExit& exit) {
      DeviceRecord& rec = report.devices[a->record];
      const pid_t pid = a->worker ? a->worker->pid() : 0;
      if (a->current && !interrupted) {
        const ProbeSpec& spec = a->specs[a->current->first];
        const double elapsed = std::chrono::duration<double>(Clock::now() - a->current_since).count();
        ProbeResult result;
        if (exit.deadline_passed) {
          result = unanswered_result(rec.device, spec, RunStatus::hung, ErrorKind::timeout,
                                     "no result after " + std::to_string(static_cast<int>(elapsed)) + " s: worker " +
                                         std::to_string(pid) + " killed, run abandoned",
                                     elapsed);
        } else if (exit.signal != 0 && !exit.killed) {
          result = unanswered_result(rec.device, spec, RunStatus::crashed, ErrorKind::device_error,
                                     describe_worker_exit(exit, pid) + " while running the spec", elapsed);
        } else {
          result = unanswered_result(rec.device, spec, RunStatus::error, ErrorKind::device_error,
                                     describe_worker_exit(exit, pid) + " before reporting a result", elapsed);
        }
        rec.add(std::move(result), a->current->first, a->current->second, std::nullopt, since_start(),
                sampler.newest(a->record));
      } else if (!a->done && !interrupted && rec.error.empty()) {
        rec.error = describe_worker_exit(exit, pid) + " before it finished";
      }
      finish_one(*a);
    };
    auto worker = WorkerProcess::spawn(io, options.executable,
                                       run_request_for(report.devices[a->record].device, request), {on_frame, on_exit});
    if (!worker) {
      record.error = worker.error().message;
      continue;
    }
    active->worker = std::move(worker.value());
    active->worker->set_deadline(k_open_seconds);
    ++running;
    actives.push_back(std::move(active));
  }

  if (running > 0) {
    signals.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      interrupted = true;
      for (auto& active : actives) {
        if (!active->finished) active->worker->kill();
      }
    });
    const double period = options.progress_redraw ? 1.0 : 10.0;
    std::function<void()> tick = [&] {
      ticker.expires_after(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(period)));
      ticker.async_wait([&](const boost::system::error_code& ec) {
        if (ec) return;
        draw();
        tick();
      });
    };
    draw();
    tick();
    io.run();
  }
  draw();
  for (std::size_t i = 0; i < report.devices.size(); ++i) report.devices[i].telemetry = sampler.samples(i);
  report.interrupted = interrupted;
  report.finished_at = unix_now();
  compare_peers(report.devices);
  decide_verdicts(report.devices, options.min_peer_share, interrupted);
  return report;
}

}  // namespace substrate::diag
