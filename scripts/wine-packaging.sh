#!/usr/bin/env bash
# Rampart's Windows packaging, run for real under Wine, all traffic on
# loopback (issue 13, parts 6 and 7):
#   1. builds rampart-agent.exe, rampart.exe and rampart-installer.exe for
#      x86_64-pc-windows-gnu, and Rampart.msi from packaging/windows/rampart.wxs
#      with wixl (msitools);
#   2. the service through the installer's own Windows plan:
#      `rampart-installer.exe install` (sc.exe create/config/failure, reg.exe,
#      sc.exe start), `rampart-agent.exe status` over \\.\pipe\rampart-agent
#      with no flags, `sc stop`, `net start`, `rampart-installer.exe uninstall`;
#   3. the MSI: `msiexec /i Rampart.msi /qn POLICY_URL=... POLICY_PUBKEY=...
#      DEVICE_ID=...`: files, the service the MSI registered and started, the
#      Run key, agent.json written from the properties, the agent fetching its
#      signed policy from POLICY_URL; then `msiexec /x`: all gone but state.
#
#   scripts/wine-packaging.sh    build, then test
#   RAMPART_WINDOWS_BIN_DIR=DIR scripts/wine-packaging.sh
#                                test the .exe files in DIR (the directory
#                                scripts/cross.sh prints; scripts/test.sh
#                                exports it)
#
# Each run uses a fresh copy of the Wine prefix and a network namespace that
# has only loopback (`unshare -n`: root, or unprivileged user namespaces).
# The agent's policy names only 127.0.0.1 endpoints, and its policy server is
# a local python http.server. Exits non-zero at the first failed check.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
port=8123

# ---------------------------------------------------------------- inside --
# Runs in the network namespace: $1 is the work directory prepared outside.
if [[ ${1:-} == --inside ]]; then
    work=$2
    export WINEPREFIX=$work/prefix
    wineserver=/usr/lib/wine/wineserver
    C=$WINEPREFIX/drive_c
    pf="$C/Program Files/Rampart"
    pd=$C/ProgramData/Rampart
    agent_exe='C:\Program Files\Rampart\rampart-agent.exe'
    url="http://127.0.0.1:$port/policy.json"
    pubkey=$(sed -n 2p "$work/policy.pub")
    svc_key='HKLM\System\CurrentControlSet\Services\RampartAgent'

    http_pid=""
    keeper_pid=""
    # shellcheck disable=SC2317 # called by the EXIT trap
    cleanup() {
        exec 3>&- 2>/dev/null || true
        [[ -n $keeper_pid ]] && { kill "$keeper_pid" 2>/dev/null || true; }
        "$wineserver" -k 2>/dev/null || true
        [[ -n $http_pid ]] && { kill "$http_pid" 2>/dev/null || true; wait "$http_pid" 2>/dev/null || true; }
    }
    trap cleanup EXIT

    checks=0
    ok() { checks=$((checks + 1)); echo "ok    $*"; }
    fail() {
        echo "FAIL  $*" >&2
        for log in "$pd"/logs/agent.*.log "$C"/msi-*.log; do
            [[ -f $log ]] || continue
            echo "---- $(basename "$log") (last 30 lines) ----" >&2
            tail -n 30 "$log" | tr -d '\r' >&2
        done
        exit 1
    }
    # A Windows program, its output without carriage returns. Through a file,
    # not a pipe: wineserver keeps the write end of a program's standard
    # handles open after it exits, and a reader would wait for ever.
    w() {
        local rc=0
        timeout 60 "$WINE" "$@" </dev/null >"$work/w.out" 2>&1 || rc=$?
        tr -d '\r' <"$work/w.out"
        return "$rc"
    }

    ip link set lo up
    python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work/www" \
        >"$work/http.log" 2>&1 &
    http_pid=$!

    # Wine ends its session, services included, as soon as no ordinary
    # process is left: between two commands the agent would be killed. A
    # cmd.exe reading a pipe we hold open keeps the session up.
    mkfifo "$work/keep"
    "$WINE" cmd.exe <"$work/keep" >/dev/null 2>&1 &
    keeper_pid=$!
    exec 3>"$work/keep"

    service_state() {
        w sc.exe query RampartAgent | sed -n 's/^ *STATE *: *[0-9]* *\([A-Z_]*\).*/\1/p'
    }
    wait_state() {
        local want=$1 i
        for ((i = 0; i < 60; i++)); do
            [[ $(service_state) == "$want" ]] && return 0
            sleep 0.5
        done
        return 1
    }
    # The agent's status as JSON, through the system pipe it finds alone.
    status_json() { w "$agent_exe" status --json; }
    # Waits until the agent runs on the policy served at POLICY_URL.
    wait_remote_policy() {
        local i json
        for ((i = 0; i < 60; i++)); do
            json=$(status_json || true)
            if [[ -n $json ]] && python3 -c '
import json, sys
s = json.loads(sys.argv[1])
sys.exit(0 if s["agent"]["mode"] == "system" and s["policy"]["source"] == "remote" and s["policy"]["serial"] == 2 else 1)
' "$json" 2>/dev/null; then
                return 0
            fi
            sleep 0.5
        done
        echo "last status: ${json:-none}" >&2
        return 1
    }
    # The managed policy, signed: the agent never holds a policy that names
    # anything but loopback, not even before its first fetch.
    place_managed_policy() {
        mkdir -p "$pd"
        cp "$work/managed/policy.json" "$work/managed/policy.json.minisig" "$pd/"
    }
    # A deleted service's key goes when the SCM lets go of it, which may be
    # a moment after the command that deleted it returned (a stop pending).
    service_gone() {
        local i
        for ((i = 0; i < 40; i++)); do
            w reg.exe query "$svc_key" >/dev/null || return 0
            sleep 0.5
        done
        return 1
    }
    json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

    echo "== rampart-installer.exe install: the installer's Windows plan"
    # Wine 8's sc.exe knows create, description, failure, delete, start, stop,
    # query and sdset: no `config`, so the plan (create, then config to bring
    # an upgraded service's command line up to date) stops there. What comes
    # before it is checked; the service itself is tested with plain sc.exe
    # below and through the MSI.
    place_managed_policy
    out=$(w 'C:\rampart-dist\rampart-installer.exe' install --from 'C:\rampart-dist' \
        --policy-url "$url" --pubkey 'C:\rampart-dist\policy.pub' --device-id wine-installer) && installed=yes || installed=no
    grep -q '^ran `sc.exe create RampartAgent' <<<"$out" || fail "install did not run sc.exe create: $out"
    [[ -f "$pf/rampart-agent.exe" && -f "$pf/rampart.exe" ]] || fail "binaries not in Program Files\\Rampart: $out"
    [[ $(json_field "$pd/agent.json" policy_url) == "$url" ]] || fail "agent.json: $(cat "$pd/agent.json")"
    grep -q 'rampart-agent.exe" run --windows-service --config' <<<"$(w reg.exe query "$svc_key" /v ImagePath)" ||
        fail "service command line: $(w reg.exe query "$svc_key")"
    ok "install copied the binaries, wrote agent.json ($url) and ran sc.exe create RampartAgent"
    if [[ $installed == yes ]]; then
        ok "install ran its whole plan (this Wine's sc.exe has config)"
    else
        grep -q 'sc.exe config RampartAgent .* failed: exit code: 1' <<<"$out" || fail "install failed: $out"
        echo "note  install stopped at \`sc.exe config\`: Wine 8's sc.exe has no config subcommand"
    fi
    w 'C:\rampart-dist\rampart-installer.exe' uninstall >/dev/null || fail "uninstall: $(cat "$work/w.out")"
    service_gone || fail "service still registered after uninstall: $(cat "$work/w.out")"
    [[ ! -e "$pf/rampart-agent.exe" && ! -e "$pd/agent.json" ]] ||
        fail "after uninstall: $(ls -R "$pf" "$pd" 2>&1)"
    ok "rampart-installer.exe uninstall: sc.exe delete, binaries and agent.json removed"

    echo "== the service: sc.exe create, net start, status, sc stop, sc delete"
    rm -rf "$pd"
    place_managed_policy
    mkdir -p "$pf"
    cp "$C/rampart-dist/rampart-agent.exe" "$pf/"
    out=$(w 'C:\rampart-dist\rampart-installer.exe' configure --policy-url "$url" \
        --pubkey-text "$pubkey" --device-id wine-service) || fail "configure: $out"
    [[ $(json_field "$pd/agent.json" policy_url) == "$url" ]] || fail "agent.json: $(cat "$pd/agent.json")"
    ok "rampart-installer.exe configure wrote agent.json"
    w sc.exe create RampartAgent binPath= "\"$agent_exe\" run --windows-service" start= auto \
        DisplayName= "Rampart Agent" >/dev/null || fail "sc create: $(cat "$work/w.out")"
    ok "sc.exe create RampartAgent binPath= \"\\\"$agent_exe\\\" run --windows-service\""
    w net.exe start RampartAgent >/dev/null || fail "net start: $(cat "$work/w.out")"
    wait_state RUNNING || fail "service state $(service_state), wanted RUNNING"
    ok "net start RampartAgent: RUNNING"
    wait_remote_policy || fail "the service never ran on the policy from $url"
    ok "rampart-agent.exe status (no flags) answers over \\\\.\\pipe\\rampart-agent: system mode, policy serial 2 from $url"
    w sc.exe stop RampartAgent >/dev/null || fail "sc stop: $(cat "$work/w.out")"
    wait_state STOPPED || fail "service state $(service_state) after sc stop"
    grep -q 'stopped reason=Requested' <(cat "$pd"/logs/agent.*.log) || fail "the agent did not log a requested stop"
    ok "sc stop: STOPPED; the agent logged \"stopped reason=Requested\""
    out=$(w "$agent_exe" status) && fail "status answered with the service stopped: $out"
    grep -q 'not running' <<<"$out" || fail "status with the service stopped said: $out"
    ok "status with the service stopped: not running"
    w sc.exe start RampartAgent >/dev/null || fail "sc start: $(cat "$work/w.out")"
    wait_state RUNNING || fail "service state $(service_state) after sc start"
    wait_remote_policy || fail "no status after sc start"
    ok "sc start: RUNNING again, status answers"
    w sc.exe stop RampartAgent >/dev/null || fail "sc stop: $(cat "$work/w.out")"
    wait_state STOPPED || fail "service state $(service_state) after the second sc stop"
    w sc.exe delete RampartAgent >/dev/null || fail "sc delete: $(cat "$work/w.out")"
    service_gone || fail "service still registered after sc delete: $(cat "$work/w.out")"
    ok "sc stop, sc delete: service gone"

    echo "== Rampart.msi through msiexec"
    # A machine that never had Rampart: no last-known-good policy or serial
    # floor from the run above.
    rm -rf "$pd"
    place_managed_policy
    # A property the agent would refuse fails the install, which rolls back.
    w msiexec.exe /i 'C:\rampart-dist\Rampart.msi' /qn /l*v 'C:\msi-refused.log' \
        POLICY_URL=http://policy.example.com/policy.json POLICY_PUBKEY="$pubkey" >/dev/null &&
        fail "msiexec /i accepted a plain-http POLICY_URL"
    [[ ! -e "$pf/rampart-agent.exe" && ! -e "$pd/agent.json" ]] || fail "files left by the refused install: $(ls "$pf")"
    w reg.exe query "$svc_key" >/dev/null && fail "service left by the refused install"
    ok "msiexec /i with POLICY_URL=http://policy.example.com/...: refused, rolled back (no files, no service)"
    w msiexec.exe /i 'C:\rampart-dist\Rampart.msi' /qn /l*v 'C:\msi-install.log' \
        POLICY_URL="$url" POLICY_PUBKEY="$pubkey" DEVICE_ID=wine-msi >/dev/null ||
        fail "msiexec /i exited $?"
    ok "msiexec /i Rampart.msi /qn POLICY_URL=$url POLICY_PUBKEY=... DEVICE_ID=wine-msi"
    for exe in rampart-agent.exe rampart.exe rampart-installer.exe; do
        [[ -f "$pf/$exe" ]] || fail "$exe not installed"
    done
    ok "rampart-agent.exe, rampart.exe, rampart-installer.exe in C:\\Program Files\\Rampart"
    svc=$(w reg.exe query "$svc_key") || fail "no service after msiexec /i"
    grep -q 'ImagePath.*rampart-agent.exe"\? run --windows-service *$' <<<"$svc" || fail "service: $svc"
    grep -q 'Start *REG_DWORD *0x2$' <<<"$svc" || fail "service not auto start: $svc"
    grep -q 'ObjectName *REG_SZ *LocalSystem' <<<"$svc" || fail "service account: $svc"
    ok "service RampartAgent: auto start, LocalSystem, run --windows-service"
    [[ -f "$pd/agent.json" ]] || fail "no agent.json after msiexec /i"
    [[ $(json_field "$pd/agent.json" policy_url) == "$url" &&
        $(json_field "$pd/agent.json" device_id) == wine-msi &&
        $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["public_keys"][0])' "$pd/agent.json") == "$pubkey" ]] ||
        fail "agent.json does not hold the properties: $(cat "$pd/agent.json")"
    ok "agent.json from the MSI properties: policy_url, public_keys, device_id"
    grep -q 'rampart.exe' <<<"$(w reg.exe query 'HKLM\Software\Microsoft\Windows\CurrentVersion\Run' /v Rampart)" ||
        fail "no Run key for the app"
    ok "HKLM\\...\\Run\\Rampart starts the app at login"
    wait_state RUNNING || fail "service state $(service_state) after msiexec /i, wanted RUNNING"
    wait_remote_policy || fail "the MSI's service never ran on the policy from POLICY_URL"
    ok "the MSI started the service; status: system mode, policy serial 2 fetched from POLICY_URL"
    if w reg.exe query "$svc_key" /v FailureActions >/dev/null; then
        ok "restart-on-failure actions stored"
    else
        echo "note  sc.exe failure ran (custom action SetFailureActions) but Wine 8 stores no FailureActions: not checkable here"
    fi
    w msiexec.exe /x 'C:\rampart-dist\Rampart.msi' /qn /l*v 'C:\msi-uninstall.log' >/dev/null ||
        fail "msiexec /x exited $?"
    ok "msiexec /x Rampart.msi /qn"
    service_gone || fail "service still registered after msiexec /x: $(cat "$work/w.out")"
    ok "service deleted"
    [[ ! -e "$pf/rampart-agent.exe" && ! -e "$pf/rampart.exe" && ! -e "$pf/rampart-installer.exe" ]] ||
        fail "binaries left after msiexec /x: $(ls "$pf")"
    [[ ! -e "$pd/agent.json" ]] || fail "agent.json left after msiexec /x"
    [[ -d "$pd/state" && -f "$pd/policy.json" ]] || fail "state or IT's policy file removed by msiexec /x"
    ok "binaries and agent.json removed; state and IT's policy.json kept"
    w reg.exe query 'HKLM\Software\Microsoft\Windows\CurrentVersion\Run' /v Rampart >/dev/null &&
        fail "Run key left after msiexec /x"
    ok "Run key removed"
    echo "all $checks checks passed"
    exit 0
fi

# --------------------------------------------------------------- outside --
start=$(date +%s)
# shellcheck source=scripts/cross-env.sh
source "$here/cross-env.sh"
# shellcheck source=scripts/wine-env.sh
source "$here/wine-env.sh"
for tool in wixl msiinfo minisign python3 unshare; do
    command -v "$tool" >/dev/null || {
        echo "wine-packaging: $tool is missing (apt-get install wixl msitools minisign python3 util-linux)" >&2
        exit 2
    }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/rampart-wine-pkg.XXXXXX")
trap '[[ -n ${RAMPART_KEEP_WORK:-} ]] || rm -rf "$work"' EXIT

# Stripped copies: the debug builds are 200-400 MB each, and the MSI need not
# carry their symbols.
mkdir -p "$work/bin"
if [[ -n ${RAMPART_WINDOWS_BIN_DIR:-} ]]; then
    bin=$RAMPART_WINDOWS_BIN_DIR
else
    echo "== building for x86_64-pc-windows-gnu ($CROSS_MODE)"
    # shellcheck disable=SC2086 # CROSS_CARGO is a command line
    (cd "$root" && $CROSS_CARGO build --quiet --target x86_64-pc-windows-gnu \
        -p rampart-agent -p rampart -p rampart-installer)
    bin=$CROSS_TARGET_DIR/x86_64-pc-windows-gnu/debug
fi
for exe in rampart-agent rampart rampart-installer; do
    x86_64-w64-mingw32-strip -o "$work/bin/$exe.exe" "$bin/$exe.exe"
done

echo "== Rampart.msi with $(wixl --version 2>&1 | head -n1 | sed 's/^/wixl /')"
version=$(cd "$root" && cargo metadata --no-deps --format-version 1 |
    python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "rampart-agent"))')
# wixl warns about attributes only WiX reads (Secure, Platform, Permanent);
# anything else it says is shown.
(cd "$work" && wixl -a x64 -D Version="$version" -D TargetDir=bin -o Rampart.msi \
    "$root/packaging/windows/rampart.wxs") >"$work/wixl.log" 2>&1 ||
    { cat "$work/wixl.log" >&2; echo "FAIL  wixl" >&2; exit 1; }
grep -v -e '^$' -e "has no property named '\(Secure\|Platform\|Permanent\)'" "$work/wixl.log" >&2 || true
[[ -s $work/Rampart.msi ]] || { echo "FAIL  wixl built no Rampart.msi" >&2; exit 1; }
# Read whole, then searched: `msiinfo | grep -q` fails under pipefail
# whenever grep stops reading first.
tables=$(msiinfo export "$work/Rampart.msi" ServiceInstall; msiinfo export "$work/Rampart.msi" CustomAction)
grep -q $'\tRampartAgent\tRampart Agent\t16\t2\t1\t.*\tLocalSystem\t\trun --windows-service\t' <<<"$tables" ||
    { echo "FAIL  ServiceInstall table: $tables" >&2; exit 1; }
grep -q '^WriteInstallConfig' <<<"$tables" || { echo "FAIL  no WriteInstallConfig custom action: $tables" >&2; exit 1; }
echo "ok    wixl built Rampart.msi ($(du -h "$work/Rampart.msi" | cut -f1)): ServiceInstall, ServiceControl, custom actions"

# The signing key for the test's policy; the agent pins its public half.
minisign -G -W -f -p "$work/policy.pub" -s "$work/policy.key" >/dev/null
loopback_policy() {
    cat <<EOF
{"schema": 1, "serial": $1, "mfa": {"required": true},
 "clock": {"ntp_servers": ["127.0.0.1:9"]},
 "links": {"offline_guide_url": "https://127.0.0.1:9/offline-access",
           "support_url": "https://127.0.0.1:9/support"}}
EOF
}
mkdir -p "$work/managed" "$work/www"
loopback_policy 1 >"$work/managed/policy.json"
loopback_policy 2 >"$work/www/policy.json"
for f in "$work/managed/policy.json" "$work/www/policy.json"; do
    minisign -S -s "$work/policy.key" -m "$f" >/dev/null
done

echo "== fresh Wine prefix"
cp -a "$WINEPREFIX" "$work/prefix"
mkdir -p "$work/prefix/drive_c/rampart-dist"
cp "$work"/bin/*.exe "$work/Rampart.msi" "$work/policy.pub" "$work/prefix/drive_c/rampart-dist/"

status=0
timeout 900 unshare -n "$0" --inside "$work" || status=$?
echo "wine-packaging: $(($(date +%s) - start)) s"
exit "$status"
