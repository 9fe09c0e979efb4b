#!/usr/bin/env bash
# TEST-ONLY STAND-IN for nvidia-smi (never installed, never in the GPU bundle): answers the queries
# tests/gpu/run.sh makes with values from the scenario file named by $SUBSTRATE_FAKE_NVIDIA_SMI, so
# the runner's logic is tested on hosts without a GPU (tests/gpu/runner_test.sh puts it on PATH as
# `nvidia-smi`). It is not nvidia-smi and reads no hardware.
#
# Scenario lines ('#' starts a comment):
#   <index> <field> <value...>     a --query-gpu field of GPU <index>; a GPU exists once it has a uuid
#   app <index> <pid> <name> <MiB>  a compute process on GPU <index> (--query-compute-apps)
# Understood: [-i INDEX] --query-gpu=F1,F2,... | --query-compute-apps=F1,... and
# --format=csv[,noheader][,nounits]. Fields follow nvidia-smi's names; a known field without a
# value prints [N/A]; an unknown field fails as nvidia-smi does ('Field "x" is not a valid field to
# query.', exit 2).
set -euo pipefail

scenario=${SUBSTRATE_FAKE_NVIDIA_SMI:?fake nvidia-smi: SUBSTRATE_FAKE_NVIDIA_SMI names no scenario}
gpu_fields=" index uuid pci.bus_id name driver_version compute_cap compute_mode mig.mode.current ecc.mode.current \
persistence_mode memory.total memory.used temperature.gpu enforced.power.limit power.draw \
ecc.errors.corrected.aggregate.total ecc.errors.uncorrected.aggregate.total retired_pages.sbe retired_pages.dbe \
remapped_rows.correctable remapped_rows.uncorrectable "
app_fields=" gpu_uuid pid process_name used_memory "
only="" query="" kind="" header=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    -i) only=$2; shift 2 ;;
    --id=*) only=${1#*=}; shift ;;
    --query-gpu=*) kind=gpu; query=${1#*=}; shift ;;
    --query-compute-apps=*) kind=app; query=${1#*=}; shift ;;
    --format=*) [[ "$1" == *noheader* ]] && header=0; shift ;;
    *) echo "fake nvidia-smi: unsupported argument '$1'" >&2; exit 2 ;;
  esac
done
[[ -n "$kind" ]] || { echo "fake nvidia-smi: give --query-gpu= or --query-compute-apps=" >&2; exit 2; }
known=$gpu_fields
[[ "$kind" == app ]] && known=$app_fields
IFS=, read -r -a fields <<<"$query"
for field in "${fields[@]}"; do
  [[ "$known" == *" $field "* ]] || { echo "Field \"$field\" is not a valid field to query."; exit 2; }
done
if [[ "$header" -eq 1 ]]; then
  line=$(IFS=,; echo "${fields[*]}")
  echo "${line//,/, }"
fi
awk -v kind="$kind" -v query="$query" -v only="$only" '
  { sub(/#.*/, "") }
  NF < 3 { next }
  $1 == "app" { napps++; app_gpu[napps] = $2; app_pid[napps] = $3; app_name[napps] = $4; app_mem[napps] = $5; next }
  { value = $0; sub(/^[ \t]*[^ \t]+[ \t]+[^ \t]+[ \t]+/, "", value); sub(/[ \t]+$/, "", value); v[$1, $2] = value
    if ($2 == "uuid" && !($1 in seen)) { seen[$1] = 1; order[++ngpus] = $1 } }
  END {
    n = split(query, f, ",")
    if (kind == "gpu") {
      for (g = 1; g <= ngpus; g++) {
        i = order[g]
        if (only != "" && i != only) continue
        line = ""
        for (k = 1; k <= n; k++) line = line (k > 1 ? ", " : "") (f[k] == "index" ? i : ((i, f[k]) in v ? v[i, f[k]] : "[N/A]"))
        print line
      }
    } else {
      for (a = 1; a <= napps; a++) {
        line = ""
        for (k = 1; k <= n; k++) {
          x = f[k] == "gpu_uuid" ? v[app_gpu[a], "uuid"] : f[k] == "pid" ? app_pid[a] : f[k] == "process_name" ? app_name[a] : app_mem[a]
          line = line (k > 1 ? ", " : "") x
        }
        print line
      }
    }
  }' "$scenario"
