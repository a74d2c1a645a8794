#!/bin/bash
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # the engine may run phases with sh
exec 2>&1   # one output stream: the engine reads stdout and stderr concurrently into one line buffer
# init-host.sh (every host): host tools, containerd with every upstream registry mirrored to the
# embedded registry, the kubelet unit, the pod-network sync service. Safe to run again.
. scripts/lib.sh
have_systemd || die "this cluster image needs systemd as PID 1 on every host"

# 1. host tools kubeadm and the CNI plugins call (Debian hosts: the packages the image carries)
need=
for t in iptables conntrack socat ethtool nft; do command -v $t >/dev/null || need="$need $t"; done
if [ -n "$need" ]; then
  command -v dpkg >/dev/null || die "missing on this host:$need (install them; the image carries them only as Debian packages)"
  debs=
  for d in debs/*.deb; do
    p=$(dpkg-deb -f "$d" Package)
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed' || { debs="$debs $d"; echo "$p" >> "$STATE/debs"; }
  done
  log "installing from the image's packages:$(for d in $debs; do basename "$d" | cut -d_ -f1; done | tr '\n' ' ')"
  [ -z "$debs" ] || DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold $debs
  sort -u -o "$STATE/debs" "$STATE/debs"
fi
for t in iptables conntrack socat nft mount nsenter ip; do command -v $t >/dev/null || die "$t not found"; done
# the netfilter tables the host had before kube-proxy and the CNI plugins add theirs (reset-host.sh
# deletes the others)
[ -f $STATE/nft.before ] || nft list tables > $STATE/nft.before
# host folders the control plane's and kube-proxy's hostPath volumes create when missing: recorded
# once, so reset-host.sh removes those this install made (when still empty)
[ -f $STATE/absent-dirs ] || for d in /etc/ssl /etc/ssl/certs /etc/pki /etc/ca-certificates /usr/share/ca-certificates \
  /usr/local/share/ca-certificates /lib/modules; do [ -e $d ] || echo $d; done > $STATE/absent-dirs

# 2. binaries
for b in kubeadm kubelet kubectl containerd containerd-shim-runc-v2 ctr runc; do
  install_file bin/$b /usr/local/bin/$b 0755 >/dev/null
done
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
printf 'SERVICE_CIDR=%s\nHOST_IP=%s\n' "$SERVICE_CIDR" "$SEALPACK_HOST_IP" | write_file $STATE/network.env >/dev/null

# 4. containerd: CRI with runc (cgroupfs), pause from registry.k8s.io (mirrored), certs.d mirrors
ctr_changed=
ctr_changed+=$(write_file /etc/containerd/config.toml <<'T'
version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10.2"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/etc/containerd/certs.d"
T
)
for up in registry.k8s.io docker.io quay.io ghcr.io gcr.io k8s.gcr.io registry.gitlab.com mcr.microsoft.com public.ecr.aws; do
  server=https://$up; [ $up = docker.io ] && server=https://registry-1.docker.io
  ctr_changed+=$(write_file /etc/containerd/certs.d/$up/hosts.toml <<T
server = "$server"
[host."https://$SEALPACK_REGISTRY"]
  capabilities = ["pull", "resolve"]
  ca = "$SEALPACK_REGISTRY_CA"
T
)
done
ctr_changed+=$(write_file "/etc/containerd/certs.d/$SEALPACK_REGISTRY/hosts.toml" <<T
server = "https://$SEALPACK_REGISTRY"
[host."https://$SEALPACK_REGISTRY"]
  capabilities = ["pull", "resolve"]
  ca = "$SEALPACK_REGISTRY_CA"
T
)

# 5. units
u=/etc/systemd/system
units_changed=
units_changed+=$(install_file files/containerd.service $u/containerd.service)
units_changed+=$(install_file files/sealpack-k8s-prep.service $u/sealpack-k8s-prep.service)
units_changed+=$(install_file files/kubelet.service $u/kubelet.service)
units_changed+=$(install_file files/10-kubeadm.conf $u/kubelet.service.d/10-kubeadm.conf)
units_changed+=$(install_file files/sealpack-cni-sync.service $u/sealpack-cni-sync.service)
[ -z "$units_changed" ] || systemctl daemon-reload
systemctl enable --now sealpack-k8s-prep.service
systemctl enable containerd.service kubelet.service sealpack-cni-sync.service
if [ -n "$ctr_changed$units_changed" ]; then systemctl restart containerd.service; else systemctl start containerd.service; fi
for i in $(seq 30); do ctr version >/dev/null 2>&1 && break; sleep 1; done
ctr version >/dev/null || die "containerd does not answer: $(systemctl status containerd --no-pager -n 20 2>&1)"
log "containerd $(ctr version 2>/dev/null | awk '/Version:/ {print $2; exit}') up; registry mirrors -> $SEALPACK_REGISTRY"
