#!/bin/bash
# join-node.sh (every node): kubeadm join
JOIN_ROLE=node
. scripts/join.sh
