// Starting a process on the worker channel: fd 3, environment, process group, SIGPIPE, errors.
#include "daemon/worker_spawn.hpp"

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <iterator>
#include <string>

using namespace substrate;

namespace {

// Everything the child writes to its fd 3, until it closes it; then reaps it.
std::string read_channel(const SpawnedWorker& spawned) {
  std::string out;
  char buffer[4096];
  for (ssize_t n; (n = ::read(spawned.channel_fd, buffer, sizeof buffer)) > 0;) out.append(buffer, n);
  ::close(spawned.channel_fd);
  int status = 0;
  ::waitpid(spawned.pid, &status, 0);
  return out;
}

// Whether `status_text` (/proc/PID/status) says the process ignores `signal` (its SigIgn mask).
bool ignores(const std::string& status_text, int signal) {
  const auto at = status_text.find("SigIgn:");
  REQUIRE(at != std::string::npos);
  const unsigned long long mask = std::stoull(status_text.substr(at + 7), nullptr, 16);
  return (mask >> (signal - 1)) & 1;
}

}  // namespace

TEST_CASE("worker_spawn: the child talks on fd 3 with the environment and group asked for", "[unit]") {
  WorkerSpawn spawn;
  spawn.argv = {"sh", "-c", "printf '%s %s' \"$SUBSTRATE_TEST_VALUE\" \"$(cut -d' ' -f5 /proc/$$/stat)\" >&3"};
  spawn.search_path = true;
  spawn.environment = {"PATH=/usr/bin:/bin", "SUBSTRATE_TEST_VALUE=from-config"};
  spawn.own_process_group = true;
  auto spawned = spawn_worker_process(spawn);
  REQUIRE(spawned.ok());
  const pid_t pid = spawned->pid;
  CHECK(read_channel(*spawned) == "from-config " + std::to_string(pid));
}

TEST_CASE("worker_spawn: SIGPIPE stays ignored for our workers and is reset for external programs", "[unit]") {
  const auto previous = ::signal(SIGPIPE, SIG_IGN);  // as the daemon runs
  for (bool reset : {false, true}) {
    WorkerSpawn spawn;
    spawn.argv = {"/bin/sh", "-c", "cat /proc/$$/status >&3"};
    spawn.default_sigpipe = reset;
    auto spawned = spawn_worker_process(spawn);
    REQUIRE(spawned.ok());
    INFO("default_sigpipe " << reset);
    CHECK(ignores(read_channel(*spawned), SIGPIPE) == !reset);
  }
  ::signal(SIGPIPE, previous);
}

TEST_CASE("worker_spawn: a program that cannot start is named, and nothing is left open", "[unit]") {
  const auto open_descriptors = [] {
    return std::distance(std::filesystem::directory_iterator("/proc/self/fd"), std::filesystem::directory_iterator());
  };
  const auto before = open_descriptors();
  WorkerSpawn spawn;
  spawn.argv = {"/nonexistent/worker"};
  const auto spawned = spawn_worker_process(spawn);
  CHECK(open_descriptors() == before);
  REQUIRE_FALSE(spawned.ok());
  CHECK(spawned.error().kind == ErrorKind::unavailable);
  CHECK(spawned.error().message == "cannot start /nonexistent/worker: No such file or directory");
  CHECK_FALSE(spawn_worker_process(WorkerSpawn{}).ok());
}
