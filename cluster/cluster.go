// Package cluster is the answers file model: a Sealer-style Clusterfile
// (apiVersion sealer.io/v2, kind Cluster, plus kind Plugin documents) that
// says which hosts to install, how to reach them over SSH and what to run.
//
// Parse and Load turn YAML into a Cluster, reporting every problem with its
// file, line and field path; Validate re-checks a Cluster edited in memory
// (the TUI wizard); Marshal writes it back; Masters, Nodes and All give the
// install engine one Node per IP with its effective settings.
package cluster

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
)

// Defaults applied by ApplyDefaults (and therefore by Parse and Load).
const (
	DefaultSSHUser        = "root"
	DefaultSSHPort        = 22
	DefaultRegistryDomain = "sea.hub" // the name Sealer images expect
	DefaultRegistryPort   = 5000
	DefaultDataRoot       = "/var/lib/sealpack"
)

// Roles a host may have.
const (
	RoleMaster = "master"
	RoleNode   = "node"
)

// Plugin actions, in the order the engine runs them.
const (
	ActionPreInitHost  = "pre-init-host"
	ActionPostInitHost = "post-init-host"
	ActionPreInstall   = "pre-install"
	ActionPostInstall  = "post-install"
)

// Cluster is one answers file.
type Cluster struct {
	Name     string
	Image    string // optional: the cluster image; empty means the one in the bundle
	Hosts    []Host
	SSH      SSH      // cluster-wide SSH settings; Host.SSH overrides them field by field
	Env      []string // K=V for every host; Host.Env overrides by key
	Registry Registry
	DataRoot string
	// RequireSignature is a file of trusted keys (an allowed_signers file or
	// a public key, as gen keygen writes them): the installer refuses to run
	// unless its detached signature is made by one of them. Parse makes a
	// relative path relative to the answers file's folder.
	RequireSignature string
	Plugins          []Plugin // in file order
}

// Host is one entry of spec.hosts: one or more IPs sharing their settings.
type Host struct {
	IPs     []string
	Roles   []string
	SSH     SSH // zero fields inherit from Cluster.SSH
	Env     []string
	Labels  map[string]string
	Taints  []Taint
	HostKey string // pinned host key: "type base64" or "SHA256:..."; empty means known_hosts or trust on first use
}

// SSH says how to log in. Zero fields mean "not set" (inherit, or default).
//
// A password or passphrase may come inline, from an environment variable
// (…Env) or from a file (…File); at most one source per secret. Parse and
// Load fill Password / PrivateKeyPassword from the source and keep the
// source name, so Marshal writes the reference back and not the secret.
type SSH struct {
	User                   string
	Password               Secret
	PasswordEnv            string
	PasswordFile           string
	PrivateKey             string // path of a private key; empty: the engine tries ~/.ssh/id_* and ssh-agent
	PrivateKeyPassword     Secret
	PrivateKeyPasswordEnv  string
	PrivateKeyPasswordFile string
	Port                   int
}

// Registry says where the embedded registry listens and how hosts reach it.
type Registry struct {
	Domain string // name hosts use for the registry (written to /etc/hosts)
	Port   int
	Addr   string // IP the domain resolves to; empty means master0
}

// Plugin is a kind: Plugin document: a shell script run at one point of
// the install on the hosts its scope selects.
type Plugin struct {
	Name   string
	Type   string // only "SHELL"
	Action string // one of the Action… constants
	Scope  string // "master", "node", "master|node"; empty means every host
	Data   string // the script
}

// Taint is a Kubernetes taint: key[=value]:Effect.
type Taint struct {
	Key, Value, Effect string
}

// String gives the form the file uses.
func (t Taint) String() string {
	if t.Value == "" {
		return t.Key + ":" + t.Effect
	}
	return t.Key + "=" + t.Value + ":" + t.Effect
}

var taintEffects = []string{"NoSchedule", "PreferNoSchedule", "NoExecute"}

// ParseTaint parses "key=value:Effect" or "key:Effect".
func ParseTaint(s string) (Taint, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return Taint{}, fmt.Errorf("taint %q: want key=value:Effect or key:Effect", s)
	}
	t := Taint{Key: s[:i], Effect: s[i+1:]}
	if k, v, ok := strings.Cut(t.Key, "="); ok {
		t.Key, t.Value = k, v
	}
	if err := t.check(); err != nil {
		return Taint{}, fmt.Errorf("taint %q: %w", s, err)
	}
	return t, nil
}

func (t Taint) check() error {
	if !slices.Contains(taintEffects, t.Effect) {
		return fmt.Errorf("unknown effect %q (want NoSchedule, PreferNoSchedule or NoExecute)", t.Effect)
	}
	if err := checkLabelKey(t.Key); err != nil {
		return fmt.Errorf("key: %w", err)
	}
	if err := checkLabelValue(t.Value); err != nil {
		return fmt.Errorf("value: %w", err)
	}
	return nil
}

// Applies reports whether the plugin runs on a host with these roles.
func (p Plugin) Applies(roles []string) bool {
	if p.Scope == "" {
		return true
	}
	for s := range strings.SplitSeq(p.Scope, "|") {
		if slices.Contains(roles, strings.TrimSpace(s)) {
			return true
		}
	}
	return false
}

// ApplyDefaults fills unset cluster-wide settings. Host-level settings are
// left empty on purpose: empty there means "inherit".
func (c *Cluster) ApplyDefaults() {
	if c.SSH.User == "" {
		c.SSH.User = DefaultSSHUser
	}
	if c.SSH.Port == 0 {
		c.SSH.Port = DefaultSSHPort
	}
	if c.Registry.Domain == "" {
		c.Registry.Domain = DefaultRegistryDomain
	}
	if c.Registry.Port == 0 {
		c.Registry.Port = DefaultRegistryPort
	}
	if c.DataRoot == "" {
		c.DataRoot = DefaultDataRoot
	}
}

// Node is one machine as the install engine sees it: a single IP with its
// effective settings (host over cluster, defaults filled in). It is a copy:
// changing it does not change the Cluster.
type Node struct {
	IP      string
	Roles   []string
	SSH     SSH      // effective; Password etc. already resolved
	Env     []string // effective K=V, sorted by key, host entries win
	Labels  map[string]string
	Taints  []Taint
	HostKey string
}

// IsMaster reports whether the node runs the control plane.
func (n Node) IsMaster() bool { return slices.Contains(n.Roles, RoleMaster) }

// Addr is the SSH address, host:port (IPv6 in brackets).
func (n Node) Addr() string { return net.JoinHostPort(n.IP, strconv.Itoa(n.SSH.Port)) }

// All returns one Node per IP in file order.
func (c *Cluster) All() []Node {
	var out []Node
	for _, h := range c.Hosts {
		for _, ip := range h.IPs {
			out = append(out, c.node(h, ip))
		}
	}
	return out
}

// Masters returns the control-plane nodes in file order; the first is master0.
func (c *Cluster) Masters() []Node {
	return slices.DeleteFunc(c.All(), func(n Node) bool { return !n.IsMaster() })
}

// Nodes returns the worker nodes (hosts without the master role) in file
// order. A host with roles [master, node] is a master that also runs
// workloads; it is in Masters, not here, so nothing joins it twice.
func (c *Cluster) Nodes() []Node {
	return slices.DeleteFunc(c.All(), Node.IsMaster)
}

// Master0 returns the first master in file order, the one that initialises
// the cluster. It is the zero Node when there is no master, which Validate
// reports.
func (c *Cluster) Master0() Node {
	for _, h := range c.Hosts {
		if slices.Contains(h.Roles, RoleMaster) && len(h.IPs) > 0 {
			return c.node(h, h.IPs[0])
		}
	}
	return Node{}
}

func (c *Cluster) node(h Host, ip string) Node {
	ssh := mergeSSH(c.SSH, h.SSH)
	if ssh.User == "" {
		ssh.User = DefaultSSHUser
	}
	if ssh.Port == 0 {
		ssh.Port = DefaultSSHPort
	}
	return Node{
		IP:      ip,
		Roles:   slices.Clone(h.Roles),
		SSH:     ssh,
		Env:     mergeEnv(c.Env, h.Env),
		Labels:  maps.Clone(h.Labels),
		Taints:  slices.Clone(h.Taints),
		HostKey: h.HostKey,
	}
}

// mergeSSH lays host over base field by field. A secret and its sources go
// together: a host that names its own password source must not inherit an
// inline password from the cluster level.
func mergeSSH(base, host SSH) SSH {
	out := base
	if host.User != "" {
		out.User = host.User
	}
	if host.Port != 0 {
		out.Port = host.Port
	}
	if host.PrivateKey != "" {
		out.PrivateKey = host.PrivateKey
	}
	if host.Password != "" || host.PasswordEnv != "" || host.PasswordFile != "" {
		out.Password, out.PasswordEnv, out.PasswordFile = host.Password, host.PasswordEnv, host.PasswordFile
	}
	if host.PrivateKeyPassword != "" || host.PrivateKeyPasswordEnv != "" || host.PrivateKeyPasswordFile != "" {
		out.PrivateKeyPassword, out.PrivateKeyPasswordEnv, out.PrivateKeyPasswordFile =
			host.PrivateKeyPassword, host.PrivateKeyPasswordEnv, host.PrivateKeyPasswordFile
	}
	return out
}

// mergeEnv merges K=V lists, later lists winning by key, sorted by key so
// the result (and any script environment built from it) is stable.
func mergeEnv(lists ...[]string) []string {
	m := map[string]string{}
	for _, l := range lists {
		for _, kv := range l {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
	}
	if len(m) == 0 {
		return nil
	}
	keys := slices.Sorted(maps.Keys(m))
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+m[k])
	}
	return out
}

// SetHostKey pins the host key of ip, as learnt by trust on first use, so
// the next run verifies it. key is an authorized_keys line ("ssh-ed25519
// AAAA… comment"; the comment is dropped) or a "SHA256:…" fingerprint. When
// ip shares a hosts entry with other IPs, the entry is split so the key
// applies to that IP alone; the IPs keep their file order, so master0 does
// not change.
func (c *Cluster) SetHostKey(ip, key string) error {
	norm, err := normalizeHostKey(key)
	if err != nil {
		return fmt.Errorf("set host key of %s: %w", ip, err)
	}
	want, err := checkIP(ip)
	if err != nil {
		return fmt.Errorf("set host key: %w", err)
	}
	for hi, h := range c.Hosts {
		for ii, s := range h.IPs {
			if a, err := checkIP(s); err != nil || a != want {
				continue
			}
			if len(h.IPs) == 1 {
				c.Hosts[hi].HostKey = norm
				return nil
			}
			var split []Host
			if ii > 0 {
				split = append(split, h.cloneWithIPs(h.IPs[:ii]))
			}
			one := h.cloneWithIPs(h.IPs[ii : ii+1])
			one.HostKey = norm
			split = append(split, one)
			if ii+1 < len(h.IPs) {
				split = append(split, h.cloneWithIPs(h.IPs[ii+1:]))
			}
			c.Hosts = slices.Replace(c.Hosts, hi, hi+1, split...)
			return nil
		}
	}
	return fmt.Errorf("set host key of %s: no such host in the cluster", ip)
}

// cloneWithIPs copies h deeply so split entries share no slices or maps.
func (h Host) cloneWithIPs(ips []string) Host {
	h.IPs = slices.Clone(ips)
	h.Roles = slices.Clone(h.Roles)
	h.Env = slices.Clone(h.Env)
	h.Labels = maps.Clone(h.Labels)
	h.Taints = slices.Clone(h.Taints)
	return h
}
