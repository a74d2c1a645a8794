#!/bin/sh
# cgroup v1 controllers are mounted read-only inside systemd-nspawn hosts: make them writable.
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
exit 0
