#!/usr/bin/env bash
# Time from process start to first frame, and idle CPU with the windows open,
# under Xvfb with the tiny-skia renderer. Isolated HOME with a loopback-only
# policy (scripts/lib/loopback-home.sh: the clock check queries 127.0.0.1 only).
# Usage: scripts/measure-startup.sh [debug|release] [runs]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PROFILE=${1:-debug}
RUNS=${2:-5}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
APP=$TARGET/$PROFILE/rampart
DISPLAY_NUM=${DISPLAY_NUM:-:94}

WORK=$(mktemp -d /tmp/rmeasure.XXXXXX)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; [[ -n ${KEEP:-} ]] || rm -rf "$WORK"; }
trap cleanup EXIT

Xvfb "$DISPLAY_NUM" -screen 0 1280x900x24 -nolisten tcp >/dev/null 2>&1 &
PIDS+=($!)
export DISPLAY=$DISPLAY_NUM
for _ in $(seq 50); do xdotool getdisplaygeometry >/dev/null 2>&1 && break; sleep 0.1; done

# shellcheck source=lib/loopback-home.sh
source "$ROOT/scripts/lib/loopback-home.sh"
fresh_home() {
    loopback_home "$WORK/home" measure
    export "${LOOPBACK_ENV[@]}"
    unset RAMPART_SOCKET
}

TOTALS=()
for run in $(seq "$RUNS"); do
    fresh_home
    launched=$(date +%s.%N)
    RAMPART_LOG=info NO_COLOR=1 "$APP" >"$WORK/app.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do grep -q "first frame" "$WORK/app.log" 2>/dev/null && break; sleep 0.05; done
    ms=$(sed -n 's/.*ms=\([0-9.]*\).*first frame.*/\1/p; s/.*first frame.*ms=\([0-9.]*\).*/\1/p' "$WORK/app.log" | head -1)
    # The log line's own timestamp against the launch time: includes exec,
    # dynamic loading and everything before main.
    stamp=$(grep -m1 "first frame" "$WORK/app.log" | cut -d' ' -f1)
    total=$(python3 -c "import datetime,sys; t=datetime.datetime.fromisoformat(sys.argv[1].replace('Z','+00:00')).timestamp(); print(round((t-float(sys.argv[2]))*1000,1))" "$stamp" "$launched")
    # The embedded agent races the first redraw: that frame shows either the
    # status (the agent answered first) or "Connecting to the Rampart agent…".
    if grep -m1 -o "connected to the agent\|first frame" "$WORK/app.log" | grep -q connected; then
        shows=status
    else
        shows="connecting screen"
    fi
    echo "run $run: first frame ${total} ms after launch (${ms:-?} ms after main), showing the $shows"
    TOTALS+=("$total")
    if [[ $run == "$RUNS" ]]; then
        sleep 3 # let startup work settle, then measure idle
        t0=$(awk '{print $14+$15}' "/proc/$pid/stat")
        sleep 10
        t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
        hz=$(getconf CLK_TCK)
        echo "idle CPU over 10 s with both windows open: $(echo "scale=2; ($t1-$t0)*100/$hz/10" | bc) % ($((t1 - t0)) ticks)"
    fi
    kill "$pid"; wait "$pid" 2>/dev/null || true
done
printf '%s\n' "${TOTALS[@]}" | sort -n | awk '{v[NR] = $1} END {
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "first frame after launch: median %.1f ms of %d runs (%.1f-%.1f ms)\n", m, NR, v[1], v[NR]
}'
