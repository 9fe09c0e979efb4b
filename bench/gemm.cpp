// GEMM throughput per dtype and mode next to the CPU's own BLAS (OpenBLAS sgemm) on the same
// cores in the same run: on lavapipe the device is the CPU, so the ratio shows what the kernel
// makes of it. Rounds are interleaved (each round: every default GEMM spec once, then sgemm on
// all cores and on one); figures are the best round with the range.
//
//   build-bench/bench/bench_gemm [--repeats 5] [--size N]
#include <ctime>

#include "bench/common.hpp"

extern "C" {
// OpenBLAS (libopenblas-dev): the Fortran BLAS entry point and the thread-count control.
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const float* alpha,
            const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
            const int* ldc);
void openblas_set_num_threads(int threads);
}

using namespace substrate;

namespace {

constexpr const char* k_usage =
    "usage: bench_gemm [--repeats N] [--size N]\n"
    "  --repeats N   interleaved rounds (default 5)\n"
    "  --size N      M = N = K for every spec (default: the device-class default shape)\n";

double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

struct Series {
  std::vector<double> gflops, cpu_gflops;  // by device (or wall) time, by process CPU time
};

std::string range(const std::vector<double>& v) {
  return bench::fixed(*std::min_element(v.begin(), v.end()), 2) + "-" +
         bench::fixed(*std::max_element(v.begin(), v.end()), 2);
}
double best(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv, {}, k_usage);
  const int repeats = std::max<int>(1, static_cast<int>(args.get_int("--repeats", 5)));
  DevicePtr device = bench::first_device();
  const DeviceInfo& info = device->info();
  std::vector<ProbeSpec> specs = probe_registry().find("gemm")->default_specs(info);
  if (args.has("--size")) {
    for (ProbeSpec& spec : specs) {
      const auto n = static_cast<std::uint32_t>(args.get_int("--size", 256));
      spec.gemm = {n, n, n};
    }
  }
  const GemmShape shape = specs.front().gemm;
  const double flop = 2.0 * shape.m * shape.n * shape.k;
  const int cores = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));

  std::cout << "## GEMM throughput next to OpenBLAS sgemm\n\n";
  bench::print_machine(std::cout, info, bench::command_line(argc, argv));
  std::cout << "- method: " << repeats << " interleaved rounds; each round runs every default GEMM spec once through "
            << "run_probe (golden cached after the first round, so the CPU's golden work is out of the figure) and "
            << "OpenBLAS sgemm on the same shape (f32, column-major, alpha 1, beta 0, inputs uniform in [-1, 1)) "
            << "with " << cores << " threads (lavapipe's own thread count: one per core) and with 1 thread. "
            << "GFLOP/s = 2*M*N*K / seconds / 1e9, by device time (timestamps around the GEMM kernel alone; "
            << "wall time for sgemm) and by process CPU time (the whole probe run, generation, readback and check "
            << "included, so a lower bound for the kernel). Best round and range.\n\n";

  std::map<std::string, Series> probe;
  Series blas_all, blas_one;
  std::vector<float> a(static_cast<std::size_t>(shape.m) * shape.k), b(static_cast<std::size_t>(shape.k) * shape.n),
      c(static_cast<std::size_t>(shape.m) * shape.n);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>((i * 40503u) % 2001) / 1000.0f - 1.0f;
  auto sgemm = [&](int threads, Series& series) {
    openblas_set_num_threads(threads);
    const int m = static_cast<int>(shape.m), n = static_cast<int>(shape.n), k = static_cast<int>(shape.k);
    const float alpha = 1.0f, beta = 0.0f;
    sgemm_("N", "N", &m, &n, &k, &alpha, a.data(), &m, b.data(), &k, &beta, c.data(), &m);  // warm-up
    const double t0 = bench::now_seconds(), cpu0 = cpu_seconds();
    sgemm_("N", "N", &m, &n, &k, &alpha, a.data(), &m, b.data(), &k, &beta, c.data(), &m);
    series.gflops.push_back(flop / (bench::now_seconds() - t0) / 1e9);
    series.cpu_gflops.push_back(flop / (cpu_seconds() - cpu0) / 1e9);
  };
  GoldenCache goldens;
  for (int round = 0; round < repeats; ++round) {
    for (const ProbeSpec& spec : specs) {
      const double cpu0 = cpu_seconds();
      ProbeResult result = run_probe(*device, spec, goldens);
      const double cpu = cpu_seconds() - cpu0;
      if (result.status != RunStatus::pass)
        bench::Args::die(spec_key(spec) + ": clean run did not pass: " + result.error);
      Series& s = probe[spec_key(spec)];
      s.gflops.push_back(flop / result.device_seconds / 1e9);
      if (round > 0) s.cpu_gflops.push_back(flop / cpu / 1e9);  // round 0 computes the golden
    }
    sgemm(cores, blas_all);
    sgemm(1, blas_one);
    std::cerr << "  round " << round + 1 << "/" << repeats << " (load " << bench::load_average() << ")\n";
  }
  if (repeats < 2) {  // no round without the golden: report the one there is
    for (auto& [key, s] : probe) s.cpu_gflops = {0.0};
  }

  std::cout << "| spec | GFLOP/s by device time (best) | range | / sgemm " << cores << " threads | / sgemm 1 thread "
            << "| GFLOP/s by process CPU time (best) | / sgemm " << cores << " threads by CPU time |\n"
            << "|---|---|---|---|---|---|---|\n";
  for (const auto& [key, s] : probe) {
    std::cout << "| " << key << " | " << bench::fixed(best(s.gflops), 2) << " | " << range(s.gflops) << " | "
              << bench::fixed(best(s.gflops) / best(blas_all.gflops), 3) << " | "
              << bench::fixed(best(s.gflops) / best(blas_one.gflops), 3) << " | " << bench::fixed(best(s.cpu_gflops), 2)
              << " | " << bench::fixed(best(s.cpu_gflops) / best(blas_all.cpu_gflops), 3) << " |\n";
  }
  for (auto [name, s] :
       {std::pair{"OpenBLAS sgemm f32, all cores", &blas_all}, std::pair{"OpenBLAS sgemm f32, 1 thread", &blas_one}}) {
    std::cout << "| " << name << " " << shape.m << "x" << shape.n << "x" << shape.k << " | "
              << bench::fixed(best(s->gflops), 2) << " | " << range(s->gflops) << " | | | "
              << bench::fixed(best(s->cpu_gflops), 2) << " | |\n";
  }
  std::cout << "\nload average at end: " << bench::load_average() << "\n";
  return 0;
}
