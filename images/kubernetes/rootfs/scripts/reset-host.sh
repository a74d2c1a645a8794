#!/bin/bash
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # the engine may run phases with sh
exec 2>&1   # one output stream: the engine reads stdout and stderr concurrently into one line buffer
# reset-host.sh (every host, installer.run reset): undo init-host and the init/join phases.
. scripts/lib.sh
set +e
command -v kubeadm >/dev/null && kubeadm reset -f --cri-socket $CRI
systemctl disable --now sealpack-cni-sync.service kubelet.service 2>/dev/null
# every container of the cluster: killed and deleted through containerd, so their shims exit
if command -v ctr >/dev/null && ctr version >/dev/null 2>&1; then
  for t in $(ctr -n k8s.io tasks ls -q 2>/dev/null); do ctr -n k8s.io tasks kill -s SIGKILL "$t" 2>/dev/null; done
  sleep 2
  for t in $(ctr -n k8s.io tasks ls -q 2>/dev/null); do ctr -n k8s.io tasks delete -f "$t" 2>/dev/null; done
  for c in $(ctr -n k8s.io containers ls -q 2>/dev/null); do ctr -n k8s.io containers delete "$c" 2>/dev/null; done
fi
# the API proxy last: kubeadm reset of a control plane leaves etcd through it
systemctl disable --now containerd.service sealpack-k8s-prep.service sealpack-api-proxy.service 2>/dev/null
# leftover mounts of pods
for m in $(awk '$2 ~ "^/(run/containerd|var/lib/containerd|var/lib/kubelet)/" {print $2}' /proc/mounts | sort -r); do umount -l "$m"; done
# pod network
ip route show proto 211 | awk '{print $1}' | while read -r r; do ip route del "$r" proto 211; done
ip link del cni0 2>/dev/null
for l in $(ip -o link show type veth 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
  [ -e /sys/class/net/$l/master ] || continue; [ "$(basename $(readlink /sys/class/net/$l/master))" = cni0 ] && ip link del $l
done
# netfilter, without nft or iptables on the host (sealpack-nft: the copy init-host installed, else
# the image's): the KUBE-/CNI- chains kube-proxy's iptables added to tables the host had, then every
# table the install created (iptables-nft can empty them but not delete them)
NFT=/usr/local/lib/sealpack/sealpack-nft; [ -x $NFT ] || NFT=$ROOTFS/bin/sealpack-nft
if [ -x "$NFT" ] && [ -f "$STATE/nft.before" ]; then
  $NFT delete-chains KUBE- CNI-
  $NFT list-tables | while read -r _ family name; do
    grep -qx "table $family $name" "$STATE/nft.before" || $NFT delete-table "$family" "$name"
  done
fi
# files
rm -rf /etc/cni/net.d/10-sealpack.conflist /var/lib/cni /etc/kubernetes /var/lib/kubelet /var/lib/etcd /root/.kube/config
# what the kubelet, containerd and the pod-network sync create at run time
rm -rf /usr/libexec/kubernetes /opt/containerd /run/sealpack-cni /root/.kube/cache
if [ -f "$STATE/root-kubeconfig.orig" ]; then cp -p "$STATE/root-kubeconfig.orig" /root/.kube/config; fi
rmdir /etc/cni/net.d /etc/cni /root/.kube 2>/dev/null
# host folders the pods' hostPath volumes created (init-host.sh recorded which were missing)
[ ! -f "$STATE/absent-dirs" ] || tac "$STATE/absent-dirs" | while read -r d; do rmdir "$d" 2>/dev/null; done
rm -rf /etc/containerd /var/lib/containerd/* /run/containerd
rm -f /etc/systemd/system/{containerd,kubelet,sealpack-k8s-prep,sealpack-cni-sync,sealpack-api-proxy}.service
rm -rf /etc/systemd/system/kubelet.service.d
rm -f /etc/sysctl.d/90-sealpack-k8s.conf /etc/modules-load.d/sealpack-k8s.conf
rm -rf /usr/local/lib/sealpack
for b in kubeadm kubelet kubectl containerd containerd-shim-runc-v2 ctr runc; do rm -f /usr/local/bin/$b; done
for b in bridge host-local loopback; do rm -f /opt/cni/bin/$b; done
rmdir /opt/cni/bin /opt/cni 2>/dev/null
# kernel settings as they were before init-host.sh
[ ! -s "$STATE/sysctl.orig" ] || sysctl -q -p "$STATE/sysctl.orig"
rm -rf "$STATE"; rmdir /etc/sealpack 2>/dev/null
systemctl daemon-reload
exit 0
