// Per-round cost of device work in worker processes, against the same work in one process that
// keeps its device open (the daemon before workers). One round = every default spec of every
// probe the default config schedules, at the device-class sizes, as the daemon's first round.
//
// Worker rounds: the daemon's way, through the daemon's own code (WorkerProcess: posix_spawn of
// `substrated __worker`, one `run` request, frames back): spawn -> `opened` (process start,
// driver load, device discovery and open), `opened` -> last `result` (pipelines created, specs
// run with goldens computed fresh, since a worker keeps no goldens between rounds), `done` -> exit.
// The worker's peak RSS is its VmHWM read at its `done` frame (it has run every spec and not yet
// exited); harness overhead inside the worker is each result's wall / device time.
//
// In-process rounds: the same specs on a device this program opened once: the first round
// creates the pipelines, later ones reuse them; goldens fresh every round (cold) as in a worker,
// and once more with the goldens cached (warm: the old daemon's steady state). Worker and
// in-process rounds alternate, so the machine's load weighs on both alike.
//
//   build-bench/bench/bench_rounds --substrated build-bench/substrated [--rounds 5]
#include <boost/asio/io_context.hpp>

#include "bench/common.hpp"
#include "daemon/config.hpp"
#include "daemon/supervisor.hpp"

using namespace substrate;
using json = nlohmann::json;

namespace {

constexpr const char* k_usage =
    "usage: bench_rounds --substrated PATH [--rounds N]\n"
    "  --substrated PATH  the substrated binary whose worker mode runs the rounds\n"
    "  --rounds N         worker rounds and in-process rounds each (default 5; medians reported)\n";

double median(std::vector<double> v) { return bench::percentile(std::move(v), 50); }

// kB from a /proc/<pid>/status line such as "VmHWM:   123456 kB"; 0 when absent.
double status_kib(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1));
  }
  return 0.0;
}

struct WorkerRound {
  double to_opened = 0, to_last_result = 0, to_exit = 0, total = 0;
  double peak_rss_kib = 0;
  std::vector<ProbeResult> results;
};

// One round in one worker; exits 2 when the worker does not do what the daemon expects.
void run_worker(const std::string& binary, const json& request, WorkerRound* round) {
  boost::asio::io_context io;
  std::string failure;
  pid_t pid = 0;
  const double t0 = bench::now_seconds();
  auto worker = WorkerProcess::spawn(io, binary, request,
                                     {[&](const json& frame) {
                                        const std::string type = frame.at("type").get<std::string>();
                                        const double t = bench::now_seconds() - t0;
                                        if (type == "error") failure = frame.at("message").get<std::string>();
                                        if (type == "opened") round->to_opened = t;
                                        if (type == "result") {
                                          round->to_last_result = t;
                                          round->results.push_back(frame.at("result").get<ProbeResult>());
                                        }
                                        if (type == "done") round->peak_rss_kib = status_kib(pid, "VmHWM");
                                      },
                                      [&](const WorkerExit& exit) {
                                        if (exit.exit_code != 0)
                                          failure += " (worker ended: code " + std::to_string(exit.exit_code) + ")";
                                        round->total = bench::now_seconds() - t0;
                                      }});
  if (!worker) bench::Args::die(worker.error().message);
  pid = (*worker)->pid();
  (*worker)->set_deadline(600);
  io.run();
  if (!failure.empty()) bench::Args::die("worker: " + failure);
  round->to_exit = round->total - round->to_last_result;
}

std::string ms(double seconds) { return bench::fixed(seconds * 1e3, 1); }

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv, {}, k_usage);
  const std::string binary = args.get("--substrated", "");
  if (binary.empty()) bench::Args::die(std::string("--substrated is required\n") + k_usage);
  const int rounds = static_cast<int>(args.get_int("--rounds", 5));
  const Config defaults = default_config();

  // This process opens the device for the in-process rounds; worker rounds and in-process rounds
  // alternate, so the machine's load weighs on both alike.
  DevicePtr device = bench::first_device();
  const DeviceInfo info = device->info();
  std::vector<ProbeSpec> specs;
  for (const ProbeDescriptor& d : probe_registry().all()) {
    const auto schedule = defaults.probes.find(d.id);
    if (schedule == defaults.probes.end() || !schedule->second.enabled) continue;
    for (const ProbeSpec& spec : d.default_specs(info)) specs.push_back(spec);
  }
  json request_specs = json::array();
  for (const ProbeSpec& spec : specs) {
    request_specs.push_back({{"spec", spec}, {"drill", ""}, {"timeout_seconds", 120.0}});
  }
  const json request = {{"type", "run"},
                        {"device", info.id},
                        {"uuid", info.uuid},
                        {"log_level", "warn"},
                        {"golden_cache_max_bytes", defaults.golden_cache_max_bytes},
                        {"dump_root", "/nonexistent"},
                        {"dump_max_bytes", 0},
                        {"specs", request_specs}};

  std::ostringstream header;  // with the load average at the start
  bench::print_machine(header, info, bench::command_line(argc, argv));
  std::cerr << "bench_rounds: " << rounds << " rounds of " << specs.size() << " specs each way, load "
            << bench::load_average() << "\n";
  const auto in_process_round = [&](GoldenCache& goldens) {
    const double t0 = bench::now_seconds();
    for (const ProbeSpec& spec : specs) run_probe(*device, spec, goldens);
    return bench::now_seconds() - t0;
  };
  GoldenCache kept;
  const double first_round = in_process_round(kept);  // pipelines created here
  std::vector<WorkerRound> worker_rounds;
  std::vector<double> in_process_cold, in_process_warm;
  for (int i = 0; i < rounds; ++i) {
    WorkerRound round;
    run_worker(binary, request, &round);
    if (round.results.size() != specs.size()) bench::Args::die("a worker round reported too few results");
    worker_rounds.push_back(std::move(round));
    GoldenCache fresh;
    in_process_cold.push_back(in_process_round(fresh));
    in_process_warm.push_back(in_process_round(kept));
  }

  std::vector<double> opened, last_result, to_exit, total, rss;
  for (const WorkerRound& r : worker_rounds) {
    opened.push_back(r.to_opened);
    last_result.push_back(r.to_last_result - r.to_opened);
    to_exit.push_back(r.to_exit);
    total.push_back(r.total);
    rss.push_back(r.peak_rss_kib / 1024.0);
  }
  const double cold = median(in_process_cold), warm = median(in_process_warm);
  std::cout << "## Rounds in worker processes\n\n" << header.str();
  std::cout << "- one round: " << specs.size()
            << " specs (every default spec of the default schedule's probes at this device's sizes)\n"
            << "- medians of " << rounds << " rounds each\n\n";
  std::cout << "| figure | ms |\n|---|---|\n"
            << "| worker: spawn -> device open (process start, driver load, discovery, open) | " << ms(median(opened))
            << " |\n"
            << "| worker: device open -> last result (pipelines, specs, goldens computed) | " << ms(median(last_result))
            << " |\n"
            << "| worker: last result -> reaped (report, device close, exit) | " << ms(median(to_exit)) << " |\n"
            << "| worker: whole round | " << ms(median(total)) << " |\n"
            << "| in process: first round on a freshly opened device (pipelines created) | " << ms(first_round)
            << " |\n"
            << "| in process: later rounds, goldens computed (as in a worker) | " << ms(cold) << " |\n"
            << "| in process: later rounds, goldens cached (the old daemon's steady state) | " << ms(warm) << " |\n"
            << "| **per-round overhead of a worker** (whole round - in-process round, goldens computed) | "
            << ms(median(total) - cold) << " |\n"
            << "| of which pipeline creation (in-process first round - later rounds) | " << ms(first_round - cold)
            << " |\n"
            << "| of which goldens not kept between rounds (in process: computed - cached) | " << ms(cold - warm)
            << " (not in the overhead above) |\n\n";
  std::cout << "Worker peak RSS (VmHWM at its `done` frame): median " << bench::fixed(median(rss), 1) << " MiB, max "
            << bench::fixed(bench::percentile(rss, 100), 1) << " MiB.\n\n";
  std::cout << "Harness overhead inside the worker, per spec: wall / device time of its own results (median over "
               "rounds; goldens computed in every round)\n\n"
            << "| spec | device ms | wall ms | wall/device | wall/(device+gen) |\n|---|---|---|---|---|\n";
  for (std::size_t s = 0; s < specs.size(); ++s) {
    std::vector<double> device_s, wall_s, ratio, ratio_gen;
    for (const WorkerRound& r : worker_rounds) {
      const ProbeResult& result = r.results[s];
      device_s.push_back(result.device_seconds);
      wall_s.push_back(result.wall_seconds);
      if (result.device_seconds > 0) ratio.push_back(result.wall_seconds / result.device_seconds);
      if (result.device_seconds + result.generate_seconds > 0) {
        ratio_gen.push_back(result.wall_seconds / (result.device_seconds + result.generate_seconds));
      }
    }
    std::cout << "| " << spec_key(specs[s]) << " | " << ms(median(device_s)) << " | " << ms(median(wall_s)) << " | "
              << bench::fixed(median(ratio), 2) << " | " << bench::fixed(median(ratio_gen), 2) << " |\n";
  }
  std::cout << "\n- load average at end: " << bench::load_average() << "\n";
  return 0;
}
