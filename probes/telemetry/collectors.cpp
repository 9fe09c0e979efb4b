#include "probes/telemetry/collectors.hpp"

#include "probes/telemetry/accel.hpp"
#include "probes/telemetry/amdgpu_ras.hpp"
#include "probes/telemetry/hwmon.hpp"

namespace substrate::telemetry {

namespace {

constexpr SysfsCollector kCollectors[] = {
    {kSourceAmdgpu, read_amdgpu_ras},
    {kSourceHwmon, read_hwmon},
    {kSourceAccel, read_accel},
};

}  // namespace

std::span<const SysfsCollector> sysfs_collectors() { return kCollectors; }

}  // namespace substrate::telemetry
