#!/usr/bin/env bash
# Builds the Debian package from a configured build tree (deploy/package.cmake, CPack DEB), checks it
# with lintian, and installs it on this machine: `systemd-analyze verify` of the installed unit,
# `substrated --version`, man page and bash completion against the binary's --help, an upgrade to a
# later Debian revision that keeps a changed /etc/substrated/substrated.yaml, remove (config kept)
# and purge (config and state gone). The machine's PID 1 need not be systemd: the maintainer scripts
# record the enablement with deb-systemd-helper and start the service only under systemd.
#
# Needs root, dpkg, cpack, lintian (scripts/install-deps.sh). Refuses to run when a substrated
# package is already installed; purges what it installed on exit.
#
# Usage: SUBSTRATED_BIN=build/substrated tests/deploy/package_test.sh   (build dir = the binary's dir)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
source "$here/lib.sh" deploy-package

require_tools cpack dpkg dpkg-deb lintian systemd-analyze
require_substrated
build="$(cd "$(dirname "$bin")" && pwd)"
[[ -f "$build/CPackConfig.cmake" ]] || { fail "no CPackConfig.cmake in $build (configure with deploy/package.cmake)"; finish; exit 1; }
[[ "$(id -u)" -eq 0 ]] || { fail "needs root (dpkg -i)"; finish; exit 1; }
if dpkg-query -W -f='${Status}' substrated 2>/dev/null | grep -q "installed\|config-files"; then
  fail "a substrated package is already on this machine; not touching it (dpkg --purge substrated)"
  finish; exit 1
fi

tmp="$(mktemp -d)"
installed=0
cleanup() {
  if [[ "$installed" -eq 1 ]]; then dpkg --purge substrated >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
export DEBIAN_FRONTEND=noninteractive

# 1. Two packages from the same build: this build (revision from the build, normally 1) and a later
#    revision standing in for the next release.
release="$(sed -nE 's/^set\(CPACK_DEBIAN_PACKAGE_RELEASE "([^"]*)"\)/\1/p' "$build/CPackConfig.cmake")"
next=$((release + 1))
if ! out="$(cpack -G DEB --config "$build/CPackConfig.cmake" -B "$tmp/v1" 2>&1)"; then
  fail "cpack failed:"; echo "$out" | sed 's/^/    /'; finish; exit 1
fi
if ! out="$(cpack -G DEB --config "$build/CPackConfig.cmake" -B "$tmp/v2" -D CPACK_DEBIAN_PACKAGE_RELEASE="$next" 2>&1)"; then
  fail "cpack (revision $next) failed:"; echo "$out" | sed 's/^/    /'; finish; exit 1
fi
deb1="$(ls "$tmp"/v1/substrated_*.deb)"
deb2="$(ls "$tmp"/v2/substrated_*.deb)"
v1="$(dpkg-deb -f "$deb1" Version)"
v2="$(dpkg-deb -f "$deb2" Version)"
pass "cpack: $(basename "$deb1") ($(du -k "$deb1" | cut -f1) KiB), $(basename "$deb2")"
dpkg --compare-versions "$v2" gt "$v1" && pass "version $v2 > $v1" || fail "version $v2 is not above $v1"

# 2. Contents and control fields.
contents="$(dpkg-deb -c "$deb1" | awk '{print $6}' | sed 's#^\./#/#')"
for f in /usr/bin/substrated /etc/substrated/substrated.yaml /usr/share/man/man8/substrated.8.gz \
         /usr/share/bash-completion/completions/substrated /usr/share/doc/substrated/copyright \
         /usr/share/doc/substrated/changelog.Debian.gz; do
  grep -qx "$f" <<<"$contents" && pass "contains $f" || fail "missing $f"
done
unit="$(grep -E '^(/usr)?/lib/systemd/system/substrated\.service$' <<<"$contents" || true)"
[[ -n "$unit" ]] && pass "contains $unit" || fail "no systemd unit under /lib/systemd/system or /usr/lib/systemd/system"
depends="$(dpkg-deb -f "$deb1" Depends)"
if grep -q "libvulkan1" <<<"$depends" && grep -q "libc6 (>=" <<<"$depends"; then
  pass "Depends (shlibdeps + loader): $depends"
else
  fail "Depends lacks libvulkan1 or the computed libc6: $depends"
fi
conffiles="$(dpkg-deb --ctrl-tarfile "$deb1" | tar -xO ./conffiles)"
[[ "$conffiles" == "/etc/substrated/substrated.yaml" ]] && pass "conffiles: $conffiles" || fail "conffiles: '$conffiles'"

# 3. lintian: no errors or warnings (what lintian shows by default); info tags are printed. Tags
#    inherent to the package are overridden in it, with reasons (deploy/debian/lintian-overrides).
lint="$(lintian --display-info --fail-on error,warning "$deb1" 2>&1)" && lint_rc=0 || lint_rc=$?
if [[ "$lint_rc" -eq 0 && -z "$(grep -E '^[EW]: ' <<<"$lint" || true)" ]]; then
  pass "lintian $(lintian --version | awk '{print $2}'): no errors or warnings"
else
  fail "lintian:"; echo "$lint" | sed 's/^/    /'
fi
grep -E '^I: ' <<<"$lint" | sed 's/^/# lintian info: /' || true

# 4. Install.
if out="$(dpkg -i "$deb1" 2>&1 </dev/null)"; then
  installed=1; pass "dpkg -i $v1"
else
  installed=1; fail "dpkg -i:"; echo "$out" | sed 's/^/    /'; finish; exit 1
fi
if [[ -L /etc/systemd/system/multi-user.target.wants/substrated.service ]]; then
  pass "enabled (multi-user.target.wants link; started only when systemd is PID 1)"
else
  fail "postinst did not enable substrated.service"
fi
if out="$(systemd-analyze verify "$unit" 2>&1)" && [[ -z "$out" ]]; then
  pass "systemd-analyze verify $unit: clean"
else
  fail "systemd-analyze verify $unit:"; echo "$out" | sed 's/^/    /'
fi
grep -q "^ExecStart=/usr/bin/substrated serve --config /etc/substrated/substrated.yaml$" "$unit" \
  && pass "installed unit starts /usr/bin/substrated with /etc/substrated/substrated.yaml" \
  || fail "installed unit's ExecStart= is not /usr/bin/substrated serve --config /etc/substrated/substrated.yaml"
version="$(/usr/bin/substrated --version)"
[[ "$version" == "substrated ${v1%-*}" ]] && pass "substrated --version: $version" || fail "substrated --version: '$version' (package $v1)"
/usr/bin/substrated config check /etc/substrated/substrated.yaml >/dev/null && pass "installed config is valid" \
  || fail "installed config fails config check"

# 5. Man page and completion list what the binary's --help lists.
commands="$(/usr/bin/substrated --help | awk '/^commands:/ {on = 1; next} on && /^  [a-z]/ {print $1}')"
probe_opts="$(/usr/bin/substrated probe --help | grep -oE '^  --[a-z.-]+' | tr -d ' ')"
man="$(zcat /usr/share/man/man8/substrated.8.gz)"
completion="$(cat /usr/share/bash-completion/completions/substrated)"
missing=""
for word in $commands $probe_opts; do
  grep -qF -- "${word//-/\\-}" <<<"$man" || missing+=" man:$word"
  grep -qwF -- "$word" <<<"$completion" || missing+=" completion:$word"
done
[[ -z "$missing" ]] && pass "man page and completion cover $(wc -w <<<"$commands") commands, $(wc -w <<<"$probe_opts") probe options" \
  || fail "not covered:$missing"
if warnings="$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z /usr/share/man/man8/substrated.8.gz 2>&1 >/dev/null)" \
   && [[ -z "$warnings" ]]; then
  pass "man page renders without groff warnings"
else
  fail "man page warnings:"; echo "$warnings" | sed 's/^/    /'
fi
if [[ -f /usr/share/bash-completion/bash_completion ]]; then
  complete_words() {  # complete_words WORD...: what <TAB> after the words offers
    bash -c 'source /usr/share/bash-completion/bash_completion
             source /usr/share/bash-completion/completions/substrated
             COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
             _substrated; echo "${COMPREPLY[*]}"' _ "$@"
  }
  got_commands="$(complete_words substrated '')"
  got_probe="$(complete_words substrated probe --)"
  got_mode="$(complete_words substrated probe --mode '')"
  if [[ "$got_commands" == *serve*probe* || "$got_commands" == *probe*serve* ]] && [[ "$got_probe" == *--kernel* && "$got_probe" == *--local* ]] \
     && [[ "$got_mode" == "exact random" ]]; then
    pass "bash completion: commands, probe options, --mode values"
  else
    fail "bash completion: commands '$got_commands', probe '$got_probe', --mode '$got_mode'"
  fi
else
  fail "bash-completion not installed (scripts/install-deps.sh)"
fi

# 6. Upgrade over this build keeps a changed conffile.
sed -i 's/^  port: 19400$/  port: 19401/' /etc/substrated/substrated.yaml
echo "# changed by package_test" >> /etc/substrated/substrated.yaml
if out="$(dpkg -i "$deb2" 2>&1 </dev/null)"; then
  pass "upgrade $v1 -> $v2"
else
  fail "dpkg -i (upgrade):"; echo "$out" | sed 's/^/    /'
fi
[[ "$(dpkg-query -W -f='${Version}' substrated)" == "$v2" ]] && pass "installed version is $v2" || fail "installed version is not $v2"
if grep -q "^# changed by package_test$" /etc/substrated/substrated.yaml && grep -q "^  port: 19401$" /etc/substrated/substrated.yaml \
   && [[ ! -e /etc/substrated/substrated.yaml.dpkg-new && ! -e /etc/substrated/substrated.yaml.dpkg-dist ]]; then
  pass "upgrade kept the changed /etc/substrated/substrated.yaml"
else
  fail "upgrade replaced or shadowed the changed configuration"
fi
[[ -L /etc/systemd/system/multi-user.target.wants/substrated.service ]] && pass "still enabled after upgrade" \
  || fail "upgrade lost the enablement"

# 7. Remove keeps the configuration; purge removes it and the daemon's state.
mkdir -p /var/lib/private/substrated && ln -sfn private/substrated /var/lib/substrated
echo state > /var/lib/private/substrated/fingerprints
if dpkg -r substrated >/dev/null 2>&1 </dev/null && [[ -f /etc/substrated/substrated.yaml && ! -e /usr/bin/substrated ]]; then
  pass "remove: binary gone, configuration kept"
else
  fail "remove did not keep the configuration or left the binary"
fi
if dpkg --purge substrated >/dev/null 2>&1 </dev/null; then
  installed=0
  gone=1
  for p in /etc/substrated /var/lib/substrated /var/lib/private/substrated \
           /etc/systemd/system/multi-user.target.wants/substrated.service; do
    if [[ -e "$p" || -L "$p" ]]; then gone=0; fail "purge left $p"; fi
  done
  [[ "$gone" -eq 1 ]] && pass "purge removed /etc/substrated, /var/lib/substrated and the enablement"
  status="$(dpkg-query -W -f='${Status}' substrated 2>/dev/null || true)"
  [[ -z "$status" || "$status" == *not-installed ]] && pass "dpkg: substrated not installed ('$status')" \
    || fail "dpkg still lists substrated: $status"
else
  fail "dpkg --purge failed"
fi

finish
