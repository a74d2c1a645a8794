package cluster

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MarshalOptions controls Marshal.
type MarshalOptions struct {
	// IncludeSecrets writes inline passwords and passphrases. Without it
	// they are left out (with a comment saying so). Secrets that came from
	// passwdEnv/passwdFile are always written as that reference, never as
	// the value.
	IncludeSecrets bool
}

// Marshal writes the Cluster as an answers file that Parse reads back to
// an equal Cluster (with IncludeSecrets, or when no secret is inline). The
// output is deterministic: fields in a fixed order, labels sorted.
// Marshal does not validate; the wizard may save work in progress.
func (c *Cluster) Marshal(opts MarshalOptions) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	docs := []*yaml.Node{c.clusterNode(opts)}
	for _, p := range c.Plugins {
		docs = append(docs, pluginNode(p))
	}
	for _, d := range docs {
		if err := enc.Encode(d); err != nil {
			return nil, fmt.Errorf("marshal cluster %q: %w", c.Name, err)
		}
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal cluster %q: %w", c.Name, err)
	}
	return buf.Bytes(), nil
}

// mapping builds a mapping node from key, value pairs, leaving out nil
// values so optional fields are simply omitted.
type mapping struct{ n *yaml.Node }

func newMapping() mapping { return mapping{&yaml.Node{Kind: yaml.MappingNode}} }

func (m mapping) add(key string, v *yaml.Node) *yaml.Node {
	if v == nil {
		return nil
	}
	k := strNode(key)
	m.n.Content = append(m.n.Content, k, v)
	return k
}

func (m mapping) node() *yaml.Node {
	if len(m.n.Content) == 0 {
		return nil
	}
	return m.n
}

// strNode is tagged !!str so the encoder quotes values such as "true" or
// "5000" that would otherwise read back as another type.
func strNode(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

func optStr(s string) *yaml.Node {
	if s == "" {
		return nil
	}
	return strNode(s)
}

func optInt(i int) *yaml.Node {
	if i == 0 {
		return nil
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(i)}
}

// seq writes short lists (IPs, roles) on one line and longer ones as a
// block, which keeps host entries compact and env lists readable.
func seq(items []string, flow bool) *yaml.Node {
	if len(items) == 0 {
		return nil
	}
	n := &yaml.Node{Kind: yaml.SequenceNode}
	if flow {
		n.Style = yaml.FlowStyle
	}
	for _, s := range items {
		n.Content = append(n.Content, strNode(s))
	}
	return n
}

func (c *Cluster) clusterNode(opts MarshalOptions) *yaml.Node {
	root := newMapping()
	root.add("apiVersion", strNode(apiVersions[0]))
	root.add("kind", strNode("Cluster"))
	meta := newMapping()
	meta.add("name", strNode(c.Name))
	root.add("metadata", meta.node())

	spec := newMapping()
	spec.add("image", optStr(c.Image))
	if len(c.Hosts) > 0 {
		hosts := &yaml.Node{Kind: yaml.SequenceNode}
		for _, h := range c.Hosts {
			hosts.Content = append(hosts.Content, hostNode(h, opts))
		}
		spec.add("hosts", hosts)
	}
	addSSH(spec, c.SSH, opts)
	spec.add("env", seq(c.Env, false))
	reg := newMapping()
	reg.add("domain", optStr(c.Registry.Domain))
	reg.add("port", optInt(c.Registry.Port))
	reg.add("addr", optStr(c.Registry.Addr))
	spec.add("registry", reg.node())
	spec.add("dataRoot", optStr(c.DataRoot))
	spec.add("requireSignature", optStr(c.RequireSignature))
	root.add("spec", spec.node())
	return root.n
}

func hostNode(h Host, opts MarshalOptions) *yaml.Node {
	m := newMapping()
	m.add("ips", seq(h.IPs, true))
	m.add("roles", seq(h.Roles, true))
	addSSH(m, h.SSH, opts)
	m.add("env", seq(h.Env, false))
	if len(h.Labels) > 0 {
		labels := newMapping()
		for _, k := range slices.Sorted(maps.Keys(h.Labels)) {
			labels.add(k, strNode(h.Labels[k]))
		}
		m.add("labels", labels.node())
	}
	taints := make([]string, 0, len(h.Taints))
	for _, t := range h.Taints {
		taints = append(taints, t.String())
	}
	m.add("taints", seq(taints, false))
	m.add("hostKey", optStr(h.HostKey))
	if len(m.n.Content) == 0 {
		return &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
	}
	return m.n
}

func addSSH(parent mapping, s SSH, opts MarshalOptions) {
	m := newMapping()
	m.add("user", optStr(s.User))
	left := addSecret(m, "passwd", s.Password, s.PasswordEnv, s.PasswordFile, opts)
	m.add("pk", optStr(s.PrivateKey))
	left = append(left, addSecret(m, "pkPasswd", s.PrivateKeyPassword, s.PrivateKeyPasswordEnv, s.PrivateKeyPasswordFile, opts)...)
	m.add("port", optInt(s.Port))
	if m.node() == nil && len(left) == 0 {
		return
	}
	if m.node() == nil {
		m.n.Style = yaml.FlowStyle // "ssh: {}" keeps the comment's anchor
	}
	k := parent.add("ssh", m.n)
	for _, f := range left {
		k.LineComment += fmt.Sprintf("%s not saved: set %sEnv or %sFile. ", f, f, f)
	}
	k.LineComment = strings.TrimSpace(k.LineComment)
}

// addSecret writes the source of a secret, or the secret itself when
// asked; it returns the field name when an inline secret was left out.
func addSecret(m mapping, field string, val Secret, env, file string, opts MarshalOptions) []string {
	switch {
	case env != "":
		m.add(field+"Env", strNode(env))
	case file != "":
		m.add(field+"File", strNode(file))
	case val == "":
	case opts.IncludeSecrets:
		m.add(field, strNode(val.Reveal()))
	default:
		return []string{field}
	}
	return nil
}

func pluginNode(p Plugin) *yaml.Node {
	root := newMapping()
	root.add("apiVersion", strNode(apiVersions[0]))
	root.add("kind", strNode("Plugin"))
	meta := newMapping()
	meta.add("name", strNode(p.Name))
	root.add("metadata", meta.node())
	spec := newMapping()
	spec.add("type", optStr(p.Type))
	spec.add("action", optStr(p.Action))
	spec.add("scope", optStr(p.Scope))
	if p.Data != "" {
		data := strNode(p.Data)
		data.Style = yaml.LiteralStyle // scripts stay readable; the encoder falls back to quoting when it must
		spec.add("data", data)
	}
	root.add("spec", spec.node())
	return root.n
}
