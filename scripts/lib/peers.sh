# Loopback peers for the scripts that photograph the real app and for the
# benchmarks: sourced, not run. Each starts a process in the background and
# appends its pid to the caller's PIDS array (the caller's trap kills them).

# work_dir PREFIX: sets WORK to a new directory and PIDS to none; at exit
# every started peer is killed and WORK removed (KEEP=1 keeps it).
work_dir() {
    WORK=$(mktemp -d "/tmp/$1.XXXXXX")
    PIDS=()
    trap 'for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; [[ -n ${KEEP:-} ]] || rm -rf "$WORK"' EXIT
}

# start_chronyd PORT WORK [LINE...]: a chronyd answering NTP on
# 127.0.0.1:PORT; each LINE is added to its configuration.
start_chronyd() {
    local port=$1 work=$2
    shift 2
    cat >"$work/chrony.conf" <<CONF
port $port
bindaddress 127.0.0.1
allow 127.0.0.0/8
local stratum 8
cmdport 0
pidfile $work/chronyd.pid
driftfile $work/drift
CONF
    if (($#)); then printf '%s\n' "$@" >>"$work/chrony.conf"; fi
    "$(command -v chronyd || echo /usr/sbin/chronyd)" -x -d -u root -f "$work/chrony.conf" \
        >"$work/chronyd.log" 2>&1 &
    PIDS+=($!)
}

# start_tcp_listener PORT: accepts and closes connections on 127.0.0.1:PORT
# (the network check needs only a TCP answer).
start_tcp_listener() {
    python3 -c "
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $1)); s.listen(16)
while True:
    c, _ = s.accept(); c.close()
" &
    PIDS+=($!)
}

# start_xvfb DISPLAY WORK: an X server, waited for.
start_xvfb() {
    Xvfb "$1" -screen 0 1280x900x24 -nolisten tcp >"$2/xvfb.log" 2>&1 &
    PIDS+=($!)
    export DISPLAY=$1
    for _ in $(seq 50); do xdotool getdisplaygeometry >/dev/null 2>&1 && break; sleep 0.1; done
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
