#pragma once
// Helpers shared by the telemetry tests: fixture paths, scoped environment variables, scratch
// files, and running promtool on a scrape.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

namespace substrate::telemetry::testing {

inline std::filesystem::path fixture_sysfs() {
  return std::filesystem::path(SUBSTRATE_SOURCE_DIR) / "tests" / "fixtures" / "sysfs";
}

inline std::filesystem::path golden_scrape() {
  return std::filesystem::path(SUBSTRATE_SOURCE_DIR) / "tests" / "fixtures" / "telemetry_golden.prom";
}

// Sets (or, with nullopt, unsets) an environment variable and restores the old value on exit.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      setenv(name, value->c_str(), 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// A file under the temp directory, unique to this process, removed on exit.
class ScratchFile {
 public:
  ScratchFile(const std::string& name, const std::string& content)
      : path_(std::filesystem::temp_directory_path() /
              ("substrate-telemetry-" + std::to_string(getpid()) + "-" + name)) {
    std::ofstream(path_) << content;
  }
  ~ScratchFile() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string text() const {
    std::ifstream in(path_);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string output;
};

// Runs `promtool check metrics` on `scrape`; exit code 0 means the lint passed.
inline CommandResult promtool_check_metrics(const std::string& scrape) {
  ScratchFile input("promtool-input.prom", scrape);
  const std::string command = "promtool check metrics < '" + input.path().string() + "' 2>&1";
  CommandResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return result;
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, pipe)) result.output += buffer;
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace substrate::telemetry::testing
