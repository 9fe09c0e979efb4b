// Memory bandwidth side by side on one device in one run: the device's own copy
// (vkCmdCopyBuffer), fill (vkCmdFillBuffer) and a trivial shader copy (kernels/glsl/copy.comp),
// host memcpy on one thread, and the memory probe, whole and per pattern. Repetitions are
// interleaved (one of each measurement per round), so load that comes and goes hits all of them
// alike; each figure is the best of the rounds with the range, and each ratio is best over best
// with the range of the per-round ratios.
//
//   build-bench/bench/bench_bandwidth [--sizes 8M,64M] [--repeats 7]
#include <cstring>
#include <ctime>
#include <tuple>

#include "bench/common.hpp"
#include "probes/backends/vulkan/transfer_bandwidth.hpp"

using namespace substrate;

namespace {

constexpr const char* k_usage =
    "usage: bench_bandwidth [--sizes LIST] [--repeats N] [--memcpy-per-round N]\n"
    "  --sizes L              region sizes, e.g. 8M,64M (default)\n"
    "  --repeats N            interleaved rounds per size (default 7)\n"
    "  --memcpy-per-round N   host memcpys per round, each timed alone (default 5)\n";

constexpr std::array k_patterns{MemoryPattern::walking_ones, MemoryPattern::walking_zeros, MemoryPattern::own_address,
                                MemoryPattern::moving_inversions, MemoryPattern::random};

// Bytes per second of each round of one measurement, by device time (timestamps: on a CPU
// device, wall time, which counts the time other processes hold the cores) and by the CPU time
// of the whole process (every driver thread; blind to other processes).
struct Series {
  Series(std::string name_, std::string counted_) : name(std::move(name_)), counted(std::move(counted_)) {}
  std::string name, counted;
  std::vector<double> rates, cpu_rates;
  const std::vector<double>& of(bool cpu) const { return cpu ? cpu_rates : rates; }
  double best(bool cpu) const { return *std::max_element(of(cpu).begin(), of(cpu).end()); }
  double worst(bool cpu) const { return *std::min_element(of(cpu).begin(), of(cpu).end()); }
};

// Runs `measure` (which returns the device seconds of `bytes` moved) and records both rates.
template <class Fn>
void record(Series& series, double bytes, Fn&& measure) {
  const double cpu0 = bench::cpu_seconds();
  const double device = measure();
  const double cpu = bench::cpu_seconds() - cpu0;
  series.rates.push_back(bytes / device);
  series.cpu_rates.push_back(bytes / cpu);
}

std::string gbps(double rate) { return bench::fixed(rate / 1e9, 2); }

std::string ratio_text(const Series& a, const Series& b, bool cpu) {
  std::vector<double> paired;
  for (std::size_t i = 0; i < a.of(cpu).size() && i < b.of(cpu).size(); ++i) {
    paired.push_back(a.of(cpu)[i] / b.of(cpu)[i]);
  }
  return bench::fixed(a.best(cpu) / b.best(cpu), 2) + " (rounds " +
         bench::fixed(*std::min_element(paired.begin(), paired.end()), 2) + "-" +
         bench::fixed(*std::max_element(paired.begin(), paired.end()), 2) + ")";
}

// The fastest of `count` single-threaded memcpys of a region, each timed alone (wall and CPU
// time), recorded as bytes read + written per second.
void record_memcpy(Series& series, std::vector<char>& from, std::vector<char>& to, int count) {
  double wall = INFINITY, cpu = INFINITY;
  for (int i = 0; i < count; ++i) {
    const double t0 = bench::now_seconds(), cpu0 = bench::cpu_seconds();
    std::memcpy(to.data(), from.data(), from.size());
    cpu = std::min(cpu, bench::cpu_seconds() - cpu0);
    wall = std::min(wall, bench::now_seconds() - t0);
  }
  volatile char sink = to[to.size() / 2];
  (void)sink;
  series.rates.push_back(2.0 * static_cast<double>(from.size()) / wall);
  series.cpu_rates.push_back(2.0 * static_cast<double>(from.size()) / cpu);
}

std::uint64_t parse_size(const std::string& text) {
  ProbeSpec spec = bench::make_spec("memory", Dtype::f32, Mode::random, text, 1);
  if (spec.memory.max_bytes % 16 != 0) bench::Args::die("size " + text + ": must be a multiple of 16 bytes");
  return spec.memory.max_bytes;
}

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv, {}, k_usage);
  const int repeats = std::max<int>(1, static_cast<int>(args.get_int("--repeats", 7)));
  const int memcpy_count = std::max<int>(1, static_cast<int>(args.get_int("--memcpy-per-round", 5)));
  std::vector<std::uint64_t> sizes;
  std::stringstream list(args.get("--sizes", "8M,64M"));
  for (std::string item; std::getline(list, item, ',');) {
    if (!item.empty()) sizes.push_back(parse_size(item));
  }
  DevicePtr device = bench::first_device();
  const DeviceInfo& info = device->info();
  if (info.backend != "vulkan") bench::Args::die("the first device is not a Vulkan device: " + info.id);
  const std::size_t device_index = std::stoul(info.id.substr(std::string("vulkan").size()));

  std::cout << "## Memory bandwidth side by side\n\n";
  bench::print_machine(std::cout, info, bench::command_line(argc, argv));
  const std::string l3 = bench::read_first_line("/sys/devices/system/cpu/cpu0/cache/index3/size");
  std::cout << "- CPU L3 per cpu0: " << (l3.empty() ? "unknown" : l3) << " (regions whose source plus target fit "
            << "in it are partly cache-resident for every measurement alike)\n"
            << "- method: per size, " << repeats
            << " interleaved rounds; each round runs, back to back: " << memcpy_count
            << " host memcpys (one thread, each timed alone, the fastest kept), one vkCmdCopyBuffer, "
            << "one vkCmdFillBuffer and one shader copy (each its own submission, timed by timestamp queries around "
            << "the command), one memory probe run (run_probe at that size: all patterns; its bandwidth is the bytes "
            << "its pattern kernels move over their device time), and each pattern alone (run_memory with that "
            << "pattern). Every measurement is timed twice: by device time (timestamps; on a CPU device that is wall "
            << "time, so it counts the time other processes hold the cores) and by the CPU time of this whole "
            << "process over the measurement (CLOCK_PROCESS_CPUTIME_ID: every driver thread, blind to other "
            << "processes; for the probe run it also covers the retention block and host work, so it is a lower "
            << "bound). Figures: best round and the range over rounds, GB/s = 1e9 bytes/s, counting bytes read + "
            << "bytes written. Ratios: best over best, with the range of the per-round ratios.\n"
            << "- the Vulkan transfers run on their own VkDevice of the same physical device; host buffers are "
            << "touched before timing, the transfers' buffers by one unmeasured run of each, and one unmeasured "
            << "probe run and pattern run per size compile every pipeline first. The probe allocates its region "
            << "afresh in every run (as in the daemon), so its figures include first-touch page faults; the "
            << "transfers reuse their buffers\n\n";

  bool met = true;
  for (const std::uint64_t bytes : sizes) {
    const std::string size_text = bench::fixed(bytes / 1048576.0, 1) + " MiB";
    auto opened = vulkan::TransferBench::open(device_index, bytes);
    if (!opened) bench::Args::die(opened.error().message);
    vulkan::TransferBench& transfers = **opened;
    std::vector<char> from(bytes, 1), to(bytes, 2);
    const double twice = 2.0 * static_cast<double>(bytes);
    Series memcpy_series{"host memcpy (1 thread)", "read + written"};
    Series copy{"vkCmdCopyBuffer", "read + written"}, fill{"vkCmdFillBuffer", "written"};
    Series shader{"shader copy (uvec4, one invocation each)", "read + written"};
    Series probe{"memory probe (all patterns)", "read + written by its passes"};
    std::vector<Series> per_pattern;
    for (MemoryPattern pattern : k_patterns) {
      per_pattern.push_back({std::string("probe pattern ") + to_string(pattern), "read + written"});
    }
    std::vector<std::pair<double, double>> pattern_totals(k_patterns.size());  // bytes, seconds summed
    const ProbeSpec spec = bench::make_spec("memory", Dtype::f32, Mode::random, std::to_string(bytes), 1);
    {  // warm-up, unmeasured: compiles every pipeline the rounds use (llvmpipe JITs on first use)
      GoldenCache goldens;
      (void)run_probe(*device, spec, goldens);
      for (MemoryPattern pattern : k_patterns) {
        MemoryLaunch launch;
        launch.bytes = bytes;
        launch.seed = 1;
        launch.patterns = {pattern};
        (void)device->run_memory(launch);
      }
    }
    for (int round = 0; round < repeats; ++round) {
      record_memcpy(memcpy_series, from, to, memcpy_count);
      for (auto [series, transfer, counted] :
           {std::tuple{&copy, vulkan::Transfer::copy, twice}, std::tuple{&fill, vulkan::Transfer::fill, 0.5 * twice},
            std::tuple{&shader, vulkan::Transfer::shader_copy, twice}}) {
        record(*series, counted, [&, transfer = transfer] {
          auto seconds = transfers.run(transfer);
          if (!seconds) bench::Args::die(seconds.error().message);
          return *seconds;
        });
      }
      ProbeResult result;
      const double cpu0 = bench::cpu_seconds();
      {
        GoldenCache goldens;
        result = run_probe(*device, spec, goldens);
      }
      const double probe_cpu = bench::cpu_seconds() - cpu0;
      if (result.status != RunStatus::pass || !result.memory) bench::Args::die("memory probe: " + result.error);
      probe.rates.push_back(result.memory->bandwidth_bytes_per_second);
      // The whole run's CPU time (retention block and host work included): a lower bound.
      probe.cpu_rates.push_back(result.memory->bandwidth_bytes_per_second * result.device_seconds / probe_cpu);
      for (std::size_t p = 0; p < k_patterns.size(); ++p) {
        MemoryLaunch launch;
        launch.bytes = bytes;
        launch.seed = 1;
        launch.patterns = {k_patterns[p]};
        std::uint64_t moved = 0;
        record(per_pattern[p], 1.0, [&] {
          auto run = device->run_memory(launch);
          if (!run) bench::Args::die(run.error().message);
          if (run->bad_words != 0) bench::Args::die("memory pattern run found bad words on a clean device");
          moved = run->bytes_moved;
          pattern_totals[p].first += static_cast<double>(run->bytes_moved);
          pattern_totals[p].second += run->device_seconds;
          return run->device_seconds;
        });
        per_pattern[p].rates.back() *= static_cast<double>(moved);
        per_pattern[p].cpu_rates.back() *= static_cast<double>(moved);
      }
      std::cerr << "  " << size_text << " round " << round + 1 << "/" << repeats << " (load " << bench::load_average()
                << ")\n";
    }

    std::vector<const Series*> rows{&memcpy_series, &copy, &fill, &shader, &probe};
    for (const Series& s : per_pattern) rows.push_back(&s);
    for (const bool cpu : {false, true}) {
      std::cout << "### " << size_text << ", by " << (cpu ? "process CPU time" : "device time") << "\n\n"
                << "| measurement | bytes counted | best GB/s | range GB/s | best / shader copy |\n"
                << "|---|---|---|---|---|\n";
      for (const Series* s : rows) {
        std::cout << "| " << s->name << " | " << s->counted << " | " << gbps(s->best(cpu)) << " | "
                  << gbps(s->worst(cpu)) << "-" << gbps(s->best(cpu)) << " | "
                  << bench::fixed(s->best(cpu) / shader.best(cpu), 2) << " |\n";
      }
      std::cout << "\n";
    }
    double pattern_bytes = 0, pattern_seconds = 0;
    for (const auto& [b, s] : pattern_totals) {
      pattern_bytes += b;
      pattern_seconds += s;
    }
    std::cout << "Patterns run alone, summed over all rounds: " << bench::fixed(pattern_bytes / 1048576.0, 0)
              << " MiB in " << bench::fixed(pattern_seconds * 1e3, 1)
              << " ms of device time = " << gbps(pattern_bytes / pattern_seconds)
              << " GB/s (the whole probe's median round: " << gbps(bench::percentile(probe.rates, 50)) << " GB/s)\n\n";
    for (const bool cpu : {false, true}) {
      const bool size_met = probe.best(cpu) / shader.best(cpu) >= 0.5;
      met = met && size_met;
      std::cout << "Ratios at " << size_text << " by " << (cpu ? "process CPU time" : "device time")
                << " (best / best, per-round range):\n\n"
                << "- memory probe / shader copy: " << ratio_text(probe, shader, cpu)
                << ", target >= 0.5: " << (size_met ? "met" : "missed") << "\n"
                << "- memory probe / vkCmdCopyBuffer: " << ratio_text(probe, copy, cpu) << "\n"
                << "- shader copy / vkCmdCopyBuffer: " << ratio_text(shader, copy, cpu) << "\n"
                << "- vkCmdCopyBuffer / host memcpy: " << ratio_text(copy, memcpy_series, cpu) << "\n"
                << "- memory probe / host memcpy: " << ratio_text(probe, memcpy_series, cpu) << "\n\n";
    }
  }
  std::cout << "memory probe >= 0.5 x shader copy at every size: " << (met ? "met" : "missed") << "\n"
            << "load average at end: " << bench::load_average() << "\n";
  return 0;
}
