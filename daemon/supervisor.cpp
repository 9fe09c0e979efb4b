#include "daemon/supervisor.hpp"

#include "daemon/worker_spawn.hpp"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>
#include <boost/asio/write.hpp>

namespace substrate {
namespace {

namespace asio = boost::asio;

Error io_error(const std::string& what, int err) {
  return Error{ErrorKind::io_error, what + ": " + std::strerror(err)};
}

std::chrono::steady_clock::duration clamp_seconds(double seconds) {
  // Asio's timers hold nanoseconds: a huge (or NaN) double must not overflow them.
  if (!(seconds > 0.0)) seconds = 0.0;
  if (seconds > 30.0 * 86400.0) seconds = 30.0 * 86400.0;
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
}

}  // namespace

std::string signal_name(int signal) {
  const char* abbrev = ::sigabbrev_np(signal);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(signal);
}

WorkerProcess::WorkerProcess(asio::io_context& io, Callbacks callbacks)
    : io_(io), callbacks_(std::move(callbacks)), channel_(io), pidfd_(io), deadline_(io), linger_(io) {}

WorkerProcess::~WorkerProcess() {
  if (pid_ > 0 && !reaped_) {
    signal_group(SIGKILL);
    int status = 0;
    (void)::waitpid(pid_, &status, WNOHANG);
  }
}

Expected<std::shared_ptr<WorkerProcess>> WorkerProcess::spawn(asio::io_context& io, const std::string& executable,
                                                              const nlohmann::json& request, Callbacks callbacks) {
  TRY_ASSIGN(auto encoded, worker::encode(request));
  WorkerSpawn spawn;
  spawn.argv = {executable, worker::k_worker_command, "--parent", std::to_string(::getpid())};
  spawn.own_process_group = true;  // SIGKILL of the group reaches whatever it starts
  // SIGPIPE stays ignored: a worker logging to the stderr pipe the daemon lost must not die of it.
  TRY_ASSIGN(const SpawnedWorker spawned, spawn_worker_process(spawn));
  const pid_t pid = spawned.pid;
  std::shared_ptr<WorkerProcess> process(new WorkerProcess(io, std::move(callbacks)));
  process->pid_ = pid;
  process->channel_.assign(asio::local::stream_protocol(), spawned.channel_fd);
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    const int err = errno;
    process->kill();
    int status = 0;
    ::waitpid(pid, &status, 0);
    process->reaped_ = true;
    return io_error("pidfd_open", err);
  }
  process->pidfd_.assign(pidfd);
  process->request_ = std::move(encoded);
  asio::async_write(process->channel_, asio::buffer(process->request_),
                    [self = process](boost::system::error_code ec, std::size_t) {
                      if (ec) spdlog::debug("worker {}: request not delivered: {}", self->pid_, ec.message());
                    });
  process->read();
  process->wait_exit();
  return process;
}

void WorkerProcess::read() {
  channel_.async_read_some(asio::buffer(buffer_),
                           [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
                             if (n > 0 && self->exit_.protocol_error.empty()) {
                               Status fed = self->decoder_.feed(self->buffer_.data(), n);
                               while (self->decoder_.has_frame()) {
                                 nlohmann::json frame = self->decoder_.take();
                                 if (self->callbacks_.on_frame) self->callbacks_.on_frame(frame);
                               }
                               if (!fed) {
                                 self->exit_.protocol_error = fed.error().message;
                                 self->kill();
                               }
                             }
                             if (ec) {
                               self->eof_ = true;
                               self->maybe_report();
                               return;
                             }
                             self->read();
                           });
}

void WorkerProcess::wait_exit() {
  pidfd_.async_wait(asio::posix::descriptor_base::wait_read, [self = shared_from_this()](boost::system::error_code ec) {
    if (ec) return;
    int status = 0;
    pid_t r;
    do {
      r = ::waitpid(self->pid_, &status, 0);
    } while (r < 0 && errno == EINTR);
    self->on_reaped(r == self->pid_ ? status : 0);
  });
}

void WorkerProcess::on_reaped(int status) {
  reaped_ = true;
  deadline_.cancel();
  exit_.elapsed_seconds = std::chrono::duration<double>(Clock::now() - started_).count();
  if (WIFSIGNALED(status)) {
    exit_.signal = WTERMSIG(status);
  } else {
    exit_.exit_code = WEXITSTATUS(status);
  }
  if (!eof_) {
    // Frames it wrote before dying are still in the socket; a grandchild holding the other end
    // must not keep us waiting for EOF.
    linger_.expires_after(std::chrono::seconds(1));
    linger_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->eof_) return;
      boost::system::error_code ignored;
      self->channel_.close(ignored);
    });
  }
  maybe_report();
}

void WorkerProcess::maybe_report() {
  if (!reaped_ || !eof_ || reported_) return;
  reported_ = true;
  linger_.cancel();
  boost::system::error_code ignored;
  pidfd_.close(ignored);
  channel_.close(ignored);
  if (callbacks_.on_exit) callbacks_.on_exit(exit_);
}

void WorkerProcess::set_deadline(double seconds) {
  if (reaped_) return;
  deadline_.expires_after(clamp_seconds(seconds));
  deadline_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec || self->reaped_) return;
    self->exit_.deadline_passed = true;
    self->kill();
  });
}

void WorkerProcess::kill() {
  if (reaped_ || pid_ <= 0) return;
  exit_.killed = true;
  signal_group(SIGKILL);
}

ProbeResult unanswered_result(const DeviceInfo& device, const ProbeSpec& spec, RunStatus status, ErrorKind kind,
                              std::string why, double wall_seconds) {
  ProbeResult result;
  result.device = device;
  result.spec = spec;
  result.status = status;
  result.error_kind = kind;
  result.error = std::move(why);
  result.check.pass = false;
  result.wall_seconds = wall_seconds;
  result.finished_at = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  return result;
}

std::string describe_worker_exit(const WorkerExit& exit, pid_t pid) {
  if (exit.deadline_passed) return "worker " + std::to_string(pid) + " killed at its deadline";
  if (!exit.protocol_error.empty()) return "worker " + std::to_string(pid) + ": protocol error: " + exit.protocol_error;
  if (exit.signal) return "worker " + std::to_string(pid) + " killed by " + signal_name(exit.signal);
  return "worker " + std::to_string(pid) + " exited with code " + std::to_string(exit.exit_code);
}

FoundDevices discover_in_worker(const std::string& executable, const nlohmann::json& request, double deadline_seconds) {
  FoundDevices found;
  asio::io_context io;
  bool answered = false;
  std::string failure;
  pid_t pid = 0;
  auto worker = WorkerProcess::spawn(io, executable, request,
                                     {[&](const nlohmann::json& frame) {
                                        try {
                                          if (frame.at("type") == "devices") {
                                            found.devices = frame.at("devices").get<std::vector<DeviceInfo>>();
                                            found.notes = frame.at("notes").get<std::vector<std::string>>();
                                            found.mig_instances =
                                                frame.value("mig_instances", std::vector<DeviceInfo>());
                                            found.unprobed = frame.value("unprobed", std::vector<UnprobedGpu>());
                                            answered = true;
                                          } else if (frame.at("type") == "error") {
                                            failure = frame.at("message").get<std::string>();
                                          }
                                        } catch (const nlohmann::json::exception& e) {
                                          failure = std::string("malformed device list: ") + e.what();
                                        }
                                      },
                                      [&](const WorkerExit& exit) {
                                        if (!answered && failure.empty()) failure = describe_worker_exit(exit, pid);
                                      }});
  if (!worker) {
    found.notes.push_back("discovery: " + worker.error().message);
    return found;
  }
  pid = (*worker)->pid();
  (*worker)->set_deadline(deadline_seconds);
  io.run_for(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(deadline_seconds + 5)));
  if (!answered) {
    found.devices.clear();
    found.notes.push_back("discovery failed: " + (failure.empty() ? "no answer from the worker" : failure));
    spdlog::error("device discovery failed: {}", failure);
  }
  return found;
}

FoundDevices discover_devices(const std::string& executable, const std::string& log_level,
                              const std::vector<std::string>& backend_preference,
                              const nlohmann::json& external_workers, double deadline_seconds) {
  const auto request = [&](const nlohmann::json& external) {
    return nlohmann::json{{"type", "discover"},
                          {"log_level", log_level},
                          {"backend_preference", backend_preference},
                          {"external_workers", external}};
  };
  nlohmann::json host = request(external_workers);
  host["list_mig"] = true;
  FoundDevices found = discover_in_worker(executable, host, deadline_seconds);
  // External workers are started by the first discovery only: the per-instance ones look for CUDA.
  for (DeviceInfo& instance : found.mig_instances) {
    nlohmann::json one = request(nlohmann::json::array());
    one["cuda_visible_devices"] = cuda_visible_devices_for(instance);
    FoundDevices seen = discover_in_worker(executable, one, deadline_seconds);
    const auto it = std::find_if(seen.devices.begin(), seen.devices.end(),
                                 [&](const DeviceInfo& d) { return d.backend == "cuda" && d.uuid == instance.uuid; });
    if (it == seen.devices.end()) {
      std::string why =
          "CUDA_VISIBLE_DEVICES=" + cuda_visible_devices_for(instance) + " shows no CUDA device with its UUID";
      for (const std::string& note : seen.notes) {
        if (note.rfind("cuda", 0) == 0 || note.rfind("discovery", 0) == 0) why += "; " + note;
      }
      found.unprobed.push_back({instance.uuid, instance.pci_bus_id, instance.id + " (MIG " + instance.mig_profile + ")",
                                "instance_not_visible", why});
      continue;
    }
    take_planned_identity(*it, instance);
    found.devices.push_back(std::move(*it));
  }
  for (const UnprobedGpu& gpu : found.unprobed) {
    spdlog::warn("devices: GPU {} ({}) not probed: {}: {}", gpu.pci_bus_id, gpu.name, gpu.reason, gpu.detail);
  }
  return found;
}

void WorkerProcess::signal_group(int signal) {
  ::kill(-pid_, signal);
  ::kill(pid_, signal);  // in case it left its group
}

}  // namespace substrate
