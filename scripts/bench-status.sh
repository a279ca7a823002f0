#!/usr/bin/env bash
# Status latency over the agent's socket with the client in another process
# (`rampart-status-load`, tests/src/bin/: one thread, epoll), release builds:
#   - closed loop (next request when the answer arrives) at 1 and 200
#     connections, open loop at 1 connection x 1,000 req/s and 200
#     connections x 10,000 req/s in all (latency from each request's
#     scheduled send time; `late` = sent over 0.25 ms behind schedule,
#     `lag99` = the 99th percentile of that delay: the client's own lateness;
#     `ans99` = of the answer's time from the actual send; `steal %` = CPU
#     time the virtual machine's host took during the case);
#   - three ways: as the machine is (client and agent share every core
#     with whatever else runs); pinned apart (client on CPU 0, agent on
#     CPU 1); and, as root, open loop only, both at real-time priority
#     (`chrt -f 1`), so that other work on the machine (a build at nice 19
#     still holds a CPU for its time slice when the agent wakes) stays out
#     of the figures; the host of a virtual machine is not kept out. The
#     first is what a client on this machine sees; where `lag99` is large
#     the client itself was kept waiting and `ans99` is nearer the agent's
#     own share. The closed loops are not run at real-time priority: they
#     would take both CPUs from everything else;
#   - a whole `rampart-agent status` process beside `chronyc tracking`
#     (hyperfine), against a chronyd on loopback.
# The agent runs in dev mode in a scratch HOME with a loopback-only policy
# (scripts/lib/loopback-home.sh). Needs hyperfine, jq, taskset, chrt, and
# chrony for the last line (skipped, with the reason, when chronyd will not
# start).
# The target case (200 connections, 10,000 req/s) runs REPEAT times in each
# way: on a virtual machine its tail moves from run to run with the host.
# Usage: scripts/bench-status.sh [SECONDS per case, 10] [RUNS of hyperfine, 300] [REPEAT, 3]
# (honours CARGO_TARGET_DIR)
set -euo pipefail

seconds=${1:-10}
runs=${2:-300}
repeat=${3:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
for tool in hyperfine jq taskset chrt; do
    command -v "$tool" >/dev/null || { echo "bench-status: $tool is missing" >&2; exit 1; }
done
(cd "$root" && cargo build --quiet --release -p rampart-agent -p rampart-tests \
    --bin rampart-agent --bin rampart-status-load)
agent=$target/release/rampart-agent
load=$target/release/rampart-status-load

# shellcheck source=lib/peers.sh
source "$root/scripts/lib/peers.sh"
# shellcheck source=lib/loopback-home.sh
source "$root/scripts/lib/loopback-home.sh"
work_dir rampart-bench-status
loopback_home "$WORK/home" bench-status
socket=$LOOPBACK_RUN/agent.sock
env -i PATH="$PATH" "${LOOPBACK_ENV[@]}" NO_COLOR=1 \
    "$agent" run --dev --config "$LOOPBACK_CONFIG" --socket "$socket" >"$WORK/agent.log" 2>&1 &
agent_pid=$!
PIDS+=("$agent_pid")
# `status` exits 0 (healthy) or 1 (action needed: the clock check fails on
# loopback by design); 2 is no agent yet.
status_works() {
    local code=0
    "$agent" status --socket "$socket" >/dev/null 2>&1 || code=$?
    [[ $code == 0 || $code == 1 ]]
}
for _ in $(seq 100); do status_works && break; sleep 0.05; done
status_works || { echo "bench-status: the agent did not answer on $socket; its log:" >&2; cat "$WORK/agent.log" >&2; exit 1; }

echo "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at start; $seconds s a case, the first 0.5 s not counted"
# open_cases yes|no PREFIX...: with a table header or not, the client run
# under PREFIX.
open_cases() {
    local header=()
    [[ $1 == yes ]] && header=(--header)
    shift
    "$@" "$load" "$socket" --seconds "$seconds" --connections 1 --rate 1000 --label "open 1,000/s, 1 conn" "${header[@]}"
    for run in $(seq "$repeat"); do
        "$@" "$load" "$socket" --seconds "$seconds" --connections 200 --rate 10000 --label "open 10,000/s, 200 conn #$run"
    done
}
cases() {
    "$@" "$load" "$socket" --seconds "$seconds" --connections 1 --label "closed loop, 1 conn" --header
    "$@" "$load" "$socket" --seconds "$seconds" --connections 200 --label "closed loop, 200 conn"
    open_cases no "$@"
}
echo
echo "== as the machine is: client and agent share every core =="
cases
echo
if (($(nproc) >= 2)); then
    echo "== pinned: client on CPU 0, agent on CPU 1 =="
    taskset -a -p -c 1 "$agent_pid" >/dev/null
    cases taskset -c 0
    taskset -a -p -c "0-$(($(nproc) - 1))" "$agent_pid" >/dev/null
else
    echo "== pinned: skipped, one CPU =="
fi
echo
if [[ $(id -u) == 0 ]]; then
    echo "== real-time priority (chrt -f 1) for client and agent, open loop =="
    chrt -f -a -p 1 "$agent_pid"
    open_cases yes chrt -f 1
    chrt -o -a -p 0 "$agent_pid"
else
    echo "== real-time priority: skipped, chrt -f needs root =="
fi

echo
echo "== whole process, $runs runs (hyperfine) =="
mkdir -m 700 "$WORK/chronyc"
chrony_socket=$WORK/chronyc/chronyd.sock
start_chronyd "$(free_port)" "$WORK" "bindcmdaddress $chrony_socket"
chronyc_works() { chronyc -h "$chrony_socket" tracking >/dev/null 2>&1; }
for _ in $(seq 100); do chronyc_works && break; sleep 0.05; done
commands=(-n "rampart-agent status" "$agent status --socket $socket")
if chronyc_works; then
    commands+=(-n "chronyc tracking" "chronyc -h $chrony_socket tracking")
else
    echo "  chronyc tracking: skipped, chronyd did not answer on $chrony_socket (is chrony installed, are we root?):"
    sed 's/^/    /' "$WORK/chronyd.log" | tail -n 5
fi
# -i: `status` exits 1 on this agent (action needed), checked above.
hyperfine -N -i --style none --warmup 20 --runs "$runs" --export-json "$WORK/whole.json" \
    "${commands[@]}" >/dev/null 2>&1
printf "  %-24s %10s %10s %10s\n" "" "median ms" "mean ms" "min ms"
jq -r '.results[] | [.command, (.median, .mean, .min | . * 1000 | . * 100 | round / 100)] | @tsv' "$WORK/whole.json" |
    while IFS=$'\t' read -r name median mean min; do
        printf "  %-24s %10s %10s %10s\n" "$name" "$median" "$mean" "$min"
    done
