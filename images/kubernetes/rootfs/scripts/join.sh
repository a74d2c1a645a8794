# shellcheck shell=bash
# join.sh: kubeadm join for join-master.sh and join-node.sh (sourced; $1 = master|node)
. scripts/lib.sh
[ -f "$SEALPACK_SHARE/k8s-join.env" ] || die "no join data in $SEALPACK_SHARE (init-master0 did not run?)"
. "$SEALPACK_SHARE/k8s-join.env"
if [ "$JOIN_ROLE" = master ]; then
  [ -f "$SEALPACK_SHARE/control-plane/k8s-cert-key.env" ] || die "no certificate key in $SEALPACK_SHARE/control-plane (the engine gives it to masters only)"
  . "$SEALPACK_SHARE/control-plane/k8s-cert-key.env"
fi
CFG=/etc/sealpack/k8s/kubeadm-join.yaml
if [ -f /etc/kubernetes/kubelet.conf ] && systemctl is-active -q kubelet; then
  log "already joined"
else
  { cat <<Y
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: $K8S_ENDPOINT
    token: $K8S_TOKEN
    caCertHashes: ["$K8S_CA_HASH"]
$(node_registration)
Y
    if [ "$JOIN_ROLE" = master ]; then cat <<Y
controlPlane:
  localAPIEndpoint:
    advertiseAddress: $SEALPACK_HOST_IP
    bindPort: $API_PORT
  certificateKey: $K8S_CERT_KEY
Y
    fi; } > $CFG
  [ ! -e /etc/kubernetes/kubelet.conf ] && [ ! -e /etc/kubernetes/bootstrap-kubelet.conf ] || kubeadm reset -f --cri-socket $CRI
  log "kubeadm join as $JOIN_ROLE via $K8S_ENDPOINT"
  kubeadm join --config $CFG
fi
[ "$JOIN_ROLE" != master ] || root_kubeconfig
install -m 0600 "$SEALPACK_SHARE/k8s-cni.kubeconfig" $STATE/cni.kubeconfig
systemctl restart sealpack-cni-sync.service
