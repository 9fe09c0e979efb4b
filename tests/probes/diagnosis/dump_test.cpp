#include <catch2/catch.hpp>

#include <unistd.h>
#include <bit>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "probes/core/registry.hpp"
#include "probes/diagnosis/dump.hpp"
#include "probes/diagnosis/npy.hpp"
#include "tests/support/test_device.hpp"

using namespace substrate;
using substrate::testing::vulkan_device;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("substrate-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// A python3 that can import numpy (Debian's python3-numpy lives under /usr/bin/python3), or "".
std::string numpy_python() {
  for (const char* python : {"/usr/bin/python3", "python3"}) {
    const std::string command = std::string(python) + " -c 'import numpy' >/dev/null 2>&1";
    if (std::system(command.c_str()) == 0) return python;
  }
  return "";
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

template <class T>
std::string raw_bytes(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

ProbeSpec gemm_spec(Mode mode, GemmShape shape, std::uint64_t seed) {
  ProbeSpec spec;
  spec.probe = "gemm";
  spec.dtype = Dtype::f32;
  spec.mode = mode;
  spec.gemm = shape;
  spec.seed = seed;
  return spec;
}

}  // namespace

TEST_CASE("dump: a gemm dump reads back bit for bit with our reader and with numpy", "[vulkan]") {
  GoldenCache goldens;
  const ProbeSpec spec = gemm_spec(Mode::random, {24, 40, 56}, 11);
  const ProbeResult result = run_probe(vulkan_device(), spec, goldens, true);
  REQUIRE(result.status == RunStatus::pass);
  REQUIRE(result.tensors);
  const fs::path root = fresh_dir("dump");
  auto dir = write_dump(root.string(), result);
  REQUIRE(dir.ok());
  CHECK(fs::path(*dir) == root / result.device.id / "gemm_f32_random_24x40x56-seed11");
  for (const char* file : {"output.npy", "golden.npy", "bound.npy", "a.npy", "b.npy", "result.json", "manifest.json"}) {
    INFO(file);
    CHECK(fs::exists(fs::path(*dir) / file));
  }

  // Our reader: shapes, dtypes and bits equal the in-memory run.
  auto output = npy::read_file(*dir + "/output.npy");
  REQUIRE(output.ok());
  CHECK(output->type == npy::ElementType::f32);
  CHECK(output->shape == std::vector<std::uint64_t>{24, 40});
  REQUIRE(output->values.size() == result.tensors->output_bits.size());
  for (std::size_t i = 0; i < output->values.size(); ++i) {
    REQUIRE(std::bit_cast<std::uint32_t>(static_cast<float>(output->values[i])) == result.tensors->output_bits[i]);
  }
  auto golden = npy::read_file(*dir + "/golden.npy");
  REQUIRE(golden.ok());
  CHECK(golden->type == npy::ElementType::f64);
  CHECK(raw_bytes(golden->values) == raw_bytes(result.tensors->golden->value));
  auto bound = npy::read_file(*dir + "/bound.npy");
  REQUIRE(bound.ok());
  CHECK(raw_bytes(bound->values) == raw_bytes(result.tensors->golden->bound));
  const auto inputs = regenerate_inputs(spec);
  REQUIRE(inputs.size() == 2);
  auto a = npy::read_file(*dir + "/a.npy");
  REQUIRE(a.ok());
  CHECK(a->shape == std::vector<std::uint64_t>{24, 56});
  std::vector<float> a_back(a->values.begin(), a->values.end());
  CHECK(raw_bytes(a_back) == raw_bytes(inputs[0].values));
  const auto stored = nlohmann::json::parse(slurp(fs::path(*dir) / "result.json"));
  CHECK(stored.at("fingerprint") == result.fingerprint);
  CHECK(stored.at("spec").at("seed") == 11);
  const auto manifest = nlohmann::json::parse(slurp(fs::path(*dir) / "manifest.json"));
  CHECK_THAT(manifest.at("files").at("a.npy").at("what").get<std::string>(), Catch::Contains("regenerated on the CPU"));

  // numpy: np.load each file and write its buffer back raw; compare with the in-memory bytes.
  const std::string python = numpy_python();
  if (python.empty()) {
    WARN("python3 with numpy not found: numpy cross-check skipped (scripts/install-deps.sh installs python3-numpy)");
    return;
  }
  const std::string script =
      "import sys, numpy as np\n"
      "d = sys.argv[1]\n"
      "for name in ['output', 'golden', 'bound', 'a', 'b']:\n"
      "    x = np.load(d + '/' + name + '.npy')\n"
      "    open(d + '/' + name + '.raw', 'wb').write(np.ascontiguousarray(x).tobytes())\n"
      "    print(name, x.dtype.str, x.shape)\n";
  std::ofstream(root / "check.py") << script;
  const std::string command =
      python + " " + (root / "check.py").string() + " " + *dir + " > " + (root / "numpy.txt").string() + " 2>&1";
  REQUIRE(std::system(command.c_str()) == 0);
  const std::string listing = slurp(root / "numpy.txt");
  INFO(listing);
  CHECK_THAT(listing, Catch::Contains("output <f4 (24, 40)"));
  CHECK_THAT(listing, Catch::Contains("golden <f8 (24, 40)"));
  CHECK_THAT(listing, Catch::Contains("a <f4 (24, 56)"));
  CHECK_THAT(listing, Catch::Contains("b <f4 (56, 40)"));
  CHECK(slurp(fs::path(*dir) / "output.raw") == raw_bytes(result.tensors->output_bits));
  CHECK(slurp(fs::path(*dir) / "golden.raw") == raw_bytes(result.tensors->golden->value));
  CHECK(slurp(fs::path(*dir) / "bound.raw") == raw_bytes(result.tensors->golden->bound));
  CHECK(slurp(fs::path(*dir) / "a.raw") == raw_bytes(inputs[0].values));
  CHECK(slurp(fs::path(*dir) / "b.raw") == raw_bytes(inputs[1].values));
  fs::remove_all(root);
}

TEST_CASE("dump: attention dumps are shaped heads x seq x dim; memory dumps only the result", "[vulkan]") {
  GoldenCache goldens;
  ProbeSpec spec;
  spec.probe = "attention";
  spec.mode = Mode::random;
  spec.attention = {16, 2, 8, true};
  spec.seed = 4;
  const ProbeResult result = run_probe(vulkan_device(), spec, goldens, true);
  REQUIRE(result.status == RunStatus::pass);
  const fs::path root = fresh_dir("dump-attn");
  auto dir = write_dump(root.string(), result);
  REQUIRE(dir.ok());
  for (const char* file : {"output.npy", "golden.npy", "q.npy", "k.npy", "v.npy"}) {
    auto array = npy::read_file(*dir + "/" + file);
    REQUIRE(array.ok());
    CHECK(array->shape == std::vector<std::uint64_t>{2, 16, 8});
  }
  ProbeSpec memory;
  memory.probe = "memory";
  memory.mode = Mode::random;
  memory.memory = {1.0, 4096};
  const ProbeResult mem = run_probe(vulkan_device(), memory, goldens, true);
  auto mem_dir = write_dump(root.string(), mem);
  REQUIRE(mem_dir.ok());
  CHECK(fs::exists(fs::path(*mem_dir) / "result.json"));
  CHECK_FALSE(fs::exists(fs::path(*mem_dir) / "output.npy"));
  fs::remove_all(root);
}

TEST_CASE("dump: the daemon's last-failure dumps stay within their disk budget", "[vulkan]") {
  GoldenCache goldens;
  ProbeSpec spec = gemm_spec(Mode::exact, {32, 32, 32}, 3);
  spec.inject = {true, 5, 1u << 20, false};
  const ProbeResult gemm = run_probe(vulkan_device(), spec, goldens, true);
  REQUIRE(gemm.status == RunStatus::fail);
  ProbeSpec attention;
  attention.probe = "attention";
  attention.mode = Mode::random;
  attention.attention = {32, 2, 16, true};
  attention.inject = {true, 7, 1u << 30, false};
  const ProbeResult attn = run_probe(vulkan_device(), attention, goldens, true);
  REQUIRE(attn.status == RunStatus::fail);
  const fs::path root = fresh_dir("dump-keep");
  auto first = keep_failure_dump(root.string(), gemm, 1 << 20);
  REQUIRE(first.ok());
  CHECK(fs::path(*first).filename() == "gemm-last-failure");
  // Replacing keeps one dump per device and probe.
  REQUIRE(keep_failure_dump(root.string(), gemm, 1 << 20).ok());
  // A budget that fits only one dump evicts the older one.
  const fs::path scratch = fresh_dir("dump-size");
  auto measured = write_dump(scratch.string(), attn);
  REQUIRE(measured.ok());
  std::uintmax_t attn_bytes = 0;
  for (const auto& entry : fs::recursive_directory_iterator(*measured)) {
    attn_bytes += entry.is_regular_file() ? entry.file_size() : 0;
  }
  fs::remove_all(scratch);
  auto second = keep_failure_dump(root.string(), attn, attn_bytes + 1000);
  REQUIRE(second.ok());
  CHECK(fs::exists(*second));
  CHECK_FALSE(fs::exists(*first));
  // A dump larger than the budget is refused.
  auto refused = keep_failure_dump(root.string(), gemm, 100);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().kind == ErrorKind::invalid_argument);
  fs::remove_all(root);
}
