#!/usr/bin/env bash
# Times `rampart-agent check-clock` (release build) against four chronyd on
# 127.0.0.2..5, and ntpdig against the same servers, then compares the
# offsets both measure. 127.0.0.5 serves a clock 300 s ahead (libfaketime) so
# that the comparison also checks the sign.
#
# Needs root (ntpdig only speaks port 123), chrony, ntpsec-ntpdig, hyperfine,
# jq and libfaketime. All traffic stays on 127.0.0.0/8.
# Usage: scripts/bench-clock.sh [RUNS]   (honours CARGO_TARGET_DIR)
# hyperfine runs without a shell (-N): the commands take a few ms, less than
# the shell start-up it would otherwise have to subtract.
set -euo pipefail

runs=${1:-100}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
servers=(127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5)
skewed=127.0.0.5

for tool in chronyd ntpdig hyperfine jq; do
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

for ip in "${servers[@]}"; do
    cat >"$tmp/$ip.conf" <<EOF
port 123
bindaddress $ip
allow 127.0.0.0/8
local stratum 8
cmdport 0
pidfile $tmp/$ip.pid
driftfile $tmp/$ip.drift
EOF
    if [[ $ip == "$skewed" ]]; then
        LD_PRELOAD=$faketime FAKETIME=+300s chronyd -x -d -u root -4 -f "$tmp/$ip.conf" >"$tmp/$ip.log" 2>&1 &
    else
        chronyd -x -d -u root -4 -f "$tmp/$ip.conf" >"$tmp/$ip.log" 2>&1 &
    fi
    pids+=($!)
done

# Ready when each server answers (exit 0 synced or 1 skewed; 2 = no answer yet).
for ip in "${servers[@]}"; do
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

args=()
for ip in "${servers[@]}"; do args+=(--server "$ip"); done
ours="$bin check-clock ${args[*]} --json"

echo "== wall time ($runs runs each) =="
hyperfine -N --style basic --warmup 5 --runs "$runs" --export-json "$tmp/times.json" \
    -n "rampart-agent check-clock, 4 servers" "$ours" \
    -n "ntpdig, 1 server" "ntpdig -t 1 ${servers[0]}" \
    -n "ntpdig, 4 servers" "ntpdig -t 1 ${servers[*]}" >/dev/null
jq -r '.results[] | "\(.command): mean \(.mean * 1000 | . * 100 | round / 100) ms, median \(.median * 1000 | . * 100 | round / 100) ms, min \(.min * 1000 | . * 100 | round / 100) ms"' "$tmp/times.json"
ours_ms=$(jq '.results[0].median * 1000' "$tmp/times.json")
one_ntpdig_ms=$(jq '.results[1].median * 1000' "$tmp/times.json")
awk -v o="$ours_ms" -v n="$one_ntpdig_ms" \
    'BEGIN { printf "check-clock (4 servers) is %.1fx faster than ntpdig (1 server); target <= 15 ms: %s, >= 5x: %s\n", n / o, (o <= 15 ? "met" : "MISSED"), (n / o >= 5 ? "met" : "MISSED") }'

# Offsets: the median of 5 runs per server for each tool. Ours is local minus
# true time (ms); ntpdig prints the correction, true minus local (s).
echo
echo "== offset agreement (median of 5 runs each) =="
for _ in 1 2 3 4 5; do
    $ours | jq -r '.servers[] | "\(.server) \(.offset_ms)"'
done >"$tmp/ours.txt"
for _ in 1 2 3 4 5; do
    for ip in "${servers[@]}"; do
        ntpdig -j -t 1 "$ip" | jq -r '"\(.ip) \(.offset * -1000)"'
    done
done >"$tmp/ntpdig.txt"
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
worst=0
printf "%-10s %16s %16s %10s\n" server "ours (ms)" "ntpdig (ms)" "diff (ms)"
for ip in "${servers[@]}"; do
    a=$(awk -v s="$ip" '$1 == s { print $2 }' "$tmp/ours.txt" | median)
    b=$(awk -v s="$ip" '$1 == s { print $2 }' "$tmp/ntpdig.txt" | median)
    d=$(awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; printf "%.3f", d < 0 ? -d : d }')
    worst=$(awk -v w="$worst" -v d="$d" 'BEGIN { print (d > w) ? d : w }')
    printf "%-10s %16.3f %16.3f %10s\n" "$ip" "$a" "$b" "$d"
done
awk -v w="$worst" 'BEGIN { printf "largest difference %.3f ms; target <= 0.5 ms: %s\n", w, (w <= 0.5 ? "met" : "MISSED") }'
