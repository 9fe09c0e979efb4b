#include <catch2/catch.hpp>

#include "probes/backends/launch_limits.hpp"

using namespace substrate;

TEST_CASE("launch limits: buffers, workgroups and loop iterations are refused with the limit named", "[unit]") {
  LaunchLimits limits;
  limits.device = "vulkan0";
  limits.max_groups = {65535, 65535, 65535};
  limits.max_buffer_bytes = 134217728;
  limits.memory_bytes = 1ull << 30;
  limits.max_loop_iterations = 65535;
  limits.loop_limit_source = "Mesa lavapipe";

  const BufferNeed fits[] = {{"A", 1024, 4096}};
  CHECK(check_buffers(limits, "gemm", fits).ok());
  const BufferNeed wide[] = {{"A", 1ull << 28, 1ull << 30}};
  auto too_wide = check_buffers(limits, "gemm", wide);
  REQUIRE_FALSE(too_wide.ok());
  CHECK(too_wide.error().kind == ErrorKind::invalid_argument);
  CHECK(too_wide.error().message.find("(maxStorageBufferRange) of 134217728 bytes") != std::string::npos);
  const BufferNeed many[] = {{"C", 1ull << 32, 1ull << 34}};
  CHECK(check_buffers(limits, "gemm", many)
            .error()
            .message.find("above the 4294967295 that the kernels' element indices reach") != std::string::npos);
  const BufferNeed big[] = {{"A", 1 << 25, 1 << 27}, {"B", 1 << 25, 1 << 27}, {"C", 1 << 25, 1 << 27},
                            {"D", 1 << 25, 1 << 27}, {"E", 1 << 25, 1 << 27}, {"F", 1 << 25, 1 << 27},
                            {"G", 1 << 25, 1 << 27}, {"H", 1 << 25, 1 << 27}};
  CHECK(check_buffers(limits, "gemm", big).ok());
  CHECK(check_buffers(limits, "gemm", big, 1).error().message.find("bytes of device memory") != std::string::npos);

  CHECK(check_groups(limits, "gemm", {65535, 1, 1}).ok());
  CHECK(check_groups(limits, "gemm", {65536, 1, 1}).error().message.find("maxComputeWorkGroupCount[0] of 65535") !=
        std::string::npos);
  CHECK(check_loop_iterations(limits, "gemm", 65535, "K").ok());
  CHECK(check_loop_iterations(limits, "gemm", 65536, "K").error().message.find("Mesa lavapipe") != std::string::npos);
  limits.max_loop_iterations = 0;
  CHECK(check_loop_iterations(limits, "gemm", 1ull << 40, "K").ok());
}
