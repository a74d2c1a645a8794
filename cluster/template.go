package cluster

// template is the starting answers file. It is a constant, not built with
// Marshal, because its value is in the comments. TestTemplate keeps it
// parseable.
const template = `# sealpack answers file: what "installer.run --answers FILE" installs.
# Replace every <...> with an IP address, check the SSH settings, then run
#   ./installer.run --answers cluster.yaml
apiVersion: sealer.io/v2
kind: Cluster
metadata:
  name: my-cluster            # lower-case letters, digits, '-' and '.'
spec:
  # image: registry.example/kubernetes:v1.30.0   # default: the image in this installer
  hosts:
    # One entry per group of hosts sharing settings. The first master
    # listed initialises the cluster.
    - ips: [<master-ip-1>, <master-ip-2>, <master-ip-3>]
      roles: [master]         # master, node, or [master, node] to also run workloads
    - ips: [<worker-ip-1>, <worker-ip-2>]
      roles: [node]
      # Settings for these hosts only. They override spec.ssh field by
      # field and spec.env by key:
      # ssh:
      #   user: ubuntu
      #   port: 2222
      # env: [HTTP_PROXY=http://proxy.example:3128]
      # labels:
      #   disk: ssd
      # taints: [dedicated=gpu:NoSchedule]
      # hostKey: ssh-ed25519 AAAA...   # pinned host key; the wizard writes it when you accept one
  ssh:
    user: root
    port: 22
    # How to log in. With none of these the installer tries ~/.ssh/id_*
    # and ssh-agent. Give each secret at most one way:
    # passwd: ...                    # in this file; prefer one of the next two
    # passwdEnv: SSH_PASSWORD        # read from this environment variable
    # passwdFile: ssh-password.txt   # read from this file (relative to this one)
    # pk: /root/.ssh/id_ed25519
    # pkPasswdEnv: SSH_KEY_PASSPHRASE
  # env:                          # KEY=value given to the install scripts on every host
  #   - TZ=UTC
  registry:
    domain: sea.hub             # the name hosts use for the embedded registry
    port: 5000
    # addr: 192.0.2.10          # the IP that name resolves to; default: the first master
  dataRoot: /var/lib/sealpack   # where the installer keeps its files on every host (letters, digits, . _ - /)
  # requireSignature: release.allowed_signers   # refuse an installer not signed by one of these keys
# A plugin runs a shell script at one point of the install
# (pre-init-host, post-init-host, pre-install, post-install) on the hosts
# of its scope (master, node or master|node; default: all). To add one,
# remove the leading "# " from these lines:
# ---
# apiVersion: sealer.io/v2
# kind: Plugin
# metadata:
#   name: set-timezone
# spec:
#   type: SHELL
#   action: pre-init-host
#   scope: master|node
#   data: |
#     timedatectl set-timezone UTC
`

// Template returns a commented answers file for "installer.run answers
// init". It parses once the <...> placeholders hold IP addresses.
func Template() []byte { return []byte(template) }
