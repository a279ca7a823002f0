# A scratch home for a dev agent (or the app and its embedded agent) whose
# checks stay on loopback: sourced, not run. The policy asks 127.0.0.1:9
# for the time and links there, so nothing leaves the machine and the
# clock and network checks fail fast, as in the tests.

# loopback_home DIR DEVICE_ID: (re)creates DIR as HOME, with the XDG
# directories inside it (the runtime one 0700), and writes the install
# config and an unsigned (allowed) loopback policy where a dev agent looks
# for them, $XDG_CONFIG_HOME/rampart/. Sets, without exporting (cargo must
# keep the real HOME):
#   LOOPBACK_ENV     NAME=VALUE words for `env -i` or `export`
#   LOOPBACK_CONFIG  the install config, for `--config`
#   LOOPBACK_STATE   $XDG_STATE_HOME, to empty between cold starts
#   LOOPBACK_RUN     $XDG_RUNTIME_DIR
loopback_home() {
    local home=$1 device=$2
    rm -rf "$home"
    LOOPBACK_STATE=$home/.local/state
    LOOPBACK_RUN=$home/run
    local config=$home/.config
    mkdir -p "$config/rampart" "$LOOPBACK_STATE" "$home/.local/share" "$LOOPBACK_RUN"
    chmod 700 "$home" "$LOOPBACK_RUN"
    LOOPBACK_CONFIG=$config/rampart/agent.json
    echo "{\"device_id\": \"$device\", \"allow_unsigned_local_policy\": true}" >"$LOOPBACK_CONFIG"
    echo '{"schema": 1, "serial": 1, "mfa": {"required": true}, "clock": {"ntp_servers": ["127.0.0.1:9"]},
           "links": {"offline_guide_url": "https://127.0.0.1:9/g", "support_url": "https://127.0.0.1:9/s"}}' \
        >"$config/rampart/policy.json"
    LOOPBACK_ENV=(HOME="$home" XDG_CONFIG_HOME="$config" XDG_STATE_HOME="$LOOPBACK_STATE"
        XDG_DATA_HOME="$home/.local/share" XDG_RUNTIME_DIR="$LOOPBACK_RUN")
}
