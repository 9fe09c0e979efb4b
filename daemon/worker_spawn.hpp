#pragma once
// Starting a process that speaks the worker protocol (docs/worker-protocol.md): the daemon's own
// workers (daemon/supervisor.hpp) and external worker programs (daemon/external_worker.hpp). The
// child gets the channel's other end as fd 3 (worker::k_worker_fd), /dev/null as stdin, its
// stdout joined to stderr (stdout may be the CLI's), no other descriptor, an empty signal mask,
// and the default action for the signals the parent handles.
#include <sys/types.h>

#include <string>
#include <vector>

#include "common/expected.hpp"

namespace substrate {

struct WorkerSpawn {
  std::vector<std::string> argv;         // argv[0] is the program
  std::vector<std::string> environment;  // "KEY=value" entries; empty: the parent's environment
  bool search_path = false;              // argv[0] looked up in PATH (posix_spawnp)
  bool own_process_group = false;        // a group of its own, so one SIGKILL reaches all it starts
  bool default_sigpipe = false;          // SIGPIPE back to its default (else it stays ignored)
};

struct SpawnedWorker {
  pid_t pid = -1;
  int channel_fd = -1;  // the parent's end of the channel (close-on-exec), owned by the caller
};

// io_error "socketpair: <errno text>" when the channel cannot be made; unavailable
// "cannot start <argv[0]>: <errno text>" when posix_spawn fails (nothing is left open then).
Expected<SpawnedWorker> spawn_worker_process(const WorkerSpawn& spawn);

}  // namespace substrate
