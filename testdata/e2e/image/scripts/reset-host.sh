#!/bin/sh
# Undo init-host: stop the daemon, remove the evidence.
OUT=/etc/sealpack-test
[ -f "$OUT/daemon.pid" ] && kill "$(cat "$OUT/daemon.pid")" 2>/dev/null
rm -rf "$OUT"
exit 0
