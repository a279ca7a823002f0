#!/bin/sh
# Removes Rampart installed by Rampart.pkg; shipped in the package as
#   /Library/Application Support/Rampart/uninstall.sh
# Run it as root:  sudo "/Library/Application Support/Rampart/uninstall.sh" [--purge]
# Like `rampart-installer uninstall`: the agent's state (MFA enrollment,
# last-known-good policy) and logs stay unless --purge is given, and files
# IT's MDM put in the config directory (policy.json, agent.json) are kept.
set -u

purge=no
case "${1:-}" in
"") ;;
--purge) purge=yes ;;
*)
    echo "usage: $0 [--purge]" >&2
    exit 2
    ;;
esac
if [ "$(id -u)" -ne 0 ]; then
    echo "uninstall.sh: run it as root (sudo)" >&2
    exit 1
fi

base="/Library/Application Support/Rampart"

# The app in every GUI session that has it loaded, then the agent.
for uid in $(ps -axo uid= -o comm= | awk '/\/Rampart\/bin\/rampart$/ { print $1 }' | sort -u); do
    launchctl bootout "gui/$uid/dev.rampart.app" 2>/dev/null || true
done
user=$(stat -f %Su /dev/console 2>/dev/null || true)
if uid=$(id -u "$user" 2>/dev/null); then
    launchctl bootout "gui/$uid/dev.rampart.app" 2>/dev/null || true
fi
launchctl bootout system/dev.rampart.agent 2>/dev/null || true

rm -f /Library/LaunchDaemons/dev.rampart.agent.plist /Library/LaunchAgents/dev.rampart.app.plist
rm -rf "${base:?}/bin"
if [ "$purge" = yes ]; then
    rm -rf "$base" /Library/Logs/Rampart
else
    # Empty directories only: whatever IT or the agent keeps there stays.
    rmdir "$base" /Library/Logs/Rampart 2>/dev/null || true
fi
# The receipt: without it, the next Rampart.pkg counts as an upgrade.
pkgutil --forget dev.rampart.agent >/dev/null 2>&1 || true
echo "Rampart removed$([ "$purge" = yes ] && echo ", state and logs included")."
