#!/bin/bash
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # the engine may run phases with sh
exec 2>&1   # one output stream: the engine reads stdout and stderr concurrently into one line buffer
# upgrade-snapshot.sh (the first master, before the control plane changes): an etcd snapshot in
# $SEALPACK_SNAPSHOT_DIR (under the data root, 0700), through the local member with kubeadm's
# etcd health-check client certificate. docs/UPGRADE.md says how to restore it (etcdutl).
. scripts/lib.sh
[ -x bin/etcdctl ] || die "the image carries no bin/etcdctl (a SOURCE=release build has none): no etcd snapshot can be taken"
pki=/etc/kubernetes/pki/etcd
[ -f $pki/healthcheck-client.crt ] || die "no $pki/healthcheck-client.crt: is this the first master of a kubeadm cluster?"
mkdir -p "$SEALPACK_SNAPSHOT_DIR"; chmod 0700 "$SEALPACK_SNAPSHOT_DIR"
f=$SEALPACK_SNAPSHOT_DIR/etcd-$SEALPACK_FROM_VERSION-$(date -u +%Y%m%dT%H%M%SZ).db
bin/etcdctl --endpoints=https://127.0.0.1:2379 --cacert=$pki/ca.crt --cert=$pki/healthcheck-client.crt \
  --key=$pki/healthcheck-client.key snapshot save "$f"
chmod 0600 "$f"
log "etcd snapshot of the cluster at $SEALPACK_FROM_VERSION: $f ($(du -h "$f" | cut -f1))"
