# lib.sh: shell functions the kubernetes build scripts share (sourced, not run).

# k8s_images KUBEADM VERSION: the container images a cluster of Kubernetes VERSION runs, one a line,
# as registry.k8s.io names without the host (kube-apiserver:v1.37.2, etcd:3.7.0-0,
# coredns/coredns:v1.14.6, pause:3.10.2): kubeadm's own list, so etcd, CoreDNS and pause are the
# versions that kubeadm release deploys and checks for, never another release's.
k8s_images() {
  local list
  list=$("$1" config images list --kubernetes-version "$2" --image-repository registry.k8s.io) ||
    { echo "$1 config images list --kubernetes-version $2 failed" >&2; return 1; }
  local i; for i in $list; do echo "${i#registry.k8s.io/}"; done
}

# k8s_image_tag IMAGES REPO: the tag of REPO (etcd, coredns/coredns, pause) in k8s_images' list
k8s_image_tag() {
  local i; for i in $1; do [ "${i%:*}" = "$2" ] && { echo "${i##*:}"; return; }; done
  echo "no $2 image in kubeadm's list: $1" >&2; return 1
}
