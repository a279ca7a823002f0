#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets) for a bounded time, starting
# from the corpus kept in the repo (fuzz/corpus/TARGET), and prints how many
# inputs each ran. Called by scripts/test.sh on every change; a crash fails
# the run and leaves the input under fuzz/artifacts/TARGET/.
#
#   scripts/fuzz.sh              every target, RAMPART_FUZZ_SECS (20) each
#   scripts/fuzz.sh sntp_answer  one target
#
# Needs the nightly toolchain; installs cargo-fuzz into the cross cache
# (outside the clone) on first use. New inputs the fuzzer finds go to a
# temporary directory, so a run never changes the checkout: add the ones
# worth keeping to fuzz/corpus by hand (`cargo fuzz cmin` shrinks a corpus).
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${RAMPART_CROSS_CACHE:-$HOME/.cache/rampart-cross}
secs=${RAMPART_FUZZ_SECS:-20}
fuzz_root="$cache/cargo-fuzz"
if [[ ! -x $fuzz_root/bin/cargo-fuzz ]]; then
    echo "fuzz: installing cargo-fuzz into $fuzz_root (once)" >&2
    cargo install --quiet --locked --root "$fuzz_root" cargo-fuzz
fi
export PATH="$fuzz_root/bin:$PATH"

if (($#)); then
    targets=("$@")
else
    mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/rampart-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

start=$SECONDS
# All targets at once: they share every dependency.
(cd fuzz && cargo +nightly fuzz build --target-dir "$cache/fuzz-target") >"$work/build.log" 2>&1 ||
    { cat "$work/build.log" >&2; echo "fuzz: the targets did not build" >&2; exit 1; }
echo "fuzz: built in $((SECONDS - start)) s" >&2
for target in "${targets[@]}"; do
    mkdir -p "$work/$target"
    log="$work/$target.log"
    if ! (cd fuzz && cargo +nightly fuzz run --target-dir "$cache/fuzz-target" "$target" \
        "$work/$target" "corpus/$target" -- -max_total_time="$secs" -print_final_stats=1) >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "fuzz: $target FAILED; the input is under fuzz/artifacts/$target/" >&2
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
    echo "fuzz: $target: ${runs:-?} inputs in ${secs} s, ${cov:-cov: ?}, no crash"
done
