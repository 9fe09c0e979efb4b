#pragma once
// The one table of telemetry findings: for each kind of finding (and each XID) its effect on the
// device verdict and the shipped alert that reports it, with that alert's severity. verdict.cpp
// takes its severities from here; tests/probes/telemetry/findings_test.cpp walks the table against
// the verdict code, the generated rules (deploy/prometheus/substrated-rules.yml, from deploy/mixin)
// and docs/findings.md, so rules, verdict and docs cannot disagree.
#include <cstdint>
#include <span>

namespace substrate::telemetry {

enum class Effect { none, degraded, failed };
const char* to_string(Effect effect);

enum class Kind {
  gpu_lost,
  ecc_uncorrected_rise,
  row_remap_failed,
  row_remap_pending,
  page_retirement_pending,
  xid,
  clock_slowdown,
  temperature_threshold,
  recovery_reset,
  recovery_drain
};

struct FindingKind {
  Kind id;
  const char* name;            // the id as text, for docs and test messages
  Effect effect;               // on the device verdict (for xid: see xid_table())
  const char* alert;           // the shipped alert that reports it
  const char* alert_severity;  // that alert's severity label
  const char* what;            // one line for docs/findings.md
};

// Every finding kind telemetry_findings() can produce, in Kind order; "xid" stands for the XID
// table below.
std::span<const FindingKind> finding_kinds();
const FindingKind& finding_kind(Kind kind);

struct XidEntry {
  std::uint32_t xid;
  Effect effect;
  const char* meaning;
};

// XIDs from NVIDIA's XID catalogue (docs.nvidia.com/deploy/xid-errors) with the verdict effect
// substrated gives them. Those with an effect are reported by SubstrateCriticalXid (critical);
// every other XID (listed here with effect none, or not listed) by SubstrateXid (info).
//   failed:   the catalogue's immediate action is a GPU reset or node reboot (48 DBE, 61/62 the
//             internal micro-controller hit a breakpoint or halted, 64, 79, 95, 119/120 GSP, 140
//             unrecovered ECC, 154 the driver says a recovery action is required)
//   degraded: the device keeps working but needs attention (63, 74, 92, 94)
std::span<const XidEntry> xid_table();
// The entry for `xid`, or null (effect none).
const XidEntry* find_xid(std::uint32_t xid);

// The alerts that report XIDs, and their severities.
inline constexpr const char* kCriticalXidAlert = "SubstrateCriticalXid";
inline constexpr const char* kOtherXidAlert = "SubstrateXid";

}  // namespace substrate::telemetry
