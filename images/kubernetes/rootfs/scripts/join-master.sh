#!/bin/bash
# join-master.sh (every other master, one at a time): kubeadm join --control-plane
JOIN_ROLE=master
. scripts/join.sh
