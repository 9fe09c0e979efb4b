#pragma once
// Worker processes, seen from the daemon's event loop: each is the daemon's own binary started
// with posix_spawn in worker mode (daemon/worker_main.hpp), in its own process group, with the
// parent-death signal SIGKILL, talking frames (daemon/worker_protocol.hpp) over a socketpair.
// Spawn, deadlines, SIGKILL and reaping all happen on the loop thread: the parent-death signal
// fires when the *thread* that spawned the child exits, and the loop thread lives as long as the
// daemon.
#include <sys/types.h>

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "common/expected.hpp"
#include "daemon/gpu_inventory.hpp"
#include "daemon/worker_protocol.hpp"
#include "probes/core/probe_result.hpp"

namespace substrate {

// How a worker ended.
struct WorkerExit {
  int exit_code = -1;            // when it exited; -1 when a signal ended it
  int signal = 0;                // the signal that ended it, 0 when it exited
  bool deadline_passed = false;  // we killed it because its deadline passed (signal is SIGKILL)
  bool killed = false;           // we killed it (deadline or kill())
  std::string protocol_error;    // non-empty when its frames were malformed (it was then killed)
  double elapsed_seconds = 0.0;  // since spawn
};

// "SIGSEGV", "SIGKILL", ... ("signal N" for unnamed ones).
std::string signal_name(int signal);

// One line on how a worker ended: "worker 12 killed at its deadline", "... killed by SIGSEGV",
// "... exited with code 2", "...: protocol error: <why>".
std::string describe_worker_exit(const WorkerExit& exit, pid_t pid);

struct FoundDevices {
  std::vector<DeviceInfo> devices;
  std::vector<std::string> notes;         // the backends' notes, or why discovery failed
  std::vector<DeviceInfo> mig_instances;  // to discover one by one (daemon/gpu_inventory.hpp)
  std::vector<UnprobedGpu> unprobed;      // GPUs found and not probed, with the reason
};

// The device list, found by a `discover` worker of `executable` (`request`: the discover request
// of docs/worker-protocol.md) so the caller never loads a GPU driver. Runs on an io_context of its
// own (before the caller's loop starts); a worker that does not answer within `deadline_seconds`
// is killed and the list is empty, the notes saying why.
FoundDevices discover_in_worker(const std::string& executable, const nlohmann::json& request, double deadline_seconds);

// Every device of the host: one discovery worker (which also starts the `external_workers`, a
// JSON array as external_workers_to_json gives it, and lists MIG instances), then one per MIG
// instance it lists, with CUDA_VISIBLE_DEVICES showing that instance alone (a CUDA process sees
// one MIG instance). An instance no worker shows is `unprobed` with reason instance_not_visible.
FoundDevices discover_devices(const std::string& executable, const std::string& log_level,
                              const std::vector<std::string>& backend_preference,
                              const nlohmann::json& external_workers, double deadline_seconds);

// The result of a spec whose worker gave none (hung, crashed, gone before reporting): the spec,
// `status` and `kind` with `why` as its error, `wall_seconds` of it, finished now.
ProbeResult unanswered_result(const DeviceInfo& device, const ProbeSpec& spec, RunStatus status, ErrorKind kind,
                              std::string why, double wall_seconds);

class WorkerProcess : public std::enable_shared_from_this<WorkerProcess> {
 public:
  using Clock = std::chrono::steady_clock;
  struct Callbacks {
    std::function<void(const nlohmann::json& frame)> on_frame;  // each frame, in order
    std::function<void(const WorkerExit& exit)> on_exit;        // once, after the last frame
  };

  // Starts `executable __worker --parent <our pid>` and sends it `request` as its one request
  // frame. Callbacks run on `io`'s thread. io_error (spawn or socket failure) or
  // invalid_argument (request too large) when no process was started.
  static Expected<std::shared_ptr<WorkerProcess>> spawn(boost::asio::io_context& io, const std::string& executable,
                                                        const nlohmann::json& request, Callbacks callbacks);
  // SIGKILLs a live worker without waiting for it: a worker stuck in the kernel stays a zombie
  // until it dies, and is reaped by whoever adopts it if the daemon exits first.
  ~WorkerProcess();
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  // SIGKILL (the process group) once `seconds` from now have passed without a new deadline or
  // an exit; replaces the previous deadline.
  void set_deadline(double seconds);
  // SIGKILL the process group now; on_exit follows once it is reaped.
  void kill();
  pid_t pid() const { return pid_; }
  // True once on_exit has run.
  bool finished() const { return reported_; }

 private:
  WorkerProcess(boost::asio::io_context& io, Callbacks callbacks);
  void read();
  void wait_exit();
  void on_reaped(int status);
  void maybe_report();
  void signal_group(int signal);

  boost::asio::io_context& io_;
  Callbacks callbacks_;
  boost::asio::local::stream_protocol::socket channel_;
  boost::asio::posix::stream_descriptor pidfd_;
  boost::asio::steady_timer deadline_;
  boost::asio::steady_timer linger_;  // bounds the wait for EOF after the process is gone
  worker::FrameDecoder decoder_;
  std::array<char, 65536> buffer_{};
  std::string request_;
  pid_t pid_ = -1;
  Clock::time_point started_ = Clock::now();
  WorkerExit exit_;
  bool reaped_ = false;
  bool eof_ = false;
  bool reported_ = false;
};

}  // namespace substrate
