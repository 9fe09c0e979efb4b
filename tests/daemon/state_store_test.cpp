#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "daemon/state_store.hpp"

using namespace substrate;
namespace fs = std::filesystem;

namespace {

// A fresh directory under the temp directory, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("substrated-state-test-" + std::to_string(::getpid()) + "-" + std::to_string(++counter));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_raw(const fs::path& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
}

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> with_prefix(const std::vector<std::string>& names, const std::string& prefix) {
  std::vector<std::string> out;
  for (const std::string& name : names) {
    if (name.rfind(prefix, 0) == 0) out.push_back(name);
  }
  return out;
}

State sample_state(const std::string& tag, int baselines) {
  State state;
  for (int i = 0; i < baselines; ++i) {
    BaselineKey key{"uuid-" + std::to_string(i % 4), "driver 1." + std::to_string(i % 3), "build-abc",
                    "gemm/f32/exact/256x256x256#" + std::to_string(i)};
    Baseline baseline;
    baseline.fingerprint = tag + "-fingerprint-" + std::to_string(i);
    baseline.device_seconds = 0.001 * (i + 1);
    baseline.runs = static_cast<std::uint64_t>(i) * 7;
    for (int j = 0; j < 5; ++j) baseline.budget_history.push_back(1e-6 * (i + j));
    baseline.updated_at = 1700000000.5 + i;
    state.baselines[key] = baseline;
  }
  DeviceRecord record;
  record.fields = {{"driver", "Mesa 22.3.6"}, {"name", "llvmpipe (LLVM 15.0.6, 256 bits)"}, {"tag", tag}};
  record.updated_at = 1700000000.25;
  state.devices["uuid-0"] = record;
  return state;
}

}  // namespace

TEST_CASE("state: save and load round-trip every field", "[unit]") {
  TempDir dir;
  State state = sample_state("A", 10);
  // Non-finite values and odd strings survive too.
  Baseline& odd = state.baselines.begin()->second;
  odd.budget_history.push_back(std::numeric_limits<double>::infinity());
  odd.budget_history.push_back(std::nan(""));
  odd.device_seconds = -std::numeric_limits<double>::infinity();
  state.devices["GPU-ÿ \"quoted\"\n"] = DeviceRecord{{{"name", "tab\there"}}, 0.0};
  diag::Summary last_diag;
  last_diag.device = "vulkan0";
  last_diag.level = 3;
  last_diag.verdict = "fail";
  last_diag.reason = "fingerprint_change";
  last_diag.detail = "diag level 3: gemm failed";
  last_diag.iterations = 7;
  last_diag.failed_iterations = 2;
  state.diags["vulkan0"] = last_diag;

  StateStore store(dir.str());
  CHECK(store.path() == dir.str() + "/state.json");
  REQUIRE(store.save(state).ok());
  std::string note;
  State loaded = store.load(&note);
  CHECK(note.find("loaded 10 baselines") != std::string::npos);
  CHECK(serialize_state(loaded) == serialize_state(state));
  const Baseline& back = loaded.baselines.begin()->second;
  CHECK(std::isinf(back.budget_history[back.budget_history.size() - 2]));
  CHECK(std::isnan(back.budget_history.back()));
  CHECK(back.device_seconds == -std::numeric_limits<double>::infinity());
  CHECK(loaded.devices.at("GPU-ÿ \"quoted\"\n").fields.at("name") == "tab\there");
  CHECK(loaded.diags.at("vulkan0").failed_iterations == 2);
  CHECK(loaded.diags.at("vulkan0").reason == "fingerprint_change");
  // Nothing but the state file is left behind.
  CHECK(entries(dir.path()) == std::vector<std::string>{"state.json"});
}

TEST_CASE("state: the file has a checksummed header", "[unit]") {
  TempDir dir;
  const std::string path = dir.str() + "/f";
  REQUIRE(write_checked_file(path, "hello\n").ok());
  const std::string raw = read_file(path);
  CHECK(raw.rfind("substrated-state v1 6 ", 0) == 0);
  CHECK(raw.size() == raw.find('\n') + 1 + 6);
  auto body = read_checked_file(path);
  REQUIRE(body.ok());
  CHECK(*body == "hello\n");
  REQUIRE(write_checked_file(path, "").ok());
  CHECK(read_checked_file(path).value().empty());

  auto missing = read_checked_file(dir.str() + "/nothing");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().kind == ErrorKind::io_error);
  auto no_dir = write_checked_file(dir.str() + "/no/such/dir/f", "x");
  REQUIRE_FALSE(no_dir.ok());
  CHECK(no_dir.error().kind == ErrorKind::io_error);
}

TEST_CASE("state: budget history is bounded to the newest 64 entries", "[unit]") {
  State state;
  Baseline baseline;
  for (int i = 0; i < 100; ++i) baseline.budget_history.push_back(i);
  state.baselines[BaselineKey{"u", "d", "k", "s"}] = baseline;
  auto loaded = deserialize_state(serialize_state(state));
  REQUIRE(loaded.ok());
  const auto& history = loaded->baselines.begin()->second.budget_history;
  REQUIRE(history.size() == 64);
  CHECK(history.front() == 36.0);
  CHECK(history.back() == 99.0);
}

TEST_CASE("state: unusable files are moved aside and an empty state returned", "[unit]") {
  const std::string good_body = serialize_state(sample_state("A", 3));
  struct Case {
    const char* name;
    std::function<void(const std::string& path)> make;
    const char* why;
  };
  const std::vector<Case> cases = {
      {"checksum",
       [&](const std::string& p) {
         REQUIRE(write_checked_file(p, good_body).ok());
         std::string raw = read_file(p);
         raw[raw.size() - 5] ^= 0x01;  // one flipped bit in the body
         write_raw(p, raw);
       },
       "checksum mismatch"},
      {"truncated",
       [&](const std::string& p) {
         REQUIRE(write_checked_file(p, good_body).ok());
         const std::string raw = read_file(p);
         write_raw(p, raw.substr(0, raw.size() / 2));
       },
       "truncated"},
      {"truncated header", [&](const std::string& p) { write_raw(p, "substrated-state v1 12"); }, "no header line"},
      {"empty", [&](const std::string& p) { write_raw(p, ""); }, "empty file"},
      {"garbage",
       [&](const std::string& p) {
         write_raw(p,
                   "\x7f"
                   "ELF\x02\x01\x01\nrandom bytes");
       },
       "not a substrated state file"},
      {"wrong version",
       [&](const std::string& p) {
         REQUIRE(write_checked_file(p, good_body).ok());
         std::string raw = read_file(p);
         raw.replace(raw.find(" v1 "), 4, " v9 ");
         write_raw(p, raw);
       },
       "unsupported format version 'v9'"},
      {"bad json", [&](const std::string& p) { REQUIRE(write_checked_file(p, "{\"format\": 1, ").ok()); },
       "not valid JSON"},
      {"wrong format",
       [&](const std::string& p) {
         REQUIRE(write_checked_file(p, R"({"format": 2, "baselines": [], "devices": {}})").ok());
       },
       "unsupported state format 2"},
      {"wrong types",
       [&](const std::string& p) {
         REQUIRE(write_checked_file(p, R"({"format": 1, "baselines": [{"device_uuid": 3}], "devices": {}})").ok());
       },
       "'device_uuid' must be a string"},
      // Issue 17: a valid checksum over 200,000 nested arrays crashed every start (stack overflow
      // while formatting the error message).
      {"deep nesting",
       [&](const std::string& p) {
         REQUIRE(
             write_checked_file(p, R"({"format": )" + std::string(200000, '[') + std::string(200000, ']') + "}").ok());
       },
       "JSON nested deeper than 32 levels"},
      {"deep nesting, bare",
       [&](const std::string& p) {
         REQUIRE(write_checked_file(p, std::string(200000, '[') + std::string(200000, ']')).ok());
       },
       "JSON nested deeper than 32 levels"},
      {"structured format",
       [&](const std::string& p) {
         REQUIRE(write_checked_file(p, R"({"format": [[1]], "baselines": [], "devices": {}})").ok());
       },
       "unsupported state format an array"},
      {"a directory", [&](const std::string& p) { fs::create_directories(p); }, "not a regular file (a directory)"},
      // A FIFO would block every start on open(): refused at once and set aside.
      {"a FIFO", [&](const std::string& p) { REQUIRE(::mkfifo(p.c_str(), 0600) == 0); }, "not a regular file (a FIFO)"},
  };
  for (const Case& c : cases) {
    SECTION(c.name) {
      TempDir dir;
      StateStore store(dir.str());
      c.make(store.path());
      const bool was_regular = fs::is_regular_file(store.path());
      const std::string before = was_regular ? read_file(store.path()) : std::string();
      std::string note;
      State state = store.load(&note);
      INFO(note);
      CHECK(state.baselines.empty());
      CHECK(state.devices.empty());
      CHECK(note.find(c.why) != std::string::npos);
      CHECK(note.find("moved to " + store.path() + ".corrupt-") != std::string::npos);
      CHECK_FALSE(fs::exists(store.path()));
      const auto aside = with_prefix(entries(dir.path()), "state.json.corrupt-");
      REQUIRE(aside.size() == 1);
      if (was_regular) CHECK(read_file(dir.path() / aside[0]) == before);
      // The daemon carries on: the next save and load work.
      REQUIRE(store.save(sample_state("B", 2)).ok());
      CHECK(store.load().baselines.size() == 2);
    }
  }
}

TEST_CASE("state: two corrupt files in the same second get distinct names", "[unit]") {
  TempDir dir;
  StateStore store(dir.str());
  write_raw(store.path(), "garbage 1");
  store.load();
  write_raw(store.path(), "garbage 2");
  store.load();
  const auto aside = with_prefix(entries(dir.path()), "state.json.corrupt-");
  CHECK(aside.size() == 2);
}

TEST_CASE("state: a missing directory is an empty state and is created on save", "[unit]") {
  TempDir dir;
  const std::string nested = dir.str() + "/a/b/c";
  StateStore store(nested);
  std::string note;
  State state = store.load(&note);
  CHECK(state.baselines.empty());
  CHECK(note.find("no state file") != std::string::npos);
  CHECK_FALSE(fs::exists(nested));
  REQUIRE(store.save(sample_state("A", 4)).ok());
  CHECK(fs::is_regular_file(nested + "/state.json"));
  CHECK(store.load().baselines.size() == 4);
}

TEST_CASE("state: a failed save is io_error and leaves the old file intact", "[unit]") {
  TempDir dir;
  StateStore store(dir.str());
  const State old_state = sample_state("old", 3);
  REQUIRE(store.save(old_state).ok());
  const std::string old_bytes = read_file(store.path());

  SECTION("the temporary file cannot be created") {
    // Works as root too: a directory where the temporary file would go.
    const std::string blocker = store.path() + ".tmp." + std::to_string(::getpid());
    fs::create_directories(blocker);
    auto saved = store.save(sample_state("new", 5));
    REQUIRE_FALSE(saved.ok());
    CHECK(saved.error().kind == ErrorKind::io_error);
    CHECK(saved.error().message.find(blocker) != std::string::npos);
    fs::remove(blocker);
  }
  SECTION("the directory is not writable") {
    if (::geteuid() == 0) {
      WARN("running as root: directory permissions do not stop writes; covered by the other section");
    } else {
      fs::permissions(dir.path(), fs::perms::owner_read | fs::perms::owner_exec);
      auto saved = store.save(sample_state("new", 5));
      fs::permissions(dir.path(), fs::perms::owner_all);
      REQUIRE_FALSE(saved.ok());
      CHECK(saved.error().kind == ErrorKind::io_error);
    }
  }
  SECTION("the state directory cannot be created") {
    write_raw(dir.path() / "file", "x");
    StateStore blocked(dir.str() + "/file/sub");
    auto saved = blocked.save(old_state);
    REQUIRE_FALSE(saved.ok());
    CHECK(saved.error().kind == ErrorKind::io_error);
  }
  CHECK(read_file(store.path()) == old_bytes);
  CHECK(serialize_state(store.load()) == serialize_state(old_state));
}

TEST_CASE("state: temporary files of dead writers are removed, live ones kept", "[unit]") {
  TempDir dir;
  StateStore store(dir.str());
  REQUIRE(store.save(sample_state("A", 1)).ok());
  // Above any pid_max: no such process.
  write_raw(dir.path() / "state.json.tmp.999999999", "partial");
  // pid 1 is alive (kill answers 0 or EPERM): another writer's file is left alone.
  write_raw(dir.path() / "state.json.tmp.1", "someone else");
  write_raw(dir.path() / "state.json.tmp.notapid", "not ours");
  write_raw(dir.path() / "other.tmp.999999999", "another file's");
  store.load();
  CHECK(entries(dir.path()) ==
        std::vector<std::string>{"other.tmp.999999999", "state.json", "state.json.tmp.1", "state.json.tmp.notapid"});
  write_raw(dir.path() / "state.json.tmp.999999998", "partial");
  REQUIRE(store.save(sample_state("B", 1)).ok());
  CHECK_FALSE(fs::exists(dir.path() / "state.json.tmp.999999998"));
}

TEST_CASE("state: a writer killed at random points always leaves a loadable file", "[e2e]") {
  TempDir dir, bodies;
  StateStore store(dir.str());
  // Two distinguishable states of different sizes, big enough that a write takes a while.
  const std::string a_text = serialize_state(sample_state("A", 20));
  const std::string b_text = serialize_state(sample_state("B", 24));
  write_raw(bodies.path() / "a.json", a_text);
  write_raw(bodies.path() / "b.json", b_text);
  const State b_state = deserialize_state(b_text).value();
  // Kill delays span 0-3 ms, or a few saves where one save takes longer (sanitizer builds).
  auto save_started = std::chrono::steady_clock::now();
  for (int n = 0; n < 3; ++n) REQUIRE(store.save(b_state).ok());
  const double save_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - save_started).count() / 3;
  REQUIRE(store.save(deserialize_state(a_text).value()).ok());

  const std::string helper = SUBSTRATE_STATE_WRITER;
  const std::string a_path = (bodies.path() / "a.json").string(), b_path = (bodies.path() / "b.json").string();
  const std::string dir_path = dir.str();
  std::mt19937 random(20240601);
  std::uniform_int_distribution<int> delay_us(0, std::max(3000, static_cast<int>(3 * save_us)));
  int seen_a = 0, seen_b = 0, killed_mid_write = 0;
  const int iterations = 200;
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) {
    INFO("iteration " << i);
    // The writer saves b, a, b, a... until killed. It is spawned (not a fork of this large
    // process) and says "ready" once it is about to write, so the kill lands during writes.
    int pipe_fds[2];
    REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
    const char* argv[] = {helper.c_str(), dir_path.c_str(), a_path.c_str(), b_path.c_str(), nullptr};
    pid_t child = -1;
    const int spawned =
        ::posix_spawn(&child, helper.c_str(), &actions, nullptr, const_cast<char* const*>(argv), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(pipe_fds[1]);
    REQUIRE(spawned == 0);
    pollfd ready{pipe_fds[0], POLLIN, 0};
    const int polled = ::poll(&ready, 1, 20000);
    char byte = 0;
    const bool said_ready = polled == 1 && ::read(pipe_fds[0], &byte, 1) == 1 && byte == 'r';
    ::close(pipe_fds[0]);
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us(random)));
    ::kill(child, SIGKILL);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(said_ready);
    REQUIRE(WIFSIGNALED(status));
    REQUIRE(WTERMSIG(status) == SIGKILL);

    // At most the one temp file the killed writer was writing, nothing else.
    const auto names = entries(dir.path());
    const auto temps = with_prefix(names, "state.json.tmp.");
    REQUIRE(temps.size() <= 1);
    if (!temps.empty()) {
      CHECK(temps[0] == "state.json.tmp." + std::to_string(child));
      ++killed_mid_write;
    }
    REQUIRE(names.size() == 1 + temps.size());
    REQUIRE(names[0] == "state.json");

    std::string note;
    const State loaded = store.load(&note);
    INFO(note);
    REQUIRE(note.find("unusable") == std::string::npos);
    const std::string text = serialize_state(loaded);
    const bool is_a = text == a_text, is_b = text == b_text;
    REQUIRE((is_a || is_b));
    seen_a += is_a;
    seen_b += is_b;
    // Loading cleaned up the dead writer's temp file.
    REQUIRE(entries(dir.path()) == std::vector<std::string>{"state.json"});
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  WARN("crash test: one save " << save_us << " us; " << iterations << " kills in " << seconds
                               << " s; loaded old/new state " << seen_a << "/" << seen_b << " times; "
                               << killed_mid_write << " kills left a partial temp file");
  CHECK(seen_a > 0);
  CHECK(seen_b > 0);
  CHECK(killed_mid_write > 0);
}

TEST_CASE("state: telemetry counters and verdicts round-trip, are optional, and are checked", "[unit]") {
  State state;
  state.telemetry_counters.push_back({"nvml",
                                      "nvml0",
                                      "0000:65:00.0",
                                      "8e8f1c2a-1b2c-3d4e-5f60-718293a4b5c6",
                                      {{"uncorrected", "volatile", "total", 2}}});
  state.telemetry_verdicts["8e8f1c2a"] = {
      "failed", {"telemetry: uncorrectable ECC errors rose from 0 to 2"}, 1, {{"uncorrectable ECC", {1, "r"}}}};
  const auto loaded = deserialize_state(serialize_state(state));
  REQUIRE(loaded.ok());
  CHECK(loaded->telemetry_counters == state.telemetry_counters);
  CHECK(loaded->telemetry_verdicts == state.telemetry_verdicts);

  // A file from before the telemetry sections loads with none.
  const auto old = deserialize_state(R"({"format": 1, "baselines": [], "devices": {}})");
  REQUIRE(old.ok());
  CHECK(old->telemetry_counters.empty());
  CHECK(old->telemetry_verdicts.empty());

  auto error_of = [](const std::string& body) {
    const auto parsed = deserialize_state(body);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().kind == ErrorKind::corrupt);
    return parsed.error().message;
  };
  const std::string head = R"({"format": 1, "baselines": [], "devices": {}, )";
  CHECK(error_of(head + R"("telemetry_counters": {}})").find("'telemetry_counters' must be an array") !=
        std::string::npos);
  CHECK(error_of(head + R"("telemetry_counters": [{"source": "nvml", "local_id": "nvml0", "pci_bus_id": "",
      "uuid": "", "ecc": [{"kind": "uncorrected", "scope": "volatile", "location": "total", "count": -1}]}]})")
            .find("'count' must be a non-negative integer") != std::string::npos);
  CHECK(error_of(head + R"("telemetry_verdicts": {"x": {"health": "failed", "reasons": [3],
      "consecutive_passes": 0, "events": {}}}})")
            .find("each reason must be a string") != std::string::npos);
}
