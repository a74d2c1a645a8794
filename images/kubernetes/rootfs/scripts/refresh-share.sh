#!/bin/bash
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # the engine may run phases with sh
exec 2>&1   # one output stream: the engine reads stdout and stderr concurrently into one line buffer
# refresh-share.sh (the first master, before $SEALPACK_SHARE is copied to hosts that have not joined
# yet, on every install and join that has such hosts): the bootstrap token lives 24 h and the
# uploaded control-plane certificates 2 h, so join data older than an hour is made again.
. scripts/lib.sh
[ -f /etc/kubernetes/admin.conf ] || die "no control plane on this host (init-master0 did not run?)"
# (both files: join data an older installer wrote has no control-plane part)
if [ "$(find "$SEALPACK_SHARE/k8s-join.env" "$SEALPACK_SHARE/control-plane/k8s-cert-key.env" -mmin -60 2>/dev/null | wc -l)" = 2 ]; then
  log "join data is fresh"
  exit 0
fi
write_join_data
log "join data renewed"
