// The scheduler behind device_runtime.hpp: blocks on host threads, a block's CUDA threads as
// ucontext fibers switched at __syncthreads and at warp collectives.
#include "kernels/cuda/host/device_runtime.hpp"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

#include "kernels/cuda/host/kernel_table.hpp"

namespace substrate::cuda_on_cpu {
namespace {

// Plenty for the kernels' frames, ASan's included, and small because ASan's swapcontext
// interceptor clears the shadow of the whole target stack on every switch (512 KiB stacks made
// the tests ten times slower). A guard page below each stack turns an overflow into a crash.
constexpr std::size_t k_stack_bytes = 64 * 1024;
constexpr unsigned k_warp = 32;

enum class State { runnable, at_barrier, at_collective, exited };

// Where a fiber waits and with what operands (a collective's must be uniform across the warp).
struct Wait {
  std::source_location site;
  const char* operation = "";
  const void* pointer = nullptr;
  unsigned value = 0;
  void* publish = nullptr;
  bool same(const Wait& o) const {
    return site.line() == o.site.line() && site.column() == o.site.column() &&
           std::string_view(site.file_name()) == o.site.file_name() && std::string_view(operation) == o.operation &&
           pointer == o.pointer && value == o.value;
  }
};

class Stack {
 public:
  Stack() {
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    bytes_ = k_stack_bytes + page;
    void* memory = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) throw std::bad_alloc();
    mprotect(memory, page, PROT_NONE);
    base_ = static_cast<unsigned char*>(memory);
    bottom_ = base_ + page;
  }
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;
  ~Stack() { munmap(base_, bytes_); }
  unsigned char* bottom() const { return bottom_; }

 private:
  unsigned char* base_ = nullptr;
  unsigned char* bottom_ = nullptr;
  std::size_t bytes_ = 0;
};

struct Fiber {
  ucontext_t context{};
  Stack* stack = nullptr;
  State state = State::runnable;
  Index3 thread;
  Wait wait;
};

struct BlockRun {
  KernelEntry entry = nullptr;
  const void* params = nullptr;
  Index3 block, block_dim, grid_dim;
  MmaRounding rounding = MmaRounding::nearest;
  std::vector<Fiber> fibers;
  std::vector<void*> published;  // [warp * 32 + lane]
  Fiber* current = nullptr;
  ucontext_t scheduler{};
  std::string fault;
  // ASan's view of the scheduler's stack, learnt when a fiber first runs.
  const void* scheduler_stack = nullptr;
  std::size_t scheduler_stack_bytes = 0;
};

thread_local BlockRun* t_run = nullptr;
thread_local std::vector<std::unique_ptr<Stack>> t_stacks;

std::string describe(const std::source_location& site) {
  const std::string_view file = site.file_name();
  const auto slash = file.rfind('/');
  return std::string(slash == std::string_view::npos ? file : file.substr(slash + 1)) + ":" +
         std::to_string(site.line());
}

std::string describe_thread(const BlockRun& run, const Fiber& fiber) {
  char text[96];
  std::snprintf(text, sizeof text, "block (%u,%u,%u) thread (%u,%u,%u)", run.block.x, run.block.y, run.block.z,
                fiber.thread.x, fiber.thread.y, fiber.thread.z);
  return text;
}

// Switches from the running fiber to the scheduler; `dying` fibers are never resumed.
void to_scheduler(bool dying) {
  BlockRun& run = *t_run;
  Fiber& fiber = *run.current;
#if defined(__SANITIZE_ADDRESS__)
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(dying ? nullptr : &fake_stack, run.scheduler_stack, run.scheduler_stack_bytes);
#else
  (void)dying;
#endif
  swapcontext(&fiber.context, &run.scheduler);
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(fake_stack, &run.scheduler_stack, &run.scheduler_stack_bytes);
#endif
}

void to_fiber(BlockRun& run, Fiber& fiber) {
  run.current = &fiber;
#if defined(__SANITIZE_ADDRESS__)
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(&fake_stack, fiber.stack->bottom(), k_stack_bytes);
#endif
  swapcontext(&run.scheduler, &fiber.context);
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
}

void fiber_main() {
  BlockRun& run = *t_run;
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(nullptr, &run.scheduler_stack, &run.scheduler_stack_bytes);
#endif
  run.entry(run.params);
  run.current->state = State::exited;
  to_scheduler(true);
}

void set_fault(BlockRun& run, std::string message) {
  if (run.fault.empty()) run.fault = std::move(message);
}

// Releases the warp of fiber `index` when all its lanes wait at one collective with the same
// operands; records a fault when they wait at different ones or the warp is partial.
void release_warp(BlockRun& run, std::size_t index) {
  std::vector<Fiber>& fibers = run.fibers;
  const std::size_t begin = index - index % k_warp, end = std::min(fibers.size(), begin + k_warp);
  for (std::size_t i = begin; i < end; ++i)
    if (fibers[i].state != State::at_collective) return;
  const Fiber& lane0 = fibers[begin];
  if (end - begin != k_warp) {
    set_fault(run, std::string(lane0.wait.operation) + " at " + describe(lane0.wait.site) +
                       " in a partial warp: wmma needs all 32 lanes");
    return;
  }
  for (std::size_t i = begin; i < end; ++i) {
    if (!fibers[i].wait.same(lane0.wait)) {
      set_fault(run, "warp collective diverges: " + describe_thread(run, lane0) + " at " + lane0.wait.operation + " (" +
                         describe(lane0.wait.site) + "), " + describe_thread(run, fibers[i]) + " at " +
                         fibers[i].wait.operation + " (" + describe(fibers[i].wait.site) +
                         ") with the same operands required");
      return;
    }
    run.published[i] = fibers[i].wait.publish;
  }
  for (std::size_t i = begin; i < end; ++i) fibers[i].state = State::runnable;
}

// When no fiber can run: releases the block barrier if every thread waits at it, or records why
// the block cannot go on (a thread exited or waits elsewhere: a divergent barrier or collective).
void release_barrier(BlockRun& run) {
  std::vector<Fiber>& fibers = run.fibers;
  const auto waiting =
      std::find_if(fibers.begin(), fibers.end(), [](const Fiber& f) { return f.state == State::at_barrier; });
  const auto stuck =
      std::find_if(fibers.begin(), fibers.end(), [](const Fiber& f) { return f.state == State::at_collective; });
  if (waiting == fibers.end() || stuck != fibers.end()) {
    const Fiber& f = stuck != fibers.end() ? *stuck : *waiting;
    set_fault(run, "deadlock: " + describe_thread(run, f) + " waits at " + f.wait.operation + " (" +
                       describe(f.wait.site) + ") and its warp or block never joins it (divergent control flow)");
    return;
  }
  for (const Fiber& f : fibers) {
    if (f.state == State::exited) {
      set_fault(run, describe_thread(run, f) + " exited while others wait at __syncthreads (" +
                         describe(waiting->wait.site) + "): divergent barrier");
      return;
    }
    if (!f.wait.same(waiting->wait)) {
      set_fault(run, "divergent __syncthreads: " + describe_thread(run, *waiting) + " waits at " +
                         describe(waiting->wait.site) + ", " + describe_thread(run, f) + " at " +
                         describe(f.wait.site));
      return;
    }
  }
  for (Fiber& f : fibers) f.state = State::runnable;
}

// Runs one block to completion on this host thread; the fault, if any, is in run.fault.
void run_block(BlockRun& run) {
  const unsigned threads = run.block_dim.x * run.block_dim.y * run.block_dim.z;
  while (t_stacks.size() < threads) t_stacks.push_back(std::make_unique<Stack>());
  run.fibers.assign(threads, Fiber{});
  run.published.assign(threads, nullptr);
  for (unsigned t = 0; t < threads; ++t) {
    Fiber& f = run.fibers[t];
    f.thread = {t % run.block_dim.x, (t / run.block_dim.x) % run.block_dim.y, t / (run.block_dim.x * run.block_dim.y)};
    f.stack = t_stacks[t].get();
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = f.stack->bottom();
    f.context.uc_stack.ss_size = k_stack_bytes;
    f.context.uc_link = nullptr;
    makecontext(&f.context, fiber_main, 0);
  }
  t_run = &run;
  // Greedy: always the lowest-numbered runnable thread, and a warp goes on as soon as its
  // collective completes, so warp 0 runs ahead to the next __syncthreads before warp 1 starts.
  // A shared-memory write that a missing barrier leaves unordered then lands before the other
  // warps' reads of the previous data, and their results show it.
  for (;;) {
    const auto next =
        std::find_if(run.fibers.begin(), run.fibers.end(), [](const Fiber& f) { return f.state == State::runnable; });
    if (next != run.fibers.end()) {
      to_fiber(run, *next);
      if (next->state == State::at_collective) release_warp(run, static_cast<std::size_t>(next - run.fibers.begin()));
    } else if (std::all_of(run.fibers.begin(), run.fibers.end(),
                           [](const Fiber& f) { return f.state == State::exited; })) {
      break;
    } else {
      release_barrier(run);
    }
    if (!run.fault.empty()) break;
  }
  t_run = nullptr;
}

}  // namespace

Index3 thread_index() { return t_run->current->thread; }
Index3 block_index() { return t_run->block; }
Index3 block_dim() { return t_run->block_dim; }
Index3 grid_dim() { return t_run->grid_dim; }
MmaRounding mma_rounding() { return t_run->rounding; }

unsigned lane_id() {
  const Fiber* first = t_run->fibers.data();
  return static_cast<unsigned>(t_run->current - first) % k_warp;
}

void sync_threads(std::source_location site) {
  Fiber& fiber = *t_run->current;
  fiber.state = State::at_barrier;
  fiber.wait = Wait{site, "__syncthreads", nullptr, 0, nullptr};
  to_scheduler(false);
}

void* const* warp_collective(const char* operation, const void* pointer, unsigned value, void* publish,
                             std::source_location site) {
  BlockRun& run = *t_run;
  Fiber& fiber = *run.current;
  fiber.state = State::at_collective;
  fiber.wait = Wait{site, operation, pointer, value, publish};
  to_scheduler(false);
  const std::size_t index = static_cast<std::size_t>(&fiber - run.fibers.data());
  return run.published.data() + (index - index % k_warp);
}

void kernel_fault(const char* message, std::source_location site) {
  BlockRun& run = *t_run;
  set_fault(run, describe_thread(run, *run.current) + ": " + message + " (" + describe(site) + ")");
  run.current->state = State::exited;
  to_scheduler(true);
  std::abort();  // never resumed: the scheduler abandons a faulted block
}

Status launch(const char* name, cuda_kernels::Dim3 grid, cuda_kernels::Dim3 block, std::uint32_t smem_bytes,
              const void* params, std::size_t params_size, const LaunchOptions& options) {
  const KernelInfo* kernel = find_kernel(name);
  if (kernel == nullptr) return Error{ErrorKind::invalid_argument, std::string("no kernel named ") + name};
  if (params_size != kernel->params_size) {
    return Error{ErrorKind::invalid_argument, std::string(name) + ": parameter block of " +
                                                  std::to_string(params_size) + " bytes, the kernel takes " +
                                                  std::to_string(kernel->params_size)};
  }
  const std::uint64_t threads = std::uint64_t{block.x} * block.y * block.z;
  const std::uint64_t blocks = std::uint64_t{grid.x} * grid.y * grid.z;
  if (threads == 0 || threads > 1024 || blocks == 0) {
    return Error{ErrorKind::invalid_argument, std::string(name) + ": empty grid or block, or over 1024 threads"};
  }
  if (smem_bytes > k_dynamic_smem_bytes) {
    return Error{ErrorKind::invalid_argument, std::string(name) + ": " + std::to_string(smem_bytes) +
                                                  " bytes of dynamic shared memory, at most " +
                                                  std::to_string(k_dynamic_smem_bytes)};
  }
  unsigned workers =
      options.host_threads != 0 ? options.host_threads : std::clamp(std::thread::hardware_concurrency(), 1u, 4u);
  workers = static_cast<unsigned>(std::min<std::uint64_t>(workers, blocks));

  std::atomic<std::uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex fault_mutex;
  std::string fault;
  auto work = [&] {
    BlockRun run;
    run.entry = kernel->entry;
    run.params = params;
    run.block_dim = {block.x, block.y, block.z};
    run.grid_dim = {grid.x, grid.y, grid.z};
    run.rounding = options.mma_rounding;
    for (std::uint64_t b = next++; b < blocks && !failed; b = next++) {
      run.block = {static_cast<unsigned>(b % grid.x), static_cast<unsigned>(b / grid.x % grid.y),
                   static_cast<unsigned>(b / (std::uint64_t{grid.x} * grid.y))};
      // Shared memory starts with whatever the last block left; poison what this one may use so a
      // read before a write shows up as NaN rather than as plausible data.
      std::memset(smem, 0xFF, smem_bytes);
      run_block(run);
      if (!run.fault.empty()) {
        std::lock_guard lock(fault_mutex);
        if (fault.empty()) fault = std::string(name) + ": " + run.fault;
        failed = true;
        run.fault.clear();
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned w = 1; w < workers; ++w) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  if (!fault.empty()) return Error{ErrorKind::device_error, fault};
  return ok_status();
}

}  // namespace substrate::cuda_on_cpu
