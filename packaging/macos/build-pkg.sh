#!/usr/bin/env bash
# Builds Rampart-VERSION.pkg on a Mac (recipe; CI has no Mac and does not run
# it: scripts/wine-packaging.sh is the Windows counterpart).
#
#   packaging/macos/build-pkg.sh [VERSION]
#
# Needs Xcode's command line tools (lipo, pkgbuild, productbuild) and both
# Rust targets: rustup target add aarch64-apple-darwin x86_64-apple-darwin
#
# One universal package for Apple silicon and Intel Macs: the app and the
# agent are built for both and joined with `lipo -create`. The install is
# staged by the installer itself (`--root`), so the .pkg holds exactly the
# files, modes and plists `rampart-installer install` would put in place; the
# postinstall script (packaging/macos/scripts/postinstall) then loads the
# agent's LaunchDaemon and the app's LaunchAgent for whoever is logged in at
# the console. packaging/macos/uninstall.sh ships inside as
# /Library/Application Support/Rampart/uninstall.sh.
# Sign with `productsign` and notarise separately.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
version=${1:-$(cd "$root" && cargo metadata --no-deps --format-version 1 |
    python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "rampart-agent"))')}
target=${CARGO_TARGET_DIR:-$root/target}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

arches=(aarch64-apple-darwin x86_64-apple-darwin)
for t in "${arches[@]}"; do
    (cd "$root" && cargo build --release --target "$t" -p rampart -p rampart-agent -p rampart-installer)
done
# The installer only stages files here: the build machine's own build does.
(cd "$root" && cargo build --release -p rampart-installer)

mkdir -p "$work/universal"
for bin in rampart rampart-agent rampart-installer; do
    lipo -create -output "$work/universal/$bin" \
        "$target/aarch64-apple-darwin/release/$bin" "$target/x86_64-apple-darwin/release/$bin"
    lipo "$work/universal/$bin" -verify_arch arm64 x86_64
done

"$target/release/rampart-installer" install --root "$work/root" --from "$work/universal"
# No install config in the package: IT's MDM profile or a later
# `rampart-installer install --policy-url ... --pubkey ...` provides it, and
# an upgrade must not overwrite the one in place.
rm -f "$work/root/Library/Application Support/Rampart/agent.json"
# Shipped for detection scripts (a Jamf extension attribute runs
# `rampart-installer status`: docs/status.md).
install -m 755 "$work/universal/rampart-installer" \
    "$work/root/Library/Application Support/Rampart/bin/rampart-installer"
install -m 755 "$root/packaging/macos/uninstall.sh" \
    "$work/root/Library/Application Support/Rampart/uninstall.sh"

mkdir -p "$work/scripts"
install -m 755 "$root/packaging/macos/scripts/postinstall" "$work/scripts/postinstall"

pkgbuild --root "$work/root" --scripts "$work/scripts" \
    --identifier dev.rampart.agent --version "$version" \
    --ownership recommended "$work/rampart-component.pkg"
productbuild --distribution "$root/packaging/macos/distribution.xml" \
    --package-path "$work" "$root/Rampart-$version.pkg"
echo "built $root/Rampart-$version.pkg"
