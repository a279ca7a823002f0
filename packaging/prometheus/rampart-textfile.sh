#!/bin/sh
# Writes Rampart's status as metrics for node_exporter's textfile collector:
#
#   rampart-textfile.sh [DIR]     (default /var/lib/prometheus/node-exporter)
#
# The file is written beside its final name and moved into place, so the
# collector never reads half of it. An agent that cannot be reached still
# gives `rampart_up 0` (status exits 2); only a failure of the command
# itself (exit 3 or more) leaves the previous file in place. Run it from a
# systemd timer or cron: docs/status.md. RAMPART_AGENT picks the binary,
# RAMPART_SOCKET the agent (default: the service).
set -u
dir=${1:-/var/lib/prometheus/node-exporter}
agent=${RAMPART_AGENT:-rampart-agent}
tmp="$dir/.rampart.prom.$$"
"$agent" status --format prometheus >"$tmp"
code=$?
if [ "$code" -gt 2 ]; then
    rm -f "$tmp"
    echo "rampart-textfile: rampart-agent status failed (exit $code); $dir/rampart.prom left as it was" >&2
    exit 1
fi
chmod 0644 "$tmp"
mv -f "$tmp" "$dir/rampart.prom"
