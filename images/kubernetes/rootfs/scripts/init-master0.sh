#!/bin/bash
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # the engine may run phases with sh
exec 2>&1   # one output stream: the engine reads stdout and stderr concurrently into one line buffer
# init-master0.sh (the first master): kubeadm init, images from the embedded registry through
# containerd's registry.k8s.io mirror; join data into $SEALPACK_SHARE; admin kubeconfig for root.
. scripts/lib.sh
CFG=$INIT_CFG

if [ -f /etc/kubernetes/admin.conf ] && kubectl --kubeconfig /etc/kubernetes/admin.conf get --raw /readyz >/dev/null 2>&1; then
  log "control plane already initialised"
else
  { cat <<Y
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: $SEALPACK_HOST_IP
  bindPort: $API_PORT
$(node_registration)
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: $K8S_VERSION
controlPlaneEndpoint: $ENDPOINT
imageRepository: registry.k8s.io
networking:
  podSubnet: $POD_CIDR
  serviceSubnet: $SERVICE_CIDR
  dnsDomain: cluster.local
apiServer:
  # every master's address and the proxies' loopback; masters that join later are covered by
  # their own certificate (kubeadm join signs one naming the joining host)
  certSANs: [127.0.0.1, $SEALPACK_HOST_IP, $(echo $SEALPACK_MASTERS | sed 's/ /, /g')]
  extraArgs:
  - name: kubelet-preferred-address-types
    value: InternalIP
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
# the host's conntrack table size stays the host's (net.netfilter.nf_conntrack_max): kube-proxy
# of v1.36 and older writes its own figure even when the host's is larger, and exits where that
# sysctl is read-only (a host in a container)
conntrack: {maxPerCore: 0}
Y
    kubelet_config; } > $CFG
  # a half-done earlier attempt leaves manifests and certificates behind: start clean
  [ ! -e /etc/kubernetes/manifests/kube-apiserver.yaml ] || kubeadm reset -f --cri-socket $CRI
  log "kubeadm init ($K8S_VERSION, endpoint $ENDPOINT)"
  kubeadm init --config $CFG --upload-certs
fi
export KUBECONFIG=/etc/kubernetes/admin.conf
root_kubeconfig

# join data for every other host (the engine copies $SEALPACK_SHARE before the join phases)
write_join_data
# the pod-network sync on every node lists nodes (podCIDR, InternalIP); the Node authorizer lets a
# kubelet read only its own Node, so the sync gets a read-only service-account credential
kubectl apply -f - <<'Y'
apiVersion: v1
kind: ServiceAccount
metadata: {name: sealpack-cni, namespace: kube-system}
---
apiVersion: v1
kind: Secret
type: kubernetes.io/service-account-token
metadata:
  name: sealpack-cni
  namespace: kube-system
  annotations: {kubernetes.io/service-account.name: sealpack-cni}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: sealpack-cni}
rules:
- {apiGroups: [""], resources: [nodes], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: sealpack-cni}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: sealpack-cni}
subjects:
- {kind: ServiceAccount, name: sealpack-cni, namespace: kube-system}
Y
tok=
for _ in $(seq 60); do
  tok=$(kubectl -n kube-system get secret sealpack-cni -o jsonpath='{.data.token}' 2>/dev/null | base64 -d) && [ -n "$tok" ] && break
  sleep 1
done
[ -n "$tok" ] || die "no token for the sealpack-cni service account"
KC=$STATE/cni.kubeconfig; rm -f $KC
kubectl --kubeconfig=$KC config set-cluster k8s --server="https://$ENDPOINT" --certificate-authority=/etc/kubernetes/pki/ca.crt --embed-certs=true >/dev/null
kubectl --kubeconfig=$KC config set-credentials sealpack-cni --token="$tok" >/dev/null
kubectl --kubeconfig=$KC config set-context k8s --cluster=k8s --user=sealpack-cni >/dev/null
kubectl --kubeconfig=$KC config use-context k8s >/dev/null
chmod 0600 $KC; install -m 0600 $KC "$SEALPACK_SHARE/k8s-cni.kubeconfig"
systemctl restart sealpack-cni-sync.service
log "control plane up; join data in $SEALPACK_SHARE/k8s-join.env"
