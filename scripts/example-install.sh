#!/usr/bin/env bash
# The example's second half: install example/out/installer.run unattended on
# two namespaced test hosts (scripts/testbed), show what landed, reset, and
# tear the hosts down. Needs root (network namespaces); installs sshd and
# iproute2 from Debian's packages when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
inst=example/out/installer.run
if [ "$(id -u)" != 0 ]; then
  echo "example: skipping the install on test hosts: it needs root (network namespaces)"
  exit 0
fi
if ! command -v sshd >/dev/null && ! [ -x /usr/sbin/sshd ] || ! command -v ip >/dev/null; then
  echo "example: installing openssh-server and iproute2 for the test hosts"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client iproute2 sudo >/dev/null
fi
work=$(mktemp -d /var/tmp/sealpack-example.XXXXXX)
bed=example$$
trap 'scripts/testbed/testbed.sh down "$bed" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
scripts/testbed/testbed.sh up "$bed" 2 --dir "$work/bed" > "$work/bed.log"; head -1 "$work/bed.log"
. "$work/bed/bed.env"
net=${SUBNET%.0/24}
cat > "$work/cluster.yaml" <<YAML
apiVersion: sealer.io/v2
kind: Cluster
metadata:
  name: example
spec:
  hosts:
    - ips: [$net.1]
      roles: [master]
    - ips: [$net.2]
      roles: [node]
  ssh:
    user: root
    pk: $work/bed/client_key
YAML
echo "example: installing on $net.1 (master) and $net.2 (node)"
"$inst" install --answers "$work/cluster.yaml" --yes --known-hosts "$work/bed/known_hosts" --state-dir "$work/state" \
  --require-signature example/out/release.allowed_signers | grep -v ': pass '
for i in 1 2; do
  echo "example: host $i says: $(scripts/testbed/testbed.sh exec "$bed" "$i" cat /etc/demo/initialised)"
done
"$inst" reset --answers "$work/cluster.yaml" --yes --known-hosts "$work/bed/known_hosts" --state-dir "$work/state" | tail -1
