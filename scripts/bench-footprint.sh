#!/usr/bin/env bash
# The agent's footprint beside chronyd's, release builds:
#   - binary sizes on disk (agent, app), and chronyd's;
#   - cold start: exec to the first answered `status` over the socket, by a
#     client in another process (python3) that connects as soon as it can;
#   - idle, after SETTLE seconds: RSS, threads, and wake-ups (context
#     switches of every thread) over the next minute.
# The agent runs in dev mode with a loopback-only policy in a scratch HOME
# (the clock and network checks fail fast at 127.0.0.1:9, as in the tests).
# Needs chrony and python3. Usage: scripts/bench-footprint.sh [RUNS] [SETTLE]
set -euo pipefail

runs=${1:-20}
settle=${2:-90}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && cargo build --quiet --release -p rampart-agent -p rampart --bins)
agent=$target/release/rampart-agent
app=$target/release/rampart
chronyd=$(command -v chronyd || echo /usr/sbin/chronyd)

tmp=$(mktemp -d /tmp/rampart-footprint.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
echo "== binaries on disk =="
echo "  rampart-agent  $(mb "$(stat -c %s "$agent")")"
echo "  rampart (app)  $(mb "$(stat -c %s "$app")")"
echo "  chronyd        $(mb "$(stat -c %s "$chronyd")")"

# shellcheck source=lib/loopback-home.sh
source "$root/scripts/lib/loopback-home.sh"
home=$tmp/home
loopback_home "$home" footprint
agent_cmd=(env -i PATH="$PATH" "${LOOPBACK_ENV[@]}" NO_COLOR=1
    "$agent" run --dev --config "$LOOPBACK_CONFIG" --socket "$home/agent.sock")
# exec: the background job's pid is the agent's, not a subshell's.
run_agent() { exec "${agent_cmd[@]}" "$@"; }

echo
echo "== cold start: exec to the first status answer ($runs runs) =="
cat >"$tmp/first-status.py" <<'EOF'
import json, os, socket, subprocess, sys, time
sock_path, argv = sys.argv[1], sys.argv[2:]
try:
    os.unlink(sock_path)
except FileNotFoundError:
    pass
start = time.perf_counter()
child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while True:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(sock_path)
        break
    except (FileNotFoundError, ConnectionRefusedError):
        s.close()
        time.sleep(0.0002)
f = s.makefile("rwb")
f.write(b'{"id":1,"request":{"type":"hello","protocol":1,"client":"bench"}}\n{"id":2,"request":{"type":"status"}}\n')
f.flush()
f.readline()
reply = json.loads(f.readline())
took = time.perf_counter() - start
assert reply["reply"]["response"]["type"] == "status", reply
child.terminate()
child.wait()
print(f"{took * 1000:.2f}")
EOF
for _ in $(seq "$runs"); do
    rm -rf "$LOOPBACK_STATE" "$home/.local/share"
    python3 "$tmp/first-status.py" "$home/agent.sock" "${agent_cmd[@]}"
done | sort -g | awk '{ v[NR] = $1 } END { printf "  rampart-agent: median %.2f ms, min %.2f ms, max %.2f ms\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, v[1], v[NR] }'

# Idle figures for one process: RSS and threads from /proc, wake-ups as the
# context switches of all its threads over 60 s.
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { n += $2 } END { print n + 0 }'; }
idle() {
    local name=$1 pid=$2
    sleep "$settle"
    local before rss anon threads
    before=$(switches "$pid")
    sleep 60
    rss=$(awk '/^VmRSS/ { print $2 }' /proc/"$pid"/status)
    anon=$(awk '/^RssAnon/ { print $2 }' /proc/"$pid"/status)
    threads=$(awk '/^Threads/ { print $2 }' /proc/"$pid"/status)
    # RSS counts the program's and libc's code pages too (shared, from the
    # page cache); RssAnon is the memory the process itself holds.
    printf "  %-14s RSS %5.1f MB (anonymous %4.1f MB), %2d threads, %4d wake-ups/min\n" "$name" \
        "$(awk -v k="$rss" 'BEGIN { print k * 1024 / 1e6 }')" "$(awk -v k="$anon" 'BEGIN { print k * 1024 / 1e6 }')" \
        "$threads" "$(( $(switches "$pid") - before ))"
}

echo
echo "== idle, measured ${settle}s after start, wake-ups over the next minute =="
run_agent >/dev/null 2>&1 &
agent_pid=$!
pids+=("$agent_pid")
cat >"$tmp/chrony.conf" <<EOF
port 11123
bindaddress 127.0.0.1
allow 127.0.0.0/8
local stratum 8
cmdport 0
pidfile $tmp/chrony.pid
driftfile $tmp/chrony.drift
EOF
"$chronyd" -x -d -u root -4 -f "$tmp/chrony.conf" >/dev/null 2>&1 &
chrony_pid=$!
pids+=("$chrony_pid")
idle rampart-agent "$agent_pid" &
idle_agent=$!
idle chronyd "$chrony_pid"
wait "$idle_agent"
