#pragma once
// One setup for tests that drive the CUDA backend through the libcuda stand-in
// (tests/standins/fake_libcuda.cpp, scenario format in docs/testing.md): the stand-in library and
// a scenario file for the life of the object, the environment variables that make the backend's
// real dlopen path and every worker it spawns use them, and the stand-in's counters.
#ifdef SUBSTRATE_FAKE_LIBCUDA

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>

namespace substrate::test {

class FakeCuda {
 public:
  // Writes `scenario` and points $SUBSTRATE_CUDA_LIBRARY, $SUBSTRATE_FAKE_CUDA_SCENARIO and
  // $SUBSTRATE_FAKE_CUDA_LOG at the stand-in, the file and a fresh event log; the destructor
  // restores the variables and removes both files.
  explicit FakeCuda(const std::string& scenario = "") {
    static std::atomic<int> counter{0};
    const std::string stem = "substrate-fake-cuda-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    path_ = std::filesystem::temp_directory_path() / (stem + ".scenario");
    log_ = std::filesystem::temp_directory_path() / (stem + ".log");
    set(scenario);
    save("SUBSTRATE_CUDA_LIBRARY", SUBSTRATE_FAKE_LIBCUDA);
    save("SUBSTRATE_FAKE_CUDA_SCENARIO", path_.string());
    save("SUBSTRATE_FAKE_CUDA_LOG", log_.string());
    contexts_before_ = std::max(live_contexts(), 0);
    allocations_before_ = std::max(live_allocations(), 0);
  }
  ~FakeCuda() {
    for (const auto& [name, old] : saved_) {
      if (old)
        ::setenv(name.c_str(), old->c_str(), 1);
      else
        ::unsetenv(name.c_str());
    }
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
    std::filesystem::remove(log_, ignored);
  }
  FakeCuda(const FakeCuda&) = delete;
  FakeCuda& operator=(const FakeCuda&) = delete;

  // Replaces the scenario; the stand-in re-reads it on its next call (a revision comment keeps
  // the size changing, so even an identical scenario counts calls afresh).
  void set(const std::string& scenario) {
    std::ofstream(path_, std::ios::trunc) << scenario << "\n# revision " << revision_++ << "\n";
  }
  // Sets an extra environment variable for the object's life (e.g. CUDA_VISIBLE_DEVICES).
  void env(const std::string& name, const std::string& value) { save(name, value); }

  // Contexts and device allocations live now that were not live when this object was made (an
  // earlier test's hung device keeps its own on purpose).
  int contexts_held() const { return live_contexts() - contexts_before_; }
  int allocations_held() const { return live_allocations() - allocations_before_; }

  // In-process counters of the stand-in this process loaded.
  static int live_allocations() { return hook("substrate_fake_cuda_live_allocations"); }
  static int live_contexts() { return hook("substrate_fake_cuda_live_contexts"); }
  static int contexts_created() { return hook("substrate_fake_cuda_contexts_created"); }
  static int launches() { return hook("substrate_fake_cuda_launches"); }

  // Every process's context and allocation events from the log: "ctx+", "ctx-", "alloc+",
  // "alloc-" counted over all processes.
  std::map<std::string, int> events() const {
    std::map<std::string, int> counts;
    std::ifstream in(log_);
    for (std::string line; std::getline(in, line);) {
      std::istringstream words(line);
      std::string pid, what;
      if (words >> pid >> what) ++counts[what];
    }
    return counts;
  }

 private:
  void save(const std::string& name, const std::string& value) {
    if (saved_.count(name) == 0) {
      const char* old = std::getenv(name.c_str());
      saved_[name] = old ? std::optional<std::string>(old) : std::nullopt;
    }
    ::setenv(name.c_str(), value.c_str(), 1);
  }
  static int hook(const char* name) {
    void* handle = dlopen(SUBSTRATE_FAKE_LIBCUDA, RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) return -1;
    auto fn = reinterpret_cast<int (*)()>(dlsym(handle, name));
    const int value = fn ? fn() : -1;
    dlclose(handle);
    return value;
  }

  std::filesystem::path path_, log_;
  int revision_ = 0;
  int contexts_before_ = 0, allocations_before_ = 0;
  std::map<std::string, std::optional<std::string>> saved_;
};

}  // namespace substrate::test

#endif  // SUBSTRATE_FAKE_LIBCUDA
