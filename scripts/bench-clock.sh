#!/usr/bin/env bash
# The clock check beside the tools a user would compare it with, like for
# like: `rampart-agent check-clock` (release build), ntpdig (ntpsec) and
# `chronyd -Q` (one measurement, no iburst, clock not set), against chronyd
# servers on 127.0.0.2..5 that serve true time, idle and under load
# (stress-ng on every core). Prints:
#   - wall time per whole process, and ntpdig's query alone (its median minus
#     the median of `ntpdig -V`, which is all Python start-up);
#   - a round with one silent server among four (127.0.0.7 swallows requests);
#   - accuracy: the offset each tool reports when the true offset is 0, as the
#     median and largest error over RUNS runs, and how many runs erred by
#     0.5 ms or more;
#   - the sign, against a server 300 s ahead (127.0.0.6, libfaketime).
#
# Needs root (ntpdig only speaks port 123), chrony, ntpsec-ntpdig, hyperfine,
# stress-ng, jq, python3 and libfaketime. All traffic stays on 127.0.0.0/8.
# Usage: scripts/bench-clock.sh [RUNS]   (honours CARGO_TARGET_DIR)
set -euo pipefail

runs=${1:-40}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
good=(127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5)
ahead=127.0.0.6
silent=127.0.0.7

for tool in chronyd ntpdig hyperfine stress-ng jq python3; do
    command -v "$tool" >/dev/null || PATH=$PATH:/usr/sbin command -v "$tool" >/dev/null ||
        { echo "bench-clock: $tool is missing" >&2; exit 1; }
done
[[ $(id -u) == 0 ]] || { echo "bench-clock: run as root (port 123)" >&2; exit 1; }
faketime=$(ls /usr/lib/*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1 2>/dev/null | head -n1 || true)
[[ -n $faketime ]] || { echo "bench-clock: libfaketime is missing" >&2; exit 1; }

(cd "$root" && cargo build --quiet --release -p rampart-agent --bins)
bin=$target/release/rampart-agent

tmp=$(mktemp -d /tmp/rampart-bench.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

for ip in "${good[@]}" "$ahead"; do
    cat >"$tmp/$ip.conf" <<EOF
port 123
bindaddress $ip
allow 127.0.0.0/8
local stratum 8
cmdport 0
pidfile $tmp/$ip.pid
driftfile $tmp/$ip.drift
EOF
    if [[ $ip == "$ahead" ]]; then
        LD_PRELOAD=$faketime FAKETIME=+300s chronyd -x -d -u root -4 -f "$tmp/$ip.conf" >"$tmp/$ip.log" 2>&1 &
    else
        chronyd -x -d -u root -4 -f "$tmp/$ip.conf" >"$tmp/$ip.log" 2>&1 &
    fi
    pids+=($!)
done
# Bound and never read: requests to it are swallowed.
python3 -c "import socket, time; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('$silent', 123)); time.sleep(3600)" &
pids+=($!)

# Ready when each server answers (exit 0 synced or 1 skewed; 2 = no answer yet).
for ip in "${good[@]}" "$ahead"; do
    for _ in $(seq 100); do
        code=0
        "$bin" check-clock --server "$ip" --timeout 100 >/dev/null || code=$?
        [[ $code == 0 || $code == 1 ]] && continue 2
        sleep 0.05
    done
    echo "bench-clock: chronyd on $ip did not answer:" >&2
    cat "$tmp/$ip.log" >&2
    exit 1
done

four=()
for ip in "${good[@]}"; do four+=(--server "$ip"); done
with_silent=(--server "${good[0]}" --server "$silent" --server "${good[1]}" --server "${good[2]}")
chrony_q() { chronyd -Q -u root -t 3 "server $1 port 123 maxsamples 1" 2>&1; }
ms() { jq -r ".results[$1].median * 1000 | . * 100 | round / 100" "$tmp/times.json"; }

wall_times() {
    hyperfine -N --style none --warmup 3 --runs "$runs" --export-json "$tmp/times.json" \
        -n ours4 "$bin check-clock ${four[*]} --json" \
        -n ours1 "$bin check-clock --server ${good[0]} --json" \
        -n ntpdig1 "ntpdig -t 1 ${good[0]}" \
        -n ntpdig-start "ntpdig -V" \
        -n chronyd1 "chronyd -Q -u root -t 3 'server ${good[0]} port 123 maxsamples 1'" \
        -n ours-silent "$bin check-clock ${with_silent[*]} --json" \
        -n ntpdig-silent "ntpdig -t 1 ${good[0]} $silent ${good[1]} ${good[2]}" >/dev/null 2>&1
    printf "  %-44s %10s\n" "whole process, median of $runs" "ms"
    printf "  %-44s %10s\n" "rampart-agent check-clock, 4 servers" "$(ms 0)"
    printf "  %-44s %10s\n" "rampart-agent check-clock, 1 server" "$(ms 1)"
    printf "  %-44s %10s\n" "ntpdig, 1 server" "$(ms 2)"
    printf "  %-44s %10s\n" "  of which start-up (ntpdig -V)" "$(ms 3)"
    printf "  %-44s %10s\n" "  query alone (difference)" "$(awk -v a="$(ms 2)" -v b="$(ms 3)" 'BEGIN { printf "%.2f", a - b }')"
    printf "  %-44s %10s\n" "chronyd -Q, 1 server, 1 sample" "$(ms 4)"
    printf "  %-44s %10s\n" "check-clock, 3 good + 1 silent" "$(ms 5)"
    printf "  %-44s %10s\n" "ntpdig -t 1, 3 good + 1 silent" "$(ms 6)"
}

# Offsets in ms, local minus true (0 is right): one line per run and tool.
offsets() {
    : >"$tmp/offsets.txt"
    for _ in $(seq "$runs"); do
        echo "ours4 $("$bin" check-clock "${four[@]}" --json | jq '.estimate.offset_ms')" >>"$tmp/offsets.txt"
        echo "ours1 $("$bin" check-clock --server "${good[0]}" --json | jq '.estimate.offset_ms')" >>"$tmp/offsets.txt"
        # ntpdig prints the correction (true minus local), in seconds.
        echo "ntpdig1 $(ntpdig -j -t 1 "${good[0]}" | jq '.offset * -1000')" >>"$tmp/offsets.txt"
        echo "chronyd1 $(chrony_q "${good[0]}" | sed -n 's/.*wrong by \([-0-9.e]*\) seconds.*/\1/p' | awk '{ print $1 * 1000 }')" >>"$tmp/offsets.txt"
    done
    printf "  %-34s %12s %12s %14s\n" "offset error when the truth is 0" "median (ms)" "max (ms)" ">= 0.5 ms"
    for tool in ours4 ours1 ntpdig1 chronyd1; do
        awk -v t="$tool" '$1 == t && $2 != "" { e = $2 < 0 ? -$2 : $2; print e }' "$tmp/offsets.txt" | sort -g |
            awk -v t="$tool" '{ v[NR] = $1; if ($1 >= 0.5) bad++ }
                END {
                    name["ours4"] = "check-clock, 4 servers"; name["ours1"] = "check-clock, 1 server"
                    name["ntpdig1"] = "ntpdig, 1 server"; name["chronyd1"] = "chronyd -Q, 1 server"
                    med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
                    printf "  %-34s %12.3f %12.3f %9d of %d\n", name[t], med, v[NR], bad, NR
                }'
    done
}

phase() {
    echo "== $1 =="
    wall_times
    offsets
}

phase "without added load"
stress-ng --cpu 0 --cpu-method matrixprod --quiet &
stress=$!
pids+=("$stress")
sleep 1
phase "under load (stress-ng on every core)"
kill "$stress"

echo "== sign: a server 300 s ahead means this clock is 300 s slow =="
echo "  check-clock: $("$bin" check-clock --server "$ahead" --json | jq '.estimate.offset_ms') ms"
echo "  ntpdig:      $(ntpdig -j -t 1 "$ahead" | jq '.offset * -1000') ms"
