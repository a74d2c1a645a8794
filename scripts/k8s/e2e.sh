#!/bin/bash
# e2e.sh: the real-Kubernetes tier (issue 7). systemd hosts booted with systemd-nspawn from a Debian
# root filesystem (mmdebstrap, cached by suite under $SEALPACK_CACHE/hostroot), each with its own
# address on a bridge with no route out and sshd inside; an installer FROM kubernetes:v1.37.2 with
# a 2-replica app; install on 1 master + 2 nodes; assertions; join a 4th host; reset; teardown.
#
# STATUS: `make e2e-kubernetes` passed on 2026-11-27 in 1 min 43 s with warm caches (hosts up 3 s;
# install of 1 master + 2 nodes ~38 s; all Ready, kube-system Running, app on both nodes answering
# through its ClusterIP; join h4 7.6 s; reset 9 s). Not in .ci/run yet. Still to assert: h4 Ready
# after join, hosts clean after reset, no image pulled from elsewhere (beyond listing them).
# A re-run of install on the same hosts fails preflight (port 5000 held by the registry of the
# first run): bring the hosts down and up between runs.
# Usage: e2e.sh [up|install|check|down|all]   (default all)   Env: SEALPACK_CACHE, GEN, KEEP=1
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(cd "$HERE/../.." && pwd)
CACHE=${SEALPACK_CACHE:-/var/cache/sealpack}
GEN=${GEN:-$REPO/bin/gen}
SUITE=bookworm
ROOT=$CACHE/hostroot/$SUITE                # shared read-only lower layer of every host
E=${E2E_DIR:-/var/lib/sealpack-e2e/k8s}    # per-run state (not /tmp: containerd roots live here)
BR=spk0; NET=10.249.0; HOSTS="h1 h2 h3 h4"
ip_of() { echo "$NET.$(( 10 + ${1#h} ))"; }
log() { echo "[$(date +%T)] $*"; }

rootfs() { # the host root filesystem, built once
  [ -f "$ROOT/.done" ] && return
  log "mmdebstrap $SUITE -> $ROOT"
  rm -rf "$ROOT"; mkdir -p "$(dirname "$ROOT")"
  mmdebstrap --variant=minbase --include=systemd,systemd-sysv,dbus,openssh-server,iproute2,udev,kmod,procps \
    "$SUITE" "$ROOT"
  # minbase has no /etc/hosts (containerd's CRI needs one); sshd: root by key only
  printf '127.0.0.1 localhost\n' > "$ROOT/etc/hosts"
  sed -i 's/^#\?PermitRootLogin.*/PermitRootLogin prohibit-password/' "$ROOT/etc/ssh/sshd_config"
  rm -f "$ROOT"/etc/ssh/ssh_host_*   # each host makes its own (ssh.service's ExecStartPre / sshd-keygen)
  touch "$ROOT/.done"
}

net_up() {
  ip link show $BR >/dev/null 2>&1 || { ip link add $BR type bridge; ip addr add $NET.1/24 dev $BR; ip link set $BR up; }
  # the bridge forwards nothing out: no NAT, and the hosts get no default route
}

host_up() { # host_up NAME: overlay root, network, ssh key, own cgroups; boot
  local n=$1 ip; ip=$(ip_of "$1"); local H=$E/$n
  mkdir -p "$H"/{up,wk,root,ctd,kubelet}
  mountpoint -q "$H/root" || mount -t overlay "ov-$n" -o "lowerdir=$ROOT,upperdir=$H/up,workdir=$H/wk" "$H/root"
  local R=$H/root
  mkdir -p "$R/etc/systemd/network" "$R/root/.ssh"
  # must sort before 80-container-host0.network, else host0 only gets a link-local address
  printf '[Match]\nName=host0\n[Network]\nAddress=%s/24\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n' "$ip" > "$R/etc/systemd/network/10-host0.network"
  ln -sf /lib/systemd/system/systemd-networkd.service "$R/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
  echo "$n" > "$R/etc/hostname"
  { printf '127.0.0.1 localhost\n'; for m in $HOSTS; do echo "$(ip_of $m) $m"; done; } > "$R/etc/hosts"
  install -m 0600 "$E/client_key.pub" "$R/root/.ssh/authorized_keys"
  # host keys kept across runs (same address, same key), so known_hosts stays valid
  local K=$CACHE/e2e-hostkeys/$n; mkdir -p "$K"
  [ -e "$K/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$K/ssh_host_ed25519_key"
  cp "$K"/ssh_host_ed25519_key* "$R/etc/ssh/"
  # this kernel has cgroup v1 and PID 1 is not systemd: give each host its own child cgroup in every
  # v1 controller (nspawn roots the host's cgroup namespace there, so each kubelet keeps the default
  # cgroupRoot), and pre-create payload/supervisor in name=systemd, where nspawn attaches to them
  local cgs=
  for c in cpu cpuacct cpuset memory devices freezer blkio pids; do
    local cur d; cur=$(awk -F: -v c=$c '$2==c {print $3}' /proc/self/cgroup); d=/sys/fs/cgroup/$c${cur%/}/spk-$n
    [ -d "/sys/fs/cgroup/$c" ] || continue
    mkdir -p "$d"
    [ $c = cpuset ] && { cat "$(dirname "$d")/cpuset.cpus" > "$d/cpuset.cpus"; cat "$(dirname "$d")/cpuset.mems" > "$d/cpuset.mems"; }
    cgs="$cgs echo \$\$ > $d/cgroup.procs;"
  done
  mkdir -p "/sys/fs/cgroup/unified/spk-$n" "/sys/fs/cgroup/systemd/spk-$n/payload" "/sys/fs/cgroup/systemd/spk-$n/supervisor"
  SYSTEMD_NSPAWN_API_VFS_WRITABLE=1 SYSTEMD_SECCOMP=0 setsid nohup sh -c "$cgs echo \$\$ > /sys/fs/cgroup/unified/spk-$n/cgroup.procs; echo \$\$ > /sys/fs/cgroup/systemd/spk-$n/cgroup.procs; exec systemd-nspawn --quiet --register=no --keep-unit --capability=all \
    --resolv-conf=off --timezone=off --link-journal=no -D $R -M $n --network-bridge=$BR \
    --bind=$H/ctd:/var/lib/containerd --bind=$H/kubelet:/var/lib/kubelet --bind=/dev/kmsg --boot" > "$H/console.log" 2>&1 &
  echo $! > "$H/nspawn.pid"
}

wait_ssh() {
  local ip; ip=$(ip_of "$1")
  for _ in $(seq 60); do
    ssh -i "$E/client_key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=2 -o BatchMode=yes \
      "root@$ip" true 2>/dev/null && return; sleep 1
  done
  echo "$1: no ssh after 60 s; console:"; tail -20 "$E/$1/console.log"; return 1
}

host_down() {
  local n=$1 H=$E/$1
  if [ -f "$H/nspawn.pid" ] && kill -0 "$(cat "$H/nspawn.pid")" 2>/dev/null; then
    local p; p=$(cat "$H/nspawn.pid"); kill -TERM "$p"   # nspawn: orderly poweroff
    for _ in $(seq 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p"
  fi
  rm -f "$H/nspawn.pid"
  mountpoint -q "$H/root" && umount "$H/root"
  for d in $(find /sys/fs/cgroup -maxdepth 4 -type d -name "spk-$n" 2>/dev/null); do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  rm -rf "$H"
}

up() {
  rootfs; net_up; mkdir -p "$E"
  [ -f "$E/client_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$E/client_key"
  for n in ${1:-h1 h2 h3}; do host_up "$n"; done
  for n in ${1:-h1 h2 h3}; do wait_ssh "$n"; done
  log "hosts up"
}

app() { # the test app: a tiny HTTP server image and an installer FROM kubernetes:v1.37.2
  local A=$E/app; rm -rf "$A"; mkdir -p "$A/manifests" "$A/img/root"
  (cd "$REPO/testdata/k8s-app/httpd" 2>/dev/null || cd "$HERE/mod/httpd"; CGO_ENABLED=0 go build -o "$A/img/root/httpd" .)
  "$CACHE/k8s/imgtool" build -layout "$A/layout" -ref e2e/httpd:v1 -entrypoint /httpd -root "$A/img/root"
  cat > "$A/manifests/app.yaml" <<'Y'
apiVersion: apps/v1
kind: Deployment
metadata: {name: httpd, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: httpd}}
  template:
    metadata: {labels: {app: httpd}}
    spec:
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: httpd}}}
      containers:
      - {name: httpd, image: docker.io/e2e/httpd:v1, ports: [{containerPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: httpd, namespace: default}
spec: {selector: {app: httpd}, ports: [{port: 80, targetPort: 8080}]}
Y
  printf 'FROM kubernetes:v1.37.2\nAPP httpd local://manifests/app.yaml\nLAUNCH ["httpd"]\n' > "$A/Kubefile"
  # the manifest names docker.io/e2e/httpd:v1 (served as e2e/httpd:v1, reached through the
  # docker.io mirror); gen fetches it from the loopback registry instead of docker.io
  "$CACHE/k8s/imgtool" serve -layout "$A/layout" -addr 127.0.0.1:5056 -- \
    "$GEN" -f "$A/Kubefile" -o "$A/installer.run" --exclude-image docker.io/e2e/httpd --image 127.0.0.1:5056/e2e/httpd:v1 "$A"
}

answers() { # answers HOSTS...: first is the master
  local m=$1; shift
  { echo "apiVersion: sealer.io/v2"; echo "kind: Cluster"; echo "metadata: {name: e2e-k8s}"; echo "spec:"; echo "  hosts:"
    echo "    - ips: [$(ip_of "$m")]"; echo "      roles: [master]"
    [ $# -eq 0 ] || { echo "    - ips: [$(for n in "$@"; do ip_of "$n"; done | paste -sd, | sed 's/,/, /g')]"; echo "      roles: [node]"; }
    echo "  ssh:"; echo "    pk: $E/client_key"; } > "$E/cluster.yaml"
}

on() { local n=$1; shift; ssh -i "$E/client_key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes "root@$(ip_of "$n")" "$@"; }

do_install() {
  app; answers h1 h2 h3
  local t0=$SECONDS
  "$E/app/installer.run" install --answers "$E/cluster.yaml" --yes --accept-new-host-keys --known-hosts "$E/known_hosts"
  log "install: $(( SECONDS - t0 )) s"
}

check() {
  on h1 'export KUBECONFIG=/etc/kubernetes/admin.conf
    kubectl wait --for=condition=Ready node --all --timeout=120s
    kubectl -n kube-system wait --for=condition=Ready pod --all --timeout=180s
    kubectl rollout status deploy/httpd --timeout=120s
    test "$(kubectl get pod -l app=httpd -o jsonpath="{.items[*].spec.nodeName}" | tr " " "\n" | sort -u | wc -l)" = 2
    ip=$(kubectl get svc httpd -o jsonpath="{.spec.clusterIP}")
    for i in 1 2 3 4 5 6; do exec 3<>/dev/tcp/$ip/80; printf "GET / HTTP/1.0\\r\\n\\r\\n" >&3; tail -1 <&3; exec 3<&-; done | sort | uniq -c
    test "$(for i in $(seq 12); do exec 3<>/dev/tcp/$ip/80; printf "GET / HTTP/1.0\\r\\n\\r\\n" >&3; tail -1 <&3; exec 3<&-; done | sort -u | wc -l)" = 2'
  # the installer's own kubectl, run on the first master over SSH, sees every node Ready
  test "$("$E/app/installer.run" kubectl --answers "$E/cluster.yaml" --known-hosts "$E/known_hosts" get nodes --no-headers | awk '$2 == "Ready"' | wc -l)" = 3
  # every image came from the embedded registry (the hosts have no route out); list what each pulled
  for n in h1 h2 h3; do on $n 'ctr -n k8s.io images ls -q | grep -v "^sha256:"'; done
  log "check passed"
}

down() {
  for d in "$E"/h*/; do [ -d "$d" ] && host_down "$(basename "$d")"; done
  ip link show $BR >/dev/null 2>&1 && ip link del $BR
  [ "${KEEP:-}" = 1 ] || rm -rf "$E"
  log "down"
}

case ${1:-all} in
  up) up;; install) do_install;; check) check;; down) down;;
  all) trap down EXIT; up; do_install; check
       up h4; answers h1 h2 h3 h4; "$E/app/installer.run" join --answers "$E/cluster.yaml" --yes --accept-new-host-keys --known-hosts "$E/known_hosts"
       "$E/app/installer.run" reset --answers "$E/cluster.yaml" --yes --accept-new-host-keys --known-hosts "$E/known_hosts";;
  *) echo "usage: $0 [up|install|check|down|all]" >&2; exit 2;;
esac
