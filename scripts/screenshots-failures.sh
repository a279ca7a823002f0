#!/usr/bin/env bash
# The failure states of "Before you begin" and the status window, from the
# real app under Xvfb: each fault is induced for real on loopback (a closed
# port for IT's policy server or for Duo, time servers that never answer, a
# policy whose minimum version is above this build, a guide host whose
# certificate nobody trusts) and saved as docs/screenshots/1x-*.png. Keys
# are pressed like a person would (Shift-Tab to "Details", Space).
#
# Needs: xvfb, xdotool, imagemagick, chrony, python3.
# Usage: scripts/screenshots-failures.sh      (KEEP=1 keeps the work dir)
set -euo pipefail
# shellcheck source=lib/peers.sh
source "$(dirname "$0")/lib/peers.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/docs/screenshots
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
DISPLAY_NUM=${DISPLAY_NUM:-:94}

cargo build --quiet -p rampart --bin rampart
cargo build --quiet -p rampart-tests --example duo_server
APP=$TARGET/debug/rampart

work_dir rfail

NTP_PORT=$(free_port)
GUIDE_PORT=$(free_port)
CLOSED=$(free_port) # nothing listens there: connections are refused
SILENT_NTP=$(free_port)

start_chronyd "$NTP_PORT" "$WORK"
start_tcp_listener "$GUIDE_PORT"
# A TLS server whose CA this computer does not know: a proxy's stand-in.
mkfifo "$WORK/duo.out"
"$TARGET/debug/examples/duo_server" "$WORK" "$(id -un)" >"$WORK/duo.out" &
PIDS+=($!)
read -r UNTRUSTED_HOST _ DUO_KEY <"$WORK/duo.out"

start_xvfb "$DISPLAY_NUM" "$WORK"
sleep 1

mkdir -p "$WORK/bin" "$OUT"
printf '#!/bin/sh\necho "$@" >>"%s/opened.txt"\n' "$WORK" >"$WORK/bin/xdg-open"
chmod +x "$WORK/bin/xdg-open"

# run NAME AGENT_JSON POLICY_JSON WINDOW KEYS...: the app in a fresh HOME
# with this install config and managed policy; after the first checks the
# keys are pressed in WINDOW ("wizard" or "status") and the window saved.
run() {
    local name=$1 agent=$2 policy=$3 window=$4
    shift 4
    local home=$WORK/$name
    mkdir -p "$home/.config/rampart" "$home/run"
    chmod 700 "$home/run"
    echo "$agent" >"$home/.config/rampart/agent.json"
    echo "$policy" >"$home/.config/rampart/policy.json"
    HOME=$home XDG_CONFIG_HOME=$home/.config XDG_STATE_HOME=$home/.local/state \
        XDG_DATA_HOME=$home/.local/share XDG_RUNTIME_DIR=$home/run PATH=$WORK/bin:$PATH \
        RAMPART_LOG=info "$APP" >"$home/app.log" 2>&1 &
    local app=$!
    local title='^Rampart: set up MFA$'
    [[ $window == status ]] && title='^Rampart$'
    local id
    id=$(xdotool search --sync --name "$title" | head -1)
    sleep 4 # the first network and clock checks (time servers time out in 2 s)
    if [[ $window == status ]]; then
        # The wizard opened by itself: close it, the status window stays.
        xdotool windowfocus --sync "$(xdotool search --name '^Rampart: set up MFA$' | head -1)" key Escape
        sleep 0.5
    fi
    for key in "$@"; do
        xdotool windowfocus --sync "$id" key "$key"
        sleep 0.3
    done
    sleep 0.6
    import -window "$id" +repage "$OUT/$name.png"
    echo "saved $OUT/$name.png"
    kill "$app"
    wait "$app" 2>/dev/null || true
}

BASE='"device_id": "screenshots", "allow_unsigned_local_policy": true'
KEY=RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3
policy() { # PROVIDER NTP_PORT [EXTRA]
    echo "{\"schema\": 1, \"serial\": 1, \"organization\": \"ACME Corp\",
     \"mfa\": {\"required\": true, \"provider\": $1}, \"clock\": {\"ntp_servers\": [\"127.0.0.1:$2\"]},
     \"links\": {\"offline_guide_url\": \"https://127.0.0.1:$GUIDE_PORT/offline-access\",
                \"support_url\": \"https://127.0.0.1:$GUIDE_PORT/support\"}${3:-}}"
}
TOTP='{"kind": "totp"}'

# IT's policy server refuses and no time server answers: the authenticator
# app needs neither, so both warn and "Get started" stays enabled; Details
# (Shift-Tab from "Get started", Space) shows the raw text.
run 10-it-server-down-totp-continues \
    "{$BASE, \"policy_url\": \"https://127.0.0.1:$CLOSED/policy.json\", \"public_keys\": [\"$KEY\"]}" \
    "$(policy "$TOTP" "$SILENT_NTP")" wizard shift+Tab shift+Tab space

# Duo cannot be reached: Duo's setup needs Duo, so this one blocks.
run 11-duo-unreachable-blocks "{$BASE}" \
    "$(policy "{\"kind\": \"duo\", \"api_host\": \"127.0.0.1:$CLOSED\", \"integration_key\": \"DIWJ8X6AEYOR5OMC6TQ1\", \"secret_key_file\": \"$DUO_KEY\"}" "$NTP_PORT")" \
    wizard

# The policy's minimum version is above this build.
run 12-version-too-old "{$BASE}" \
    "$(policy "$TOTP" "$NTP_PORT" ', "agent": {"min_version": "99.0.0"}')" wizard

# The guide's host presents a certificate nobody here trusts (a TLS
# inspecting proxy, say): the status window names it, the TLS text waits
# under Details.
run 13-status-untrusted-certificate "{$BASE}" \
    "$(policy "$TOTP" "$NTP_PORT" | sed "s#https://127.0.0.1:$GUIDE_PORT/offline-access#https://$UNTRUSTED_HOST/guide#")" \
    status
