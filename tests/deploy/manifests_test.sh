#!/usr/bin/env bash
# Checks deploy/kubernetes/: each kustomize overlay (nvidia, nvidia-privileged, amd) renders with
# `kubectl kustomize`, and every rendered set parses (PyYAML) and has the fields it must have
# (DaemonSet selector/labels, the overlay's GPU node affinity and tolerations, no GPU resource
# requests, priorityClassName system-node-critical, no hard-coded group ids, NODE_NAME, /healthz
# liveness on 19400, ports, state/socket/pod-resources mounts, limits, the overlay's device
# access), the ConfigMap's configuration passes `substrated config check`, the PrometheusRule
# carries the same groups as deploy/prometheus/substrated-rules.yml, Service and ServiceMonitor
# select the DaemonSet's pods, and the node-problem-detector plugin config parses and has its
# fields and timeouts. Needs kubectl (its built-in kustomize) and python3 with PyYAML.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
kdir="${1:-$repo/deploy/kubernetes}"
source "$here/lib.sh" deploy-manifests

require_pyyaml
require_tools kubectl
require_substrated
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for overlay in nvidia nvidia-privileged amd; do
  if kubectl kustomize "$kdir/overlays/$overlay" > "$work/$overlay.yaml" 2> "$work/$overlay.err"; then
    pass "overlays/$overlay renders with kubectl kustomize"
  else
    fail "overlays/$overlay does not render: $(tr '\n' ' ' < "$work/$overlay.err")"
  fi
done

out="$(python3 - "$kdir" "$work" "$bin" "$repo" <<'PY' 2>&1 || true
import glob, json, os, re, sys, yaml

kdir, work, binary, repo = sys.argv[1:5]
import subprocess
def check(ok, msg):
    print(("ok   - " if ok else "FAIL - ") + msg)

def quantity(q):
    """Kubernetes quantity -> float (cpu in cores, memory in bytes)."""
    q = str(q)
    units = {"m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    m = re.fullmatch(r"([0-9.]+)(m|k|M|G|Ki|Mi|Gi|)", q)
    if not m:
        raise ValueError("bad quantity " + q)
    return float(m.group(1)) * units[m.group(2)]

def duration(s):
    m = re.fullmatch(r"([0-9.]+)(ms|s|m|h)", str(s))
    if not m:
        raise ValueError("bad duration %r" % s)
    return float(m.group(1)) * {"ms": 1e-3, "s": 1, "m": 60, "h": 3600}[m.group(2)]

report = check

def load(path, label):
    try:
        loaded = [d for d in yaml.safe_load_all(open(path)) if d is not None]
    except (OSError, yaml.YAMLError) as e:
        check(False, "%s parses: %s" % (label, " ".join(str(e).split())))
        return []
    good = all(isinstance(d, dict) and d.get("apiVersion") and d.get("kind") and (d.get("metadata") or {}).get("name")
               for d in loaded)
    check(good and loaded, "%s parses; apiVersion, kind, metadata.name present (%s)"
          % (label, ", ".join(sorted({d.get("kind", "?") for d in loaded}))))
    return loaded

def check_overlay(overlay, docs):
    def one(kind):
        found = [d for d in docs if d.get("kind") == kind]
        check(len(found) == 1, "%s: exactly one %s" % (overlay, kind))
        return found[0] if found else {}
    def check(ok, msg):
        report(ok, msg if msg.startswith(overlay + ":") else overlay + ": " + msg)
    ns = one("Namespace")
    check(ns.get("metadata", {}).get("name") == "substrated", "Namespace is substrated")

    ds = one("DaemonSet")
    check(ds.get("apiVersion") == "apps/v1", "DaemonSet apiVersion apps/v1")
    check(ds.get("metadata", {}).get("namespace") == "substrated", "DaemonSet in namespace substrated")
    spec = ds.get("spec", {})
    tmpl = spec.get("template", {})
    tlabels = tmpl.get("metadata", {}).get("labels", {}) or {}
    sel = (spec.get("selector") or {}).get("matchLabels") or {}
    check(sel and all(tlabels.get(k) == v for k, v in sel.items()),
          "DaemonSet selector.matchLabels %s matches template labels" % sel)
    pod = tmpl.get("spec", {})

    # GPU nodes only: nodeSelector or required node affinity on a GPU label.
    gpu_label = re.compile(r"(nvidia\.com/gpu|pci-10de|pci-1002|amd\.com/gpu|gpu\.intel\.com|accelerator)")
    keys = list((pod.get("nodeSelector") or {}).keys())
    terms = (((pod.get("affinity") or {}).get("nodeAffinity") or {})
             .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
    for t in terms:
        keys += [e.get("key", "") for e in t.get("matchExpressions", []) or []]
    check(any(gpu_label.search(k) for k in keys), "DaemonSet restricted to GPU nodes (%s)" % ", ".join(keys))

    containers = pod.get("containers") or []
    check(len(containers) >= 1, "DaemonSet has a container")
    main = next((c for c in containers if c.get("name") == "substrated"), containers[0] if containers else {})
    cmd = (main.get("command") or []) + (main.get("args") or [])
    check("serve" in cmd, "container runs `substrated serve` (%s)" % " ".join(cmd))

    gpu_res = re.compile(r"(nvidia\.com/|amd\.com/|gpu\.intel\.com/|/gpu)")
    requested = []
    for c in containers + (pod.get("initContainers") or []):
        for part in ("requests", "limits"):
            requested += [k for k in ((c.get("resources") or {}).get(part) or {}) if gpu_res.search(k)]
    check(not requested, "no GPU resources requested from the scheduler%s" % ((": " + ", ".join(requested)) if requested else ""))

    ports = {p.get("name"): p.get("containerPort") for p in main.get("ports") or []}
    check(19400 in ports.values(), "containerPort 19400 (%s)" % ports)
    lp = (main.get("livenessProbe") or {}).get("httpGet") or {}
    lport = lp.get("port")
    lport = ports.get(lport, lport) if isinstance(lport, str) else lport
    check(lp.get("path") == "/healthz" and lport == 19400, "livenessProbe httpGet /healthz on 19400 (%s %s)" % (lp.get("path"), lp.get("port")))
    lto = (main.get("livenessProbe") or {}).get("timeoutSeconds", 1)
    check(lto <= (main.get("livenessProbe") or {}).get("periodSeconds", 10), "liveness timeout <= period")

    res = main.get("resources") or {}
    lim, req = res.get("limits") or {}, res.get("requests") or {}
    try:
        ok = (quantity(lim.get("memory")) == 3 * 2**30 and quantity(lim.get("cpu")) == 0.5
              and quantity(req.get("memory")) == 256 * 2**20 and quantity(req.get("cpu")) == 0.05
              and all(quantity(req[k]) <= quantity(lim[k]) for k in ("cpu", "memory")))
    except Exception as e:
        ok = False
    # Sized from the measured footprint (docs/operations.md#resources; tests/deploy/footprint_test.sh
    # checks them against a fresh measurement).
    check(ok, "requests cpu 50m memory 256Mi, limits cpu 500m memory 3Gi (%s / %s)" % (req, lim))

    sc = main.get("securityContext") or {}
    psc = pod.get("securityContext") or {}
    check("ALL" in ((sc.get("capabilities") or {}).get("drop") or []) and sc.get("readOnlyRootFilesystem") is True,
          "%s: drops all capabilities, read-only root filesystem" % overlay)

    vols = {v.get("name"): v for v in pod.get("volumes") or []}
    mounts = {m.get("name"): m.get("mountPath") for m in main.get("volumeMounts") or []}
    def hostpath_mounted(path, at):
        return any((v.get("hostPath") or {}).get("path") == path and mounts.get(n) == at for n, v in vols.items())
    check(hostpath_mounted("/var/lib/substrated", "/var/lib/substrated"), "state dir hostPath /var/lib/substrated mounted")
    check(hostpath_mounted("/run/substrated", "/run/substrated"), "runtime dir (control socket) hostPath /run/substrated mounted")
    check(all(n in vols for n in mounts), "every volumeMount has a volume")
    nv = {e.get("name"): e.get("value") for e in main.get("env") or []}

    svc = one("Service")
    ssel = (svc.get("spec") or {}).get("selector") or {}
    check(ssel and all(tlabels.get(k) == v for k, v in ssel.items()), "Service selector %s matches the pods" % ssel)
    check(svc.get("metadata", {}).get("name") == "substrated", "Service named substrated (job=\"substrated\" in the rules)")
    sports = (svc.get("spec") or {}).get("ports") or []
    sp = next((p for p in sports if p.get("port") == 19400), None)
    tp = sp and sp.get("targetPort")
    check(sp is not None and (tp == 19400 or tp in ports), "Service port 19400 -> container port (%s)" % tp)

    sm = one("ServiceMonitor")
    smsel = ((sm.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    slabels = svc.get("metadata", {}).get("labels") or {}
    check(smsel and all(slabels.get(k) == v for k, v in smsel.items()), "ServiceMonitor selects the Service")
    eps = (sm.get("spec") or {}).get("endpoints") or []
    check(any(e.get("port") in [p.get("name") for p in sports] and e.get("path", "/metrics") == "/metrics" for e in eps),
          "ServiceMonitor endpoint scrapes the Service's metrics port at /metrics")
    check("substrated" in (((sm.get("spec") or {}).get("namespaceSelector") or {}).get("matchNames") or []),
          "ServiceMonitor namespaceSelector includes substrated")

    # Common to every overlay (issue 21): scheduled first, evicted last; no distribution's group
    # ids; NODE_NAME from the downward API, read by the daemon (substrate_node_info).
    check(pod.get("priorityClassName") == "system-node-critical", "%s: priorityClassName system-node-critical" % overlay)
    groups = [(c or {}).get("supplementalGroups") for c in [psc] + [x.get("securityContext") for x in containers]]
    check(not any(groups), "%s: no hard-coded supplementalGroups (%s)" % (overlay, groups))
    node_env = next((e for e in main.get("env") or [] if e.get("name") == "NODE_NAME"), {})
    check(((node_env.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath") == "spec.nodeName",
          "%s: NODE_NAME from spec.nodeName" % overlay)
    check(hostpath_mounted("/var/lib/kubelet/pod-resources", "/var/lib/kubelet/pod-resources"),
          "%s: the kubelet's pod-resources directory is mounted (pod attribution)" % overlay)
    cfg = [d for d in docs if d.get("kind") == "ConfigMap" and "substrated.yaml" in (d.get("data") or {})]
    check(len(cfg) == 1 and any(v.get("configMap", {}).get("name") == cfg[0]["metadata"]["name"] and mounts.get(n) == "/etc/substrated"
                                for n, v in vols.items()), "%s: the config ConfigMap is mounted at /etc/substrated" % overlay)
    if cfg:
        path = os.path.join(work, overlay + "-substrated.yaml")
        open(path, "w").write(cfg[0]["data"]["substrated.yaml"])
        run = subprocess.run([binary, "config", "check", path], capture_output=True, text=True)
        check(run.returncode == 0, "%s: substrated config check passes on the ConfigMap's config (%s)"
              % (overlay, " ".join((run.stdout + run.stderr).split())[:200]))
        conf = yaml.safe_load(cfg[0]["data"]["substrated.yaml"]) or {}
        check((conf.get("kubelet") or {}).get("pod_resources_socket") == "/var/lib/kubelet/pod-resources/kubelet.sock",
              "%s: the config reads the mounted kubelet socket" % overlay)
    rule = one("PrometheusRule")
    shipped = yaml.safe_load(open(os.path.join(repo, "deploy/prometheus/substrated-rules.yml")))
    check((rule.get("spec") or {}).get("groups") == shipped.get("groups"),
          "%s: PrometheusRule groups equal deploy/prometheus/substrated-rules.yml" % overlay)
    check(((rule.get("metadata") or {}).get("labels") or {}).get("release")
          and ((sm.get("metadata") or {}).get("labels") or {}).get("release"),
          "%s: PrometheusRule and ServiceMonitor carry a release label (kube-prometheus-stack's selector)" % overlay)
    tolerated = {t.get("key") for t in pod.get("tolerations") or []}
    privileged = sc.get("privileged") is True
    if overlay.startswith("nvidia"):
        check(pod.get("runtimeClassName") == "nvidia", "%s: runtimeClassName nvidia" % overlay)
        check(nv.get("NVIDIA_VISIBLE_DEVICES") == "all", "%s: every NVIDIA device exposed without allocation" % overlay)
        check(tolerated == {"nvidia.com/gpu"} and all("10de" in k or "nvidia" in k for k in keys),
              "%s: tolerates and selects NVIDIA nodes only (%s; %s)" % (overlay, tolerated, keys))
        check(privileged == (overlay == "nvidia-privileged"), "%s: privileged is %s" % (overlay, privileged))
    else:
        check("runtimeClassName" not in pod and "NVIDIA_VISIBLE_DEVICES" not in nv, "%s: nothing NVIDIA-only" % overlay)
        check(tolerated == {"amd.com/gpu"} and all("1002" in k or "amd" in k for k in keys),
              "%s: tolerates and selects AMD nodes only (%s; %s)" % (overlay, tolerated, keys))
        check(hostpath_mounted("/dev/kfd", "/dev/kfd") and hostpath_mounted("/dev/dri", "/dev/dri"),
              "%s: /dev/kfd and /dev/dri mounted" % overlay)
        check(privileged, "%s: privileged (a hostPath device does not open the device cgroup)" % overlay)
    if privileged:
        check(sc.get("allowPrivilegeEscalation") is not False, "%s: privileged without escalation=false (the API refuses it)" % overlay)

for overlay in ("nvidia", "nvidia-privileged", "amd"):
    rendered = os.path.join(work, overlay + ".yaml")
    if os.path.exists(rendered) and os.path.getsize(rendered) > 0:
        check_overlay(overlay, load(rendered, "overlays/" + overlay))

kdir = os.path.join(kdir, "base")
docs = load(os.path.join(kdir, "npd-configmap.yaml"), "base/npd-configmap.yaml")
# node-problem-detector custom plugin
pj = os.path.join(kdir, "npd-substrated-plugin.json")
try:
    npd = json.load(open(pj))
    check(True, "npd-substrated-plugin.json parses")
except Exception as e:
    npd = {}
    check(False, "npd-substrated-plugin.json parses: %s" % e)
pc = npd.get("pluginConfig") or {}
check(npd.get("plugin") == "custom" and npd.get("source"), "NPD plugin is custom with a source")
try:
    t = duration(pc.get("timeout")); iv = duration(pc.get("invoke_interval"))
    check(t <= 5 and iv > t, "NPD timeout %ss <= 5s and < invoke_interval %ss" % (t, iv))
except Exception as e:
    check(False, "NPD timeout/invoke_interval: %s" % e)
check(0 < int(pc.get("max_output_length", 80)) <= 80, "NPD max_output_length within 1..80")
conds = {c.get("type"): c for c in npd.get("conditions") or []}
check("AcceleratorUnhealthy" in conds and conds["AcceleratorUnhealthy"].get("reason") and conds["AcceleratorUnhealthy"].get("message"),
      "NPD condition AcceleratorUnhealthy with default reason and message")
rules = npd.get("rules") or []
check(len(rules) >= 1, "NPD has rules")
for r in rules:
    ok = (r.get("type") in ("temporary", "permanent")
          and (r.get("type") == "temporary" or r.get("condition") in conds)
          and r.get("reason") and r.get("path") == "/usr/bin/substrated"
          and r.get("args") == ["probe", "--npd"])
    try:
        ok = ok and duration(r.get("timeout", pc.get("timeout"))) <= duration(pc.get("timeout"))
    except Exception:
        ok = False
    check(ok, "NPD rule %s: /usr/bin/substrated probe --npd, condition, reason, timeout <= plugin timeout" % r.get("reason"))

cms = [d for d in docs if d.get("kind") == "ConfigMap" and "substrated-plugin.json" in (d.get("data") or {})]
try:
    same = bool(cms) and json.loads(cms[0]["data"]["substrated-plugin.json"]) == npd
except Exception:
    same = False
check(same, "NPD ConfigMap carries the same plugin JSON as npd-substrated-plugin.json")
PY
)"
while IFS= read -r line; do
  case "$line" in
    "ok   - "*) pass "${line#ok   - }" ;;
    "FAIL - "*) fail "${line#FAIL - }" ;;
    "") ;;
    *) fail "python: $line" ;;
  esac
done <<< "$out"
[[ $((passed + failed)) -gt 0 ]] || fail "no checks ran"
finish
