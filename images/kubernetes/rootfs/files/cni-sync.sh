#!/bin/bash
# cni-sync.sh: the pod network without any image: a bridge (cni0) + host-local IPAM on this node's
# node.spec.podCIDR, and a route to every other node's podCIDR via its InternalIP (all nodes on one
# L2 network). Loops forever (a systemd service), so nodes that join later are routed too and the
# routes come back after a reboot. Routes it adds carry protocol 211, so stale ones can be found.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
KC=/etc/sealpack/k8s/cni.kubeconfig   # read-only: list nodes (init-master0.sh)
# kubectl's discovery cache: not under $HOME (a service has none, so it would land in /.kube)
NAME=$(hostname | tr 'A-Z' 'a-z')
CONF=/etc/cni/net.d/10-sealpack.conflist
# SERVICE_CIDR, HOST_IP (init-host.sh)
. /etc/sealpack/k8s/network.env
while :; do
  # a host without a default route (an isolated test network) has no route for ClusterIPs, and
  # host-originated connections to them fail before kube-proxy's DNAT: route them on the host's link
  if ! ip route get "${SERVICE_CIDR%/*}" >/dev/null 2>&1; then
    dev=$(ip -o addr show | awk -v a="$HOST_IP" '{split($4, x, "/")} x[1]==a {print $2; exit}')
    [ -z "$dev" ] || ip route replace "$SERVICE_CIDR" dev "$dev" proto 211 2>/dev/null
  fi
  if [ -f $KC ]; then
    # NAME IP PODCIDR(or -) ROLE(control-plane or -), a node a line
    nodes=$(kubectl --kubeconfig $KC --cache-dir /run/sealpack-cni/kube-cache get nodes -o jsonpath='{range .items[*]}{.metadata.name} {.status.addresses[?(@.type=="InternalIP")].address} {.spec.podCIDR}- {.metadata.labels}{"\n"}{end}' 2>/dev/null |
      awk '{c = $3; sub(/-$/, "", c); if (c == "") c = "-"
        print $1, $2, c, (index($0, "\"node-role.kubernetes.io/control-plane\"") ? "control-plane" : "-")}')
    # the API proxy's backends follow the masters: one that joined later is used from then on
    if [ -n "${APISERVERS:-}" ]; then
      want=$(awk -v p="$API_PORT" '$4 == "control-plane" && $2 != "" {print ($2 ~ /:/ ? "[" $2 "]" : $2) ":" p}' <<<"$nodes" | sort -u)
      if [ -n "$want" ] && [ "$want" != "$(cat "$APISERVERS" 2>/dev/null)" ]; then
        echo "$want" > "$APISERVERS.tmp" && mv "$APISERVERS.tmp" "$APISERVERS"
      fi
    fi
    mine=$(awk -v n="$NAME" '$1==n && $3 != "-" {print $3}' <<<"$nodes")
    if [ -n "$mine" ]; then
      want='{"cniVersion":"1.0.0","name":"sealpack","plugins":[{"type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":false,"hairpinMode":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"'$mine'"}]],"routes":[{"dst":"0.0.0.0/0"}]}}]}'
      if [ "$(cat $CONF 2>/dev/null)" != "$want" ]; then mkdir -p /etc/cni/net.d; echo "$want" > $CONF.tmp && mv $CONF.tmp $CONF; fi
      keep=" $SERVICE_CIDR "
      while read -r n ip cidr _; do
        [ "$cidr" = - ] || [ "$n" = "$NAME" ] || [ -z "$ip" ] && continue
        ip route replace "$cidr" via "$ip" proto 211 2>/dev/null && keep="$keep$cidr "
      done <<<"$nodes"
      ip route show proto 211 | awk '{print $1}' | while read -r r; do
        [[ "$keep" == *" $r "* ]] || ip route del "$r" proto 211 2>/dev/null
      done
    fi
  fi
  sleep 5
done
