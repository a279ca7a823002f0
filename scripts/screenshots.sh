#!/usr/bin/env bash
# Drives the real app under Xvfb through every wizard step and saves
# docs/screenshots/*.png. Nothing is staged: the app starts its embedded
# agent in an isolated HOME whose managed policy points the clock check at a
# chronyd on loopback and the offline guide at a loopback listener, so both
# prerequisite checks really pass; xdotool clicks and types like a person;
# the code typed is computed from the issued secret by examples/totp_now.rs,
# as the phone would. No traffic leaves 127.0.0.1.
#
# With --duo, the policy names Duo and the app's agent talks HTTPS to the
# Duo-protocol test server (tests/examples/duo_server.rs) on loopback; the
# Duo screens are saved as duo-*.png.
#
# Needs: xvfb, xdotool, imagemagick, chrony, python3.
# Usage: scripts/screenshots.sh [--duo]     (KEEP=1 keeps the work dir)
set -euo pipefail
# shellcheck source=lib/peers.sh
source "$(dirname "$0")/lib/peers.sh"
DUO=
[[ ${1:-} == --duo ]] && DUO=1

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/docs/screenshots
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
DISPLAY_NUM=${DISPLAY_NUM:-:93}

cargo build --quiet -p rampart --bin rampart --example totp_now
[[ -z $DUO ]] || cargo build --quiet -p rampart-tests --example duo_server
APP=$TARGET/debug/rampart
TOTP=$TARGET/debug/examples/totp_now

work_dir rshot

NTP_PORT=$(free_port)
GUIDE_PORT=$(free_port)

# An isolated user: every per-user directory under $WORK.
export HOME=$WORK/home XDG_CONFIG_HOME=$WORK/home/.config XDG_STATE_HOME=$WORK/home/.local/state \
    XDG_DATA_HOME=$WORK/home/.local/share XDG_RUNTIME_DIR=$WORK/run
unset RAMPART_SOCKET
mkdir -p "$XDG_CONFIG_HOME/rampart" "$HOME/Documents" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
PROVIDER='{"kind": "totp"}'
EXTRA_CA=
if [[ -n $DUO ]]; then
    mkfifo "$WORK/duo.out"
    "$TARGET/debug/examples/duo_server" "$WORK" "$(id -un)" >"$WORK/duo.out" &
    PIDS+=($!)
    read -r DUO_HOST DUO_CA DUO_KEY <"$WORK/duo.out"
    PROVIDER="{\"kind\": \"duo\", \"api_host\": \"$DUO_HOST\", \"integration_key\": \"DIWJ8X6AEYOR5OMC6TQ1\", \"secret_key_file\": \"$DUO_KEY\"}"
    EXTRA_CA=", \"extra_ca_file\": \"$DUO_CA\""
fi
cat >"$XDG_CONFIG_HOME/rampart/agent.json" <<JSON
{"device_id": "screenshots", "allow_unsigned_local_policy": true$EXTRA_CA}
JSON
cat >"$XDG_CONFIG_HOME/rampart/policy.json" <<JSON
{"schema": 1, "serial": 1, "organization": "ACME Corp", "mfa": {"required": true, "provider": $PROVIDER},
 "clock": {"ntp_servers": ["127.0.0.1:$NTP_PORT"]},
 "links": {"offline_guide_url": "https://127.0.0.1:$GUIDE_PORT/offline-access",
           "support_url": "https://127.0.0.1:$GUIDE_PORT/support"}}
JSON

# Time on loopback.
start_chronyd "$NTP_PORT" "$WORK"
# The guide's host: the network check only needs a TCP answer.
start_tcp_listener "$GUIDE_PORT"

start_xvfb "$DISPLAY_NUM" "$WORK"
sleep 1 # chronyd answers its first query after a moment

 # A stand-in browser that records what the app asked it to open.
mkdir -p "$WORK/bin"
printf '#!/bin/sh\necho "$@" >>"%s/opened.txt"\n' "$WORK" >"$WORK/bin/xdg-open"
chmod +x "$WORK/bin/xdg-open"
PATH=$WORK/bin:$PATH RAMPART_LOG=info "$APP" >"$WORK/app.log" 2>&1 &
APP_PID=$!
PIDS+=($APP_PID)

WIZARD=$(xdotool search --sync --name '^Rampart: set up MFA$' | head -1)
shot() { sleep "${2:-0.6}"; import -window root -crop 660x680+0+0 +repage "$OUT/$1.png"; echo "saved $OUT/$1.png"; }
click() { xdotool mousemove --sync "$1" "$2" click 1; sleep 0.4; }
type_text() { xdotool windowfocus --sync "$WIZARD" 2>/dev/null || true; xdotool type --delay 60 "$1"; }

mkdir -p "$OUT"
sleep 2 # the agent's first clock and network checks
shot 1-before-you-begin

click 84 362 # Get started
if [[ -n $DUO ]]; then
    shot duo-1-activate 1.5
    sleep 7 # the app polls every 3 s; the phone activates on the third poll
    shot duo-2-confirm
    click 104 160 # Send a Duo Push
    shot duo-3-push-waiting 1
    sleep 14 # the phone approves on the fourth poll, 12 s after the push
    shot duo-4-approved
    exit 0
fi
shot 2-pair

click 60 520 # Next
shot 3-enter-code
# A wrong code first, to show what the agent says.
type_text 000000
xdotool key Return
shot 3-wrong-code

click 162 309 # Try again (clears the field and focuses it)
CODE=$("$TOTP")
type_text "$CODE"
xdotool key Return
shot 4-recovery-codes 3

click 168 351 # Save to file…
shot 4-recovery-codes-saved
test "$(stat -c %a "$HOME/Documents/Rampart recovery codes.txt")" = 600

click 36 449 # I have saved my recovery codes
click 76 492 # Continue
shot 5-offline-access
grep -qx "https://127.0.0.1:$GUIDE_PORT/offline-access" "$WORK/opened.txt" # opened by itself

click 36 255 # I have read and understand the setup instructions
click 65 298 # Finish
shot 6-done
xdotool key Escape # closes the wizard; the status window stays
sleep 0.5
import -window root -crop 640x560+0+0 +repage "$OUT/0-status.png"; echo "saved $OUT/0-status.png"
