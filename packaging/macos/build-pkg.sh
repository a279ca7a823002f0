#!/usr/bin/env bash
# Builds Rampart.pkg on a Mac (recipe; not run by CI).
#
#   packaging/macos/build-pkg.sh [VERSION]
#
# Stages the install with the installer itself (`--root`), so the .pkg holds
# exactly the files, modes and plists `rampart-installer install` would put
# in place; the postinstall script then does what the installer's plan runs
# (launchctl bootstrap). Sign with `productsign` / notarise separately.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
version=${1:-$(cd "$root" && cargo metadata --no-deps --format-version 1 |
    python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "rampart-agent"))')}
target=${CARGO_TARGET_DIR:-$root/target}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$root" && cargo build --release -p rampart -p rampart-agent -p rampart-installer)
"$target/release/rampart-installer" install --root "$work/root" --from "$target/release"
# No install config in the package: IT's MDM profile or a later
# `rampart-installer install --policy-url ... --pubkey ...` provides it.
rm -f "$work/root/Library/Application Support/Rampart/agent.json"

mkdir -p "$work/scripts"
cat > "$work/scripts/postinstall" <<'SH'
#!/bin/sh
launchctl bootout system/dev.rampart.agent 2>/dev/null || true
launchctl bootstrap system /Library/LaunchDaemons/dev.rampart.agent.plist
exit 0
SH
chmod 755 "$work/scripts/postinstall"

pkgbuild --root "$work/root" --scripts "$work/scripts" \
    --identifier dev.rampart.agent --version "$version" \
    --ownership recommended "$work/rampart-component.pkg"
productbuild --distribution "$root/packaging/macos/distribution.xml" \
    --package-path "$work" "$root/Rampart-$version.pkg"
echo "built $root/Rampart-$version.pkg"
