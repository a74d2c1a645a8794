#!/bin/bash
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # the engine may run phases with sh
exec 2>&1   # one output stream: the engine reads stdout and stderr concurrently into one line buffer
# init-host.sh (every host): preflight, containerd with every upstream registry mirrored to the
# embedded registry, the kubelet unit, the pod-network sync service. Safe to run again.
. scripts/lib.sh

# 1. preflight: what this host lacks that the image cannot carry, named all at once, before any
#    change. Every binary the cluster runs comes from the image, statically linked; no package
#    manager is used (scripts/k8s/build-runtime.sh says where each former host tool went).
lacks=()
have_systemd || lacks+=("systemd as PID 1 (this is $(cat /proc/1/comm 2>/dev/null || echo unknown))")
# the userland the phase scripts, kubeadm's preflight (losetup mount cp) and the kubelet call
miss=
for t in mount umount losetup cp nsenter ip awk sed grep install cmp sysctl hostname sort comm wc tar tac base64 mktemp; do
  p=$(command -v $t) && [ -x "$p" ] || miss="$miss $t"   # bash may name a file it cannot run
done
[ -z "$miss" ] || lacks+=("commands:$miss")
# kernel: a feature counts when it is active, or when its module loads (built in or not)
kfeat() { # kfeat MODULE TEST...: TEST passes now or after modprobe MODULE
  "${@:2}" 2>/dev/null && return 0
  command -v modprobe >/dev/null && modprobe -q "$1" 2>/dev/null && "${@:2}" 2>/dev/null
}
kfeat overlay grep -qw overlay /proc/filesystems || lacks+=("kernel: overlayfs (module overlay)")
kfeat br_netfilter test -e /proc/sys/net/bridge/bridge-nf-call-iptables || lacks+=("kernel: bridge netfilter (module br_netfilter)")
kfeat nf_tables bin/sealpack-nft list-tables >/dev/null || lacks+=("kernel: nf_tables (module nf_tables)")
cg=
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then # cgroup v2
  for c in cpu memory pids; do grep -qw $c /sys/fs/cgroup/cgroup.controllers || cg="$cg $c"; done
else # cgroup v1
  for c in cpu memory pids; do [ -d /sys/fs/cgroup/$c ] || cg="$cg $c"; done
fi
[ -z "$cg" ] || lacks+=("cgroup controllers:$cg (neither cgroup v2 nor v1 offers them at /sys/fs/cgroup)")
if [ ${#lacks[@]} -gt 0 ]; then
  echo "error: this host ($(hostname), kernel $(uname -r)) lacks what the cluster needs and the image cannot carry:" >&2
  printf '  - %s\n' "${lacks[@]}" >&2
  rmdir "$STATE" /etc/sealpack 2>/dev/null || true   # lib.sh's state folder, when this run made it
  exit 1
fi
# the netfilter tables the host had before kube-proxy and the install add theirs (reset-host.sh
# deletes the others)
[ -f $STATE/nft.before ] || bin/sealpack-nft list-tables > $STATE/nft.before
# host folders the control plane's and kube-proxy's hostPath volumes create when missing: recorded
# once, so reset-host.sh removes those this install made (when still empty)
[ -f $STATE/absent-dirs ] || for d in /etc/ssl /etc/ssl/certs /etc/pki /etc/ca-certificates /usr/share/ca-certificates \
  /usr/local/share/ca-certificates /lib/modules; do [ -e $d ] || echo $d; done > $STATE/absent-dirs

# 2. binaries
for b in kubeadm kubelet kubectl containerd containerd-shim-runc-v2 ctr runc; do
  install_file bin/$b /usr/local/bin/$b 0755 >/dev/null
done
install_file bin/sealpack-nft /usr/local/lib/sealpack/sealpack-nft 0755 >/dev/null
mkdir -p /opt/cni/bin
for b in cni/*; do install_file "$b" /opt/cni/bin/$(basename "$b") 0755 >/dev/null; done
install_file files/k8s-prep.sh /usr/local/lib/sealpack/k8s-prep.sh 0755 >/dev/null
install_file files/cni-sync.sh /usr/local/lib/sealpack/cni-sync.sh 0755 >/dev/null

# 3. kernel settings, now and at boot; /etc/hosts (containerd's CRI needs one)
# the values the host had, once, so reset-host.sh can put them back
[ -f $STATE/sysctl.orig ] || for k in net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables; do
  v=$(sysctl -n $k 2>/dev/null) || continue; echo "$k = $v"; done > $STATE/sysctl.orig
write_file /etc/sysctl.d/90-sealpack-k8s.conf <<'S' >/dev/null
net.ipv4.ip_forward = 1
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
S
printf 'overlay\nbr_netfilter\n' | write_file /etc/modules-load.d/sealpack-k8s.conf >/dev/null
[ -s /etc/hosts ] || printf '127.0.0.1 localhost\n::1 localhost\n' > /etc/hosts
grep -qw "$(hostname)" /etc/hosts || echo "$SEALPACK_HOST_IP $(hostname)" >> /etc/hosts
swapoff -a 2>/dev/null || true
printf 'SERVICE_CIDR=%s\nPOD_CIDR=%s\nHOST_IP=%s\nAPI_PORT=%s\nAPISERVERS=%s\n' "$SERVICE_CIDR" "$POD_CIDR" "$SEALPACK_HOST_IP" "$API_PORT" \
  "$([ -n "${SEALPACK_K8S_ENDPOINT:-}" ] || echo $APISERVERS)" | write_file $STATE/network.env >/dev/null

# 4. containerd: CRI with runc (cgroupfs), pause from registry.k8s.io (mirrored), certs.d mirrors
ctr_changed=
# containerd 2.x, configuration version 4 (files/containerd.toml says why)
ctr_changed+=$(install_file files/containerd.toml /etc/containerd/config.toml)
# every master serves the bundle's images (SEALPACK_REGISTRIES, the first master's first), all
# under one CA: containerd tries them in order, giving up on one that does not answer in 2 s, so
# losing a master loses no image
mirrors() { # the [host] tables of every registry
  local r
  for r in ${SEALPACK_REGISTRIES:-$SEALPACK_REGISTRY}; do printf '[host."https://%s"]\n  capabilities = ["pull", "resolve"]\n  ca = "%s"\n  dial_timeout = "2s"\n' "$r" "$SEALPACK_REGISTRY_CA"; done
}
for up in registry.k8s.io docker.io quay.io ghcr.io gcr.io k8s.gcr.io registry.gitlab.com mcr.microsoft.com public.ecr.aws; do
  server=https://$up; [ $up = docker.io ] && server=https://registry-1.docker.io
  ctr_changed+=$({ echo "server = \"$server\""; mirrors; } | write_file /etc/containerd/certs.d/$up/hosts.toml)
done
ctr_changed+=$({ echo "server = \"https://$SEALPACK_REGISTRY\""; mirrors; } | write_file "/etc/containerd/certs.d/$SEALPACK_REGISTRY/hosts.toml")

# 5. units
u=/etc/systemd/system
units_changed=
# the API endpoint of this host: a health-checked proxy to every master's API server that is
# ready (/readyz), run by the installer's program under the data root; cni-sync.sh adds masters
# that join later to its backends, read again every 2 s
if [ -z "${SEALPACK_K8S_ENDPOINT:-}" ]; then
  [ -f $APISERVERS ] || write_apiservers $(for m in $SEALPACK_MASTERS; do echo "$m:$API_PORT"; done) >/dev/null
  units_changed+=$(write_file $u/sealpack-api-proxy.service <<UNIT
[Unit]
Description=sealpack API proxy: 127.0.0.1:$PROXY_PORT to every ready master's API server
After=network-online.target
Before=kubelet.service
[Service]
ExecStart=$SEALPACK_DATA_ROOT/bin/sealpack agent api-proxy --listen 127.0.0.1:$PROXY_PORT --backends-file $APISERVERS --health-path /readyz
Restart=always
RestartSec=1
[Install]
WantedBy=multi-user.target
UNIT
)
fi
units_changed+=$(install_file files/containerd.service $u/containerd.service)
units_changed+=$(install_file files/sealpack-k8s-prep.service $u/sealpack-k8s-prep.service)
units_changed+=$(install_file files/kubelet.service $u/kubelet.service)
units_changed+=$(install_file files/10-kubeadm.conf $u/kubelet.service.d/10-kubeadm.conf)
units_changed+=$(install_file files/sealpack-cni-sync.service $u/sealpack-cni-sync.service)
[ -z "$units_changed" ] || systemctl daemon-reload
# --no-reload: enable reloads systemd otherwise (0.3-2.7 s each), and the unit files were loaded above
systemctl enable --now --no-reload sealpack-k8s-prep.service
systemctl enable --no-reload containerd.service kubelet.service sealpack-cni-sync.service
if [ -z "${SEALPACK_K8S_ENDPOINT:-}" ]; then
  systemctl enable --no-reload sealpack-api-proxy.service
  if [ -n "$units_changed" ]; then systemctl restart sealpack-api-proxy.service; else systemctl start sealpack-api-proxy.service; fi
fi
if [ -n "$ctr_changed$units_changed" ]; then systemctl restart containerd.service; else systemctl start containerd.service; fi
# the unit is Type=notify, so systemctl returns once containerd is ready and the first ctr call
# answers: one call checks it and reads the server's version (each ctr start costs 0.1-0.3 s on a
# busy host); polled every 0.2 s, up to 30 s, when it does not
ver=
for i in $(seq 150); do ver=$(ctr version 2>/dev/null | awk '/Version:/ {v = $2} END {print v}') && [ -n "$ver" ] && break; sleep 0.2; done
[ -n "$ver" ] || die "containerd does not answer: $(systemctl status containerd --no-pager -n 20 2>&1)"
log "containerd $ver up; registry mirrors -> $SEALPACK_REGISTRY"

# 6. the bundle's container images, preloaded. The engine brought them to this host through its
#    fan-out (from hosts that already had them, not from the masters) as an OCI image layout,
#    $SEALPACK_IMAGES; the first master has none, its registry serves the bundle itself. Imported
#    and unpacked here, the kubelet starts every pod from local images: 200 nodes no longer pull
#    every DaemonSet's image from the masters' registries, and a node that boots while every
#    master is down still starts its pods. Skipped when containerd already holds each image at the
#    layout's digest (a re-run, an upgrade that brought no new image); the masters' registries
#    still answer for anything else (imagePullPolicy Always, an image the bundle does not carry).
preload_images
