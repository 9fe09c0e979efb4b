#pragma once
// The TEST-ONLY NVML stand-in (tests/standins/nvml_standin.cpp) for the NVML tests: its scenario
// file, the environment that points the production loader at it, and its test counters.
#include <dlfcn.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

#include "daemon/telemetry_history.hpp"
#include "daemon/telemetry_reader.hpp"
#include "daemon/verdict.hpp"
#include "probes/telemetry/join.hpp"
#include "probes/telemetry/nvml/library.hpp"
#include "tests/probes/telemetry/test_support.hpp"

namespace substrate::telemetry::testing {

// The scenario file plus SUBSTRATE_NVML_LIBRARY / _SCRIPT / _LOG pointing at it, restored on exit.
struct StandinEnvironment {
  explicit StandinEnvironment(const char* directory, const std::string& scenario)
      : script_file("standin-script.txt", scenario),
        log_file("standin-calls.log", ""),
        library_path(std::string(directory) + "/libnvidia-ml.so.1"),
        library(nvml::kLibraryEnv, library_path),
        script("SUBSTRATE_NVML_STANDIN_SCRIPT", script_file.path().string()),
        log("SUBSTRATE_NVML_STANDIN_LOG", log_file.path().string()) {}

  // Replaces the scenario the way an editor does (write aside, rename over), so the stand-in sees
  // a new file at its next call however little the size or mtime changed.
  void rewrite(const std::string& scenario) const {
    const auto aside = script_file.path().string() + ".new";
    std::ofstream(aside) << scenario;
    std::filesystem::rename(aside, script_file.path());
  }

  // A counter the stand-in exports (substrate_standin_*), from the copy the loader opened.
  unsigned long long counter(const char* name, unsigned int index = 0) const {
    void* handle = dlopen(library_path.c_str(), RTLD_NOW | RTLD_NOLOAD);
    if (!handle) return 0;
    unsigned long long value = 0;
    if (void* symbol = dlsym(handle, name)) {
      const std::string n = name;
      value = n == "substrate_standin_live_event_sets"
                  ? reinterpret_cast<unsigned long long (*)()>(symbol)()
                  : reinterpret_cast<unsigned long long (*)(unsigned int)>(symbol)(index);
    }
    dlclose(handle);
    return value;
  }

  ScratchFile script_file;
  ScratchFile log_file;
  std::string library_path;
  ScopedEnv library;
  ScopedEnv script;
  ScopedEnv log;
};

// Calls `poll` every 10 ms until it returns true or `limit` passed; returns its last answer.
inline bool eventually(const std::function<bool()>& poll, std::chrono::milliseconds limit = std::chrono::seconds(3)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (poll()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// The daemon's telemetry path for one compute device (daemon/service.cpp on_telemetry): read,
// join, classify against the history, fold into the verdict, and the verdict users see.
struct VerdictPath {
  substrate::DeviceInfo compute;
  substrate::VerdictState verdict;
  Snapshot history;
  bool have_history = false;
  std::vector<substrate::TelemetryFinding> conditions;
  Snapshot last;  // the joined snapshot of the last fold

  substrate::EffectiveVerdict fold(TelemetryReader& reader) {
    const Snapshot snapshot = join_devices(reader.read(), {compute});
    std::vector<substrate::TelemetryFinding> events;
    conditions.clear();
    for (substrate::TelemetryFinding& f :
         substrate::classify_telemetry(compute, have_history ? &history : nullptr, snapshot)) {
      (f.failed || f.event ? events : conditions).push_back(std::move(f));
    }
    substrate::apply_telemetry_events(verdict, events);
    substrate::remember_telemetry(history, snapshot);
    have_history = true;
    last = snapshot;
    return substrate::effective_verdict(verdict, conditions);
  }
};

}  // namespace substrate::telemetry::testing
