// What each probe's descriptor knows, probe by probe: size text, spec key, drill geometry, JSON,
// replay command, spec selection and request parsing; and a run on a backend without the probe
// being skipped. No device: the stand-in below only says which backend it is.
#include <catch2/catch.hpp>

#include <sstream>

#include <nlohmann/json.hpp>

#include "daemon/probe_command.hpp"
#include "daemon/report.hpp"
#include "probes/core/registry.hpp"

using namespace substrate;

namespace {

DeviceInfo cpu_device() {
  DeviceInfo info;
  info.id = "vulkan0";
  info.backend = "vulkan";
  info.device_type = "cpu";
  return info;
}

const ProbeDescriptor& probe(const std::string& id) {
  const ProbeDescriptor* found = probe_registry().find(id);
  REQUIRE(found != nullptr);
  return *found;
}

// The default spec of `id` on a CPU device with the given mode and dtype (the first when the
// probe has no such choice).
ProbeSpec default_spec(const std::string& id, Mode mode = Mode::random, Dtype dtype = Dtype::f32) {
  for (const ProbeSpec& spec : probe(id).default_specs(cpu_device())) {
    if (spec_selected(probe(id), spec, {mode}, {dtype})) return spec;
  }
  FAIL("no default spec of " << id);
  return {};
}

// The specs a printed `substrated probe ...` command line asks for on the CPU device.
std::vector<ProbeSpec> specs_of_command(const std::string& command) {
  std::istringstream words(command);
  std::vector<std::string> args;
  std::string word;
  words >> word;
  REQUIRE(word == "substrated");
  words >> word;
  REQUIRE(word == "probe");
  while (words >> word) args.push_back(word);
  auto request = parse_probe_request(args);
  REQUIRE(request.ok());
  auto specs = specs_for(*request, cpu_device());
  REQUIRE(specs.ok());
  return *specs;
}

// Answers info() only: a probe run on it must never reach the device.
class BackendOnly : public ComputeDevice {
 public:
  explicit BackendOnly(std::string backend) {
    info_.id = backend + "0";
    info_.backend = std::move(backend);
  }
  const DeviceInfo& info() const override { return info_; }
  std::uint64_t free_memory_bytes() const override { return 1 << 20; }
  Expected<std::vector<std::uint32_t>> generate_raw(std::uint64_t, std::uint32_t, std::uint64_t,
                                                    std::uint32_t) override {
    return touched();
  }
  Expected<KernelRun> run_gemm(const GemmLaunch&) override { return touched(); }
  Expected<KernelRun> run_attention(const AttentionLaunch&) override { return touched(); }
  Expected<MemoryRun> run_memory(const MemoryLaunch&) override { return touched(); }
  Expected<RetentionRun> check_retention(std::uint64_t, std::uint64_t) override { return touched(); }
  Expected<CanaryRun> run_canary(const CanaryLaunch&) override { return touched(); }
  void set_timeout_seconds(double) override {}
  int calls = 0;

 private:
  Error touched() {
    ++calls;
    return Error{ErrorKind::device_error, "the device was called"};
  }
  DeviceInfo info_;
};

}  // namespace

TEST_CASE("probes: every probe's spec key is unchanged (saved baselines are keyed by it)", "[unit]") {
  CHECK(spec_key(default_spec("gemm", Mode::exact)) == "gemm/f32/exact/256x256x256");
  CHECK(spec_key(default_spec("attention")) == "attention/f32/128x4x64/causal");
  CHECK(spec_key(default_spec("memory")) == "memory/8388608");
  CHECK(spec_key(default_spec("canary")) == "canary/f32/16x64x4x128x2x128");
  ProbeSpec unknown;
  unknown.probe = "nonesuch";
  CHECK(spec_key(unknown) == "nonesuch");
}

TEST_CASE("probes: the size text of every probe reads back through apply_size", "[unit]") {
  for (const ProbeDescriptor& d : probe_registry().all()) {
    for (const ProbeSpec& spec : d.default_specs(cpu_device())) {
      INFO(spec_key(spec));
      ProbeSpec again = spec;
      again.gemm = {};
      again.attention.seq_len = again.attention.heads = again.attention.head_dim = 0;
      again.memory.max_bytes = 0;
      again.canary = {};
      REQUIRE(d.apply_size(d.shape_text(spec), again).ok());
      CHECK(spec_key(again) == spec_key(spec));
    }
  }
  CHECK(probe("gemm").shape_text(default_spec("gemm")) == "256x256x256");
  CHECK(probe("canary").shape_text(default_spec("canary")) == "16x64x4x128x2x128");
}

TEST_CASE("probes: memory sizes: an exact size, or a share of free memory between a floor and a cap", "[unit]") {
  ProbeSpec spec = default_spec("memory");
  REQUIRE(probe("memory").apply_size("64M", spec).ok());
  CHECK(spec.memory.free_share == 1.0);
  CHECK(spec.memory.min_bytes == (64u << 20));  // that much, or skipped
  CHECK(spec.memory.max_bytes == (64u << 20));
  REQUIRE(probe("memory").apply_size("25%,64M,4G", spec).ok());
  CHECK(spec.memory.free_share == 0.25);
  CHECK(spec.memory.min_bytes == (64u << 20));
  CHECK(spec.memory.max_bytes == (4ull << 30));
  REQUIRE(probe("memory").apply_size("5%,1M", spec).ok());
  CHECK(spec.memory.min_bytes == (1u << 20));
  CHECK(spec.memory.max_bytes == (4ull << 30));  // the cap stays
  REQUIRE(probe("memory").apply_size("10%", spec).ok());
  CHECK(spec.memory.min_bytes == 4);
  for (const char* bad : {"0%", "150%", "10%64M", "10%,64M,1M", "10%,x", "x%", "10%,64M,"}) {
    INFO(bad);
    const Status refused = probe("memory").apply_size(bad, spec);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().kind == ErrorKind::invalid_argument);
  }
  // The spec JSON carries the floor; older JSON without it reads as no floor.
  nlohmann::json json = spec;
  CHECK(json.at("memory").at("min_bytes") == 4);
  json.at("memory").erase("min_bytes");
  CHECK(json.get<ProbeSpec>().memory.min_bytes == 4);
}

TEST_CASE("probes: the drill geometry of every probe", "[unit]") {
  ProbeSpec gemm = default_spec("gemm");
  REQUIRE(probe("gemm").apply_size("8x16x32", gemm).ok());
  CHECK(probe("gemm").row_length(gemm, 0) == 16);  // C is m x n
  CHECK(parse_drill(probe("gemm"), "bit=1,row=2,col=3", gemm)->element == 2 * 16 + 3);
  CHECK_FALSE(parse_drill(probe("gemm"), "bit=1,col=16", gemm).ok());

  ProbeSpec attention = default_spec("attention");
  REQUIRE(probe("attention").apply_size("32x2x8", attention).ok());
  CHECK(probe("attention").row_length(attention, 0) == 8);  // rows are (head, query), columns head_dim
  CHECK(parse_drill(probe("attention"), "bit=1,row=5,col=7", attention)->element == 5 * 8 + 7);

  const ProbeSpec memory = default_spec("memory");
  CHECK(probe("memory").row_length(memory, 0) == 1);  // word offsets
  CHECK(parse_drill(probe("memory"), "bit=1,row=40", memory)->element == 40);

  // The canary's rows are tokens of the named checkpoint layer: embedding and blocks are d_model
  // wide, the logits vocab wide.
  ProbeSpec canary = default_spec("canary");
  REQUIRE(probe("canary").apply_size("16x64x4x128x2x100", canary).ok());
  CHECK(probe("canary").row_length(canary, 0) == 64);
  CHECK(probe("canary").row_length(canary, 5) == 100);
  CHECK(probe("canary").row_length(canary, 6) == 0);  // no such layer: the run names it
  auto drill = parse_drill(probe("canary"), "bit=2,row=3,col=70,layer=5", canary);
  REQUIRE(drill.ok());
  CHECK(drill->layer == 5);
  CHECK(drill->element == 3 * 100 + 70);
  CHECK_FALSE(parse_drill(probe("canary"), "bit=2,row=3,col=70,layer=1", canary).ok());  // col outside 64
}

TEST_CASE("probes: spec JSON carries the probe's own shape and reads back", "[unit]") {
  for (const ProbeDescriptor& d : probe_registry().all()) {
    ProbeSpec spec = d.default_specs(cpu_device()).front();
    spec.seed = 42;
    spec.inject = {true, 3, 0x10u, false, d.injects_by_layer ? 1u : 0u};
    const nlohmann::json json = spec;
    INFO(json.dump());
    CHECK(json.at("key") == spec_key(spec));
    CHECK(json.contains(d.id));
    CHECK(json.size() == 7);  // probe, dtype, mode, seed, key, the shape, inject
    CHECK(json.at("inject").contains("layer") == d.injects_by_layer);
    const ProbeSpec back = json.get<ProbeSpec>();
    CHECK(spec_key(back) == spec_key(spec));
    CHECK(back.seed == 42);
    CHECK(back.inject.element == 3);
    CHECK(back.inject.layer == spec.inject.layer);
  }
  const nlohmann::json gemm = default_spec("gemm");
  CHECK(gemm.at("gemm") == nlohmann::json{{"m", 256}, {"n", 256}, {"k", 256}});
  const nlohmann::json memory = default_spec("memory");
  CHECK(memory.at("memory") == nlohmann::json{{"free_share", 0.02}, {"max_bytes", 8388608}, {"min_bytes", 4}});
}

// Issue 18: a drill pattern (count elements stride apart) travels in the spec JSON (to workers and
// in results) and in the replay command; a single-element drill keeps its former shape.
TEST_CASE("probes: drill patterns read back from JSON and replay", "[unit]") {
  ProbeResult result;
  result.device = cpu_device();
  result.spec = default_spec("gemm", Mode::exact, Dtype::f32);
  result.spec.inject = *parse_drill(probe("gemm"), "bit=30,element=5,stride=32,count=all", result.spec);
  CHECK(replay_command(result) ==
        "substrated probe --device vulkan0 --kernel gemm --mode exact --dtype f32 --size 256x256x256 --seed 1 "
        "--inject bit=30,element=5,count=all,stride=32");
  nlohmann::json json = result.spec;
  CHECK(json.at("inject").at("count") == "all");
  CHECK(json.at("inject").at("stride") == 32);
  ProbeSpec back = json.get<ProbeSpec>();
  CHECK(back.inject.count == k_inject_to_end);
  CHECK(back.inject.stride == 32);
  result.spec.inject = *parse_drill(probe("gemm"), "bit=1,element=64,count=32", result.spec);
  json = result.spec;
  back = json.get<ProbeSpec>();
  CHECK(back.inject.count == 32);
  CHECK(back.inject.stride == 1);
  // A worker message with a zero stride is malformed, never a division by zero.
  json["inject"]["stride"] = 0;
  CHECK_THROWS_AS(json.get<ProbeSpec>(), nlohmann::json::exception);
  // Single-element drills: no count or stride in the JSON.
  result.spec.inject = *parse_drill(probe("gemm"), "bit=1,element=64", result.spec);
  json = result.spec;
  CHECK_FALSE(json.at("inject").contains("count"));
}

TEST_CASE("probes: the replay command of every probe asks for exactly its spec, seed and drill", "[unit]") {
  ProbeResult result;
  result.device = cpu_device();

  result.spec = default_spec("gemm", Mode::exact, Dtype::bf16);
  result.spec.seed = 7;
  result.spec.inject = *parse_drill(probe("gemm"), "bit=30,bit=2,row=1,col=2,transient", result.spec);
  CHECK(replay_command(result) ==
        "substrated probe --device vulkan0 --kernel gemm --mode exact --dtype bf16 --size 256x256x256 --seed 7 "
        "--inject bit=2,bit=30,element=258,transient");

  result.spec = default_spec("attention", Mode::random, Dtype::f16);
  result.spec.inject = {};
  CHECK(replay_command(result) ==
        "substrated probe --device vulkan0 --kernel attention --dtype f16 --size 128x4x64 --seed 1");

  result.spec = default_spec("memory");
  CHECK(replay_command(result) == "substrated probe --device vulkan0 --kernel memory --size 8388608 --seed 1");

  result.spec = default_spec("canary");
  result.spec.inject = *parse_drill(probe("canary"), "bit=3,element=7,layer=2", result.spec);
  CHECK(replay_command(result) ==
        "substrated probe --device vulkan0 --kernel canary --size 16x64x4x128x2x128 --seed 1 "
        "--inject bit=3,element=7,layer=2");

  // Read back, each command asks for its spec (attention: one per causal setting of the size).
  for (const ProbeDescriptor& d : probe_registry().all()) {
    for (ProbeSpec spec : d.default_specs(cpu_device())) {
      spec.seed = 11;
      spec.inject = *parse_drill(d, d.injects_by_layer ? "bit=5,element=9,layer=1" : "bit=5,element=9", spec);
      result.spec = spec;
      const std::string command = replay_command(result);
      INFO(command);
      bool found = false;
      for (const ProbeSpec& asked : specs_of_command(command)) {
        CHECK(asked.seed == 11);
        CHECK(asked.inject.xor_mask == spec.inject.xor_mask);
        CHECK(asked.inject.element == spec.inject.element);
        CHECK(asked.inject.layer == spec.inject.layer);
        found = found || (spec_key(asked) == spec_key(spec) && asked.dtype == spec.dtype && asked.mode == spec.mode);
      }
      CHECK(found);
    }
  }
}

TEST_CASE("probes: --mode and --dtype select among the probes that have them", "[unit]") {
  auto request = parse_probe_request({"--mode", "exact", "--dtype", "bf16"});
  REQUIRE(request.ok());
  auto specs = specs_for(*request, cpu_device());
  REQUIRE(specs.ok());
  std::vector<std::string> keys;
  for (const ProbeSpec& spec : *specs) keys.push_back(spec_key(spec));
  // attention has no exact mode; memory has no modes or dtypes, so no filter drops it.
  CHECK(keys == std::vector<std::string>{"gemm/bf16/exact/256x256x256", "memory/8388608"});

  CHECK(spec_selected(probe("memory"), default_spec("memory"), {Mode::exact}, {Dtype::f16}));
  CHECK_FALSE(spec_selected(probe("attention"), default_spec("attention"), {Mode::exact}, {}));
  CHECK(spec_selected(probe("attention"), default_spec("attention"), {}, {Dtype::f32, Dtype::f16}));
  CHECK_FALSE(spec_selected(probe("canary"), default_spec("canary"), {}, {Dtype::f16}));

  request = parse_probe_request({"--kernel", "canary", "--mode", "exact"});
  REQUIRE(request.ok());
  CHECK(specs_for(*request, cpu_device()).error().message.find("no probe matches") != std::string::npos);
}

TEST_CASE("probes: request parsing takes every option and names the bad one", "[unit]") {
  auto request = parse_probe_request({"--device", "cuda1", "--kernel", "gemm,memory", "--mode", "random", "--dtype",
                                      "fp16", "--seed", "9", "--inject", "bit=1", "--timeout", "2.5"});
  REQUIRE(request.ok());
  CHECK(request->device == "cuda1");
  CHECK(request->kernels == std::vector<std::string>{"gemm", "memory"});
  CHECK(request->mode == Mode::random);
  CHECK(request->dtype == Dtype::f16);
  CHECK(request->seed == 9);
  CHECK(request->inject == "bit=1");
  CHECK(request->timeout_seconds == 2.5);
  CHECK_FALSE(request->size);

  auto error_of = [](std::vector<std::string> args) {
    auto parsed = parse_probe_request(args);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().kind == ErrorKind::invalid_argument);
    return parsed.error().message;
  };
  CHECK_THAT(error_of({"--kernel", "gemm,fft"}), Catch::Contains("unknown kernel 'fft'"));
  CHECK_THAT(error_of({"--mode", "fuzzy"}), Catch::Contains("--mode must be exact or random"));
  CHECK_THAT(error_of({"--dtype", "f64"}), Catch::Contains("--dtype must be f32, f16 or bf16"));
  CHECK_THAT(error_of({"--seed", "-1"}), Catch::Contains("--seed needs a non-negative integer"));
  CHECK_THAT(error_of({"--timeout", "0"}), Catch::Contains("--timeout needs seconds > 0"));
  CHECK_THAT(error_of({"--seed"}), Catch::Contains("--seed needs a value"));
  CHECK_THAT(error_of({"gemm"}), Catch::Contains("unexpected argument 'gemm'"));
  CHECK_THAT(error_of({"--size", "64"}), Catch::Contains("--size needs exactly one --kernel"));
  CHECK_THAT(error_of({"--kernel", "gemm,memory", "--size", "64"}),
             Catch::Contains("--size needs exactly one --kernel"));

  // A bad size or drill is found when the specs are built, with the probe's own message.
  request = parse_probe_request({"--kernel", "canary", "--size", "16x62x4x128x2x128"});
  REQUIRE(request.ok());
  CHECK_FALSE(specs_for(*request, cpu_device()).ok());
  request = parse_probe_request({"--kernel", "gemm", "--size", "8", "--inject", "bit=1,col=8"});
  REQUIRE(request.ok());
  CHECK_THAT(specs_for(*request, cpu_device()).error().message, Catch::Contains("outside a row of 8"));
}

TEST_CASE("probes: a probe the device's backend lacks is skipped without touching the device", "[unit]") {
  CHECK(probe("canary").backends == std::vector<std::string>{"vulkan"});
  // External workers (daemon/external_worker.hpp) run GEMM and attention, nothing else.
  for (const char* id : {"gemm", "attention"}) {
    CHECK(probe(id).backends == std::vector<std::string>{"vulkan", "cuda", "external"});
  }
  CHECK(probe("memory").backends == std::vector<std::string>{"vulkan", "cuda"});
  BackendOnly device("cuda");
  GoldenCache goldens;
  const ProbeResult result = run_probe(device, default_spec("canary"), goldens);
  CHECK(device.calls == 0);
  CHECK(result.status == RunStatus::skipped);
  CHECK(result.skip_reason == "not implemented on the cuda backend");
  CHECK(result.skip_kind == SkipKind::not_implemented);
  CHECK(result.error.empty());

  const nlohmann::json json = result;
  CHECK(json.at("status") == "skipped");
  CHECK(json.at("skip_reason") == "not implemented on the cuda backend");
  CHECK(json.at("skip_kind") == "not_implemented");
  CHECK_FALSE(json.contains("error"));

  const std::string table = render_results({result});
  CHECK_THAT(table, Catch::Contains("skipped"));
  CHECK_THAT(table,
             Catch::Contains("cuda0 canary/f32/16x64x4x128x2x128: skipped: not implemented on the cuda backend"));

  // On a backend that has it, the probe does reach the device.
  const ProbeResult ran = run_probe(device, default_spec("gemm"), goldens);
  CHECK(device.calls == 1);
  CHECK(ran.status == RunStatus::error);
}
