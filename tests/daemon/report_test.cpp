#include "daemon/report.hpp"

#include <catch2/catch.hpp>

using namespace substrate;

namespace {

ProbeResult checked(RunStatus status, int bit, std::uint64_t guaranteed, std::uint64_t checked) {
  ProbeResult r;
  r.device.id = "vulkan0";
  r.spec.probe = "gemm";
  r.spec.mode = Mode::random;
  r.spec.gemm = {64, 64, 64};
  r.status = status;
  r.check.checked = checked;
  r.check.guaranteed_bit = bit;
  r.check.guaranteed_elements = guaranteed;
  return r;
}

}  // namespace

TEST_CASE("report: the table states each result's guarantee (issue 18)", "[unit]") {
  CHECK_THAT(render_results({checked(RunStatus::pass, 0, 256, 256)}), Catch::Contains("bit 0, 100%"));
  CHECK_THAT(render_results({checked(RunStatus::pass, 13, 4094, 4096)}), Catch::Contains("bit 13, 99.9%"));
  // A share just below 1 is never shown as 100%.
  CHECK_THAT(render_results({checked(RunStatus::fail, 14, 999999, 1000000)}), Catch::Contains("bit 14, 99.9%"));
  CHECK_THAT(render_results({checked(RunStatus::pass, 32, 0, 16)}), Catch::Contains("none"));
  // Nothing was checked: no claim.
  const std::string error = render_results({checked(RunStatus::error, 0, 0, 0)});
  CHECK_THAT(error, !Catch::Contains("bit 0"));
}
