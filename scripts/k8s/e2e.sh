#!/bin/bash
# e2e.sh: the real-Kubernetes tier (issue 7). systemd hosts booted with systemd-nspawn from a Debian
# root filesystem (mmdebstrap, cached by suite under $SEALPACK_CACHE/hostroot), each with its own
# address on a bridge with no route out and sshd inside; an installer FROM kubernetes:v1.37.2 with
# a 2-replica app; install on 1 master + 2 nodes; assertions; join a 4th host; reset; teardown.
#
# The image's rootfs (extracted from the app installer): every ELF file statically linked, no .deb
# (check-static.sh), the runtime versions among the installer's labels. h2 is a stripped host:
# its root has no dpkg/apt (nor their databases), iptables, nft, conntrack, socat or ethtool (a
# second overlay lower layer of whiteouts over the mmdebstrap root), checked from inside.
# Asserts: every node Ready, every kube-system pod Running, the app's 2 replicas on 2 nodes answering
# through the Service's ClusterIP from every host, each replica reaching the other across nodes
# (kubectl exec: pod to pod), kubectl port-forward to a pod (containerd without socat); every image every host holds is one the bundle
# carries (same digest) and no host has a route out; `installer.run kubectl` sees the nodes; a 4th
# host joins and goes Ready; reset leaves all four hosts as they were before the install (snapshot
# of files, units, processes, mounts, links, routes, sysctls, nftables); then a single-host cluster
# on a reset host (the master runs the app), checked and reset again. Timings: $E/bench-{3,1}.txt.
# Usage: e2e.sh [preflight|up|install|check|down|all]   (default all)   Env: SEALPACK_CACHE, GEN, KEEP=1
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(cd "$HERE/../.." && pwd)
CACHE=${SEALPACK_CACHE:-/var/cache/sealpack}
GEN=${GEN:-$REPO/bin/gen}
SUITE=bookworm
ROOT=$CACHE/hostroot/$SUITE                # shared read-only lower layer of every host
E=${E2E_DIR:-/var/lib/sealpack-e2e/k8s}    # per-run state (not /tmp: containerd roots live here)
# E2E_BRIDGE/E2E_NET/E2E_DIR let a second bed run beside this one (its own bridge, subnet, state)
BR=${E2E_BRIDGE:-spk0}; NET=${E2E_NET:-10.249.0}; HOSTS="h1 h2 h3 h4"
STRIPPED="h2"                              # hosts booted from $ROOT minus the tools in strip_layer
STRIP=$CACHE/hostroot/$SUITE-strip         # the whiteouts that remove them
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

# strip_layer: an overlay layer of whiteouts that hides, from $ROOT, the package manager and every
# host tool the image once installed as packages; rebuilt each run (it is a few device nodes)
STRIP_TOOLS="dpkg apt apt-get iptables ip6tables iptables-save nft conntrack socat ethtool"
strip_layer() {
  rm -rf "$STRIP"; mkdir -p "$STRIP"
  local p
  for p in usr/bin/dpkg usr/bin/dpkg-deb usr/bin/dpkg-query usr/bin/dpkg-divert usr/bin/dpkg-split \
    usr/bin/dpkg-trigger usr/bin/dpkg-statoverride usr/bin/dpkg-maintscript-helper usr/bin/dpkg-realpath \
    usr/bin/apt usr/bin/apt-get usr/bin/apt-cache usr/bin/apt-config usr/bin/apt-mark usr/bin/apt-key \
    usr/lib/apt usr/lib/dpkg var/lib/dpkg var/lib/apt var/cache/apt etc/apt etc/dpkg \
    usr/sbin/iptables usr/sbin/ip6tables usr/sbin/iptables-save usr/sbin/xtables-nft-multi \
    usr/sbin/xtables-legacy-multi usr/sbin/nft usr/sbin/conntrack usr/bin/socat usr/sbin/ethtool; do
    [ -e "$ROOT/$p" ] || [ -L "$ROOT/$p" ] || continue
    mkdir -p "$STRIP/$(dirname "$p")"; mknod "$STRIP/$p" c 0 0
  done
}
stripped() { [[ " $STRIPPED " == *" $1 "* ]]; }
check_stripped() { # check_stripped HOST: none of STRIP_TOOLS, no dpkg database, from inside
  local got
  got=$(on "$1" "for t in $STRIP_TOOLS; do command -v \$t; done; ls -d /var/lib/dpkg 2>/dev/null" || true)
  [ -z "$got" ] || { echo "FAIL: the stripped host $1 has: $got"; return 1; }
  log "$1: stripped (none of: $STRIP_TOOLS; no /var/lib/dpkg)"
}

net_up() {
  ip link show $BR >/dev/null 2>&1 || { ip link add $BR type bridge; ip addr add $NET.1/24 dev $BR; ip link set $BR up; }
  # the bridge forwards nothing out: no NAT, and the hosts get no default route
}

host_up() { # host_up NAME: overlay root, network, ssh key, own cgroups; boot
  local n=$1 ip; ip=$(ip_of "$1"); local H=$E/$n
  mkdir -p "$H"/{up,wk,root,ctd,kubelet}
  local lower=$ROOT; ! stripped "$n" || lower=$STRIP:$ROOT
  mountpoint -q "$H/root" || mount -t overlay "ov-$n" -o "lowerdir=$lower,upperdir=$H/up,workdir=$H/wk" "$H/root"
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
    local cur d; cur=$(awk -F: -v c=$c '$2==c {print $3}' /proc/self/cgroup); d=/sys/fs/cgroup/$c${cur%/}/$BR-$n
    [ -d "/sys/fs/cgroup/$c" ] || continue
    mkdir -p "$d"
    [ $c = cpuset ] && { cat "$(dirname "$d")/cpuset.cpus" > "$d/cpuset.cpus"; cat "$(dirname "$d")/cpuset.mems" > "$d/cpuset.mems"; }
    cgs="$cgs echo \$\$ > $d/cgroup.procs;"
  done
  mkdir -p "/sys/fs/cgroup/unified/$BR-$n" "/sys/fs/cgroup/systemd/$BR-$n/payload" "/sys/fs/cgroup/systemd/$BR-$n/supervisor"
  SYSTEMD_NSPAWN_API_VFS_WRITABLE=1 SYSTEMD_SECCOMP=0 setsid nohup sh -c "$cgs echo \$\$ > /sys/fs/cgroup/unified/$BR-$n/cgroup.procs; echo \$\$ > /sys/fs/cgroup/systemd/$BR-$n/cgroup.procs; exec systemd-nspawn --quiet --register=no --keep-unit --capability=all \
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
  for d in $(find /sys/fs/cgroup -maxdepth 4 -type d -name "$BR-$n" 2>/dev/null); do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  rm -rf "$H"
}

up() {
  rootfs; strip_layer; net_up; mkdir -p "$E"
  [ -f "$E/client_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$E/client_key"
  for n in ${1:-h1 h2 h3}; do host_up "$n"; done
  for n in ${1:-h1 h2 h3}; do wait_ssh "$n"; done
  for n in ${1:-h1 h2 h3}; do ! stripped "$n" || check_stripped "$n"; done
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
  # docker.io mirror); gen takes it from the OCI layout under that name and fetches nothing
  "$GEN" -f "$A/Kubefile" -o "$A/installer.run" --image "oci:$A/layout:e2e/httpd:v1=docker.io/e2e/httpd:v1" "$A"
  # what the hosts get: the installer's rootfs, every program in it static, no package
  "$A/installer.run" extract --to "$A/rootfs" >/dev/null
  "$HERE/check-static.sh" "$A/rootfs" | tee "$E/static.txt"
  # the runtime's versions, as labels of the image (installer.run inspect)
  local l; for l in containerd runc cni; do
    "$A/installer.run" inspect | grep -E "^  io\.sealpack\.$l\.version=v[0-9]" ||
      { echo "FAIL: installer.run inspect shows no io.sealpack.$l.version label"; return 1; }
  done
}

answers() { # answers MASTER [NODE...]: the Clusterfile for these hosts
  local m=$1; shift; cluster_file "$m" "$*"
}
cluster_file() { # cluster_file "MASTERS" "NODES": the Clusterfile; the first master is master0
  list() { local n; for n in $1; do ip_of "$n"; done | paste -sd, | sed 's/,/, /g'; }
  { echo "apiVersion: sealer.io/v2"; echo "kind: Cluster"; echo "metadata: {name: e2e-k8s}"; echo "spec:"; echo "  hosts:"
    echo "    - ips: [$(list "$1")]"; echo "      roles: [master]"
    [ -z "$2" ] || { echo "    - ips: [$(list "$2")]"; echo "      roles: [node]"; }
    echo "  ssh:"; echo "    pk: $E/client_key"
    # the hosts share this machine's disk with its builds: the kubelets' default thresholds (15 %
    # free for images) would evict the app whenever the machine's disk is fuller than that
    echo "  env: [\"SEALPACK_K8S_EVICTION_HARD=nodefs.available<1%,imagefs.available<1%\"]"; } > "$E/cluster.yaml"
}

on() { local n=$1; shift; ssh -i "$E/client_key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes "root@$(ip_of "$n")" "$@"; }
inst() { # inst COMMAND ARGS...: the installer against $E/cluster.yaml (kubectl: ARGS go to kubectl)
  local c=$1; shift; local o=(--answers "$E/cluster.yaml" --known-hosts "$E/known_hosts")
  [ "$c" = kubectl ] || o+=(--yes --accept-new-host-keys)
  "$E/app/installer.run" "$c" "${o[@]}" "$@"
}

# snapshot NAME FILE: what a host looks like, to prove reset-host.sh undoes the install: the files
# that differ from the root filesystem it booted from (its overlay upper directory, compared with
# the lower one; minus logs, caches and systemd's own state), the bind-mounted containerd and kubelet
# roots, and from inside: links, addresses, routes, mounts, running services, enabled units,
# processes, the forwarding sysctls, and the nftables ruleset of the host's network namespace.
snapshot() {
  local n=$1 H=$E/$1
  { echo "## files"; changed_files "$H/up"
    echo "## containerd and kubelet roots"; (cd "$H" && find ctd kubelet | sort)
    echo "## inside"
    on "$n" 'ip -o link | awk "{print \$2}"; ip -o addr | awk "{print \$2, \$4}"; ip route; ip -6 route
      awk "{print \$2}" /proc/mounts | sort
      systemctl list-units --type=service --state=running --no-legend --plain | awk "{print \$1}"
      systemctl list-unit-files --state=enabled --no-legend | awk "{print \$1}"
      ps -e -o comm= | sort -u | grep -vxE "ps|sort|sh|bash|sshd|sshd-session|awk|grep|systemd-userwor|\(.*\)"
      sysctl net.ipv4.ip_forward; sysctl net.bridge.bridge-nf-call-iptables 2>/dev/null' | sort
    echo "## nftables"; nsenter -t "$(host_pid "$n")" -n nft list ruleset
  } > "$2"
}
changed_files() { # changed_files UPPER: entries of an overlay upper directory unlike the lower ($ROOT)
  local up=$1 p u l
  (cd "$up" && find . -xdev \( -path ./var/log -o -path ./var/lib/systemd -o -path ./var/cache \
    -o -path ./tmp -o -path ./var/tmp -o -path ./run -o -path ./var/lib/dpkg/triggers -o -name '*-old' \
    -o -path './var/lib/dpkg/lock*' \) -prune -o -print) | sort | while read -r p; do
    u=$up/${p#./}; l=$ROOT/${p#./}
    if [ -L "$u" ]; then [ "$(readlink "$u")" = "$(readlink "$l" 2>/dev/null)" ] || echo "$p -> $(readlink "$u")"
    elif [ -d "$u" ]; then [ -d "$l" ] || echo "$p/ $(stat -c %a "$u")"
    elif [ -c "$u" ]; then echo "$p deleted"
    elif ! cmp -s "$u" "$l" || [ "$(stat -c %a "$u")" != "$(stat -c %a "$l")" ]; then
      echo "$p $(stat -c %a "$u") $(sha256sum < "$u" | cut -c1-16)"
    fi
  done
}
host_pid() { pgrep -P "$(cat "$E/$1/nspawn.pid")" | head -1; }   # the host's PID 1 (systemd)

assert_clean() { # assert_clean HOST...: each host as it was before the install
  local n bad=
  for n in "$@"; do
    snapshot "$n" "$E/$n.after"
    if ! diff -u "$E/$n.before" "$E/$n.after" > "$E/$n.diff"; then
      echo "FAIL: $n is not as it was before the install:"; cat "$E/$n.diff"; bad=1
    fi
  done
  [ -z "$bad" ] || return 1
  log "clean after reset: $*"
}

no_route_out() { # the hosts reach nothing beyond the test bridge: every image must come from inside
  local n
  for n in "$@"; do
    on "$n" 'test -z "$(ip route show default)" && ! ip route get 1.1.1.1 >/dev/null 2>&1' \
      || { echo "FAIL: $n has a route out: $(on "$n" ip route)"; return 1; }
  done
}

# install HOST...: the first is the master. Times from the start of `installer.run install` to
# the installer's exit and to every node Ready, and the installer's per-phase times, into
# $E/bench-N.txt (N hosts).
do_install() {
  answers "$@"
  local t0=$SECONDS b=$E/bench-$#.txt
  inst install 2>&1 | tee "$E/install-$#.log"
  local t1=$SECONDS
  on "$1" KUBECONFIG=/etc/kubernetes/admin.conf kubectl wait --for=condition=Ready node --all --timeout=180s
  local t2=$SECONDS
  { echo "hosts: $#  installer: $(( t1 - t0 )) s  all nodes Ready: $(( t2 - t0 )) s  installer.run: $(stat -c %s "$E/app/installer.run") bytes"
    phase_times "$E/install-$#.log"; } > "$b"
  log "install on $#: $(head -1 "$b")"
}

timed() { # timed WHAT CMD...: run CMD; its seconds and the installer's phase times into bench-steps.txt
  local what=$1 t0=$SECONDS; shift
  "$@" 2>&1 | tee "$E/step.log"
  { echo "$what: $(( SECONDS - t0 )) s"; phase_times "$E/step.log"; } >> "$E/bench-steps.txt"
}
phase_times() { # phase_times LOG: the installer's per-phase and total times in its output, indented
  grep -E 'finished in|installed on' "$1" | grep -Ev ' in 0s( \(.*)?$' | sed 's/^/  /' || true
}

# check HOST...: the cluster on these hosts (the first is the master) is healthy and its app serves
check() {
  local m=$1 want=$# apps=$(( $# < 2 ? 1 : 2 )) n
  on "$m" "export KUBECONFIG=/etc/kubernetes/admin.conf
    set -e
    kubectl wait --for=condition=Ready node --all --timeout=180s
    test \$(kubectl get nodes --no-headers | wc -l) = $want
    kubectl -n kube-system wait --for=condition=Ready pod --all --timeout=180s
    ! kubectl -n kube-system get pods --no-headers | grep -v Running
    kubectl rollout status deploy/httpd --timeout=180s
    spread=\$(kubectl get pod -l app=httpd -o jsonpath='{.items[*].spec.nodeName}' | tr ' ' '\n' | sort -u | wc -l)
    test \$spread = $apps || { echo \"app pods on \$spread nodes, want $apps\"; exit 1; }"
  # from every host, the Service's ClusterIP answers, from both replicas
  local ip; ip=$(on "$m" KUBECONFIG=/etc/kubernetes/admin.conf kubectl get svc httpd -o 'jsonpath={.spec.clusterIP}')
  for n in "$@"; do
    local got; got=$(on "$n" "for i in \$(seq 16); do exec 3<>/dev/tcp/$ip/80; printf 'GET / HTTP/1.0\r\n\r\n' >&3; tail -1 <&3; exec 3<&-; done | sort -u | wc -l")
    [ "$got" = 2 ] || { echo "FAIL: from $n the Service $ip answered from $got pods, want both replicas"; return 1; }
  done
  [ $apps = 1 ] || pod_to_pod "$m"
  port_forward "$m"
  # the installer's own kubectl, run on the first master over SSH, sees every node Ready
  local ready; ready=$(inst kubectl get nodes --no-headers | awk '$2 == "Ready"' | wc -l)
  [ "$ready" = "$want" ] || { echo "FAIL: installer.run kubectl sees $ready Ready nodes, want $want"; return 1; }
  check_images "$@"
  log "check passed on $*"
}

# refuses HOST: init-host.sh on a host that lacks losetup and nsenter (hidden in a mount namespace)
# stops before any change, naming both at once (the snapshot comparison after reset covers "no
# change": /etc/sealpack must not be left behind)
refuses() {
  local out rc=0
  out=$(tar -C "$E/app/rootfs" -c scripts bin/sealpack-nft | on "$1" 'rm -rf /tmp/pf; mkdir /tmp/pf; tar -C /tmp/pf -x; cd /tmp/pf
    unshare -m sh -c "mount --bind /dev/null \$(command -v losetup); mount --bind /dev/null \$(command -v nsenter); bash scripts/init-host.sh"
    rc=$?; rm -rf /tmp/pf; test ! -e /etc/sealpack || echo "/etc/sealpack left behind"; exit $rc') || rc=$?
  [ $rc != 0 ] && grep -q 'commands: losetup nsenter' <<<"$out" && ! grep -q 'left behind' <<<"$out" ||
    { echo "FAIL: init-host.sh on $1 without losetup and nsenter (rc $rc): $out"; return 1; }
  log "$1 without losetup and nsenter: $(tr '\n' ' ' <<<"$out")"
}

# pod_to_pod MASTER: each of the app's 2 replicas (on 2 nodes) answers the other at its pod IP: the
# pod network crosses nodes without going through a Service
pod_to_pod() {
  local pods a na b ipb nb got
  pods=$(on "$1" KUBECONFIG=/etc/kubernetes/admin.conf kubectl get pod -l app=httpd --no-headers \
    -o custom-columns=N:.metadata.name,IP:.status.podIP,NODE:.spec.nodeName)
  [ "$(wc -l <<<"$pods")" = 2 ] || { echo "FAIL: want 2 app pods: $pods"; return 1; }
  read -r a _ na <<<"$(sed -n 1p <<<"$pods")"
  read -r b ipb nb <<<"$(sed -n 2p <<<"$pods")"
  for _ in 1 2; do
    got=$(on "$1" KUBECONFIG=/etc/kubernetes/admin.conf kubectl exec "$a" -- /httpd get "http://$ipb:8080/") || true
    [ "$got" = "hello from $b" ] || { echo "FAIL: pod $a ($na) asked pod $b ($nb, $ipb): '$got'"; return 1; }
    log "pod $a on $na reached pod $b on $nb at $ipb"
    read -r a na b ipb nb <<<"$b $nb $a $(sed -n 1p <<<"$pods" | awk '{print $2, $3}')"
  done
}
# port_forward MASTER: kubectl port-forward to an app pod answers (containerd forwards without socat)
port_forward() {
  local got
  got=$(on "$1" 'export KUBECONFIG=/etc/kubernetes/admin.conf
    kubectl port-forward deploy/httpd 18080:8080 >/dev/null 2>&1 & pf=$!
    for i in $(seq 20); do (exec 3<>/dev/tcp/127.0.0.1/18080) 2>/dev/null && break; sleep 0.5; done
    exec 3<>/dev/tcp/127.0.0.1/18080; printf "GET / HTTP/1.0\r\n\r\n" >&3; tail -1 <&3; exec 3<&-
    kill $pf') || true
  [[ $got == "hello from httpd-"* ]] || { echo "FAIL: kubectl port-forward on $1 answered '$got'"; return 1; }
  log "kubectl port-forward on $1: $got"
}

# check_images HOST...: every image containerd holds on every host is one the bundle carries, with
# the same manifest digest (so it came through the registry mirrors from the embedded registry,
# the only registry the hosts can reach), and the control plane's images are among them
check_images() {
  local n digests
  digests=$("$E/app/installer.run" images | awk 'NR > 1 {print $2}' | sort -u)
  [ -n "$digests" ] || { echo "FAIL: installer.run images lists nothing"; return 1; }
  no_route_out "$@"
  for n in "$@"; do
    local held; held=$(on "$n" 'ctr -n k8s.io images ls' | awk 'NR > 1 && $1 !~ /^sha256:/ {print $1, $3}')
    echo "$held" | grep -q '^registry.k8s.io/pause:' || { echo "FAIL: $n holds no pause image: $held"; return 1; }
    echo "$held" | while read -r ref dg; do
      grep -qx "$dg" <<<"$digests" || { echo "FAIL: $n holds $ref $dg, which the bundle does not carry"; exit 1; }
    done || return 1
    log "$n: $(echo "$held" | wc -l) image refs, all from the bundle"
  done
}

down() {
  for d in "$E"/h*/; do [ -d "$d" ] && host_down "$(basename "$d")"; done
  ip link show $BR >/dev/null 2>&1 && ip link del $BR
  [ "${KEEP:-}" = 1 ] || rm -rf "$E"
  log "down"
}

all() {
  # leftovers of an earlier run (KEEP=1, or killed): its hosts, bridge and known_hosts go first
  [ ! -d "$E" ] || KEEP= down
  trap down EXIT
  up; for n in h1 h2 h3; do snapshot $n "$E/$n.before"; done
  app; refuses h2; do_install h1 h2 h3; check h1 h2 h3
  # a fourth host joins the running cluster as a second control plane, after its join data has
  # expired: bootstrap tokens and uploaded certificates deleted, the share's copy two hours old
  # (scripts/refresh-share.sh must make new ones)
  up h4; snapshot h4 "$E/h4.before"
  on h1 'export KUBECONFIG=/etc/kubernetes/admin.conf
    for t in $(kubeadm token list | awk "NR > 1 {print \$1}"); do kubeadm token delete "$t"; done
    kubectl -n kube-system delete secret kubeadm-certs --ignore-not-found
    touch -d "2 hours ago" /var/lib/sealpack/share/k8s-join.env'
  cluster_file "h1 h4" "h2 h3"
  timed "join of a 4th host as a control plane" inst join
  on h1 'export KUBECONFIG=/etc/kubernetes/admin.conf
    kubectl wait --for=condition=Ready node/h4 --timeout=180s
    kubectl -n kube-system wait --for=condition=Ready pod/etcd-h4 pod/kube-apiserver-h4 pod/kube-controller-manager-h4 pod/kube-scheduler-h4 --timeout=180s'
  check h1 h2 h3 h4
  # the second control plane serves the API on its own
  on h4 'KUBECONFIG=/etc/kubernetes/admin.conf kubectl --server https://$(hostname -i | cut -d" " -f1):6443 get nodes' >/dev/null \
    || { echo "FAIL: h4's API server does not answer"; return 1; }
  timed "reset of 4 hosts" inst reset; assert_clean h1 h2 h3 h4
  # the reset first host installs again, alone: a single-host cluster whose master runs the app
  do_install h1; check h1
  inst reset; assert_clean h1
  echo "== timings"; cat "$E"/bench-3.txt "$E"/bench-1.txt "$E"/bench-steps.txt
}

# preflight: what this tier needs on the machine running it. Exit 3 (skip) outside CI, 1 under CI=true.
preflight() {
  local miss= c
  [ "$(id -u)" = 0 ] || miss="$miss root"
  for c in systemd-nspawn mmdebstrap nft nsenter ssh ssh-keygen ip dpkg-deb apt-get go readelf gcc mknod; do command -v $c >/dev/null || miss="$miss $c"; done
  [ -n "$miss" ] || return 0
  echo "e2e-kubernetes: missing:$miss (Debian: apt-get install systemd-container mmdebstrap nftables openssh-client iproute2 binutils gcc; run as root)" >&2
  [ "${CI:-}" = true ] && exit 1
  echo "e2e-kubernetes: SKIPPED (not under CI=true)" >&2; exit 3
}

case ${1:-all} in
  preflight) preflight;;
  up) up;; install) app; do_install h1 h2 h3;; check) check h1 h2 h3;; down) down;; all) preflight; all;;
  *) echo "usage: $0 [preflight|up|install|check|down|all]" >&2; exit 2;;
esac
