#include "probes/telemetry/findings.hpp"

#include <cstddef>
#include <iterator>

namespace substrate::telemetry {

namespace {

constexpr FindingKind kKinds[] = {
    {Kind::gpu_lost, "gpu_lost", Effect::failed, "SubstrateDeviceFailed", "critical",
     "NVML answered GPU_IS_LOST; the device is not called again"},
    {Kind::ecc_uncorrected_rise, "ecc_uncorrected_rise", Effect::failed, "SubstrateUncorrectableECC", "critical",
     "an uncorrectable ECC (or amdgpu RAS) count rose since the previous reading"},
    {Kind::row_remap_failed, "row_remap_failed", Effect::failed, "SubstrateRowRemapFailed", "critical",
     "row remapping failed"},
    {Kind::row_remap_pending, "row_remap_pending", Effect::degraded, "SubstrateRowRemapPending", "warning",
     "a row remap waits for a GPU reset"},
    {Kind::page_retirement_pending, "page_retirement_pending", Effect::degraded, "SubstrateRowRemapPending", "warning",
     "a page retirement waits for a GPU reset"},
    {Kind::xid, "xid", Effect::none, kCriticalXidAlert, "critical", "an XID arrived: see the XID table"},
    {Kind::clock_slowdown, "clock_slowdown", Effect::degraded, "SubstrateThermalSlowdown", "warning",
     "a thermal or hardware slowdown clock-event reason is active"},
    {Kind::temperature_threshold, "temperature_threshold", Effect::degraded, "SubstrateDeviceDegraded", "warning",
     "a temperature at or above its slowdown or crit threshold"},
    {Kind::recovery_reset, "recovery_reset", Effect::failed, "SubstrateDeviceFailed", "critical",
     "NVML's GPU recovery action asks for a GPU reset or a reboot (XID 154 announces it)"},
    {Kind::recovery_drain, "recovery_drain", Effect::degraded, "SubstrateDeviceDegraded", "warning",
     "NVML's GPU recovery action asks to drain peer-to-peer traffic"},
};

constexpr XidEntry kXids[] = {
    {13, Effect::none, "graphics engine exception (usually the application)"},
    {31, Effect::none, "GPU memory page fault (usually the application)"},
    {43, Effect::none, "GPU stopped processing (the application's channel)"},
    {45, Effect::none, "preemptive cleanup after an application ended"},
    {48, Effect::failed, "double-bit ECC error"},
    {61, Effect::failed, "internal micro-controller breakpoint/warning"},
    {62, Effect::failed, "internal micro-controller halt"},
    {63, Effect::degraded, "ECC page retirement or row remap recorded, reset pending"},
    {64, Effect::failed, "ECC page retirement or row remap failed"},
    {74, Effect::degraded, "NVLink error"},
    {79, Effect::failed, "GPU has fallen off the bus"},
    {92, Effect::degraded, "high single-bit ECC error rate"},
    {94, Effect::degraded, "contained ECC error"},
    {95, Effect::failed, "uncontained ECC error"},
    {119, Effect::failed, "GSP RPC timeout"},
    {120, Effect::failed, "GSP error"},
    {140, Effect::failed, "unrecovered ECC error"},
    {154, Effect::failed, "GPU recovery action changed: a reset or reboot is required"},
};

constexpr bool in_kind_order() {
  for (std::size_t i = 0; i < std::size(kKinds); ++i) {
    if (static_cast<std::size_t>(kKinds[i].id) != i) return false;
  }
  return true;
}
static_assert(in_kind_order(), "kKinds must list every Kind in declaration order");

}  // namespace

const char* to_string(Effect effect) {
  switch (effect) {
    case Effect::failed:
      return "failed";
    case Effect::degraded:
      return "degraded";
    default:
      return "none";
  }
}

std::span<const FindingKind> finding_kinds() { return kKinds; }

const FindingKind& finding_kind(Kind kind) { return kKinds[static_cast<std::size_t>(kind)]; }

std::span<const XidEntry> xid_table() { return kXids; }

const XidEntry* find_xid(std::uint32_t xid) {
  for (const XidEntry& entry : kXids) {
    if (entry.xid == xid) return &entry;
  }
  return nullptr;
}

}  // namespace substrate::telemetry
