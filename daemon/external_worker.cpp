#include "daemon/external_worker.hpp"

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <optional>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "daemon/config.hpp"
#include "daemon/supervisor.hpp"
#include "daemon/worker_protocol.hpp"
#include "daemon/worker_spawn.hpp"

extern char** environ;

namespace substrate {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// How the worker process ended, when it did before answering.
enum class Ending { none, hung, crashed, failed };

// One external worker process, shared by the devices it reported. Calls are serial (a run worker
// has one device; a listing only reads DeviceInfos).
class ExternalProcess {
 public:
  explicit ExternalProcess(ExternalWorkerConfig config) : config_(std::move(config)) {}
  ~ExternalProcess() { stop(); }
  ExternalProcess(const ExternalProcess&) = delete;
  ExternalProcess& operator=(const ExternalProcess&) = delete;

  const ExternalWorkerConfig& config() const { return config_; }
  Status start();
  // Sends `request` and waits up to `seconds` for the answer: the answer frame; the worker's
  // `error` frame as unavailable ("unsupported": the run is skipped) or device_error; timeout when
  // it did not answer in time (it is killed: hung); device_error when it died, broke the protocol
  // or answered with another type than `expect`. After any failure but its own `error` frame
  // the process is gone and every later call returns that same error.
  Expected<json> call(json request, const std::string& expect, double seconds);
  const std::optional<Error>& broken() const { return broken_; }
  Ending ending() const { return ending_; }
  // An answer that broke the protocol (an output of the wrong size, malformed fields): the
  // worker is killed, as for a malformed frame, and `why` is every later call's error.
  Error protocol_violation(const std::string& why) { return fail(Ending::failed, ErrorKind::device_error, why); }

 private:
  Error fail(Ending ending, ErrorKind kind, const std::string& why);
  Expected<json> next_frame(Clock::time_point deadline, const std::string& what);
  void stop();
  std::string who() const { return "external worker " + config_.name; }

  ExternalWorkerConfig config_;
  pid_t pid_ = -1;
  int fd_ = -1;
  worker::FrameDecoder decoder_;
  std::optional<Error> broken_;
  Ending ending_ = Ending::none;
};

Status ExternalProcess::start() {
  WorkerSpawn spawn;
  spawn.argv = config_.argv;
  spawn.search_path = true;
  // No group of its own: the daemon's SIGKILL of a run worker's process group reaches it too.
  // SIGPIPE at its default, as a program started from a shell has it.
  spawn.default_sigpipe = true;
  // The environment: ours, with the configured variables replacing any of the same name.
  for (char** e = environ; *e; ++e) {
    const std::string entry(*e);
    if (!config_.environment.contains(entry.substr(0, entry.find('=')))) spawn.environment.push_back(entry);
  }
  for (const auto& [key, value] : config_.environment) spawn.environment.push_back(key + "=" + value);
  auto spawned = spawn_worker_process(spawn);
  if (!spawned) return Error{spawned.error().kind, who() + ": " + spawned.error().message};
  pid_ = spawned->pid;
  fd_ = spawned->channel_fd;
  spdlog::debug("{}: started pid {}", who(), pid_);
  return ok_status();
}

Error ExternalProcess::fail(Ending ending, ErrorKind kind, const std::string& why) {
  ending_ = ending;
  broken_ = Error{kind, who() + ": " + why};
  if (pid_ > 0) ::kill(pid_, SIGKILL);  // a worker that broke the protocol gets no grace period
  stop();
  return *broken_;
}

void ExternalProcess::stop() {
  if (fd_ >= 0) {
    ::close(fd_);  // a well-behaved worker exits at EOF
    fd_ = -1;
  }
  if (pid_ <= 0) return;
  // Two seconds to leave by itself, then SIGKILL: it must not outlive its devices.
  int status = 0;
  for (int i = 0; i < 200; ++i) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    ::usleep(10000);
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

Expected<json> ExternalProcess::next_frame(Clock::time_point deadline, const std::string& what) {
  char buffer[65536];
  while (!decoder_.has_frame()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      ::kill(pid_, SIGKILL);
      return fail(Ending::hung, ErrorKind::timeout, "no answer to " + what + " before its deadline: killed (hung)");
    }
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (ready < 0 && errno != EINTR) return fail(Ending::failed, ErrorKind::io_error, std::strerror(errno));
    if (ready <= 0) continue;
    const ssize_t n = ::read(fd_, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // The worker closed its end: it is exiting or died. Wait for it (bounded) to say how.
      int status = 0;
      pid_t r = 0;
      for (int i = 0; i < 500 && r == 0; ++i) {
        r = ::waitpid(pid_, &status, WNOHANG);
        if (r == 0) ::usleep(10000);
      }
      if (r == pid_) {
        pid_ = -1;
        if (WIFSIGNALED(status)) {
          return fail(Ending::crashed, ErrorKind::device_error,
                      "died by " + signal_name(WTERMSIG(status)) + " during " + what + " (crashed)");
        }
        return fail(Ending::failed, ErrorKind::device_error,
                    "exited with status " + std::to_string(WEXITSTATUS(status)) + " without answering " + what);
      }
      return fail(Ending::failed, ErrorKind::device_error, "closed its channel without answering " + what);
    }
    if (Status fed = decoder_.feed(buffer, static_cast<std::size_t>(n)); !fed) {
      return fail(Ending::failed, ErrorKind::device_error, "protocol error: " + fed.error().message);
    }
  }
  return decoder_.take();
}

Expected<json> ExternalProcess::call(json request, const std::string& expect, double seconds) {
  if (broken_) return *broken_;
  const std::string what = request.value("type", std::string("request"));
  TRY_ASSIGN(auto frame, worker::encode(std::move(request)));
  std::size_t done = 0;
  while (done < frame.size()) {
    // MSG_NOSIGNAL: a worker that died must be an error here, not a SIGPIPE for us.
    const ssize_t n = ::send(fd_, frame.data() + done, frame.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // it is gone: reading says how it ended
    done += static_cast<std::size_t>(n);
  }
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(std::min(seconds, 30.0 * 86400.0)));
  TRY_ASSIGN(auto answer, next_frame(deadline, what));
  const std::string type = answer.value("type", std::string());
  if (type == "error") {
    const std::string message = answer.value("message", std::string("(no message)"));
    // The worker stays usable after its own error: it refused this request, nothing more.
    const bool unsupported = answer.value("kind", std::string()) == "unsupported";
    return Error{unsupported ? ErrorKind::unavailable : ErrorKind::device_error, who() + ": " + message};
  }
  if (type != expect) {
    return fail(Ending::failed, ErrorKind::device_error,
                "protocol error: answered " + what + " with a '" + type + "' frame, expected '" + expect + "'");
  }
  return answer;
}

std::string base64_decode(const std::string& text, bool& ok) {
  static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve(text.size() / 4 * 3);
  std::uint32_t acc = 0;
  int bits = 0;
  std::size_t i = 0;
  for (; i < text.size() && text[i] != '='; ++i) {
    const std::size_t v = alphabet.find(text[i]);
    if (v == std::string::npos) break;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFFu));
    }
  }
  std::size_t padding = 0;
  while (i < text.size() && text[i] == '=') ++i, ++padding;
  ok = i == text.size() && text.size() % 4 == 0 && padding <= 2;
  return out;
}

// The unit roundoff of the arithmetic the worker declares it asked its device for: the rounding of
// the products and sums (IEEE formats: 2^-(p) for p significand bits with the hidden one; TF32
// keeps 10 stored bits, docs/external-workers.md). Inputs are converted to the compute type
// before the product, so a TF32 or half compute type rounds the inputs too, within the same u.
std::optional<double> declared_unit_roundoff(const json& arithmetic) {
  if (!arithmetic.is_object()) return std::nullopt;
  const std::string compute = arithmetic.value("compute", std::string());
  const bool tf32 = arithmetic.value("tf32", false);
  if ((compute == "fp32" && !tf32) || compute == "fp64") return std::ldexp(1.0, -24);
  if ((compute == "fp32" && tf32) || compute == "tf32" || compute == "fp16") return std::ldexp(1.0, -11);
  if (compute == "bf16") return std::ldexp(1.0, -8);
  return std::nullopt;
}

json injection_json(const Injection& inject) {
  if (!inject.enabled) return nullptr;
  // count k_inject_to_end (UINT64_MAX) passes through as that number: "to the end of the output".
  return {
      {"element", inject.element}, {"xor_mask", inject.xor_mask}, {"count", inject.count}, {"stride", inject.stride}};
}

class ExternalDevice : public ComputeDevice {
 public:
  ExternalDevice(std::shared_ptr<ExternalProcess> process, DeviceInfo info, std::string device)
      : process_(std::move(process)), info_(std::move(info)), device_(std::move(device)) {}
  const DeviceInfo& info() const override { return info_; }
  std::uint64_t free_memory_bytes() const override { return info_.memory_bytes; }
  std::string sticky_error() const override { return process_->broken() ? process_->broken()->message : std::string(); }
  Expected<std::vector<std::uint32_t>> generate_raw(std::uint64_t seed, std::uint32_t stream, std::uint64_t first,
                                                    std::uint32_t count) override {
    TRY_ASSIGN(auto answer, process_->call({{"type", "generate"},
                                            {"device", device_},
                                            {"seed", seed},
                                            {"stream", stream},
                                            {"first", first},
                                            {"count", count}},
                                           "words", timeout_));
    try {
      auto words = answer.at("words").get<std::vector<std::uint32_t>>();
      if (words.size() == count) return words;
      return process_->protocol_violation("returned " + std::to_string(words.size()) + " generator words, asked for " +
                                          std::to_string(count));
    } catch (const json::exception& e) {
      return process_->protocol_violation(std::string("malformed 'words' frame: ") + e.what());
    }
  }
  Expected<KernelRun> run_gemm(const GemmLaunch& launch) override {
    return run("gemm", std::uint64_t{launch.shape.m} * launch.shape.n,
               {{"type", "gemm"},
                {"device", device_},
                {"m", launch.shape.m},
                {"n", launch.shape.n},
                {"k", launch.shape.k},
                {"dtype", to_string(launch.dtype)},
                {"mode", to_string(launch.mode)},
                {"seed", launch.seed},
                {"exact_radius", launch.exact_radius},
                {"inject", injection_json(launch.inject)}});
  }
  Expected<KernelRun> run_attention(const AttentionLaunch& launch) override {
    const AttentionShape& s = launch.shape;
    return run("attention", std::uint64_t{s.seq_len} * s.heads * s.head_dim,
               {{"type", "attention"},
                {"device", device_},
                {"seq_len", s.seq_len},
                {"heads", s.heads},
                {"head_dim", s.head_dim},
                {"causal", s.causal},
                {"dtype", to_string(launch.dtype)},
                {"seed", launch.seed},
                {"inject", injection_json(launch.inject)}});
  }
  // Never reached through run_probe: the memory probe does not list the external backend.
  Expected<MemoryRun> run_memory(const MemoryLaunch&) override { return unsupported("the memory probe"); }
  Expected<RetentionRun> check_retention(std::uint64_t, std::uint64_t) override {
    return unsupported("the retention check");
  }
  void set_timeout_seconds(double seconds) override { timeout_ = seconds; }
  Ending ending() const { return process_->ending(); }

 private:
  Error unsupported(const std::string& what) const {
    return Error{ErrorKind::unavailable, what + " is not implemented for external workers"};
  }

  // One GEMM or attention call: the output must be `elements` f32 words, base64 of their
  // little-endian bytes, with the arithmetic declared.
  Expected<KernelRun> run(const std::string& probe, std::uint64_t elements, json request) {
    TRY_ASSIGN(auto answer, process_->call(std::move(request), "output", timeout_));
    const std::string who = probe + ": ";
    KernelRun out;
    try {
      out.kernel = answer.at("kernel").get<std::string>();
      bool ok = false;
      const std::string bytes = base64_decode(answer.at("words").get<std::string>(), ok);
      if (!ok) return process_->protocol_violation(who + "'words' is not base64");
      if (bytes.size() != elements * 4) {
        return process_->protocol_violation(who + "output of " + std::to_string(bytes.size()) + " bytes, expected " +
                                            std::to_string(elements) + " f32 words (" + std::to_string(elements * 4) +
                                            " bytes)");
      }
      out.output_bits.resize(elements);
      const auto* u = reinterpret_cast<const unsigned char*>(bytes.data());
      for (std::uint64_t i = 0; i < elements; ++i, u += 4) {
        out.output_bits[i] = std::uint32_t{u[0]} | (std::uint32_t{u[1]} << 8) | (std::uint32_t{u[2]} << 16) |
                             (std::uint32_t{u[3]} << 24);
      }
      const auto u_declared = declared_unit_roundoff(answer.value("arithmetic", json()));
      if (!u_declared) {
        return process_->protocol_violation(who + "no known arithmetic declared (compute fp32/fp64/tf32/fp16/bf16)");
      }
      out.accumulation_unit_roundoff = *u_declared;
      out.device_seconds = answer.value("device_seconds", 0.0);
    } catch (const json::exception& e) {
      return process_->protocol_violation(who + "malformed 'output' frame: " + e.what());
    }
    return out;
  }

  std::shared_ptr<ExternalProcess> process_;
  DeviceInfo info_;
  std::string device_;  // the worker's own name for it, e.g. "cuda:1"
  double timeout_ = 120.0;
};

bool selected(const std::vector<std::string>& filter, const std::string& device) {
  if (filter.empty()) return true;
  const std::string type = device.substr(0, device.find(':'));
  for (const std::string& wanted : filter) {
    if (wanted == device || wanted == type) return true;
  }
  return false;
}

void discover_one(const ExternalWorkerConfig& config, Discovery& out) {
  auto process = std::make_shared<ExternalProcess>(config);
  // "external: torch: ...": the backend first, as the built-in backends' notes (metrics count by it).
  const std::string note = std::string(k_external_backend) + ": " + config.name + ": ";
  if (Status started = process->start(); !started) {
    out.backend_notes.push_back(note + started.error().message);
    return;
  }
  auto answer =
      process->call({{"type", "discover"}, {"devices", config.devices}}, "devices", config.start_timeout_seconds);
  if (!answer) {
    out.backend_notes.push_back(note + answer.error().message);
    return;
  }
  try {
    std::uint32_t index = 0;
    for (const json& item : answer->at("devices")) {
      const std::string device = item.at("device").get<std::string>();
      if (!selected(config.devices, device)) continue;
      DeviceInfo info;
      info.id = config.name + std::to_string(index++);
      info.backend = k_external_backend;
      info.name = item.value("name", device);
      info.vendor = item.value("vendor", std::string("unknown"));
      info.driver = item.value("driver", std::string());
      info.device_type = item.value("device_type", std::string("other"));
      info.uuid = item.value("uuid", std::string());
      info.pci_bus_id = item.value("pci_bus_id", std::string());
      info.api_version = item.value("api_version", std::string());
      info.memory_bytes = item.value("memory_bytes", std::uint64_t{0});
      info.compute_units = item.value("compute_units", std::uint32_t{0});
      info.kernel_build = item.value("kernel_build", std::string());
      out.devices.push_back(std::make_unique<ExternalDevice>(process, std::move(info), device));
    }
    for (const json& text : answer->value("notes", json::array()))
      out.backend_notes.push_back(note + text.get<std::string>());
    if (index == 0) out.backend_notes.push_back(note + "no device selected");
  } catch (const json::exception& e) {
    out.backend_notes.push_back(note + "malformed 'devices' frame: " + e.what());
  }
}

}  // namespace

json external_workers_to_json(const std::vector<ExternalWorkerConfig>& workers) {
  json out = json::array();
  for (const ExternalWorkerConfig& w : workers) {
    out.push_back({{"name", w.name},
                   {"argv", w.argv},
                   {"devices", w.devices},
                   {"environment", w.environment},
                   {"start_timeout_seconds", w.start_timeout_seconds}});
  }
  return out;
}

std::vector<ExternalWorkerConfig> external_workers_from_json(const json& in) {
  std::vector<ExternalWorkerConfig> workers;
  for (const json& item : in) {
    ExternalWorkerConfig w;
    w.name = item.at("name").get<std::string>();
    w.argv = item.at("argv").get<std::vector<std::string>>();
    w.devices = item.value("devices", std::vector<std::string>());
    w.environment = item.value("environment", std::map<std::string, std::string>());
    w.start_timeout_seconds = item.value("start_timeout_seconds", 60.0);
    if (w.argv.empty()) throw json::other_error::create(501, "external worker " + w.name + ": empty argv", &item);
    workers.push_back(std::move(w));
  }
  return workers;
}

bool is_external_device_id(const std::vector<ExternalWorkerConfig>& workers, const std::string& id) {
  for (const ExternalWorkerConfig& w : workers) {
    if (id.size() > w.name.size() && id.compare(0, w.name.size(), w.name) == 0 &&
        id.find_first_not_of("0123456789", w.name.size()) == std::string::npos) {
      return true;
    }
  }
  return false;
}

Discovery discover_external(const std::vector<ExternalWorkerConfig>& workers, const std::string& only_id) {
  Discovery out;
  for (const ExternalWorkerConfig& config : workers) {
    if (!only_id.empty() && !is_external_device_id({config}, only_id)) continue;
    discover_one(config, out);
  }
  return out;
}

Expected<Discovery> discover_in_process(const std::optional<std::string>& config_path) {
  Discovery found = discover_devices();
  if (!config_path) return found;
  TRY_ASSIGN(auto config, load_config(*config_path));
  Discovery external = discover_external(config.external_workers);
  for (DevicePtr& device : external.devices) found.devices.push_back(std::move(device));
  found.backend_notes.insert(found.backend_notes.end(), external.backend_notes.begin(), external.backend_notes.end());
  return found;
}

void mark_external_outcome(const ComputeDevice& device, ProbeResult& result) {
  const auto* external = dynamic_cast<const ExternalDevice*>(&device);
  if (!external) return;
  if (result.status == RunStatus::error && result.error_kind == ErrorKind::unavailable) {
    // The worker said its device cannot run this spec (a dtype it lacks): not run, not a fault.
    result.status = RunStatus::skipped;
    result.skip_kind = SkipKind::not_implemented;
    result.skip_reason = result.error;
    result.error.clear();
    return;
  }
  if (result.status != RunStatus::error) return;
  if (external->ending() == Ending::hung) result.status = RunStatus::hung;
  if (external->ending() == Ending::crashed) result.status = RunStatus::crashed;
}

}  // namespace substrate
