#!/bin/sh
# At every boot, before containerd and the kubelet. cgroup v1 controllers are mounted read-only
# inside systemd-nspawn hosts: make them writable.
if [ -d /sys/fs/cgroup ] && ! touch /sys/fs/cgroup/.sealpack-rw 2>/dev/null; then
  mount -o remount,rw /sys/fs/cgroup 2>/dev/null || true
fi
rm -f /sys/fs/cgroup/.sealpack-rw 2>/dev/null
for c in /sys/fs/cgroup/*/; do
  [ -w "$c" ] || mount -o remount,bind,rw "$c" 2>/dev/null || true
done
modprobe br_netfilter 2>/dev/null || true
sysctl -q -w net.ipv4.ip_forward=1 || true
sysctl -q -w net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
sysctl -q -w net.bridge.bridge-nf-call-ip6tables=1 2>/dev/null || true
# pods reach addresses outside the pod network with the node's address (table ip sealpack; the CNI
# bridge's own ipMasq would need iptables on the host)
POD_CIDR=
[ ! -f /etc/sealpack/k8s/network.env ] || . /etc/sealpack/k8s/network.env
[ -z "$POD_CIDR" ] || /usr/local/lib/sealpack/sealpack-nft masquerade --pod-cidr "$POD_CIDR" || exit 1
exit 0
