#!/usr/bin/env bash
# Installs what the tests need and runs every test: the README's test command,
# and what CI runs (.ci/run). Idempotent; installs only what is missing.
#
# Real peers (chronyd, libfaketime, minisign, pamtester, setpriv, systemd-analyze,
# python3; Wine, Xvfb, ImageMagick, xdotool and msitools for the Windows build) are
# required here: RAMPART_REQUIRE_REAL_SERVERS=1 turns a missing peer into a
# failure instead of a skip. All test traffic stays on 127.0.0.0/8 and ::1.
#
# Besides Linux, every run builds for Windows and type-checks for macOS
# (scripts/cross.sh), the Wine tests (tests/tests/wine.rs) run the
# Windows binaries it built, and every fuzz target runs for 20 s
# (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests meet as real peers, by the command they provide.
declare -A wanted=(
    [chronyd]=chrony
    [minisign]=minisign
    [setpriv]=util-linux
    # The installer's unit and plists are checked by the tools that read them.
    [systemd-analyze]=systemd
    [python3]=python3
    # The Windows build under Wine: the app's window on a virtual display,
    # found and photographed like a user's.
    [Xvfb]=xvfb
    [xdotool]=xdotool
    [import]=imagemagick
    # The MSI, built from packaging/windows/rampart.wxs and read back.
    [wixl]=wixl
    [msiinfo]=msitools
    # pam_rampart.so under a real PAM client (tests/tests/pam.rs).
    [pamtester]=pamtester
    # `status --format prometheus` is checked by Prometheus's own linter.
    [promtool]=prometheus
)
missing=()
for cmd in "${!wanted[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || [[ -x /usr/sbin/$cmd ]] || missing+=("${wanted[$cmd]}")
done
ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || missing+=(libfaketime)
# pam_rampart.so links libpam (pam/): the headers' package has no command.
ls /usr/lib/*/libpam.so >/dev/null 2>&1 || missing+=(libpam0g-dev)
if ((${#missing[@]})); then
    echo "test.sh: installing ${missing[*]}"
    sudo=""
    [[ $(id -u) == 0 ]] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    # The chrony package would start a system chronyd; tests run their own.
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

export RAMPART_REQUIRE_REAL_SERVERS=1
# The GUI's simulator tests render with the CPU backend: no GPU needed.
export ICED_TEST_BACKEND=tiny-skia

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

# Windows and macOS: build, type-check and clippy (the toolchain and the
# mingw linker are set up on first use), then Wine for the Wine tests.
RAMPART_WINDOWS_BIN_DIR=$(./scripts/cross.sh | tail -n 1)
export RAMPART_WINDOWS_BIN_DIR
# shellcheck source=scripts/cross-env.sh
source scripts/cross-env.sh
# shellcheck source=scripts/wine-env.sh
source scripts/wine-env.sh

# The Windows build's own unit tests (libraries and the app), run by Wine.
# shellcheck disable=SC2086 # CROSS_CARGO is a command line
CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=$WINE $CROSS_CARGO test --quiet \
    --target x86_64-pc-windows-gnu -p rampart-shared -p rampart-agent -p rampart-installer -p rampart \
    --lib --bins

# The service (sc.exe, net start) and Rampart.msi (msiexec /i, /x) under Wine.
./scripts/wine-packaging.sh

cargo test --workspace --no-fail-fast

# The two Debian packages from the debug build just made (stripped): lintian
# with no error or warning, then install, remove and purge on this machine
# (skipped where rampart is installed for real). cargo-deb goes into the
# cross cache once; pinned, since it means to refuse dev builds some day.
deb_root="${RAMPART_CROSS_CACHE:-$HOME/.cache/rampart-cross}/cargo-deb"
if [[ ! -x $deb_root/bin/cargo-deb ]]; then
    echo "test.sh: installing cargo-deb into $deb_root (once)" >&2
    cargo install --quiet --locked --root "$deb_root" cargo-deb --version 3.8.0
fi
RAMPART_DEB_PROFILE=dev CARGO_DEB=$deb_root/bin/cargo-deb ./scripts/deb.sh

# Every fuzz target for a bounded time from the corpus kept in the repo.
./scripts/fuzz.sh
