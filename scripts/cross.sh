#!/usr/bin/env bash
# The cross-platform check, run by scripts/test.sh (CI) on every change:
#   - builds the agent, the app and the installer for Windows
#     (x86_64-pc-windows-gnu), plus the pipe relay the Wine tests use;
#   - type-checks everything for macOS (aarch64- and x86_64-apple-darwin);
#   - runs clippy -D warnings for each of the three targets.
# The toolchain comes from scripts/cross-env.sh (rustup targets if installed,
# else nightly -Zbuild-std); builds go to a cache outside the clone.
# Prints the Windows binary directory on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/cross-env.sh
source scripts/cross-env.sh

step() {
    local start=$SECONDS
    echo "cross: $*" >&2
    "$@"
    echo "cross: $((SECONDS - start)) s" >&2
}

windows=x86_64-pc-windows-gnu
# rampart-pam is empty off Linux (a crate-level cfg): checked that it stays so.
crates=(-p rampart-shared -p rampart-agent -p rampart -p rampart-installer -p rampart-pam)
echo "cross: toolchain: $CROSS_MODE; target dir $CROSS_TARGET_DIR" >&2

# shellcheck disable=SC2086 # CROSS_CARGO is a command line
step $CROSS_CARGO build --quiet --target $windows -p rampart-agent -p rampart -p rampart-installer \
    -p rampart-pipe-relay --bins
for target in $windows aarch64-apple-darwin x86_64-apple-darwin; do
    # shellcheck disable=SC2086
    step $CROSS_CARGO clippy --quiet --target "$target" "${crates[@]}" --all-targets -- -D warnings
done
echo "$CROSS_TARGET_DIR/$windows/debug"
