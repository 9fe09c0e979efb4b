#include "daemon/worker_spawn.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "daemon/worker_protocol.hpp"

extern char** environ;

namespace substrate {

Expected<SpawnedWorker> spawn_worker_process(const WorkerSpawn& spawn) {
  if (spawn.argv.empty()) return Error{ErrorKind::invalid_argument, "cannot start a worker: empty argv"};
  int ends[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) {
    return Error{ErrorKind::io_error, std::string("socketpair: ") + std::strerror(errno)};
  }
  if (ends[1] == worker::k_worker_fd) {
    // dup2 onto itself would keep FD_CLOEXEC: move the child's end out of the way first.
    const int moved = ::fcntl(ends[1], F_DUPFD_CLOEXEC, worker::k_worker_fd + 1);
    ::close(ends[1]);
    ends[1] = moved;
  }
  std::vector<std::string> args = spawn.argv, environment = spawn.environment;
  std::vector<char*> argv, envp;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  for (std::string& entry : environment) envp.push_back(entry.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, ends[1], worker::k_worker_fd);
  posix_spawn_file_actions_addclosefrom_np(&actions, worker::k_worker_fd + 1);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGUSR1, SIGUSR2, SIGHUP, SIGINT, SIGTERM, SIGCHLD}) sigaddset(&defaults, s);
  if (spawn.default_sigpipe) sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (spawn.own_process_group) {
    posix_spawnattr_setpgroup(&attributes, 0);
    flags |= POSIX_SPAWN_SETPGROUP;
  }
  posix_spawnattr_setflags(&attributes, flags);
  char* const* env = spawn.environment.empty() ? environ : envp.data();
  SpawnedWorker spawned;
  const int rc = spawn.search_path ? ::posix_spawnp(&spawned.pid, argv[0], &actions, &attributes, argv.data(), env)
                                   : ::posix_spawn(&spawned.pid, argv[0], &actions, &attributes, argv.data(), env);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  ::close(ends[1]);
  if (rc != 0) {
    ::close(ends[0]);
    return Error{ErrorKind::unavailable, "cannot start " + spawn.argv[0] + ": " + std::strerror(rc)};
  }
  spawned.channel_fd = ends[0];
  return spawned;
}

}  // namespace substrate
