// False-positive soak: many clean probe runs across seeds and small shapes. Every run must pass
// the golden check, and every (spec, seed) runs twice (two passes over the spec list) whose
// fingerprints must agree. Reports the error budget used (|error| / bound, max over elements)
// per probe and dtype, so the margin below 1 is visible.
//
//   build-bench/bench/bench_soak [--runs 10000] [--seed 1]
#include <set>

#include "bench/common.hpp"

using namespace substrate;

namespace {

constexpr const char* k_usage =
    "usage: bench_soak [--runs N] [--seed N]\n"
    "  --runs N   clean probe runs at least (default 10000); whole seeds are completed\n"
    "  --seed N   first seed (default 1); each round uses the next seed\n";

// Small shapes so ten thousand runs fit in minutes on lavapipe; odd sizes exercise tile edges.
const std::vector<std::string> k_gemm_sizes = {"16", "32x48x40", "64", "17x33x65"};
const std::vector<std::pair<std::string, bool>> k_attention_sizes = {
    {"16x2x16", true}, {"32x2x32", false}, {"33x3x24", true}, {"64x1x64", false}};
const std::string k_memory_size = "256K";

struct Group {
  int runs = 0;
  int false_alarms = 0;        // golden check failed a clean run, or the run errored
  int unstable = 0;            // the second pass's fingerprint differed from the first's
  std::vector<double> budget;  // random mode: budget used per run
  double wall = 0.0;
  bool fingerprinted = false;  // its runs have output fingerprints (not memory's patterns)
};

// "gemm f16 exact"; a probe without dtypes or modes (memory) by its id alone.
std::string group_name(const ProbeSpec& spec) {
  const ProbeDescriptor& probe = *probe_registry().find(spec.probe);
  std::string name = spec.probe;
  if (!probe.dtypes.empty()) name += std::string(" ") + to_string(spec.dtype);
  if (!probe.modes.empty()) name += std::string(" ") + to_string(spec.mode);
  return name;
}

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv, {}, k_usage);
  const long long target = args.get_int("--runs", 10000);
  const std::uint64_t seed0 = static_cast<std::uint64_t>(args.get_int("--seed", 1));
  DevicePtr device = bench::first_device();

  std::vector<ProbeSpec> specs;
  for (const std::string& size : k_gemm_sizes) {
    for (Dtype d : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
      for (Mode m : {Mode::exact, Mode::random}) specs.push_back(bench::make_spec("gemm", d, m, size, 0));
    }
  }
  for (const auto& [size, causal] : k_attention_sizes) {
    for (Dtype d : {Dtype::f32, Dtype::f16}) {
      ProbeSpec spec = bench::make_spec("attention", d, Mode::random, size, 0);
      spec.attention.causal = causal;
      specs.push_back(spec);
    }
  }
  ProbeSpec memory = bench::make_spec("memory", Dtype::f32, Mode::random, k_memory_size, 0);

  std::cout << "## False-positive soak\n\n";
  bench::print_machine(std::cout, device->info(), bench::command_line(argc, argv));
  std::cout << "- shapes: gemm ";
  for (const std::string& s : k_gemm_sizes) std::cout << s << " ";
  std::cout << "(f32/f16/bf16 x exact/random); attention ";
  for (const auto& [s, causal] : k_attention_sizes) std::cout << s << (causal ? " causal" : " full") << ", ";
  std::cout << "(f32/f16, random); memory " << k_memory_size << " once per seed\n"
            << "- each seed: pass 1 over all " << specs.size() << " compute specs, pass 2 over the same specs "
            << "(fingerprints must match pass 1), then one memory run\n\n";

  GoldenCache goldens;
  std::map<std::string, Group> groups;
  long long runs = 0;
  std::uint64_t seed = seed0;
  const double started = bench::now_seconds();
  std::vector<std::string> alarms;
  while (runs < target) {
    std::vector<std::string> first_pass(specs.size());
    for (int pass = 0; pass < 2; ++pass) {
      for (std::size_t i = 0; i < specs.size(); ++i) {
        ProbeSpec spec = specs[i];
        spec.seed = seed;
        ProbeResult r = run_probe(*device, spec, goldens);
        ++runs;
        Group& g = groups[group_name(spec)];
        ++g.runs;
        g.wall += r.wall_seconds;
        g.fingerprinted = true;
        if (r.status != RunStatus::pass) {
          ++g.false_alarms;
          alarms.push_back(spec_key(spec) + " seed " + std::to_string(seed) + ": " + to_string(r.status) + " " +
                           r.error + " mismatched " + std::to_string(r.check.mismatched));
        }
        if (spec.mode == Mode::random) g.budget.push_back(r.check.budget_used);
        if (pass == 0) {
          first_pass[i] = r.fingerprint;
        } else if (r.fingerprint != first_pass[i]) {
          ++g.unstable;
          alarms.push_back(spec_key(spec) + " seed " + std::to_string(seed) + ": fingerprint " + first_pass[i] +
                           " then " + r.fingerprint);
        }
      }
    }
    memory.seed = seed;
    ProbeResult m = run_probe(*device, memory, goldens);
    ++runs;
    Group& g = groups[group_name(memory)];
    ++g.runs;
    g.wall += m.wall_seconds;
    if (m.status != RunStatus::pass) {
      ++g.false_alarms;
      alarms.push_back("memory seed " + std::to_string(seed) + ": " + to_string(m.status) + " " + m.error);
    }
    if ((seed - seed0) % 10 == 0) {
      std::cerr << "  seed " << seed << ": " << runs << " runs, " << alarms.size() << " alarms, load "
                << bench::load_average() << "\n";
    }
    ++seed;
  }
  const double elapsed = bench::now_seconds() - started;

  std::cout << "| probe | runs | false alarms (golden) | fingerprint unstable | budget used p50 | p99 | max | mean "
               "wall ms |\n"
               "|---|---|---|---|---|---|---|---|\n";
  int total_alarms = 0;
  for (const auto& [name, g] : groups) {
    total_alarms += g.false_alarms + g.unstable;
    const bool bounded = !g.budget.empty();
    std::cout << "| " << name << " | " << g.runs << " | " << g.false_alarms << " | "
              << (g.fingerprinted ? std::to_string(g.unstable) : "n/a") << " | "
              << (bounded ? bench::sci(bench::percentile(g.budget, 50)) : "exact") << " | "
              << (bounded ? bench::sci(bench::percentile(g.budget, 99)) : "exact") << " | "
              << (bounded ? bench::sci(*std::max_element(g.budget.begin(), g.budget.end())) : "exact") << " | "
              << bench::fixed(1000.0 * g.wall / g.runs, 2) << " |\n";
  }
  std::cout << "\ntotal: " << runs << " clean runs over seeds " << seed0 << ".." << seed - 1 << " in "
            << bench::fixed(elapsed, 1) << " s; false alarms: " << total_alarms << " (target 0: "
            << (total_alarms == 0 && runs >= 10000 ? "met"
                : total_alarms == 0                ? "no alarms, but fewer than 10,000 runs"
                                                   : "missed")
            << "); load average at end: " << bench::load_average() << "\n";
  for (std::size_t i = 0; i < alarms.size() && i < 20; ++i) std::cout << "- alarm: " << alarms[i] << "\n";
  return total_alarms == 0 ? 0 : 1;
}
