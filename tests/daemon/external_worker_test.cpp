// External workers (daemon/external_worker.hpp, docs/external-workers.md): the config, the
// reference PyTorch worker on torch's CPU device (generator parity, exact GEMM bit for bit,
// random mode, attention, a drill, stable fingerprints), misbehaving workers (test-only python
// scripts) that fail their own device only, and all of it through a real daemon and
// `substrated probe`. The torch tests skip, saying so, where `import torch` fails.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <sstream>

#include <nlohmann/json.hpp>

#include "daemon/config.hpp"
#include "daemon/external_worker.hpp"
#include "kernels/generator.hpp"
#include "probes/core/registry.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/run_command.hpp"

using namespace substrate;
using namespace substrate::testing;
using namespace std::chrono_literals;

namespace {

const std::string k_python = "/usr/bin/python3";
const std::string k_torch_worker =
    std::string(SUBSTRATE_SOURCE_DIR) + "/probes/backends/torch/substrate_torch_worker.py";
const std::string k_misbehaving = std::string(SUBSTRATE_SOURCE_DIR) + "/tests/fixtures/external/misbehaving_worker.py";

bool torch_importable() {
  static const bool importable = std::system((k_python + " -c 'import torch, numpy' 2>/dev/null").c_str()) == 0;
  if (!importable) WARN("SKIPPED: " + k_python + " cannot import torch and numpy (apt-get install python3-torch)");
  return importable;
}

ExternalWorkerConfig misbehaving(const std::string& mode) {
  std::string name = mode;
  return {name, {k_python, k_misbehaving, mode}, {}, {}, 20.0};
}

ProbeSpec gemm_spec(std::uint32_t size, Mode mode, Dtype dtype, std::uint64_t seed = 1) {
  ProbeSpec spec = probe_registry().find("gemm")->default_specs(DeviceInfo{})[0];
  spec.mode = mode;
  spec.dtype = dtype;
  spec.seed = seed;
  spec.gemm = {size, size, size};
  return spec;
}

ProbeResult run_external(ComputeDevice& device, const ProbeSpec& spec, double timeout = 60.0) {
  GoldenCache goldens;
  device.set_timeout_seconds(timeout);
  ProbeResult result = run_probe(device, spec, goldens, false);
  mark_external_outcome(device, result);
  return result;
}

std::optional<double> metric(const std::string& text, const std::string& series) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("external workers: the config names commands, devices and environment, and refuses bad entries", "[unit]") {
  const std::string good =
      "external_workers:\n"
      "  - name: torch-npu\n"
      "    argv: [/usr/bin/python3, /usr/lib/substrated/substrate_torch_worker.py]\n"
      "    devices: [npu, 'cuda:1']\n"
      "    environment: {ASCEND_RT_VISIBLE_DEVICES: '0,1'}\n"
      "    start_timeout_seconds: 90\n";
  auto config = parse_config(good, "c.yaml");
  REQUIRE(config);
  REQUIRE(config->external_workers.size() == 1);
  const ExternalWorkerConfig& w = config->external_workers[0];
  CHECK(w.name == "torch-npu");
  CHECK(w.argv == std::vector<std::string>{"/usr/bin/python3", "/usr/lib/substrated/substrate_torch_worker.py"});
  CHECK(w.devices == std::vector<std::string>{"npu", "cuda:1"});
  CHECK(w.environment.at("ASCEND_RT_VISIBLE_DEVICES") == "0,1");
  CHECK(w.start_timeout_seconds == 90.0);
  // The request carries them to the worker processes unchanged.
  CHECK(external_workers_from_json(external_workers_to_json(config->external_workers)) == config->external_workers);
  CHECK(is_external_device_id(config->external_workers, "torch-npu0"));
  CHECK(is_external_device_id(config->external_workers, "torch-npu12"));
  CHECK_FALSE(is_external_device_id(config->external_workers, "torch-npu"));
  CHECK_FALSE(is_external_device_id(config->external_workers, "vulkan0"));

  const std::vector<std::pair<std::string, std::string>> bad = {
      {"external_workers: {name: x}\n", "expected a sequence of workers"},
      {"external_workers:\n  - argv: [x]\n", "missing key 'name'"},
      {"external_workers:\n  - name: t\n", "missing key 'argv'"},
      {"external_workers:\n  - name: t\n    argv: []\n", "expected a non-empty sequence of strings"},
      {"external_workers:\n  - name: t\n    argv: x\n", "expected a non-empty sequence of strings"},
      {"external_workers:\n  - name: torch1\n    argv: [x]\n", "not end in a digit"},
      {"external_workers:\n  - name: Torch\n    argv: [x]\n", "must match [a-z]"},
      {"external_workers:\n  - name: cuda\n    argv: [x]\n", "is a backend's name"},
      {"external_workers:\n  - {name: t, argv: [x]}\n  - {name: t, argv: [y]}\n", "duplicate worker name 't'"},
      {"external_workers:\n  - {name: t, argv: [x], device: [cpu]}\n", "unknown key"},
      {"external_workers:\n  - {name: t, argv: [x], devices: cpu}\n", "expected a sequence of device strings"},
      {"external_workers:\n  - {name: t, argv: [x], environment: [A]}\n", "expected a mapping"},
      {"external_workers:\n  - {name: t, argv: [x], environment: {A: [1]}}\n", "expected a string"},
      {"external_workers:\n  - {name: t, argv: [x], start_timeout_seconds: 0}\n", "start_timeout_seconds"},
  };
  for (const auto& [text, why] : bad) {
    INFO(text);
    auto refused = parse_config(text, "c.yaml");
    REQUIRE_FALSE(refused);
    CHECK_THAT(refused.error().message, Catch::Contains("c.yaml:") && Catch::Contains(why));
  }
}

TEST_CASE("external workers: each misbehaviour is a clear error for that device only", "[e2e]") {
  std::vector<ExternalWorkerConfig> workers;
  for (const char* mode : {"hang", "crash", "nonsense", "oversized", "wrong-size", "exit", "version"}) {
    workers.push_back(misbehaving(mode));
  }
  workers.push_back({"absent", {"/nonexistent/worker"}, {}, {}, 5.0});
  Discovery found = discover_external(workers);
  std::string notes;
  for (const std::string& note : found.backend_notes) notes += note + "\n";
  INFO(notes);
  // A worker of another protocol version, or one that cannot start, has no device and says why.
  CHECK_THAT(notes, Catch::Contains("external: version: external worker version: protocol error: frame of protocol "
                                    "version 2, this side speaks version 1"));
  CHECK_THAT(notes, Catch::Contains("external: absent: external worker absent: cannot start /nonexistent/worker"));
  REQUIRE(found.devices.size() == 6);
  std::map<std::string, ProbeResult> results;
  for (DevicePtr& device : found.devices) {
    CHECK(device->info().backend == "external");
    results[device->info().id] = run_external(*device, gemm_spec(16, Mode::exact, Dtype::f32), 1.0);
  }
  const auto expect = [&](const std::string& id, RunStatus status, const std::string& error) {
    INFO(id << ": " << to_string(results[id].status) << ": " << results[id].error);
    CHECK(results[id].status == status);
    CHECK_THAT(results[id].error, Catch::Contains(error));
  };
  expect("hang0", RunStatus::hung, "external worker hang: no answer to gemm before its deadline: killed (hung)");
  expect("crash0", RunStatus::crashed, "external worker crash: died by SIGSEGV during gemm (crashed)");
  expect("nonsense0", RunStatus::error, "external worker nonsense: protocol error: not a version 1 frame");
  expect("oversized0", RunStatus::error, "protocol error: frame length 16777217 exceeds the limit");
  expect("wrong-size0", RunStatus::error,
         "external worker wrong-size: gemm: output of 12 bytes, expected 256 f32 words (1024 bytes)");
  expect("exit0", RunStatus::error, "external worker exit: exited with status 0 without answering gemm");
  // Each broken worker is killed and its device says so (a run worker then ends the round early).
  for (DevicePtr& device : found.devices) CHECK_FALSE(device->sticky_error().empty());
}

TEST_CASE("external workers: the PyTorch worker on torch's CPU device", "[e2e]") {
  if (!torch_importable()) return;
  Discovery found = discover_external({{"torch", {k_python, k_torch_worker}, {"cpu"}, {}, 120.0}});
  INFO((found.backend_notes.empty() ? std::string() : found.backend_notes[0]));
  REQUIRE(found.devices.size() == 1);
  ComputeDevice& cpu = *found.devices[0];
  CHECK(cpu.info().id == "torch0");
  CHECK(cpu.info().backend == "external");
  CHECK(cpu.info().is_cpu());
  CHECK_THAT(cpu.info().driver, Catch::StartsWith("torch "));

  {
    // The python port against kernels/generator.hpp, word for word: seeds and indices past 32
    // bits (both halves of the key and the counter), every input stream.
    for (std::uint64_t seed : {std::uint64_t{1}, std::uint64_t{0xDEADBEEFCAFEF00Dull}}) {
      for (std::uint32_t stream : {gen::stream_gemm_a, gen::stream_gemm_b, gen::stream_attention_q,
                                   gen::stream_attention_k, gen::stream_attention_v}) {
        for (std::uint64_t first : {std::uint64_t{0}, std::uint64_t{0xFFFFFFF0ull}}) {
          auto words = cpu.generate_raw(seed, stream, first, 64);
          REQUIRE(words);
          for (std::uint32_t i = 0; i < 64; ++i) {
            INFO("seed " << seed << " stream " << stream << " index " << first + i);
            REQUIRE((*words)[i] == gen::random_bits(seed, stream, first + i));
          }
        }
      }
    }
  }
  // Exact mode: bit-exact against the golden in every storage type.
  for (Dtype dtype : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
    const ProbeResult exact = run_external(cpu, gemm_spec(64, Mode::exact, dtype));
    INFO(to_string(dtype) << ": " << exact.error << exact.skip_reason);
    CHECK(exact.status == RunStatus::pass);
    CHECK(exact.check.mismatched == 0);
    CHECK(exact.kernel == "torch.matmul");
  }
  // Random mode within the bound of the declared fp32 arithmetic; the fingerprint is stable.
  const ProbeResult random1 = run_external(cpu, gemm_spec(64, Mode::random, Dtype::f32, 7));
  const ProbeResult random2 = run_external(cpu, gemm_spec(64, Mode::random, Dtype::f32, 7));
  INFO(random1.error);
  CHECK(random1.status == RunStatus::pass);
  CHECK(random1.fingerprint == random2.fingerprint);
  CHECK_FALSE(random1.fingerprint.empty());
  // Attention: torch 1.13 has no scaled_dot_product_attention; the kernel names the path that ran.
  ProbeSpec attention = probe_registry().find("attention")->default_specs(cpu.info())[0];
  attention.attention = {16, 2, 16, true};
  const ProbeResult att = run_external(cpu, attention);
  INFO(att.error);
  CHECK(att.status == RunStatus::pass);
  CHECK_THAT(att.kernel,
             Catch::Equals("torch.explicit_softmax_attention") || Catch::Equals("torch.scaled_dot_product_attention"));
  // A drill: the worker XORs the named element before returning the output; the check finds it.
  ProbeSpec drill = gemm_spec(64, Mode::exact, Dtype::f32);
  drill.inject = *parse_injection("bit=30,row=3,col=5", 64);
  const ProbeResult caught = run_external(cpu, drill);
  CHECK(caught.status == RunStatus::fail);
  CHECK(caught.check.mismatched == 1);
  REQUIRE_FALSE(caught.check.first_mismatches.empty());
  CHECK(caught.check.first_mismatches[0].index == 3 * 64 + 5);
  // The memory probe has no external implementation: skipped, with the reason.
  ProbeSpec memory = probe_registry().find("memory")->default_specs(cpu.info())[0];
  const ProbeResult skipped = run_external(cpu, memory);
  CHECK(skipped.status == RunStatus::skipped);
  CHECK_THAT(skipped.skip_reason, Catch::Contains("not implemented on the external backend"));
}

TEST_CASE("external workers: a daemon probes them like built-in devices, misbehaving ones fail alone", "[e2e]") {
  if (!torch_importable()) return;
  std::string workers = "external_workers:\n  - {name: torch, argv: [" + k_python + ", " + k_torch_worker +
                        "], devices: [cpu], start_timeout_seconds: 120}\n";
  for (const char* mode : {"hang", "crash", "nonsense", "wrong-size", "version"}) {
    workers += std::string("  - {name: ") + mode + ", argv: [" + k_python + ", " + k_misbehaving + ", " + mode + "]}\n";
  }
  DaemonProcess daemon(
      "  gemm:\n    interval_seconds: 2\n    timeout_seconds: 10\n    size: \"32\"\n    modes: [exact]\n"
      "    dtypes: [f32]\n  attention:\n    enabled: false\n  memory:\n    enabled: false\n",
      workers);
  daemon.start();
  REQUIRE(daemon.wait_ready());
  const auto series = [](const std::string& name, const std::string& device, const std::string& more = "") {
    return name + "{substrate_device=\"" + device + "\",probe=\"gemm\"" + more + "}";
  };
  const auto at_least = [&](const std::string& s, double value) {
    const auto v = metric(daemon.metrics(), s);
    return v && *v >= value;
  };
  // Two passing rounds on torch0 (a fresh worker each) while the others hang, crash and babble.
  const bool settled = wait_until(
      [&] {
        return at_least(series("substrate_probe_runs_total", "torch0"), 2) &&
               at_least(series("substrate_probe_failures_total", "crash0", ",reason=\"crashed\""), 1) &&
               at_least(series("substrate_probe_failures_total", "nonsense0", ",reason=\"error\""), 1) &&
               at_least(series("substrate_probe_failures_total", "wrong-size0", ",reason=\"error\""), 1) &&
               at_least(series("substrate_probe_failures_total", "hang0", ",reason=\"timeout\""), 1);
      },
      150s);
  const std::string scrape = daemon.metrics();
  INFO(daemon.log());
  INFO(scrape);
  REQUIRE(settled);
  // The worker of another protocol version has no device: a discovery error of the external backend.
  CHECK(metric(scrape, "substrate_devices{backend=\"external\"}") == 5.0);
  CHECK(metric(scrape, "substrate_device_discovery_errors{backend=\"external\"}") == 1.0);
  CHECK(metric(scrape, "substrate_device_health{substrate_device=\"torch0\",state=\"healthy\"}") == 1.0);
  CHECK(metric(scrape, series("substrate_probe_mismatched_elements", "torch0")) == 0.0);
  CHECK_FALSE(metric(scrape, series("substrate_probe_failures_total", "torch0", ",reason=\"error\"")).value_or(0) > 0);
  CHECK(metric(scrape, series("substrate_probe_failures_total", "vulkan0", ",reason=\"timeout\"")).value_or(0) == 0);
  CHECK_THAT(daemon.log(), Catch::Contains("external worker crash: died by SIGSEGV during gemm (crashed)"));
  CHECK_THAT(daemon.log(), Catch::Contains("output of 12 bytes, expected 1024 f32 words"));
  CHECK_THAT(http_get(daemon.port(), "/status").body, Catch::Contains("frame of protocol version 2"));
  CHECK(daemon.alive());

  // `substrated probe` through the control socket: the same device, a drill found, a crash named.
  const std::string socket = " --socket " + daemon.socket_path();
  auto pass = run_substrated("probe" + socket + " --device torch0 --kernel gemm --size 32 --mode exact --dtype f32");
  INFO(pass.output);
  CHECK(pass.exit_code == 0);
  CHECK_THAT(pass.output, Catch::Contains("torch0") && Catch::Contains("pass"));
  auto drill = run_substrated(
      "probe" + socket + " --device torch0 --kernel gemm --size 32 --mode exact --dtype f32 --inject bit=30,element=7");
  INFO(drill.output);
  CHECK(drill.exit_code == 1);
  CHECK_THAT(drill.output, Catch::Contains("fail"));
  auto crash = run_substrated("probe" + socket + " --device crash0 --kernel gemm --size 32 --mode exact --dtype f32");
  INFO(crash.output);
  CHECK(crash.exit_code != 0);
  CHECK_THAT(crash.output, Catch::Contains("crashed"));
}

TEST_CASE("external workers: substrated probe --local --config reaches them without a daemon, dumps included",
          "[e2e]") {
  if (!torch_importable()) return;
  const auto dir = std::filesystem::temp_directory_path() / ("substrated-external-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string config = (dir / "c.yaml").string();
  std::ofstream(config) << "external_workers:\n  - {name: torch, argv: [" << k_python << ", " << k_torch_worker
                        << "], devices: [cpu]}\n  - {name: crash, argv: [" << k_python << ", " << k_misbehaving
                        << ", crash]}\n";
  const std::string base = "probe --local --config " + config;
  auto attention = run_substrated(base + " --device torch0 --kernel attention --size 16x2x16 --json");
  INFO(attention.output);
  CHECK(attention.exit_code == 0);
  CHECK_THAT(attention.output, Catch::Contains("\"status\": \"pass\"") && Catch::Contains("torch0") &&
                                   Catch::Contains("\"backend\": \"external\""));
  auto crash = run_substrated(base + " --device crash0 --kernel gemm --size 16 --mode exact --dtype f32");
  INFO(crash.output);
  CHECK(crash.exit_code == 2);
  CHECK_THAT(crash.output, Catch::Contains("crashed") && Catch::Contains("SIGSEGV"));
  // A drill's failure dump, as for a built-in device: the output and the golden it missed.
  auto dumped = run_substrated(base + " --device torch0 --kernel gemm --size 16 --mode exact --dtype f32 " +
                               "--inject bit=30,element=5 --dump " + (dir / "dumps").string());
  INFO(dumped.output);
  CHECK(dumped.exit_code == 1);
  bool output_npy = false;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir / "dumps")) {
    output_npy = output_npy || entry.path().filename() == "output.npy";
  }
  CHECK(output_npy);
  auto bad = run_substrated("probe --local --config " + (dir / "absent.yaml").string() + " --device torch0");
  CHECK(bad.exit_code != 0);
  CHECK_THAT(bad.output, Catch::Contains("absent.yaml"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("external workers: coverage meets an intermittent fault that one pass per round never does", "[e2e]") {
  if (!torch_importable()) return;
  // The third GEMM a worker process serves comes back with one bit flipped; every round starts a
  // fresh worker process.
  const std::string flaky = std::string(SUBSTRATE_SOURCE_DIR) + "/tests/fixtures/external/flaky_torch_worker.py";
  const std::string workers = "devices: [flaky0]\nexternal_workers:\n  - {name: flaky, argv: [" + k_python + ", " +
                              flaky + ", " + k_torch_worker + ", \"3\"], devices: [cpu], start_timeout_seconds: 120}\n";
  const std::string probes =
      "  gemm:\n    interval_seconds: 1\n    timeout_seconds: 30\n    size: \"16\"\n    modes: [exact]\n"
      "    dtypes: [f32]\n  attention:\n    enabled: false\n  memory:\n    enabled: false\n";
  const std::string runs = "substrate_probe_runs_total{substrate_device=\"flaky0\",probe=\"gemm\"}";
  const std::string mismatches =
      "substrate_probe_failures_total{substrate_device=\"flaky0\",probe=\"gemm\",reason=\"golden_mismatch\"}";
  const std::string checked = "substrate_checked_runs_total{substrate_device=\"flaky0\",probe=\"gemm\"}";

  SECTION("one pass per round: two rounds, two fresh workers, never a third GEMM") {
    DaemonProcess daemon(probes, workers + "coverage:\n  duty_share: 0\n");
    daemon.start();
    REQUIRE(daemon.wait_ready());
    const std::string scrape = daemon.metrics_when_at_least(runs, 2, 120s);
    INFO(scrape);
    REQUIRE(metric(scrape, runs).value_or(0) >= 2);
    CHECK(metric(scrape, mismatches) == 0.0);
    CHECK(metric(scrape, checked) == metric(scrape, runs));
    CHECK(metric(scrape, "substrate_device_health{substrate_device=\"flaky0\",state=\"healthy\"}") == 1.0);
  }
  SECTION("coverage: the first round repeats its GEMM, meets the fault and fails the device") {
    DaemonProcess daemon(probes, workers + "coverage:\n  duty_share: 1\n  max_round_seconds: 3\n");
    daemon.start();
    REQUIRE(daemon.wait_ready());
    const std::string scrape = daemon.metrics_when_at_least(runs, 1, 120s);
    INFO(daemon.log());
    INFO(scrape);
    CHECK(metric(scrape, runs) == 1.0);
    CHECK(metric(scrape, checked).value_or(0) >= 3.0);  // the passes up to and past the faulty third
    CHECK(metric(scrape, mismatches) == 1.0);
    CHECK(metric(scrape, "substrate_device_health{substrate_device=\"flaky0\",state=\"failed\"}") == 1.0);
    CHECK_THAT(daemon.log(), Catch::Contains("flaky0 gemm/f32/exact/16x16x16 seed 1: fail"));
  }
}
