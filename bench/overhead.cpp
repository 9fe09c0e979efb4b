// Overhead at the device-class default sizes: probe wall time / kernel device time (timestamp
// queries) with a cold golden (computed) and a warm one (GoldenCache hit), the duty cycle of the
// default schedule, and the CPU golden's cost (computed and cached). The memory probe's bandwidth
// against the device's own copies and host memcpy is bench/bandwidth.cpp's.
//
//   build-bench/bench/bench_overhead [--repeats 3] [--probe attention]

#include "bench/common.hpp"
#include "daemon/config.hpp"
#include "kernels/generator.hpp"

using namespace substrate;

namespace {

constexpr const char* k_usage =
    "usage: bench_overhead [--repeats N] [--probe ID]\n"
    "  --repeats N        runs per default spec and measurement (default 3; the median is reported)\n"
    "  --probe ID         only this probe's default specs (default: every probe scheduled by default)\n";

// Default schedule of the daemon (config/substrated.yaml, docs/configuration.md).
const Config& defaults() {
  static const Config config = default_config();
  return config;
}
double default_interval(const std::string& probe) { return defaults().probes.at(probe).interval_seconds; }
bool scheduled_by_default(const std::string& probe) {
  auto it = defaults().probes.find(probe);
  return it != defaults().probes.end() && it->second.enabled;
}

double median(std::vector<double> v) { return bench::percentile(std::move(v), 50); }

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv, {}, k_usage);
  const int repeats = std::max<int>(1, static_cast<int>(args.get_int("--repeats", 3)));
  const std::string only = args.get("--probe", "");
  if (!only.empty() && !scheduled_by_default(only))
    bench::Args::die("--probe: '" + only + "' is not a probe scheduled by default");
  auto measured = [&](const std::string& probe) {
    return scheduled_by_default(probe) && (only.empty() || probe == only);
  };
  DevicePtr device = bench::first_device();
  const DeviceInfo& info = device->info();

  std::cout << "## Overhead at default sizes\n\n";
  bench::print_machine(std::cout, info, bench::command_line(argc, argv));
  std::cout << "- each figure is the median of " << repeats
            << " runs; \"cold\" = fresh GoldenCache (golden computed "
               "in the run), \"warm\" = second run of the same spec and seed (GoldenCache hit)\n"
            << "- device = checked kernel (timestamp queries); gen = on-device input generation; the daemon's "
               "duty-cycle cost is device + gen\n";
  if (!only.empty()) std::cout << "- only the " << only << " probe (--probe): the duty-cycle total covers it alone\n";
  std::cout << "\n";

  struct Row {
    std::string probe, key;
    double device = 0, gen = 0, wall_cold = 0, wall_warm = 0, golden_cold = 0, golden_warm = 0;
    double ratio_cold = 0, ratio_warm = 0;
  };
  std::vector<Row> rows;
  for (const ProbeDescriptor& d : probe_registry().all()) {
    if (!measured(d.id)) continue;
    for (const ProbeSpec& spec : d.default_specs(info)) {
      std::vector<double> dev, gen, cold, warm, gcold, gwarm, rcold, rwarm;
      for (int i = 0; i < repeats; ++i) {
        GoldenCache goldens;
        ProbeResult first = run_probe(*device, spec, goldens);
        ProbeResult second = run_probe(*device, spec, goldens);
        if (first.status != RunStatus::pass || second.status != RunStatus::pass) {
          bench::Args::die(spec_key(spec) + ": clean run did not pass: " + first.error + second.error);
        }
        dev.push_back(second.device_seconds);
        gen.push_back(second.generate_seconds);
        cold.push_back(first.wall_seconds);
        warm.push_back(second.wall_seconds);
        gcold.push_back(first.golden_seconds);
        gwarm.push_back(second.golden_seconds);
        rcold.push_back(first.wall_seconds / first.device_seconds);
        rwarm.push_back(second.wall_seconds / second.device_seconds);
      }
      Row row{d.id,         spec_key(spec), median(dev),   median(gen),   median(cold),
              median(warm), median(gcold),  median(gwarm), median(rcold), median(rwarm)};
      rows.push_back(row);
      std::cerr << "  " << row.key << " done (load " << bench::load_average() << ")\n";
    }
  }

  std::cout
      << "### Harness overhead per default spec (target wall / device <= 1.10)\n\n"
         "| spec | device ms | gen ms | wall cold ms | wall warm ms | golden cold ms | golden warm (cache hit) ms "
         "| wall/device cold | wall/device warm | wall warm/(device+gen) "
         "|\n|---|---|---|---|---|---|---|---|---|---|\n";
  for (const Row& r : rows) {
    std::cout << "| " << r.key << " | " << bench::fixed(r.device * 1e3, 2) << " | " << bench::fixed(r.gen * 1e3, 2)
              << " | " << bench::fixed(r.wall_cold * 1e3, 2) << " | " << bench::fixed(r.wall_warm * 1e3, 2) << " | "
              << bench::fixed(r.golden_cold * 1e3, 2) << " | " << bench::fixed(r.golden_warm * 1e3, 4) << " | "
              << bench::fixed(r.ratio_cold, 2) << " | " << bench::fixed(r.ratio_warm, 2) << " | "
              << bench::fixed(r.wall_warm / (r.device + r.gen), 2) << " |\n";
  }

  // Duty cycle: per probe, device time of one scheduled run (all its default specs) over its
  // default interval; the device's total is the sum over probes.
  std::map<std::string, double> kernel_per_run, cost_per_run;
  for (const Row& r : rows) {
    kernel_per_run[r.probe] += r.device;
    cost_per_run[r.probe] += r.device + r.gen;
  }
  std::cout
      << "\n### Duty cycle of the default schedule (target <= 1% per device)\n\n"
         "| probe | interval s | kernel s per run | kernel + gen s per run | duty (kernel) | duty (kernel + gen) |\n"
         "|---|---|---|---|---|---|\n";
  double duty_kernel = 0, duty_cost = 0;
  for (const auto& [probe, seconds] : cost_per_run) {
    const double interval = default_interval(probe);
    duty_kernel += kernel_per_run[probe] / interval;
    duty_cost += seconds / interval;
    std::cout << "| " << probe << " | " << interval << " | " << bench::fixed(kernel_per_run[probe], 4) << " | "
              << bench::fixed(seconds, 4) << " | " << bench::fixed(100 * kernel_per_run[probe] / interval, 4) << "% | "
              << bench::fixed(100 * seconds / interval, 4) << "% |\n";
  }
  std::cout << "| **device total** | | | | " << bench::fixed(100 * duty_kernel, 4) << "% | "
            << bench::fixed(100 * duty_cost, 4)
            << "% |\n\nduty-cycle target (<= 1%, kernel + gen): " << (duty_cost <= 0.01 ? "met" : "missed") << "\n";

  // CPU golden: computed directly, and a cached load through GoldenCache.
  std::cout
      << "\n### CPU golden per default spec\n\n| spec | computed ms (median) | cached load us (mean of 1000 hits) |\n"
         "|---|---|---|\n";
  for (const ProbeDescriptor& d : probe_registry().all()) {
    if ((d.id != "gemm" && d.id != "attention") || !measured(d.id))
      continue;  // the probes with a CPU golden of their own
    for (const ProbeSpec& spec : d.default_specs(info)) {
      auto compute = [&] {
        if (spec.probe == "gemm") {
          const std::uint32_t radius = spec.mode == Mode::exact ? gen::exact_radius(spec.gemm.k) : 0;
          return golden::gemm(spec.gemm, spec.dtype, spec.mode, spec.seed, radius);
        }
        return golden::attention(spec.attention, spec.dtype, spec.seed);
      };
      std::vector<double> times;
      for (int i = 0; i < repeats; ++i) {
        const double t0 = bench::now_seconds();
        golden::Reference ref = compute();
        times.push_back(bench::now_seconds() - t0);
        if (ref.value.empty()) bench::Args::die("empty golden");
      }
      GoldenCache cache;
      cache.get(spec, compute);
      const double t0 = bench::now_seconds();
      std::size_t total = 0;
      for (int i = 0; i < 1000; ++i) total += cache.get(spec, compute)->value.size();
      const double per_hit = (bench::now_seconds() - t0) / 1000;
      if (total == 0 || cache.hits() != 1000) bench::Args::die("cache did not hit");
      std::cout << "| " << spec_key(spec) << " | " << bench::fixed(median(times) * 1e3, 2) << " | "
                << bench::fixed(per_hit * 1e6, 3) << " |\n";
    }
  }
  // Input generation by CPU time (issue 19): the fill shader takes four elements per Philox call
  // when the first element is a multiple of 4 (every probe input), one call per element
  // otherwise, which is what every fill cost before. generate_raw at offset 0 and at offset 1,
  // alternating, best of the repeats, for the attention default's three inputs and for 4 Mi words
  // (where a call's fixed costs, its buffers, submission and readback, the same for both, weigh
  // little): the small size is what a probe run pays, the large one the generator's own share.
  std::cout << "\n### Input generation by process CPU time\n\n"
            << "generate_raw at offset 0 (four words per Philox call, every probe input since issue 19) and "
               "offset 1 (one call per word: every fill before), alternating, best of "
            << std::max(repeats, 5)
            << "\n\n| words | four per call ms | one per call ms | ratio |\n|---|---|---|---|\n";
  for (const std::uint32_t words : {3u * 128 * 4 * 64, 4u << 20}) {
    double four = INFINITY, one = INFINITY;
    for (int i = 0; i < std::max(repeats, 5); ++i) {
      for (const std::uint64_t first : {0ull, 1ull}) {
        const double cpu0 = bench::cpu_seconds();
        if (!device->generate_raw(0x5eedull, gen::stream_attention_q, first, words).ok()) {
          bench::Args::die("generate_raw failed");
        }
        double& best = first == 0 ? four : one;
        best = std::min(best, bench::cpu_seconds() - cpu0);
      }
    }
    std::cout << "| " << words << (words == 3u * 128 * 4 * 64 ? " (attention/f32/128x4x64's three inputs)" : "")
              << " | " << bench::fixed(four * 1e3, 3) << " | " << bench::fixed(one * 1e3, 3) << " | "
              << bench::fixed(four / one, 2) << " |\n";
  }
  std::cout << "\nload average at end: " << bench::load_average() << "\n";
  return 0;
}
