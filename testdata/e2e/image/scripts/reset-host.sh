#!/bin/sh
# Undo init-host: stop the daemon, remove the evidence.
OUT=/etc/sealpack-test
# A joined master is reset while another master still runs (the engine resets the lead master,
# the first one unless it is down, last, so a control plane can leave a cluster that is still
# there): another master's registry must answer, unless the test marked this one the last alive.
if [ "$SEALPACK_ROLE" = master ] && [ "$SEALPACK_HOST_IP" != "$SEALPACK_MASTER0_IP" ] && [ ! -f "$OUT/alone" ]; then
  up=
  for reg in ${SEALPACK_REGISTRIES:-$SEALPACK_REGISTRY}; do
    [ "${reg%:*}" = "$SEALPACK_HOST_IP" ] && continue
    curl -sk --max-time 5 -o /dev/null "https://$reg/v2/" && up=1
  done
  [ -n "$up" ] || { echo "every other master was reset before $SEALPACK_HOST_IP"; exit 1; }
fi
[ -f "$OUT/daemon.pid" ] && kill "$(cat "$OUT/daemon.pid")" 2>/dev/null
rm -rf "$OUT"
exit 0
