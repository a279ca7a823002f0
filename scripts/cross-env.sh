# Sourced by scripts/cross.sh and scripts/wine-test.sh: makes a toolchain that
# builds for Windows (x86_64-pc-windows-gnu) and type-checks for macOS, and
# exports what cargo needs for it. Idempotent; installs only what is missing.
#
# Two ways, the first that works:
#   1. A developer machine with rustup targets:
#        rustup target add x86_64-pc-windows-gnu aarch64-apple-darwin x86_64-apple-darwin
#      plus Debian's gcc-mingw-w64-x86-64 as the Windows linker.
#   2. No targets (this project's CI): the nightly toolchain builds the standard
#      library from source (-Zbuild-std), once per target, into its own sysroot.
#      The source comes from Debian's rust-src package, downloaded with a private
#      apt list for sid (nothing from sid is installed system-wide) and linked
#      into the nightly sysroot.
#
# Exports: CROSS_CARGO (a cargo command line to prefix, with the cross target
# dir in it), CROSS_TARGET_DIR (a cache outside the clone, so that the host's
# target/ stays the host's), CROSS_CACHE.

CROSS_CACHE=${RAMPART_CROSS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rampart-cross}
mkdir -p "$CROSS_CACHE"
export CROSS_CACHE
export CROSS_TARGET_DIR=${RAMPART_CROSS_TARGET_DIR:-$CROSS_CACHE/target}

cross_sudo=""
[[ $(id -u) == 0 ]] || cross_sudo="sudo"

# Debian packages by a file they install.
cross_apt_install() {
    local -a missing=()
    local pkg file
    while read -r pkg file; do
        [[ -e $file ]] || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        echo "cross-env: installing ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        $cross_sudo apt-get update -qq
        $cross_sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

cross_apt_install <<'EOF'
gcc-mingw-w64-x86-64 /usr/bin/x86_64-w64-mingw32-gcc
EOF

# macOS: nothing is linked, so ring's C and assembly only need to "compile".
# A stand-in compiler writes empty objects and answers cc's probes.
fake_cc="$CROSS_CACHE/fake-cc"
cat >"$fake_cc" <<'EOF'
#!/bin/sh
# Stand-in C compiler for type-checking macOS targets on Linux: writes an
# empty object wherever -o/-Fo says and answers cc-rs's preprocessor probe.
out=""
prev=""
for a in "$@"; do
    case "$prev" in -o) out="$a" ;; esac
    case "$a" in -Fo*) out="${a#-Fo}" ;; -E) echo "clang" ; exit 0 ;; esac
    prev="$a"
done
[ -n "$out" ] && : >"$out"
exit 0
EOF
chmod +x "$fake_cc"
for t in aarch64_apple_darwin x86_64_apple_darwin; do
    export "CC_$t=$fake_cc" "AR_$t=ar"
done

cross_targets_installed() {
    local installed
    installed=$(rustup target list --installed 2>/dev/null) || return 1
    for t in x86_64-pc-windows-gnu aarch64-apple-darwin x86_64-apple-darwin; do
        grep -qx "$t" <<<"$installed" || return 1
    done
}

if cross_targets_installed; then
    CROSS_CARGO="env CARGO_TARGET_DIR=$CROSS_TARGET_DIR cargo"
    CROSS_MODE="rustup targets"
else
    nightly_sysroot=$(rustup run nightly rustc --print sysroot 2>/dev/null) || {
        echo "cross-env: no Windows/macOS targets and no nightly toolchain; run" >&2
        echo "  rustup target add x86_64-pc-windows-gnu aarch64-apple-darwin x86_64-apple-darwin" >&2
        exit 2
    }
    src_link="$nightly_sysroot/lib/rustlib/src/rust"
    if [[ ! -e $src_link/library/Cargo.lock ]]; then
        apt_dir="$CROSS_CACHE/apt-sid"
        mkdir -p "$apt_dir"/{lists/partial,cache/archives/partial}
        echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main" \
            >"$apt_dir/sources.list"
        apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
            -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
            -o Dir::State::status=/dev/null -o APT::Sandbox::User=root)
        echo "cross-env: fetching the standard library's source (Debian sid rust-src)" >&2
        apt-get "${apt_opts[@]}" update -qq
        (cd "$apt_dir" && rm -f rust-src_*.deb && apt-get "${apt_opts[@]}" download rust-src >/dev/null)
        rm -rf "$CROSS_CACHE/rust-src"
        dpkg-deb -x "$apt_dir"/rust-src_*.deb "$CROSS_CACHE/rust-src"
        src_root=$(echo "$CROSS_CACHE"/rust-src/usr/src/rustc-*)
        mkdir -p "$(dirname "$src_link")"
        ln -sfn "$src_root" "$src_link"
    fi
    # `cargo clippy -Zbuild-std` cannot find `core` (clippy-driver and the
    # std built on the fly disagree), so std is built once per target, the
    # way rustup ships it, and installed into the nightly sysroot: then
    # build, check, clippy and test all work as with `rustup target add`.
    std_stamp="$(readlink "$src_link" | sed 's|.*/||')-$(rustup run nightly rustc --version | tr -c 'a-z0-9.\n' -)"
    for target in x86_64-pc-windows-gnu aarch64-apple-darwin x86_64-apple-darwin; do
        dest="$nightly_sysroot/lib/rustlib/$target/lib"
        [[ $(cat "$dest/.rampart-std" 2>/dev/null) == "$std_stamp" ]] && continue
        echo "cross-env: building the standard library for $target (once)" >&2
        stub="$CROSS_CACHE/std-build"
        mkdir -p "$stub/src"
        printf '[package]\nname = "std-build"\nversion = "0.0.0"\nedition = "2024"\n[workspace]\n' >"$stub/Cargo.toml"
        : >"$stub/src/lib.rs"
        (cd "$stub" && CARGO_TARGET_DIR="$stub/target" cargo +nightly build --quiet --release \
            -Zbuild-std=std,panic_abort,panic_unwind,test --target "$target")
        rm -rf "$dest"
        mkdir -p "$dest"
        find "$stub/target/$target/release/deps" -name '*.rlib' ! -name 'libstd_build-*' \
            -exec cp {} "$dest/" \;
        echo "$std_stamp" >"$dest/.rampart-std"
    done
    CROSS_CARGO="env CARGO_TARGET_DIR=$CROSS_TARGET_DIR cargo +nightly"
    CROSS_MODE="nightly with a standard library built from Debian's rust-src ($(readlink "$src_link" | sed 's|.*/||'))"
fi
export CROSS_CARGO CROSS_MODE
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc

