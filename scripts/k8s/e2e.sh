#!/bin/bash
# e2e.sh: the real-Kubernetes tier (issue 7). systemd hosts booted with systemd-nspawn from a Debian
# root filesystem (mmdebstrap, cached by suite under $SEALPACK_CACHE/hostroot), each with its own
# address on a bridge with no route out and sshd inside; the app's installers FROM kubernetes:OLD_K8S
# (v1.36.3, app v1) and FROM kubernetes:NEW_K8S (v1.37.2, app v2); one cluster's life on shared
# boots: install at OLD_K8S on 3 masters + 1 node, lose the first master (powered off), join a
# node, boot it again, reboot a node, upgrade all five to NEW_K8S, reset; then a single-host
# cluster at NEW_K8S.
#
# The image's rootfs (extracted from the app installer): every ELF file statically linked, no .deb
# (check-static.sh), the runtime versions among the installer's labels. h2 is a stripped host:
# its root has no dpkg/apt (nor their databases), iptables, nft, conntrack, socat or ethtool (a
# second overlay lower layer of whiteouts over the mmdebstrap root), checked from inside.
# Asserts: every node Ready, every kube-system pod Running, the app's replicas answering through the
# Service's ClusterIP from every host, each replica reaching another across nodes (kubectl exec: pod
# to pod), kubectl port-forward to a pod (containerd without socat); every image every host holds is
# one the bundle carries (same digest) and no host has a route out; every host but the first master
# holds every image of the bundle, imported from the layout the fan-out brought (init-host.sh), and
# the masters' registries served no blob to another host (their "blob served" log lines);
# `installer.run kubectl` sees the nodes. High availability (ha): h1, the first master, is powered off (its PID 1 killed); the API
# answers through the node's own endpoint (its proxy), the node stays Ready, the control plane on
# h2 and h3 runs, the app answers, `installer.run kubectl` and `join` of h5 (with expired join data)
# work, h5 gets the images preloaded, and the app scaled to 4, its image dropped on h5, pulls it
# there from a surviving master's registry; h1 boots and
# goes Ready untouched; h4 reboots and runs its pods again. Upgrade (upgrade): a client DaemonSet
# asks the app's Service ten times a second on both nodes while `installer-new.run upgrade` (--plan
# first, which changes nothing) upgrades the masters one by one and the nodes (drained; the app's
# PodDisruptionBudget holds); then every kubelet, the API server and every kube-system image are
# NEW_K8S's, the app answers v2, the hosts hold only the two bundles' images, the masters' registries
# served no blob to another host meanwhile (every host imported the new images first), the failed requests
# are counted, and a second run changes nothing. Reset leaves all five hosts as they were
# before the install (snapshot of files, units, processes, mounts, links, routes, sysctls,
# nftables), h1 after a hard power-off included; then a single-host cluster on a reset host (the
# master runs the app), checked; a second control plane joins it after its join data expired, and
# h1's API proxy lists it; reset again. Timings: $E/bench-*.txt, $E/bench-steps.txt.
# Usage: e2e.sh [preflight|roots|up|install|check|upgrade|down|all]   (default all)   Env: SEALPACK_CACHE, GEN, KEEP=1
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(cd "$HERE/../.." && pwd)
CACHE=${SEALPACK_CACHE:-/var/cache/sealpack}
GEN=${GEN:-$REPO/bin/gen}
SUITE=bookworm
ROOT=$CACHE/hostroot/$SUITE                # shared read-only lower layer of every host
E=${E2E_DIR:-/var/lib/sealpack-e2e/k8s}    # per-run state (not /tmp: containerd roots live here)
# E2E_BRIDGE/E2E_NET/E2E_DIR let a second bed run beside this one (its own bridge, subnet, state)
BR=${E2E_BRIDGE:-spk0}; NET=${E2E_NET:-10.249.0}; HOSTS="h1 h2 h3 h4 h5"
STRIPPED="h2"                              # hosts booted from $ROOT minus the tools in strip_layer
SPLIT="h5"                                 # hosts booted from a root with /bin, /sbin, /lib apart from /usr
SPLIT_ROOT=$CACHE/hostroot/$SUITE-split-usr
STRIP=$CACHE/hostroot/$SUITE-strip         # the whiteouts that remove them
ip_of() { echo "$NET.$(( 10 + ${1#h} ))"; }
log() { echo "[$(date +%T)] $*"; }

rootfs() { # the host root filesystems, built once
  mkroot "$ROOT"
  # a different userland layout, cheap to make: /bin, /sbin and /lib real directories beside /usr
  # (no merged /usr), as on older or other distributions
  mkroot "$SPLIT_ROOT" --hook-dir=/usr/share/mmdebstrap/hooks/no-merged-usr
}
mkroot() { # mkroot DIR [MMDEBSTRAP ARG...]
  local R=$1; shift
  [ -f "$R/.done" ] && return
  log "mmdebstrap $SUITE -> $R"
  rm -rf "$R"; mkdir -p "$(dirname "$R")"
  mmdebstrap --variant=minbase --include=systemd,systemd-sysv,dbus,openssh-server,iproute2,udev,kmod,procps \
    "$@" "$SUITE" "$R"
  # minbase has no /etc/hosts (containerd's CRI needs one); sshd: root by key only
  printf '127.0.0.1 localhost\n' > "$R/etc/hosts"
  sed -i 's/^#\?PermitRootLogin.*/PermitRootLogin prohibit-password/' "$R/etc/ssh/sshd_config"
  rm -f "$R"/etc/ssh/ssh_host_*   # each host makes its own (ssh.service's ExecStartPre / sshd-keygen)
  touch "$R/.done"
}
root_of() { [[ " $SPLIT " == *" $1 "* ]] && echo "$SPLIT_ROOT" || echo "$ROOT"; }
check_split() { # check_split HOST: /bin, /sbin and /lib are directories, not links into /usr
  on "$1" 'for d in /bin /sbin /lib; do [ -d $d ] && [ ! -L $d ] || { echo "$d: $(ls -ld $d)"; exit 1; }; done' ||
    { echo "FAIL: $1 has a merged /usr"; return 1; }
  log "$1: split /usr (/bin, /sbin, /lib are directories)"
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
  local lower; lower=$(root_of "$n"); ! stripped "$n" || lower=$STRIP:$lower
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
    --resolv-conf=off --timezone=off --link-journal=no -D $R -M $BR-$n --network-bridge=$BR \
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

# halt HOST [hard]: power the host off, keeping its disk (overlay upper directory, containerd and
# kubelet roots) for host_up. Orderly (nspawn's poweroff) or hard: its PID 1 killed, so every
# process of it dies at once and nothing is shut down, as when a server loses power.
halt() {
  local n=$1 H=$E/$1
  if [ -f "$H/nspawn.pid" ] && kill -0 "$(cat "$H/nspawn.pid")" 2>/dev/null; then
    local p; p=$(cat "$H/nspawn.pid")
    if [ "${2:-}" = hard ]; then kill -KILL "$(host_pid "$n")"; else kill -TERM "$p"; fi
    for _ in $(seq 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p"
  fi
  rm -f "$H/nspawn.pid"
  mountpoint -q "$H/root" && umount "$H/root"
  for d in $(find /sys/fs/cgroup -maxdepth 4 -type d -name "$BR-$n" 2>/dev/null); do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  return 0
}
host_down() { halt "$1"; rm -rf "${E:?}/$1"; }

up() {
  rootfs; strip_layer; net_up; mkdir -p "$E"
  [ -f "$E/client_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$E/client_key"
  for n in ${1:-$HOSTS}; do host_up "$n"; done
  for n in ${1:-$HOSTS}; do wait_ssh "$n"; done
  for n in ${1:-$HOSTS}; do ! stripped "$n" || check_stripped "$n"; [[ " $SPLIT " != *" $n "* ]] || check_split "$n"; done
  log "hosts up"
}

# The cluster's life begins at OLD_K8S and is upgraded to NEW_K8S (the next minor version): the
# app's installer at each, app v1 on the old and v2 on the new
OLD_K8S=${OLD_K8S:-v1.36.3}; NEW_K8S=${NEW_K8S:-v1.37.2}
app() { # the test app: a tiny HTTP server image, and its installers FROM kubernetes:OLD_K8S (v1) and NEW_K8S (v2)
  local A=$E/app; rm -rf "$A"; mkdir -p "$A"
  app_installer "$A/installer.run" "$OLD_K8S" v1
  app_installer "$A/installer-new.run" "$NEW_K8S" v2
  # what the hosts get: the installer's rootfs, every program in it static, no package
  "$A/installer-new.run" extract --to "$A/rootfs" >/dev/null
  "$HERE/check-static.sh" "$A/rootfs" | tee "$E/static.txt"
  # the runtime's versions, as labels of the image (installer.run inspect)
  local l; for l in containerd runc cni; do
    "$A/installer-new.run" inspect | grep -E "^  io\.sealpack\.$l\.version=v[0-9]" ||
      { echo "FAIL: installer.run inspect shows no io.sealpack.$l.version label"; return 1; }
  done
}
# app_installer OUT K8S_VERSION APP_VERSION: the installer FROM kubernetes:K8S_VERSION with the app
# at APP_VERSION (its image e2e/httpd:APP_VERSION answers "hello from POD APP_VERSION" from v2 on).
# Two replicas spread over the nodes, a PodDisruptionBudget (one down at a time: a drain evicts
# one, waits until its replacement runs elsewhere), and a preStop pause so a pod leaves the
# Service's endpoints before it stops serving.
app_installer() {
  local out=$1 k8s=$2 v=$3 D; D=$E/app/$v; mkdir -p "$D/ctx/manifests" "$D/img/root"
  local ld=; [ "$v" = v1 ] || ld="-X main.version=$v"
  (cd "$HERE/mod/httpd"; CGO_ENABLED=0 go build -ldflags "$ld" -o "$D/img/root/httpd" .)
  "$CACHE/k8s/imgtool" build -layout "$D/layout" -ref "e2e/httpd:$v" -entrypoint /httpd -root "$D/img/root"
  cat > "$D/ctx/manifests/app.yaml" <<Y
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
      # only nodes the pods may run on count (nodeTaintsPolicy): not tainted masters; and only
      # pods of the same revision (matchLabelKeys), so a rolling update spreads its new pods
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, nodeTaintsPolicy: Honor, labelSelector: {matchLabels: {app: httpd}}, matchLabelKeys: [pod-template-hash]}
      containers:
      - name: httpd
        image: docker.io/e2e/httpd:$v
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
        lifecycle: {preStop: {sleep: {seconds: 5}}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: httpd, namespace: default}
spec: {maxUnavailable: 1, selector: {matchLabels: {app: httpd}}}
---
apiVersion: v1
kind: Service
metadata: {name: httpd, namespace: default}
spec: {selector: {app: httpd}, ports: [{port: 80, targetPort: 8080}]}
Y
  printf 'FROM kubernetes:%s\nAPP httpd local://manifests/app.yaml\nLAUNCH ["httpd"]\n' "$k8s" > "$D/ctx/Kubefile"
  # the manifest names docker.io/e2e/httpd:V (served as e2e/httpd:V, reached through the
  # docker.io mirror); gen takes it from the OCI layout under that name and fetches nothing
  "$GEN" -f "$D/ctx/Kubefile" -o "$out" --image "oci:$D/layout:e2e/httpd:$v=docker.io/e2e/httpd:$v" "$D/ctx"
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
  "$INSTALLER" "$c" "${o[@]}" "$@"
}
# INSTALLER: the installer inst runs (the new one from the upgrade on); BUNDLES: the installers whose
# images the hosts may hold (both after the upgrade: running pods keep the old bundle's)
INSTALLER=; BUNDLES=

# snapshot NAME FILE: what a host looks like, to prove reset-host.sh undoes the install: the files
# that differ from the root filesystem it booted from (its overlay upper directory, compared with
# the lower one; minus logs, caches and systemd's own state), the bind-mounted containerd and kubelet
# roots, and from inside: links, addresses, routes, mounts, running services, enabled units,
# processes, the forwarding sysctls, and the nftables ruleset of the host's network namespace.
snapshot() {
  local n=$1 H=$E/$1
  { echo "## files"; changed_files "$H/up" "$(root_of "$n")"
    echo "## containerd and kubelet roots"; (cd "$H" && find ctd kubelet | sort)
    echo "## inside"
    on "$n" 'ip -o link | awk "{print \$2}" | sed "s/@if[0-9]*:/:/"; ip -o addr | awk "{print \$2, \$4}"; ip route; ip -6 route
      awk "{print \$2}" /proc/mounts | sort
      systemctl list-units --type=service --state=running --no-legend --plain | awk "{print \$1}"
      systemctl list-unit-files --state=enabled --no-legend | awk "{print \$1}"
      ps -e -o comm= | sort -u | grep -vxE "ps|sort|sh|bash|sshd|sshd-session|awk|grep|systemd-userwor|\(.*\)"
      sysctl net.ipv4.ip_forward; sysctl net.bridge.bridge-nf-call-iptables 2>/dev/null' | sort
    echo "## nftables"; nsenter -t "$(host_pid "$n")" -n nft list ruleset
  } > "$2"
}
changed_files() { # changed_files UPPER LOWER: entries of an overlay upper directory unlike the lower
  local up=$1 lower=$2 p u l
  (cd "$up" && find . -xdev \( -path ./var/log -o -path ./var/lib/systemd -o -path ./var/cache \
    -o -path ./tmp -o -path ./var/tmp -o -path ./run -o -path ./var/lib/dpkg/triggers -o -name '*-old' \
    -o -path './var/lib/dpkg/lock*' \) -prune -o -print) | sort | while read -r p; do
    u=$up/${p#./}; l=$lower/${p#./}
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

# do_install "MASTERS" "NODES": the first master is master0. Times from the start of
# `installer.run install` to the installer's exit and to every node Ready, and the installer's
# per-phase times, into $E/bench-N.txt (N hosts).
do_install() {
  cluster_file "$1" "${2:-}"
  local m=${1%% *} hosts; hosts=$(echo $1 ${2:-} | wc -w)
  local t0=$SECONDS b=$E/bench-$hosts.txt
  inst install 2>&1 | tee "$E/install-$hosts.log"
  local t1=$SECONDS
  on "$m" KUBECONFIG=/etc/kubernetes/admin.conf kubectl wait --for=condition=Ready node --all --timeout=180s
  local t2=$SECONDS
  { echo "hosts: $hosts ($(echo $1 | wc -w) masters)  installer: $(( t1 - t0 )) s  all nodes Ready: $(( t2 - t0 )) s  installer.run: $(stat -c %s "$INSTALLER") bytes"
    phase_times "$E/install-$hosts.log"; } > "$b"
  log "install on $hosts: $(head -1 "$b")"
}

timed() { # timed WHAT CMD...: run CMD; its seconds and the installer's phase times into bench-steps.txt
  local what=$1 t0=$SECONDS; shift
  "$@" 2>&1 | tee "$E/step.log"
  { echo "$what: $(( SECONDS - t0 )) s"; phase_times "$E/step.log"; } >> "$E/bench-steps.txt"
}
phase_times() { # phase_times LOG: the installer's per-phase and total times in its output, indented
  grep -E 'finished in|installed on' "$1" | grep -Ev ' in 0s( \(.*)?$' | sed 's/^/  /' || true
}

# check HOST...: the cluster on these hosts (the first is a master that runs) is healthy and its
# app serves. REPLICAS: the app's (default 2); APP_NODES: the nodes they run on (default 2, 1 on a
# single host)
check() {
  local m=$1 want=$# apps=${APP_NODES:-$(( $# < 2 ? 1 : 2 ))} replicas=${REPLICAS:-2} n
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
    local got; got=$(on "$n" "for i in \$(seq $(( 10 * replicas ))); do exec 3<>/dev/tcp/$ip/80; printf 'GET / HTTP/1.0\r\n\r\n' >&3; tail -1 <&3; exec 3<&-; done | sort -u | wc -l")
    [ "$got" = "$replicas" ] || { echo "FAIL: from $n the Service $ip answered from $got pods, want all $replicas replicas"; return 1; }
  done
  [ $apps = 1 ] || pod_to_pod "$m"
  port_forward "$m"
  # the installer's own kubectl, run on the first master over SSH, sees every node Ready
  # (a kubelet just restarted, by an upgrade, may report NotReady for a while: logged, waited for)
  local ready nodes i
  for i in $(seq 30); do
    nodes=$(inst kubectl get nodes --no-headers); ready=$(awk '$2 == "Ready"' <<<"$nodes" | wc -l)
    [ "$ready" != "$want" ] || break
    [ "$i" != 1 ] || log "installer.run kubectl: not every node Ready yet: $(awk '{print $1 "=" $2}' <<<"$nodes" | paste -sd' ')"
    sleep 2
  done
  [ "$ready" = "$want" ] || { echo "FAIL: installer.run kubectl sees $ready Ready nodes, want $want:"; echo "$nodes"
    on "$m" 'KUBECONFIG=/etc/kubernetes/admin.conf kubectl describe nodes' | grep -E '^Name:|Ready +(False|Unknown)' ; return 1; }
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

# pod_to_pod MASTER: two of the app's replicas on two nodes answer each other at their pod IPs: the
# pod network crosses nodes without going through a Service
pod_to_pod() {
  local pods a na b ipb nb got
  pods=$(on "$1" KUBECONFIG=/etc/kubernetes/admin.conf kubectl get pod -l app=httpd --no-headers \
    -o custom-columns=N:.metadata.name,IP:.status.podIP,NODE:.spec.nodeName | sort -u -k3,3 | head -2)
  [ "$(wc -l <<<"$pods")" = 2 ] || { echo "FAIL: want app pods on 2 nodes: $pods"; return 1; }
  read -r a _ na <<<"$(sed -n 1p <<<"$pods")"
  read -r b ipb nb <<<"$(sed -n 2p <<<"$pods")"
  for _ in 1 2; do
    got=$(on "$1" KUBECONFIG=/etc/kubernetes/admin.conf kubectl exec "$a" -- /httpd get "http://$ipb:8080/") || true
    [ "${got% v*}" = "hello from $b" ] || { echo "FAIL: pod $a ($na) asked pod $b ($nb, $ipb): '$got'"; return 1; }
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

# check_images HOST...: every image containerd holds on every host is one a bundle carries ($BUNDLES), with
# the same manifest digest (so it came through the registry mirrors from the embedded registry,
# the only registry the hosts can reach), and the control plane's images are among them
check_images() {
  local n digests b
  digests=$(for b in $BUNDLES; do "$b" images | awk 'NR > 1 {print $2}'; done | sort -u)
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

# check_preload HOST...: containerd on each host holds every image the installer carries, under its
# name and digest, imported from the layout the fan-out brought (init-host.sh, step 6), not pulled
check_preload() {
  local n want held missing
  want=$("$INSTALLER" images | awk 'NR > 1 {print $1, $2}' | sort)
  [ -n "$want" ] || { echo "FAIL: installer.run images lists nothing"; return 1; }
  for n in "$@"; do
    held=$(on "$n" 'ctr -n k8s.io images ls' | awk 'NR > 1 {print $1, $3}' | sort)
    missing=$(comm -23 <(echo "$want") <(echo "$held"))
    [ -z "$missing" ] || { echo "FAIL: $n lacks, under the bundle's name and digest:"; echo "$missing"; return 1; }
  done
  log "$*: all $(wc -l <<< "$want") images of the bundle preloaded"
}

# served SINCE MASTER...: what each master's registry served since SINCE (date +%s), from its
# journal's "blob served" lines: one line "hN: B bytes in K blobs to other hosts (IP...), S to itself"
# per master; SERVED_OTHERS is the sum over them of the bytes to other hosts
served() {
  local since=$1 n o k self ips; shift; SERVED_OTHERS=0
  for n in "$@"; do
    local line; line=$(on "$n" "journalctl -u sealpack-registry.service --since @$since -o cat --no-pager" |
      awk -v me="$(ip_of "$n")" '/msg="blob served"/ {
        b = 0; c = ""
        for (i = 1; i <= NF; i++) { if ($i ~ /^bytes=/) b = substr($i, 7); if ($i ~ /^client=/) { c = substr($i, 8); sub(/:[0-9]+$/, "", c) } }
        if (c == me || c == "127.0.0.1" || c == "[::1]") self += b; else { other += b; k++; ips[c] = 1 }
      } END { l = ""; for (ip in ips) l = l " " ip; printf "%d %d %d%s\n", other, k, self, l }')
    read -r o k self ips <<< "$line"
    echo "$n: $o bytes in $k blobs to other hosts (${ips:-none}), $self to itself"
    SERVED_OTHERS=$(( SERVED_OTHERS + o ))
  done
}

# served_lines SINCE MASTER...: each master's "blob served" journal lines since SINCE for clients
# other than itself, ten at most a master (what a failed served check shows)
served_lines() {
  local since=$1 m; shift
  for m in "$@"; do
    on "$m" "journalctl -u sealpack-registry.service --since @$since -o cat --no-pager | grep 'blob served'" |
      grep -v "client=$(ip_of "$m"):" | sed "s/^/  $m: /" | head -10 || true
  done
}

down() {
  for d in "$E"/h*/; do [ -d "$d" ] && host_down "$(basename "$d")"; done
  ip link show $BR >/dev/null 2>&1 && ip link del $BR
  [ "${KEEP:-}" = 1 ] || rm -rf "$E"
  log "down"
}

# secs_since T0: seconds (0.1) from T0 (date +%s.%N) to now
secs_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}'; }
# until_ok SECONDS CMD...: run CMD every 0.2 s until it succeeds; fails after SECONDS
until_ok() {
  local end=$(( SECONDS + $1 )); shift
  until "$@" >/dev/null 2>&1; do [ $SECONDS -lt $end ] || return 1; sleep 0.2; done
}
api_via() { # api_via HOST: the API answers through the host's own endpoint (its proxy), 10 times in a row
  on "$1" 'for i in $(seq 10); do kubectl --kubeconfig /etc/kubernetes/kubelet.conf get --raw /readyz >/dev/null || exit 1; done'
}
node_ready() { # node_ready ASK NODE [SINCE]: NODE is Ready, as the API server that ASK reaches says;
  # with SINCE (date +%s), its kubelet said so at or after SINCE (not a status left from before)
  local got; got=$(on "$1" "KUBECONFIG=/etc/kubernetes/admin.conf kubectl get node $2 -o 'jsonpath={.status.conditions[?(@.type==\"Ready\")].status} {.status.conditions[?(@.type==\"Ready\")].lastHeartbeatTime}'")
  [ "${got%% *}" = True ] && { [ -z "${3:-}" ] || [ "$(date -d "${got#* }" +%s)" -ge "$3" ]; }
}
pods_restarted() { # pods_restarted ASK NODE SINCE: every app pod on NODE runs a container started at or after SINCE, ready
  local line n=0
  while read -r started ready; do
    [ -n "$started" ] && [ "$ready" = true ] && [ "$(date -d "$started" +%s)" -ge "$3" ] || return 1; n=$((n + 1))
  done < <(on "$1" "KUBECONFIG=/etc/kubernetes/admin.conf kubectl get pod -l app=httpd --field-selector spec.nodeName=$2 -o 'jsonpath={range .items[*]}{.status.containerStatuses[0].state.running.startedAt} {.status.containerStatuses[0].ready}{\"\\n\"}{end}'")
  [ $n -gt 0 ]
}

expire_join_data() { # expire_join_data MASTER: bootstrap tokens and uploaded certificates deleted, its
  # share two hours old, so the next join must renew them (refresh-share.sh)
  on "$1" 'export KUBECONFIG=/etc/kubernetes/admin.conf
    for t in $(kubeadm token list | awk "NR > 1 {print \$1}"); do kubeadm token delete "$t"; done
    kubectl -n kube-system delete secret kubeadm-certs --ignore-not-found
    touch -d "2 hours ago" /var/lib/sealpack/share/k8s-join.env'
}

# ha: the cluster of 3 masters (h1 h2 h3) + 1 node (h4) survives the loss of its first master
ha() {
  local B=$E/bench-ha.txt t0 k
  : > "$B"
  log "ha: power off h1 (its PID 1 killed)"
  t0=$(date +%s.%N); halt h1 hard
  until_ok 60 api_via h4 || { echo "FAIL: the API does not answer through h4's endpoint 60 s after h1 went off"; return 1; }
  echo "power-off of h1 -> API through h4's endpoint (10 answers in a row): $(secs_since "$t0") s" | tee -a "$B"
  # the node stays Ready, the control plane on h2 and h3 runs, the app answers from the node
  node_ready h2 h4 || { echo "FAIL: h4 is not Ready as h2 sees it"; return 1; }
  on h2 'export KUBECONFIG=/etc/kubernetes/admin.conf
    for n in h2 h3; do for c in etcd kube-apiserver kube-controller-manager kube-scheduler; do
      kubectl -n kube-system wait --for=condition=Ready pod/$c-$n --timeout=120s >/dev/null || exit 1; done; done'
  local ip; ip=$(on h2 KUBECONFIG=/etc/kubernetes/admin.conf kubectl get svc httpd -o 'jsonpath={.spec.clusterIP}')
  on h4 "exec 3<>/dev/tcp/$ip/80; printf 'GET / HTTP/1.0\r\n\r\n' >&3; tail -1 <&3" | grep -q '^hello from httpd-' ||
    { echo "FAIL: the app does not answer through its Service from h4 with h1 off"; return 1; }
  echo "power-off of h1 -> h4 Ready, control plane on h2 h3 Ready, app answers: $(secs_since "$t0") s" | tee -a "$B"
  # the installer's kubectl runs on a master that answers
  k=$(inst kubectl get nodes 2>&1) || { echo "FAIL: installer.run kubectl with h1 off: $k"; return 1; }
  grep -q "using master $(ip_of h2)" <<<"$k" || { echo "FAIL: installer.run kubectl did not use h2: $k"; return 1; }
  # a node joins with expired join data: h2, the lead, renews it
  expire_join_data h2
  cluster_file "h1 h2 h3" "h4 h5"
  timed "join of h5 while h1 is off" inst join
  grep -q "$(ip_of h1): does not answer" "$E/step.log" || { echo "FAIL: join did not name h1 as absent"; return 1; }
  until_ok 180 node_ready h2 h5 || { echo "FAIL: h5 is not Ready 180 s after its join"; return 1; }
  # h5 got the bundle's images through the fan-out with h1 off; the app's is dropped, so the 4
  # replicas (the new ones go to h5) pull it from h2's or h3's registry, h1's not answering
  check_preload h5
  # every ref to it: the CRI also names each image by its config's digest (sha256:...), and that
  # ref alone keeps its blobs, so the pull would fetch only the manifest
  on h5 bash -s <<'S' 2>/dev/null || { echo "FAIL: cannot drop the app's image on h5"; return 1; }
d=$(ctr -n k8s.io images ls | awk '$1 == "docker.io/e2e/httpd:v1" {print $3}')
[ -n "$d" ] && ctr -n k8s.io images rm --sync $(ctr -n k8s.io images ls | awk -v d="$d" 'NR > 1 && $3 == d {print $1}') >/dev/null &&
  ! ctr -n k8s.io images ls | awk -v d="$d" '$3 == d' | grep -q .
S
  t0=$(date +%s.%N)
  on h2 'export KUBECONFIG=/etc/kubernetes/admin.conf; kubectl scale deploy/httpd --replicas=4 >/dev/null && kubectl rollout status deploy/httpd --timeout=180s'
  echo "scale to 4 with h1 off -> all 4 replicas Running (2 pulled on h5): $(secs_since "$t0") s" | tee -a "$B"
  on h5 'ctr -n k8s.io images ls -q' | grep -q '^docker.io/e2e/httpd:v1$' || { echo "FAIL: h5 holds no app image"; return 1; }
  served "${t0%.*}" h2 h3 > "$E/served.txt"; sed 's/^/  registry of /' "$E/served.txt" | tee -a "$B"
  grep -q "to other hosts (.*$(ip_of h5)" "$E/served.txt" || { echo "FAIL: neither h2's nor h3's registry served the app's image to h5"; return 1; }
  # h1 boots: it goes Ready untouched, its API server answers
  log "ha: boot h1"
  t0=$(date +%s.%N); host_up h1; wait_ssh h1
  echo "boot of h1 -> ssh: $(secs_since "$t0") s" | tee -a "$B"
  until_ok 300 on h2 "kubectl --kubeconfig /etc/kubernetes/admin.conf --server https://$(ip_of h1):6443 --request-timeout 2s get --raw /readyz" ||
    { echo "FAIL: h1's API server is not ready 300 s after boot"; on h1 'systemctl status kubelet containerd --no-pager -n 5' || true; return 1; }
  echo "boot of h1 -> its API server ready: $(secs_since "$t0") s" | tee -a "$B"
  until_ok 180 node_ready h2 h1 "${t0%.*}" || { echo "FAIL: h1 is not Ready after boot"; return 1; }
  echo "boot of h1 -> node h1 Ready: $(secs_since "$t0") s" | tee -a "$B"
  # where the time goes after boot: the units' and the kubelet's first steps, from h1's journal
  on h1 'journalctl -b -o short-monotonic --no-pager -u containerd -u kubelet -u sealpack-api-proxy 2>/dev/null |
    grep -m 8 -E "Started|starting containerd|containerd successfully booted|Attempting to register|Successfully registered|backend .* up"' | sed 's/^/  /' | tee -a "$B" || true
  # a node reboots: Ready again, its pods running
  log "ha: reboot h4"
  t0=$(date +%s.%N); halt h4; host_up h4; wait_ssh h4
  until_ok 300 node_ready h1 h4 "${t0%.*}" || { echo "FAIL: h4 is not Ready after its reboot"; return 1; }
  echo "reboot of h4 -> its kubelet reports Ready: $(secs_since "$t0") s" | tee -a "$B"
  until_ok 300 pods_restarted h1 h4 "${t0%.*}" || { echo "FAIL: the app's pods on h4 do not run again after its reboot"; return 1; }
  echo "reboot of h4 -> its app pods running and ready again: $(secs_since "$t0") s" | tee -a "$B"
  REPLICAS=4 check h1 h2 h3 h4 h5
}

# upgrade: the cluster of 3 masters + 2 nodes, at OLD_K8S with app v1, is upgraded by the installer
# at NEW_K8S with app v2 while a client on every node asks the app's Service ten times a second;
# then every node and control-plane component runs NEW_K8S, the app answers v2, every image is
# one of the two bundles', and a second run of the upgrade changes nothing
upgrade() {
  local B=$E/bench-upgrade.txt ip t0
  ip=$(on h1 KUBECONFIG=/etc/kubernetes/admin.conf kubectl get svc httpd -o 'jsonpath={.spec.clusterIP}')
  # the client: a DaemonSet (a drain leaves it running) of the app's own image, which counts its
  # failed requests (httpd watch)
  on h1 'KUBECONFIG=/etc/kubernetes/admin.conf kubectl apply -f - >/dev/null && KUBECONFIG=/etc/kubernetes/admin.conf kubectl rollout status ds/watch --timeout=120s' <<Y
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: watch, namespace: default}
spec:
  selector: {matchLabels: {app: watch}}
  template:
    metadata: {labels: {app: watch}}
    spec:
      containers: [{name: watch, image: docker.io/e2e/httpd:v1, command: [/httpd, watch, "http://$ip/"]}]
Y
  INSTALLER=$E/app/installer-new.run
  inst upgrade --plan > "$E/upgrade-plan.txt" 2>&1 || { echo "FAIL: upgrade --plan:"; cat "$E/upgrade-plan.txt"; return 1; }
  grep -q "upgrade Kubernetes $OLD_K8S -> $NEW_K8S" "$E/upgrade-plan.txt" || { echo "FAIL: the plan does not say $OLD_K8S -> $NEW_K8S:"; cat "$E/upgrade-plan.txt"; return 1; }
  versions "$OLD_K8S"   # --plan changed nothing
  log "upgrade $OLD_K8S -> $NEW_K8S"
  t0=$SECONDS; local since; since=$(date +%s)
  timed "upgrade of 5 hosts (3 masters, 2 nodes) $OLD_K8S -> $NEW_K8S" inst upgrade
  echo "upgrade of 5 hosts: $(( SECONDS - t0 )) s" > "$B"
  # the new bundle's images reach every host through the fan-out and every host imports them
  # (upgrade-prepare.sh) before the first master's upgrade rolls the new kube-proxy out to all
  # nodes: the masters' registries serve no blob to another host (the old bundle's images were
  # preloaded at install, for pods a drain moves)
  served "$since" h1 h2 h3 > "$E/served-upgrade.txt"; sed 's/^/  registry of /' "$E/served-upgrade.txt" >> "$B"
  if [ "$SERVED_OTHERS" != 0 ]; then
    echo "FAIL: during the upgrade the masters' registries served $SERVED_OTHERS bytes to other hosts:"
    served_lines "$since" h1 h2 h3
    return 1
  fi
  # this machine sends the new installer about once: the first master's copy, the others' layers
  # through the chains fed by it
  local sent; sent=$(grep -E 'sent .* from this machine' "$E/step.log" | head -1)
  echo "  $sent (installer: $(( $(stat -c %s "$INSTALLER") >> 20 )) MiB)" >> "$B"
  awk -v s="$(stat -c %s "$INSTALLER")" '{for (i = 1; i < NF; i++) if ($i == "sent") {v = $(i+1); u = $(i+2)}}
    END {m = (u == "GiB" ? 1073741824 : u == "MiB" ? 1048576 : u == "KiB" ? 1024 : 1); exit !(v * m <= 1.1 * s)}' <<<"$sent" ||
    { echo "FAIL: the upgrade $sent; want about the installer's $(stat -c %s "$INSTALLER") bytes"; return 1; }
  # each host's time: its drain, script, uncordon and wait for Ready
  host_times "$E/step.log" >> "$B"
  BUNDLES="$E/app/installer.run $E/app/installer-new.run"
  versions "$NEW_K8S"
  # the app serves v2 (the deployment keeps the replicas ha scaled it to: apply changes only what
  # the manifest changed)
  on h1 'KUBECONFIG=/etc/kubernetes/admin.conf kubectl rollout status deploy/httpd --timeout=180s' >/dev/null
  # a replaced v1 pod, terminating, can still take new connections for a few seconds after the
  # rollout ends, until every host's kube-proxy drops it (once, h4's answered 21 of 40 requests
  # right after): the Service must answer v2 only within 30 s
  local got t1=$SECONDS
  for i in $(seq 30); do
    got=$(on h4 "for i in \$(seq 40); do exec 3<>/dev/tcp/$ip/80; printf 'GET / HTTP/1.0\r\n\r\n' >&3; tail -1 <&3; exec 3<&-; done | awk '{print \$NF}' | sort | uniq -c")
    [ "$(awk '{print $2}' <<<"$got")" = v2 ] && break
    sleep 1
  done
  [ "$(awk '{print $2}' <<<"$got")" = v2 ] || { echo "FAIL: 30 s after the upgrade's rollout the app answers: $got"; return 1; }
  echo "  rollout of the app's v2 done -> its Service answers v2 only: $(( SECONDS - t1 )) s" >> "$B"
  sleep 11   # the clients' next count (every 10 s)
  watch_report | tee -a "$B"
  REPLICAS=$(on h1 "KUBECONFIG=/etc/kubernetes/admin.conf kubectl get deploy httpd -o 'jsonpath={.spec.replicas}'") check h1 h2 h3 h4 h5
  # a second run changes nothing: no static pod manifest, kubelet or containerd is touched
  local before after; before=$(host_state)
  timed "upgrade again (nothing to do)" inst upgrade
  after=$(host_state)
  [ "$before" = "$after" ] || { echo "FAIL: the second upgrade changed the hosts:"; diff <(echo "$before") <(echo "$after"); return 1; }
  ! grep -E '(upgrade-drain|upgrade-master0?|upgrade-node|upgrade-uncordon|apps): done' "$E/step.log" ||
    { echo "FAIL: the second upgrade ran steps again"; return 1; }
  on h1 'KUBECONFIG=/etc/kubernetes/admin.conf kubectl delete ds/watch --wait=false' >/dev/null
  log "upgrade: $(head -1 "$B")"
}
# versions V: every node's kubelet, the API server, and every kube-system pod's images are V's
# (those of the installer at V, which carries kubeadm's images of that version)
versions() {
  local v=$1 b=$E/app/installer.run got bad
  [ "$v" = "$NEW_K8S" ] && b=$E/app/installer-new.run
  got=$(on h1 "KUBECONFIG=/etc/kubernetes/admin.conf kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name} {.status.nodeInfo.kubeletVersion}{\"\n\"}{end}'")
  bad=$(awk -v v="$v" '$2 != v' <<<"$got")
  [ -z "$bad" ] && [ "$(wc -l <<<"$got")" = 5 ] || { echo "FAIL: want every kubelet at $v: $got"; return 1; }
  got=$(on h1 'KUBECONFIG=/etc/kubernetes/admin.conf kubectl version -o json' | tr -d ' \n' | sed -n 's/.*"serverVersion":{[^}]*"gitVersion":"\([^"]*\)".*/\1/p')
  [ "$got" = "$v" ] || { echo "FAIL: the API server runs $got, want $v"; return 1; }
  local want; want=$("$b" images | awk 'NR > 1 {sub(/^[^\/]*\//, "", $1); print $1}')
  got=$(on h1 "KUBECONFIG=/etc/kubernetes/admin.conf kubectl -n kube-system get pods -o jsonpath='{range .items[*]}{range .spec.containers[*]}{.image}{\"\n\"}{end}{end}'" | sort -u)
  bad=$(while read -r i; do grep -qxF "${i#*/}" <<<"$want" || echo "$i"; done <<<"$got")
  [ -z "$bad" ] || { echo "FAIL: kube-system runs images that are not the $v installer's: $bad"; return 1; }
  log "every kubelet, the API server and kube-system's images ($(wc -l <<<"$got")) at $v"
}
# host_times LOG: each host's share of the upgrade (drain, script, uncordon, Ready), from the
# installer's step lines "[IP] PHASE/STEP: done in DURATION"
host_times() {
  awk 'function secs(d,  t, x) { t = 0
         while (match(d, /^[0-9.]+(h|ms|m|s)/)) { x = substr(d, 1, RLENGTH); d = substr(d, RLENGTH + 1)
           if (x ~ /ms$/) t += x / 1000; else if (x ~ /h$/) t += x * 3600; else if (x ~ /m$/) t += x * 60; else t += x + 0 }
         return t }
       $1 ~ /^\[[0-9.]+\]$/ && $2 ~ /^(control-plane|nodes)\// && $3 == "done" { h = $1; p[h] = $2; sub(/\/.*/, "", p[h]); t[h] += secs($5) }
       END { for (h in t) printf "  %s %s: %.1f s\n", p[h], h, t[h] }' "$1" | sort
}
# watch_report: each client's counts; a client that restarted lost its count and fails the check
watch_report() {
  local pods p line total=0 failed=0
  pods=$(on h1 "KUBECONFIG=/etc/kubernetes/admin.conf kubectl get pod -l app=watch -o jsonpath='{range .items[*]}{.metadata.name} {.spec.nodeName} {.status.containerStatuses[0].restartCount}{\"\n\"}{end}'")
  while read -r p node restarts; do
    [ "$restarts" = 0 ] || { echo "FAIL: the client $p on $node restarted during the upgrade ($restarts)"; return 1; }
    line=$(on h1 "KUBECONFIG=/etc/kubernetes/admin.conf kubectl logs $p" </dev/null | grep '^ok=' | tail -1) || true
    [[ $line =~ ^ok=([0-9]+)\ failed=([0-9]+)$ ]] && [ "${BASH_REMATCH[1]}" -gt 0 ] ||
      { echo "FAIL: the client $p on $node counted nothing: '$line'"; return 1; }
    total=$(( total + BASH_REMATCH[1] + BASH_REMATCH[2] )); failed=$(( failed + BASH_REMATCH[2] ))
    echo "  client on $node: $line"
    on h1 "KUBECONFIG=/etc/kubernetes/admin.conf kubectl logs $p" </dev/null | { grep ' failed: ' || true; } | sed 's/^/    /' | head -20
  done <<<"$pods"
  echo "requests to the app during the upgrade: $total, failed: $failed"
  # the goal is none; more than 1 % is an outage, not a dropped connection
  [ $(( failed * 100 )) -le "$total" ] || { echo "FAIL: $failed of $total requests failed during the upgrade"; return 1; }
}
# host_state: what a second upgrade must leave alone on every host: the static pod manifests, the
# kubelet's and containerd's processes
host_state() {
  local n
  for n in $HOSTS; do
    echo "$n $(on "$n" 'systemctl show -p MainPID --value kubelet containerd | paste -sd" "; cat /etc/kubernetes/manifests/*.yaml 2>/dev/null | sha256sum | cut -c1-16')"
  done
}

all() {
  # leftovers of an earlier run (KEEP=1, or killed): its hosts, bridge and known_hosts go first
  [ ! -d "$E" ] || KEEP= down
  trap down EXIT
  up; for n in $HOSTS; do snapshot $n "$E/$n.before"; done
  app; refuses h2
  INSTALLER=$E/app/installer.run; BUNDLES=$INSTALLER
  # 3 masters (h2 stripped) and a node: the app's 2 replicas on the node (the masters are tainted)
  do_install "h1 h2 h3" h4; APP_NODES=1 check h1 h2 h3 h4
  # the joining masters and the node started every pod from images the fan-out preloaded: the
  # masters' registries served no blob to another host (only h1's to itself, for its own pods)
  check_preload h2 h3 h4
  served 0 h1 h2 h3 > "$E/served.txt"; sed 's/^/  registry of /' "$E/served.txt" | tee -a "$E/bench-4.txt"
  [ "$SERVED_OTHERS" = 0 ] || { echo "FAIL: with every image preloaded, the masters' registries served $SERVED_OTHERS bytes to other hosts:"; served_lines 0 h1 h2 h3; return 1; }
  # every master's API server serves on its own
  for n in h2 h3; do
    on "$n" "KUBECONFIG=/etc/kubernetes/admin.conf kubectl --server https://$(ip_of $n):6443 get nodes" >/dev/null \
      || { echo "FAIL: $n's API server does not answer"; return 1; }
  done
  ha
  upgrade
  timed "reset of 5 hosts" inst reset; assert_clean $HOSTS
  INSTALLER=$E/app/installer-new.run; BUNDLES=$INSTALLER
  # the reset first host installs again, alone: a single-host cluster whose master runs the app
  do_install h1; check h1
  # a second control plane joins after its join data expired (bootstrap tokens and uploaded
  # certificates deleted, the share two hours old: refresh-share.sh renews them), and the API
  # proxy of every host follows it
  expire_join_data h1
  cluster_file "h1 h2" ""
  timed "join of a second control plane (h2)" inst join
  on h1 'export KUBECONFIG=/etc/kubernetes/admin.conf
    kubectl wait --for=condition=Ready node/h2 --timeout=180s
    kubectl -n kube-system wait --for=condition=Ready pod/etcd-h2 pod/kube-apiserver-h2 pod/kube-controller-manager-h2 pod/kube-scheduler-h2 --timeout=180s' >/dev/null
  on h2 "KUBECONFIG=/etc/kubernetes/admin.conf kubectl --server https://$(ip_of h2):6443 get nodes" >/dev/null ||
    { echo "FAIL: h2's API server does not answer"; return 1; }
  until_ok 30 on h1 "grep -qx '$(ip_of h2):6443' /etc/sealpack/k8s/apiservers" ||
    { echo "FAIL: h1's API proxy does not list the joined master: $(on h1 cat /etc/sealpack/k8s/apiservers)"; return 1; }
  log "h1's API proxy follows the joined master: $(on h1 cat /etc/sealpack/k8s/apiservers | paste -sd' ')"
  APP_NODES=1 check h1 h2
  inst reset; assert_clean h1 h2
  echo "== timings"; cat "$E"/bench-4.txt "$E"/bench-1.txt "$E"/bench-ha.txt "$E"/bench-upgrade.txt "$E"/bench-steps.txt
}

# upgrade_life: the upgrade alone (install at OLD_K8S on 3 masters + 2 nodes, upgrade, reset), for
# working on it without the rest of the life
upgrade_life() {
  [ ! -d "$E" ] || KEEP= down
  trap down EXIT
  up; for n in $HOSTS; do snapshot $n "$E/$n.before"; done
  app; INSTALLER=$E/app/installer.run; BUNDLES=$INSTALLER
  do_install "h1 h2 h3" "h4 h5"; check h1 h2 h3 h4 h5
  upgrade
  inst reset; assert_clean $HOSTS
  cat "$E"/bench-upgrade.txt "$E"/bench-steps.txt
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
  upgrade) preflight; upgrade_life;;
  roots) rootfs;; up) up;; install) app; INSTALLER=$E/app/installer.run BUNDLES=$E/app/installer.run do_install "h1 h2 h3" h4;; check) APP_NODES=1 check h1 h2 h3 h4;; down) down;; all) preflight; all;;
  *) echo "usage: $0 [preflight|roots|up|install|check|upgrade|down|all]" >&2; exit 2;;
esac
