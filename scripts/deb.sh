#!/usr/bin/env bash
# Builds the two Debian packages, checks them with lintian (no error, no
# warning), then installs, removes and purges them on this machine and checks
# what each step leaves. Needs cargo-deb (`cargo install cargo-deb`, or
# CARGO_DEB=path), Debian's lintian and dpkg, and root for the install steps
# (RAMPART_DEB_NO_INSTALL=1 skips them). Packages land in
# $CARGO_TARGET_DIR/debian (default target/debian).
# RAMPART_DEB_PROFILE=dev packages the debug build (what scripts/test.sh has
# just built), stripped: the same files and checks without a release build.
#
#   scripts/deb.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
cargo_deb=${CARGO_DEB:-$(command -v cargo-deb || true)}
[[ -n $cargo_deb ]] || { echo "deb.sh: cargo-deb not found: cargo install cargo-deb (about 2 CPU-minutes)" >&2; exit 1; }
version=$(cargo metadata --no-deps --format-version 1 |
    python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "rampart-agent"))')

profile=${RAMPART_DEB_PROFILE:-release}
case $profile in
release) out=$target/release ;;
dev) out=$target/debug ;;
*) echo "deb.sh: RAMPART_DEB_PROFILE is release or dev, not $profile" >&2; exit 1 ;;
esac
cargo build --profile "$profile" -p rampart -p rampart-agent -p rampart-installer -p rampart-pam
rm -rf "$out/man"
"$out/rampart-agent" man "$out/man"
"$out/rampart-installer" man "$out/man"
# cargo-deb compresses man pages only outside target/release (Debian policy
# wants them gzipped; -n: no timestamp, reproducible).
gzip -9n "$out/man"/*.1

rm -f "$target"/debian/rampart*.deb
# --strip: a debug build's symbols and debug info stay out of the package.
"$cargo_deb" deb -p rampart-agent --no-build --profile "$profile" --strip
"$cargo_deb" deb -p rampart --no-build --profile "$profile" --strip
agent_deb=$(ls "$target"/debian/rampart-agent_"$version"*.deb)
app_deb=$(ls "$target"/debian/rampart_"$version"*.deb)

echo "== lintian"
status=0
for deb in "$agent_deb" "$app_deb"; do
    # Exit 2 on any error or warning (info tags are not shown by default).
    # stderr only says that root runs it (the install checks need root).
    out=$(lintian --fail-on error,warning "$deb" 2>/dev/null) || status=$?
    echo "$(basename "$deb"): ${out:-clean}"
done
((status == 0)) || { echo "deb.sh: lintian found errors or warnings" >&2; exit 1; }

agent_version=$(dpkg-deb -f "$agent_deb" Version)
depends=$(dpkg-deb -f "$app_deb" Depends)
[[ $depends == *"rampart-agent (= $agent_version)"* ]] ||
    { echo "deb.sh: rampart's Depends lacks rampart-agent (= $agent_version) (gui/Cargo.toml): $depends" >&2; exit 1; }

if [[ -n ${RAMPART_DEB_NO_INSTALL:-} ]]; then
    exit 0
fi
# Where the install checks cannot run, say so; under
# RAMPART_REQUIRE_REAL_SERVERS=1 (CI, a fresh machine) that is a failure.
skip() {
    echo "deb.sh: SKIPPING the install, remove and purge checks: $*" >&2
    [[ -z ${RAMPART_REQUIRE_REAL_SERVERS:-} ]] || exit 1
    exit 0
}
[[ $(id -u) == 0 ]] || skip "they need root (RAMPART_DEB_NO_INSTALL=1 stops after lintian)"
if dpkg -s rampart-agent >/dev/null 2>&1 || dpkg -s rampart >/dev/null 2>&1; then
    skip "rampart is installed on this machine already; not touching it"
fi

fail() { echo "deb.sh: $*" >&2; exit 1; }
pam_module=/usr/lib/x86_64-linux-gnu/security/pam_rampart.so
echo "== apt-get install (dpkg -i with its Depends)"
apt-get install -y -qq --no-install-recommends "$agent_deb" "$app_deb" >/dev/null
for f in /usr/bin/rampart-agent /usr/bin/rampart-installer /usr/bin/rampart "$pam_module" \
    /usr/share/man/man1/rampart-agent.1.gz /usr/share/man/man1/rampart.1.gz \
    /etc/xdg/autostart/rampart.desktop /usr/lib/systemd/system/rampart-agent.service; do
    [[ -e $f ]] || fail "installed, but $f is missing"
done
# What the installed service and its admin would create.
mkdir -p /etc/rampart /var/lib/rampart /run/rampart
install -d -m 0750 /var/log/rampart
echo '{"device_id": "deb-test"}' >/etc/rampart/agent.json
echo 'Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep' >/etc/rampart/duo.key
touch /var/lib/rampart/state.json /var/log/rampart/agent.log

# Shipped, not switched on: no PAM stack names the module.
if grep -rl pam_rampart /etc/pam.d >/dev/null 2>&1; then
    fail "installing added pam_rampart to a PAM stack: $(grep -rl pam_rampart /etc/pam.d)"
fi

echo "== dpkg -r rampart (the app): the autostart entry, a conffile, stays until purge but is skipped"
dpkg -r rampart >/dev/null
[[ ! -e /usr/bin/rampart ]] || fail "dpkg -r rampart left /usr/bin/rampart"
if [[ -e /etc/xdg/autostart/rampart.desktop ]]; then
    # Sessions skip an entry whose TryExec is missing (XDG desktop entry spec).
    grep -qx 'TryExec=/usr/bin/rampart' /etc/xdg/autostart/rampart.desktop ||
        fail "the autostart entry left by dpkg -r has no TryExec=/usr/bin/rampart"
fi
echo "== dpkg -r rampart-agent: binaries go, configuration, state and logs stay (and it says so)"
said=$(dpkg -r rampart-agent 2>&1 >/dev/null)
echo "$said"
[[ ! -e /usr/bin/rampart-agent ]] || fail "dpkg -r left /usr/bin/rampart-agent"
[[ -e /etc/rampart/agent.json && -e /var/lib/rampart/state.json ]] || fail "dpkg -r removed configuration or state"
[[ $said == *"kept /etc/rampart /var/lib/rampart /var/log/rampart"* ]] || fail "dpkg -r did not say what it kept: $said"
echo "== dpkg -P rampart-agent: everything goes"
dpkg -P rampart rampart-agent >/dev/null 2>&1
for d in /etc/rampart /var/lib/rampart /var/log/rampart /run/rampart /etc/xdg/autostart/rampart.desktop; do
    [[ ! -e $d ]] || fail "dpkg -P left $d"
done
left=$(dpkg -L rampart-agent 2>/dev/null || true)
[[ -z $left ]] || fail "dpkg still lists files of rampart-agent: $left"
echo "deb.sh: both packages pass lintian; install, remove and purge leave nothing behind"
