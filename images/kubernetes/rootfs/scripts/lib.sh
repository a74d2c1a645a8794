# shellcheck shell=bash
# lib.sh: shared by the phase scripts (sourced; the working directory is the rootfs).
set -euo pipefail
K8S_VERSION=${K8S_VERSION:-v1.37.2}
POD_CIDR=${SEALPACK_K8S_POD_CIDR:-10.244.0.0/16}
SERVICE_CIDR=${SEALPACK_K8S_SERVICE_CIDR:-10.96.0.0/12}
API_PORT=${SEALPACK_K8S_API_PORT:-6443}
ROOTFS=$(pwd)
STATE=/etc/sealpack/k8s          # what the phases installed, for reset-host.sh
CRI=unix:///run/containerd/containerd.sock
INIT_CFG=$STATE/kubeadm-init.yaml   # init-master0.sh's kubeadm configuration
# Every host reaches the API through its own health-checked proxy (sealpack-api-proxy.service, the
# installer's `agent api-proxy`) at 127.0.0.1:$PROXY_PORT, which forwards to every master's API
# server that is ready: the cluster keeps working when any master dies (docs/HA.md says why a
# node-local proxy). SEALPACK_K8S_ENDPOINT: a load balancer's HOST:PORT instead.
PROXY_PORT=${SEALPACK_K8S_API_PROXY_PORT:-6444}
ENDPOINT=${SEALPACK_K8S_ENDPOINT:-127.0.0.1:$PROXY_PORT}   # the API every host joins and uses
APISERVERS=$STATE/apiservers     # the proxy's backends, HOST:PORT a line (cni-sync.sh follows joins)
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p "$STATE"

log() { echo "[$(date +%T)] $*"; }
die() { echo "error: $*" >&2; exit 1; }
node_name() { hostname | tr 'A-Z' 'a-z'; }
have_systemd() { [ -d /run/systemd/system ]; }
# install_file SRC DEST [MODE]: copy when different; prints "changed" when it did
install_file() {
  if ! cmp -s "$1" "$2"; then
    mkdir -p "$(dirname "$2")"; install -m "${3:-0644}" "$1" "$2.sealpack.tmp" && mv -f "$2.sealpack.tmp" "$2"
    echo changed
  fi
}
# write_file DEST [MODE] < content: same, from stdin
write_file() { local t; t=$(mktemp -p "$SEALPACK_DATA_ROOT"); cat > "$t"; install_file "$t" "$1" "${2:-0644}"; rm -f "$t"; }

# the kubeadm configuration pieces every node shares
kubelet_config() {
  cat <<Y
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: $CRI
Y
  # SEALPACK_K8S_EVICTION_HARD="nodefs.available<1%,imagefs.available<1%" (answers file spec.env):
  # the kubelets' hard eviction thresholds, for hosts that share a nearly full disk; unset: the
  # kubelet's defaults
  if [ -n "${SEALPACK_K8S_EVICTION_HARD:-}" ]; then
    echo "evictionHard:"
    tr ',' '\n' <<<"$SEALPACK_K8S_EVICTION_HARD" | while IFS='<' read -r k v; do
      [ -n "$k" ] && [ -n "$v" ] || die "SEALPACK_K8S_EVICTION_HARD: '$k<$v' is not SIGNAL<QUANTITY"
      echo "  $k: \"$v\""
    done
  fi
}
node_registration() { # the nodeRegistration block of the init and join configurations
  cat <<Y
nodeRegistration:
  name: $(node_name)
  criSocket: $CRI
$(master_taints)
  ignorePreflightErrors:
  - SystemVerification   # cgroup v1 hosts; the kubelet runs with failCgroupV1: false
  kubeletExtraArgs:
  - name: node-ip
    value: $SEALPACK_HOST_IP
Y
}
# master_taints: a cluster without worker nodes (SEALPACK_NODES empty) must run its apps on the
# masters, so they get no NoSchedule taint; otherwise kubeadm's default taint stays.
master_taints() {
  [ "${SEALPACK_ROLE:-}" = master ] && [ -z "${SEALPACK_NODES// /}" ] && echo "  taints: []"
  return 0
}
# root_kubeconfig: the admin kubeconfig as root's default; a kubeconfig root had before the
# install is kept aside (reset-host.sh puts it back). Only at the first call: later ones (a re-run,
# an upgrade, whose kubeadm renewed admin.conf) find our own older copy there, which is no
# original of root's (keeping it aside made reset leave it behind)
root_kubeconfig() {
  mkdir -p /root/.kube
  if [ ! -e $STATE/root-kubeconfig.taken ]; then
    if [ -f /root/.kube/config ] && ! cmp -s /root/.kube/config /etc/kubernetes/admin.conf; then
      cp -p /root/.kube/config $STATE/root-kubeconfig.orig
    fi
    : > $STATE/root-kubeconfig.taken
  fi
  install -m 0600 /etc/kubernetes/admin.conf /root/.kube/config
  # for use off the hosts (the installer fetches it: io.sealpack.kubeconfig.remote): this master's own
  # API server, not the hosts' local proxy
  sed "s#^\( *server: \).*#\1https://$(host_port "$SEALPACK_HOST_IP" "$API_PORT")#" /etc/kubernetes/admin.conf | write_file $STATE/admin.conf 0600 >/dev/null
}
host_port() { case $1 in *:*) echo "[$1]:$2" ;; *) echo "$1:$2" ;; esac; }
# write_join_data (the first master): a bootstrap token (24 h) and the CA hash into
# $SEALPACK_SHARE/k8s-join.env (every host), the certificate key (the control-plane certificates
# uploaded for 2 h) into $SEALPACK_SHARE/control-plane/k8s-cert-key.env, which the engine gives only
# to masters: with a bootstrap token, the key decrypts the cluster's CA keys
write_join_data() {
  local join token hash key
  join=$(KUBECONFIG=/etc/kubernetes/admin.conf kubeadm token create --ttl 24h --print-join-command)
  token=$(sed -n 's/.*--token \([^ ]*\).*/\1/p' <<<"$join")
  hash=$(sed -n 's/.*--discovery-token-ca-cert-hash \([^ ]*\).*/\1/p' <<<"$join")
  # the first master keeps its init configuration; another master (the first one is down) makes
  # one from the cluster's own ClusterConfiguration and its local API endpoint
  local cfg=$INIT_CFG out
  if [ ! -f "$cfg" ]; then
    cfg=$STATE/kubeadm-upload-certs.yaml
    { printf 'apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: %s\n  bindPort: %s\nnodeRegistration:\n  criSocket: %s\n---\n' \
        "$SEALPACK_HOST_IP" "$API_PORT" "$CRI"
      KUBECONFIG=/etc/kubernetes/admin.conf kubectl -n kube-system get cm kubeadm-config -o 'jsonpath={.data.ClusterConfiguration}'; } > "$cfg"
  fi
  out=$(kubeadm init phase upload-certs --upload-certs --config "$cfg" 2>&1) || die "kubeadm init phase upload-certs: $out"
  key=$(tail -1 <<<"$out")
  [ -n "$token" ] && [ -n "$hash" ] && [ -n "$key" ] || die "no join data (token '$token', hash '$hash', key '$key')"
  mkdir -p -m 0700 "$SEALPACK_SHARE" "$SEALPACK_SHARE/control-plane"
  (umask 077
   printf 'K8S_CERT_KEY=%s\n' "$key" > "$SEALPACK_SHARE/control-plane/k8s-cert-key.env.tmp"
   printf 'K8S_ENDPOINT=%s\nK8S_TOKEN=%s\nK8S_CA_HASH=%s\n' "$ENDPOINT" "$token" "$hash" > "$SEALPACK_SHARE/k8s-join.env.tmp")
  mv -f "$SEALPACK_SHARE/control-plane/k8s-cert-key.env.tmp" "$SEALPACK_SHARE/control-plane/k8s-cert-key.env"
  mv -f "$SEALPACK_SHARE/k8s-join.env.tmp" "$SEALPACK_SHARE/k8s-join.env"
}

# write_apiservers ADDR...: the proxy's backends (HOST:PORT each), when they changed
write_apiservers() {
  printf '%s\n' "$@" | sort -u | write_file $APISERVERS
}

# preload_images: the bundle's container images into containerd, from the OCI image layout the
# engine's fan-out brought to this host ($SEALPACK_IMAGES; the first master has none, its registry
# serves the bundle itself). Skipped when containerd already holds each image at the layout's
# digest. init-host.sh calls it at install; upgrade-prepare.sh on every host before the control
# plane's upgrade rolls out the new version's DaemonSets (kube-proxy) to all nodes at once.
preload_images() {
  [ -n "${SEALPACK_IMAGES:-}" ] && [ -f "$SEALPACK_IMAGES/index.json" ] || return 0
  local want have missing t0 out left
  # "name digest" of every image of the layout (index.json as the engine writes it: one line,
  # each manifest's digest before its io.containerd.image.name annotation), and of containerd's
  want=$(grep -o '"digest":"sha256:[0-9a-f]*","size":[0-9]*,"annotations":{"io.containerd.image.name":"[^"]*"' "$SEALPACK_IMAGES/index.json" |
    sed 's/^"digest":"\([^"]*\)".*"io.containerd.image.name":"\([^"]*\)"$/\2 \1/' | sort)
  [ -n "$want" ] || die "$SEALPACK_IMAGES/index.json names no image"
  have=$(ctr -n k8s.io images ls 2>/dev/null | awk 'NR > 1 {print $1, $3}' | sort)
  missing=$(comm -23 <(echo "$want") <(echo "$have") | wc -l)
  if [ "$missing" -gt 0 ]; then
    t0=$(date +%s)
    # tar follows no link here: the layout's blobs are hard links into the engine's blob store
    out=$(tar -C "$SEALPACK_IMAGES" -cf - . | ctr -n k8s.io images import - 2>&1) ||
      die "ctr images import of $SEALPACK_IMAGES failed: $(tail -5 <<< "$out")"
    have=$(ctr -n k8s.io images ls 2>/dev/null | awk 'NR > 1 {print $1, $3}' | sort)
    left=$(comm -23 <(echo "$want") <(echo "$have"))
    [ -z "$left" ] || die "containerd lacks after the import of $SEALPACK_IMAGES: $left"
    log "$missing of $(wc -l <<< "$want") images preloaded from $SEALPACK_IMAGES in $(( $(date +%s) - t0 )) s"
  else
    log "$(wc -l <<< "$want") images already preloaded"
  fi
}
