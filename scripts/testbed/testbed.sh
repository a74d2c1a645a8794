#!/usr/bin/env bash
# testbed.sh builds N fake hosts on this machine for sealpack's end-to-end tests.
#
# Each host is a network namespace on a private bridge, held alive by one
# "holder" process that also owns the host's mount and UTS namespaces, and runs
# its own sshd inside them. See README.md beside this file.
#
# This is the only implementation: internal/testbed (Go) calls this script.
set -euo pipefail

readonly REGISTRY=/run/sealpack-testbed    # bed name -> index, dir, owner; shared by all runs
readonly SUBNET_PREFIX=10.247              # bed k gets 10.247.k.0/24
readonly MAX_INDEX=250
readonly MAX_HOSTS=200                     # host i gets .i; the root namespace gets .254
readonly TESTBED_USER=sp
readonly BUILD_JOBS=8                      # hosts built (and torn down) at once
# Directories each host sees privately. Overlays keep the real contents visible
# (sshd, sudo and apt need /etc and /var/lib); binds start empty.
readonly OVERLAY_DIRS="etc opt var/lib usr/local"
readonly EMPTY_DIRS="root home tmp"

SELF=$(readlink -f "$0")
readonly SELF

die() { echo "testbed: $*" >&2; exit 1; }
log() { echo "testbed: $*" >&2; }

usage() {
	cat >&2 <<'EOF'
usage:
  testbed.sh up NAME N [--dir DIR] [--disk-limit HOST=SIZE]... [--bandwidth HOST=RATE]... [--owner PID]
  testbed.sh down NAME
  testbed.sh status NAME
  testbed.sh exec NAME HOST CMD...
  testbed.sh stop-ssh NAME HOST | start-ssh NAME HOST
  testbed.sh bandwidth NAME HOST RATE|off
  testbed.sh list
HOST is a number from 1 to N (or h1..hN). SIZE is a tmpfs size (64M), RATE a tc rate (10mbit).
--dir defaults to /tmp/sealpack-testbed/NAME. --owner marks the bed as belonging to a
process: while it lives nobody else may take the name; once it is dead the bed is stale
and the next "up" reclaims it.
EOF
	exit 2
}

# ---------------------------------------------------------------- checks

check_deps() {
	[ "$(id -u)" = 0 ] || die "must run as root (network and mount namespaces)"
	local missing="" c
	for c in ip sshd ssh-keygen unshare nsenter setsid flock ss useradd chpasswd timeout; do
		command -v "$c" >/dev/null 2>&1 || missing="$missing $c"
	done
	[ -z "$missing" ] || die "missing tools:$missing (apt-get install openssh-server openssh-client iproute2 util-linux passwd coreutils)"
	grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || true
	grep -qw overlay /proc/filesystems || die "kernel has no overlay filesystem"
	# The password user's passwordless sudo is part of the contract; install
	# sudo once rather than failing every test on a fresh machine.
	if ! command -v sudo >/dev/null 2>&1; then
		log "sudo is missing; installing it with apt-get"
		DEBIAN_FRONTEND=noninteractive apt-get install -y sudo >&2 ||
			die "sudo is missing and apt-get install sudo failed"
	fi
}

check_name() {
	[[ "$1" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]] || die "bad bed name \"$1\" (letters, digits, . _ -; at most 64)"
}

# host_num NAME-OR-NUMBER N -> prints the 1-based host number.
host_num() {
	local h=${1#h}
	if ! [[ "$h" =~ ^[0-9]+$ ]] || [ "$h" -lt 1 ] || [ "$h" -gt "$2" ]; then
		die "no host \"$1\" (hosts are 1..$2)"
	fi
	echo $((10#$h))
}

# --------------------------------------------------------------- registry

lock_registry() {
	mkdir -p "$REGISTRY/beds"
	exec 9>"$REGISTRY/lock"
	flock 9
}

# proc_start PID prints the process start time (field 22 of /proc/PID/stat),
# which tells a live owner from a recycled pid. A zombie has no start time:
# it is dead, and PID 1 on some machines reaps slowly.
proc_start() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) } # comm may contain spaces and parentheses
	# shellcheck disable=SC2086
	set -- $stat
	[ "$1" != Z ] || return 1
	echo "${20}"
}

owner_alive() { # PID START
	[ -n "$1" ] || return 1
	[ "$(proc_start "$1" 2>/dev/null)" = "$2" ]
}

# load_bed NAME sets the variables of the bed's registry entry and bed.env.
load_bed() {
	local reg="$REGISTRY/beds/$1.env"
	[ -f "$reg" ] || die "no bed named \"$1\" (see: testbed.sh list)"
	INDEX="" DIR="" OWNER_PID="" OWNER_START="" N=""
	# shellcheck disable=SC1090
	. "$reg"
	if [ -f "$DIR/bed.env" ]; then
		# shellcheck disable=SC1091
		. "$DIR/bed.env"
	fi
}

# names derived from the bed index, so they are unique across concurrent beds
# and short: Linux interface names are at most 15 characters.
bridge_name() { echo "spb$1"; }      # spb250
veth_name() { echo "spv$1-$2"; }      # spv250-200
netns_name() { echo "sptb$1-h$2"; }   # sptb250-h200
host_ip() { echo "$SUBNET_PREFIX.$1.$2"; }

# ------------------------------------------------------------------- up

# shellcheck disable=SC2034 # disk_of and bw_of are passed by name to build_bed
cmd_up() {
	[ $# -ge 2 ] || usage
	local name=$1 n=$2 dir="" owner="" arg
	shift 2
	local -a disk_args=() bw_args=()
	while [ $# -gt 0 ]; do
		arg=$1
		case $arg in
		--dir) dir=${2:?--dir needs a value}; shift 2 ;;
		--dir=*) dir=${arg#*=}; shift ;;
		--owner) owner=${2:?--owner needs a value}; shift 2 ;;
		--owner=*) owner=${arg#*=}; shift ;;
		--disk-limit) disk_args+=("${2:?--disk-limit needs HOST=SIZE}"); shift 2 ;;
		--disk-limit=*) disk_args+=("${arg#*=}"); shift ;;
		--bandwidth) bw_args+=("${2:?--bandwidth needs HOST=RATE}"); shift 2 ;;
		--bandwidth=*) bw_args+=("${arg#*=}"); shift ;;
		*) die "unknown option $arg" ;;
		esac
	done
	check_name "$name"
	if ! [[ "$n" =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt $MAX_HOSTS ]; then
		die "N must be 1..$MAX_HOSTS, not \"$n\""
	fi
	check_deps
	if [ ${#bw_args[@]} -gt 0 ]; then
		command -v tc >/dev/null 2>&1 || die "--bandwidth needs tc, which is missing (apt-get install iproute2)"
	fi
	# Validate options before touching anything.
	local -A disk_of=() bw_of=()
	local kv h
	for kv in ${disk_args[@]+"${disk_args[@]}"}; do
		[[ "$kv" == *=* ]] || die "--disk-limit wants HOST=SIZE, not \"$kv\""
		h=$(host_num "${kv%%=*}" "$n")
		[[ "${kv#*=}" =~ ^[0-9]+[kKmMgG%]?$ ]] || die "--disk-limit size \"${kv#*=}\" is not a tmpfs size (e.g. 64M)"
		disk_of[$h]=${kv#*=}
	done
	for kv in ${bw_args[@]+"${bw_args[@]}"}; do
		[[ "$kv" == *=* ]] || die "--bandwidth wants HOST=RATE, not \"$kv\""
		h=$(host_num "${kv%%=*}" "$n")
		bw_of[$h]=${kv#*=}
	done
	if [ -n "$owner" ]; then
		OWNER_START=$(proc_start "$owner") || die "owner pid $owner does not exist"
	else
		OWNER_START=""
	fi
	[ -n "$dir" ] || dir=/tmp/sealpack-testbed/$name
	dir=$(realpath -m "$dir")
	# Each host covers these paths with its own mounts; state below them
	# would vanish from under the mounts being set up.
	case "$dir/" in
	/etc/* | /opt/* | /var/lib/* | /usr/local/* | /root/* | /home/* | /run/*)
		die "--dir $dir: must not be under /etc, /opt, /var/lib, /usr/local, /root, /home or /run, which each host covers"
		;;
	esac
	# "down" deletes the bed directory, so never adopt one holding other files.
	if [ -d "$dir" ] && [ -n "$(ls -A "$dir")" ] && [ ! -f "$dir/.sealpack-testbed" ]; then
		die "--dir $dir is not empty and is not a test bed directory"
	fi

	lock_registry
	# A bed of the same name left by a killed run is torn down first; one
	# whose owner still runs is someone else's and is never touched.
	if [ -f "$REGISTRY/beds/$name.env" ]; then
		(
			load_bed "$name"
			if owner_alive "$OWNER_PID" "$OWNER_START"; then
				die "bed \"$name\" is in use by live process $OWNER_PID"
			fi
			log "cleaning stale bed \"$name\" (index $INDEX)"
			teardown "$name"
		) || die "cannot take over bed \"$name\""
	fi
	reclaim_dead_owners
	local index
	index=$(alloc_index) || die "no free bed index (all of $SUBNET_PREFIX.1-$MAX_INDEX.0/24 in use)"
	mkdir -p "$dir"
	dir=$(readlink -f "$dir")
	printf 'INDEX=%s\nDIR=%s\nOWNER_PID=%s\nOWNER_START=%s\n' "$index" "$dir" "$owner" "$OWNER_START" \
		>"$REGISTRY/beds/$name.env"
	flock -u 9

	# From here on a failure tears down what was built. The name is checked
	# to be plain characters, so it can be pasted into the trap.
	# shellcheck disable=SC2154 # rc is assigned inside the trap
	trap 'rc=$?; if [ $rc -ne 0 ]; then log "up failed; tearing down"; (teardown_locked '"$name"') || true; fi' EXIT
	build_bed "$name" "$n" "$index" "$dir" disk_of bw_of
	trap - EXIT
	cmd_status "$name"
}

# reclaim_dead_owners tears down beds whose owner process is gone: a test
# binary killed by a timeout never runs its cleanups.
reclaim_dead_owners() {
	local f bname
	for f in "$REGISTRY"/beds/*.env; do
		[ -e "$f" ] || continue
		bname=$(basename "$f" .env)
		(
			load_bed "$bname"
			[ -n "$OWNER_PID" ] || exit 0 # made by hand: lives until "down"
			owner_alive "$OWNER_PID" "$OWNER_START" && exit 0
			log "reclaiming bed \"$bname\": owner $OWNER_PID is gone"
			teardown "$bname"
		) || true
	done
}

# alloc_index prints the lowest index no registered bed uses and whose subnet
# does not already exist on this machine.
alloc_index() {
	local used="" f i
	for f in "$REGISTRY"/beds/*.env; do
		[ -e "$f" ] || continue
		used="$used $(sed -n 's/^INDEX=//p' "$f")"
	done
	for ((i = 1; i <= MAX_INDEX; i++)); do
		case " $used " in *" $i "*) continue ;; esac
		ip link show "$(bridge_name "$i")" >/dev/null 2>&1 && continue
		[ -z "$(ip -4 route show "$SUBNET_PREFIX.$i.0/24" 2>/dev/null)" ] || continue
		ip -4 addr show | grep -q "inet $SUBNET_PREFIX\.$i\." && continue
		echo "$i"
		return 0
	done
	return 1
}

build_bed() {
	local name=$1 n=$2 index=$3 dir=$4
	local -n disks=$5 rates=$6
	local br password i pid
	br=$(bridge_name "$index")
	# Marker so teardown removes only a directory this script made.
	: >"$dir/.sealpack-testbed"
	password=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
	rm -f "$dir/client_key" "$dir/client_key.pub"
	ssh-keygen -q -t ed25519 -N '' -C "sealpack-testbed-$name" -f "$dir/client_key"

	{
		echo "NAME=$name"
		echo "N=$n"
		echo "INDEX=$index"
		echo "DIR=$dir"
		echo "SUBNET=$SUBNET_PREFIX.$index.0/24"
		echo "GATEWAY=$(host_ip "$index" 254)"
		echo "BRIDGE=$br"
		echo "CLIENT_KEY=$dir/client_key"
		echo "PW_USER=$TESTBED_USER"
		echo "PASSWORD=$password"
	} >"$dir/bed.env"

	ip link add "$br" type bridge
	ip addr add "$(host_ip "$index" 254)/24" dev "$br"
	ip link set "$br" up

	: >"$dir/hosts"
	for ((i = 1; i <= n; i++)); do
		echo "$(host_ip "$index" "$i") h$i" >>"$dir/hosts"
	done
	# Hosts are built a few at a time: one takes about a second, mostly
	# waiting on ssh-keygen, mounts and sshd, so a bed of a hundred comes up
	# in well under a minute instead of over two.
	local -a jobs=()
	local failed=0
	for ((i = 1; i <= n; i++)); do
		(
			trap - EXIT
			build_host "$name" "$dir" "$index" "$i" "$password" "${disks[$i]:-}"
			if [ -n "${rates[$i]:-}" ]; then
				set_bandwidth "$index" "$i" "${rates[$i]}"
			fi
		) &
		jobs+=($!)
		if [ ${#jobs[@]} -ge $BUILD_JOBS ]; then
			wait -n || failed=1
			jobs=($(jobs -pr))
		fi
		[ $failed = 0 ] || break
	done
	for pid in $(jobs -pr); do wait "$pid" || failed=1; done
	wait || true
	[ $failed = 0 ] || die "building the hosts failed (see the messages above)"
	: >"$dir/known_hosts"
	for ((i = 1; i <= n; i++)); do
		{
			echo "H${i}_NAME=h$i"
			echo "H${i}_IP=$(host_ip "$index" "$i")"
			echo "H${i}_NETNS=$(netns_name "$index" "$i")"
			echo "H${i}_VETH=$(veth_name "$index" "$i")"
			echo "H${i}_DIR=$dir/h$i"
			echo "H${i}_HOSTKEY=$dir/h$i/upper/etc/ssh/ssh_host_ed25519_key.pub"
			echo "H${i}_DISK_LIMIT=${disks[$i]:-}"
			echo "H${i}_BANDWIDTH=${rates[$i]:-}"
		} >>"$dir/bed.env"
		echo "$(host_ip "$index" "$i") $(cut -d' ' -f1,2 "$dir/h$i/upper/etc/ssh/ssh_host_ed25519_key.pub")" >>"$dir/known_hosts"
	done
	echo "READY=1" >>"$dir/bed.env"
}

build_host() {
	local name=$1 dir=$2 index=$3 i=$4 password=$5 disk=$6
	local ns veth hd d holder
	ns=$(netns_name "$index" "$i")
	veth=$(veth_name "$index" "$i")
	hd=$dir/h$i
	mkdir -p "$hd"
	for d in $OVERLAY_DIRS; do mkdir -p "$hd/upper/$d" "$hd/work/$d"; done
	for d in $EMPTY_DIRS; do mkdir -p "$hd/$d"; done
	chmod 700 "$hd/root"
	chmod 1777 "$hd/tmp"
	[ -z "$disk" ] || mkdir -p "$hd/disk"

	ip netns add "$ns"
	ip link add "$veth" type veth peer name "spp$index-$i" netns "$ns"
	ip link set "$veth" master "$(bridge_name "$index")" up
	ip -n "$ns" link set "spp$index-$i" name eth0
	ip -n "$ns" addr add "$(host_ip "$index" "$i")/24" dev eth0
	ip -n "$ns" link set lo up
	ip -n "$ns" link set eth0 up
	# No default route on purpose: nothing leaves the bridge.

	# The holder owns the host's mount and UTS namespaces for the bed's life,
	# so sshd can stop and start without losing the host's mounts, and a
	# process started over SSH never pins a second copy of the overlays.
	rm -f "$hd/holder.pid"
	# shellcheck disable=SC2016 # expanded by the inner bash
	setsid nsenter --net="/run/netns/$ns" -- unshare --mount --uts --propagation private -- \
		bash -c 'echo $$ >"$1"; exec -a "$2" sleep infinity' holder "$hd/holder.pid" "sealpack-testbed-holder:$name:h$i" \
		</dev/null >>"$hd/holder.log" 2>&1 &
	disown # no "Killed" notice from this shell when a teardown ends it
	wait_for 30 test -s "$hd/holder.pid" || die "holder of h$i did not start (see $hd/holder.log)"
	holder=$(cat "$hd/holder.pid")
	nsenter -t "$holder" -m -u -n --wd=/ -- "$SELF" _setup-host "$hd" "h$i" "$dir/hosts" "$dir/client_key.pub" "$password" "$disk" \
		>>"$hd/setup.log" 2>&1 || die "set up h$i: $(tail -n 5 "$hd/setup.log")"
	start_sshd "$dir" "$index" "$i"
}

# _setup-host runs inside the host's namespaces, before any other process.
cmd_setup_host() {
	local hd=$1 hostname=$2 hosts client_pub password=$5 disk=$6 d
	set -x
	# Read now: the bed directory may live under /tmp, which is covered below.
	hosts=$(cat "$3")
	client_pub=$(cat "$4")
	# Our copies of every bed's /run/netns mounts would keep those namespaces
	# alive after their own teardown; drop them from this namespace.
	umount -R -l /run/netns 2>/dev/null || true
	for d in $OVERLAY_DIRS; do
		local upper=$hd/upper/$d work=$hd/work/$d
		if [ "$d" = var/lib ] && [ -n "$disk" ]; then
			# A small tmpfs under the overlay: df /var/lib reports its size
			# while the real /var/lib stays readable.
			mount -t tmpfs -o "size=$disk,mode=755" sptb-disk "$hd/disk"
			mkdir -p "$hd/disk/upper" "$hd/disk/work"
			upper=$hd/disk/upper work=$hd/disk/work
		fi
		mount -t overlay overlay -o "lowerdir=/$d,upperdir=$upper,workdir=$work" "/$d"
	done
	for d in $EMPTY_DIRS; do
		[ "$d" = tmp ] && continue
		mount --bind "$hd/$d" "/$d"
	done
	mount -t tmpfs -o mode=755 sptb-run /run
	mkdir -p /run/sshd /run/lock
	chmod 1777 /run/lock
	# /tmp last: the bed directory may live under the real /tmp.
	mount --bind "$hd/tmp" /tmp

	hostname "$hostname"
	echo "$hostname" >/etc/hostname
	{
		echo "127.0.0.1 localhost"
		echo "::1 localhost ip6-localhost ip6-loopback"
		echo "$hosts"
	} >/etc/hosts

	# Only this host's key, so a client cannot be offered the machine's.
	rm -f /etc/ssh/ssh_host_*
	ssh-keygen -q -t ed25519 -N '' -C "root@$hostname" -f /etc/ssh/ssh_host_ed25519_key
	cat >/etc/ssh/sshd_config <<'EOF'
# Written by sealpack's testbed.sh.
Port 22
ListenAddress 0.0.0.0
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile none
# PAM stays off: pam_loginuid and pam_systemd expect a booted system.
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
# MaxSessions and MaxStartups keep OpenSSH's defaults (10, 10:30:100), as on
# the hosts of a site: the install engine must stay within them.
UseDNS no
PrintMotd no
PrintLastLog no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
	install -d -m 700 /root/.ssh
	echo "$client_pub" >/root/.ssh/authorized_keys
	chmod 600 /root/.ssh/authorized_keys

	id "$TESTBED_USER" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$TESTBED_USER"
	echo "$TESTBED_USER:$password" | chpasswd
	echo "$TESTBED_USER ALL=(ALL) NOPASSWD:ALL" >/etc/sudoers.d/sealpack-testbed
	chmod 440 /etc/sudoers.d/sealpack-testbed
	/usr/sbin/sshd -t -f /etc/ssh/sshd_config
}

start_sshd() {
	local dir=$1 index=$2 i=$3 hd holder ns pid
	hd=$dir/h$i
	ns=$(netns_name "$index" "$i")
	holder=$(holder_pid "$dir" "$index" "$i") || die "h$i has no live holder process"
	# sshd must be started by its absolute path: it re-executes itself for
	# every connection.
	setsid nsenter -t "$holder" -m -u -n --wd=/ -- /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config \
		</dev/null >>"$hd/sshd.log" 2>&1 &
	pid=$!
	disown
	echo "$pid" >"$hd/sshd.pid"
	local deadline=$((SECONDS + 30))
	until [ -n "$(nsenter --net="/run/netns/$ns" ss -Hltn 'sport = :22' 2>/dev/null)" ]; do
		kill -0 "$pid" 2>/dev/null || die "sshd on h$i exited: $(tail -n 5 "$hd/sshd.log")"
		[ $SECONDS -lt $deadline ] || die "sshd on h$i does not listen after 30s: $(tail -n 5 "$hd/sshd.log")"
		sleep 0.05
	done
}

# holder_pid prints the pid of host i's holder after checking it is still the
# process in that host's network namespace (pids are recycled).
holder_pid() {
	local dir=$1 index=$2 i=$3 pid ns
	ns=$(netns_name "$index" "$i")
	pid=$(cat "$dir/h$i/holder.pid" 2>/dev/null) || return 1
	[ -n "$pid" ] && [ "$(readlink "/proc/$pid/ns/net" 2>/dev/null)" = "net:[$(stat -L -c %i "/run/netns/$ns" 2>/dev/null)]" ] || return 1
	echo "$pid"
}

wait_for() { # SECONDS CMD...
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.02
	done
}

# ------------------------------------------------------------- bandwidth

set_bandwidth() {
	local index=$1 i=$2 rate=$3 ns veth
	command -v tc >/dev/null 2>&1 || die "bandwidth limit needs tc, which is missing (apt-get install iproute2)"
	ns=$(netns_name "$index" "$i")
	veth=$(veth_name "$index" "$i")
	if [ "$rate" = off ]; then
		tc qdisc del dev "$veth" root 2>/dev/null || true
		tc -n "$ns" qdisc del dev eth0 root 2>/dev/null || true
		return 0
	fi
	# Both directions: the bridge side shapes what the host receives, eth0
	# what it sends.
	tc qdisc replace dev "$veth" root tbf rate "$rate" burst 64kb latency 200ms ||
		die "tc rate \"$rate\" on $veth failed"
	tc -n "$ns" qdisc replace dev eth0 root tbf rate "$rate" burst 64kb latency 200ms ||
		die "tc rate \"$rate\" on h$i eth0 failed"
}

cmd_bandwidth() {
	[ $# -eq 3 ] || usage
	load_bed "$1"
	local i
	i=$(host_num "$2" "$N")
	set_bandwidth "$INDEX" "$i" "$3"
}

# ------------------------------------------------------------------ ssh

# sshd_pids prints every sshd process of host i: the listener and the
# per-connection ones, which all die when a link is "killed".
sshd_pids() {
	local ns=$1 p
	for p in $(ip netns pids "$ns" 2>/dev/null); do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = sshd ] && echo "$p"
	done
	return 0
}

cmd_stop_ssh() {
	[ $# -eq 2 ] || usage
	load_bed "$1"
	local i ns pids
	i=$(host_num "$2" "$N")
	ns=$(netns_name "$INDEX" "$i")
	# Kill until none is left: a connection may be forking while we kill.
	# A loaded machine can take seconds to finish off a killed process.
	local deadline=$((SECONDS + 30))
	while pids=$(sshd_pids "$ns") && [ -n "$pids" ]; do
		[ $SECONDS -lt $deadline ] || die "sshd on h$i did not die: $(ps -o pid,ppid,stat,args -p "$(echo "$pids" | paste -sd,)" 2>&1)"
		# shellcheck disable=SC2086 # a list of pids
		kill -KILL $pids 2>/dev/null || true
		sleep 0.05
	done
	rm -f "$DIR/h$i/sshd.pid"
}

cmd_start_ssh() {
	[ $# -eq 2 ] || usage
	load_bed "$1"
	local i
	i=$(host_num "$2" "$N")
	[ -z "$(sshd_pids "$(netns_name "$INDEX" "$i")")" ] || die "sshd on h$i is already running"
	start_sshd "$DIR" "$INDEX" "$i"
}

# ----------------------------------------------------------------- exec

cmd_exec() {
	[ $# -ge 3 ] || usage
	load_bed "$1"
	local i holder
	i=$(host_num "$2" "$N")
	shift 2
	holder=$(holder_pid "$DIR" "$INDEX" "$i") || die "h$i is not running"
	# A clean environment, like a login: the caller's would leak paths of
	# the real machine into the host.
	exec nsenter -t "$holder" -m -u -n --wd=/ -- env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		HOME=/root USER=root LOGNAME=root LANG=C.UTF-8 "$@"
}

# ----------------------------------------------------------------- down

cmd_down() {
	[ $# -eq 1 ] || usage
	check_name "$1"
	[ "$(id -u)" = 0 ] || die "must run as root"
	[ -f "$REGISTRY/beds/$1.env" ] || { log "no bed named \"$1\"; nothing to do"; return 0; }
	lock_registry
	teardown "$1"
}

# host_pids NETNS MNTNS prints the processes in the host's network namespace
# or in its mount namespace (MNTNS as readlink shows it: mnt:[inode]).
host_pids() {
	{
		ip netns pids "$1" 2>/dev/null || true
		if [ -n "$2" ]; then
			# One find instead of a readlink per process; -lname takes a
			# pattern, so the brackets are escaped.
			local pat=${2//[/\\[}
			pat=${pat//]/\\]}
			find /proc/[0-9]*/ns/mnt -maxdepth 0 -lname "$pat" 2>/dev/null | cut -d/ -f3
		fi
		true # pipefail: processes that exit during find must not fail the list
	} | sort -un
}

teardown_locked() {
	lock_registry
	teardown "$1"
}

# teardown_host kills every process of host i and removes its namespace and
# veth; it prints what it could not remove.
teardown_host() {
	local i=$1 ns=$2 pids
	# Every process in the host dies: the holder, sshd, sessions and
	# anything they started. Then the mount namespace has no member and
	# its mounts go with it.
	# A process may have left the host's network namespace but still
	# pin its mounts; find those through the holder's mount namespace.
	# An open descriptor pins that namespace while we kill: once its
	# last process dies the kernel reuses its number for a new one,
	# maybe another bed's host being built right now.
	local mntns="" holder mntfd=""
	if holder=$(holder_pid "$DIR" "$INDEX" "$i") && exec {mntfd}<"/proc/$holder/ns/mnt"; then
		mntns=$(readlink "/proc/$BASHPID/fd/$mntfd") # $$ is wrong in a subshell
	fi
	local deadline=$((SECONDS + 30))
	while pids=$(host_pids "$ns" "$mntns") && [ -n "$pids" ] && [ $SECONDS -lt $deadline ]; do
		# shellcheck disable=SC2086 # a list of pids
		kill -KILL $pids 2>/dev/null || true
		sleep 0.02
	done
	if [ -n "$(host_pids "$ns" "$mntns")" ]; then
		# Keep the namespace: it is how a later "down" finds them.
		echo "processes-in-$ns"
		return 0
	fi
	if [ -n "$mntfd" ]; then exec {mntfd}<&-; fi
	ip link del "$(veth_name "$INDEX" "$i")" 2>/dev/null || true
	ip netns del "$ns" 2>/dev/null || echo "netns-$ns"
}

# teardown removes everything of bed NAME; the registry lock is held. It goes
# on after errors so a half-built bed is still removed, and fails at the end
# if anything is left.
teardown() {
	local name=$1 i ns pids left=""
	load_bed "$name"
	local n=$MAX_HOSTS
	[ -z "$N" ] || n=$N
	# Hosts are torn down a few at a time, as they are built; what is left
	# of each is collected in a file, since the jobs are subshells.
	local leftfile
	leftfile=$(mktemp)
	for ((i = 1; i <= n; i++)); do
		ns=$(netns_name "$INDEX" "$i")
		if [ ! -e "/run/netns/$ns" ]; then
			if [ -z "$N" ]; then break; fi # unknown N (failed early): stop at the first gap
			continue
		fi
		teardown_host "$i" "$ns" >>"$leftfile" &
		if [ "$(jobs -pr | wc -l)" -ge $BUILD_JOBS ]; then wait -n || true; fi
	done
	wait
	left=$(tr '\n' ' ' <"$leftfile")
	left=${left:+ ${left% }}
	rm -f "$leftfile"
	if ip link show "$(bridge_name "$INDEX")" >/dev/null 2>&1; then
		ip link del "$(bridge_name "$INDEX")" || left="$left bridge-$(bridge_name "$INDEX")"
	fi
	if [ -n "$left" ]; then
		die "tear down \"$name\": left behind:$left"
	fi
	if [ -n "$DIR" ] && [ -f "$DIR/.sealpack-testbed" ]; then
		# Mounts are gone with their namespaces, so this only removes files;
		# the overlay work dirs hold root-only entries, hence no -f needed.
		rm -rf --one-file-system "$DIR" || die "tear down \"$name\": remove $DIR"
	fi
	rm -f "$REGISTRY/beds/$name.env"
}

# --------------------------------------------------------------- status

# shellcheck disable=SC2153 # NAME, PASSWORD, ... come from bed.env
cmd_status() {
	[ $# -eq 1 ] || usage
	load_bed "$1"
	[ -n "$N" ] || die "bed \"$1\" is incomplete (up failed or is running)"
	local i ip ns state fp
	echo "bed $NAME: $N hosts on $BRIDGE $SUBNET (this machine is $GATEWAY)"
	echo "  root login:     ssh -i $CLIENT_KEY -o UserKnownHostsFile=$DIR/known_hosts root@IP"
	echo "  password login: user $PW_USER, password $PASSWORD (passwordless sudo)"
	echo "  client key:     $CLIENT_KEY"
	echo "  known_hosts:    $DIR/known_hosts"
	for ((i = 1; i <= N; i++)); do
		ip=$(host_ip "$INDEX" "$i")
		ns=$(netns_name "$INDEX" "$i")
		state="down"
		holder_pid "$DIR" "$INDEX" "$i" >/dev/null && state="up"
		[ -z "$(sshd_pids "$ns")" ] || state="$state, sshd running"
		fp=$(ssh-keygen -l -f "$DIR/h$i/upper/etc/ssh/ssh_host_ed25519_key.pub" 2>/dev/null | cut -d' ' -f2)
		local vn="H${i}_DISK_LIMIT" vb="H${i}_BANDWIDTH" extra=""
		[ -z "${!vn:-}" ] || extra="$extra /var/lib ${!vn}"
		[ -z "${!vb:-}" ] || extra="$extra rate ${!vb}"
		printf '  h%-3s %-15s netns %-13s %s %s%s\n' "$i" "$ip" "$ns" "$fp" "($state)" "$extra"
	done
}

cmd_list() {
	local f
	for f in "$REGISTRY"/beds/*.env; do
		[ -e "$f" ] || continue
		(
			load_bed "$(basename "$f" .env)"
			echo "$(basename "$f" .env) index=$INDEX hosts=${N:-?} dir=$DIR owner=${OWNER_PID:-none}"
		)
	done
}

# ----------------------------------------------------------------- main

[ $# -ge 1 ] || usage
cmd=$1
shift
case $cmd in
up) cmd_up "$@" ;;
down) cmd_down "$@" ;;
status) cmd_status "$@" ;;
exec) cmd_exec "$@" ;;
stop-ssh) cmd_stop_ssh "$@" ;;
start-ssh) cmd_start_ssh "$@" ;;
bandwidth) cmd_bandwidth "$@" ;;
list) cmd_list ;;
_setup-host) cmd_setup_host "$@" ;;
-h | --help | help) usage ;;
*) usage ;;
esac
