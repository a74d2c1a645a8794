package cluster

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Validate checks a Cluster, typically one edited in memory by the wizard.
// It returns every problem joined (errors.Join), each an *Error with the
// field path; Line is 0 because an edited Cluster has no file. Unset
// values that have defaults (ports, user, data root) are accepted.
func (c *Cluster) Validate() error {
	v := &checker{}
	v.cluster(c)
	return v.err()
}

// checker runs the semantic checks shared by Validate and Parse. Parse
// gives it the line of every path it decoded and the paths that already
// failed to decode, so each problem is reported once, at its line.
type checker struct {
	file  string
	lines map[string]int
	bad   []string // paths with decode errors; checks on or under them are skipped
	errs  []error
}

func (v *checker) errorf(p, format string, args ...any) {
	for _, b := range v.bad {
		if related(p, b) {
			return
		}
	}
	v.errs = append(v.errs, &Error{File: v.file, Line: v.line(p), Path: p, Msg: fmt.Sprintf(format, args...)})
}

// related reports whether one path is the other or contains it: a decode
// error at spec.hosts[0].roles[0] explains "no roles" at spec.hosts[0].roles.
func related(a, b string) bool {
	if len(a) > len(b) {
		a, b = b, a
	}
	return a == "" || a == b || strings.HasPrefix(b, a+".") || strings.HasPrefix(b, a+"[")
}

// line finds the line of p or of its nearest ancestor, so a missing field
// is reported at the mapping that should hold it.
func (v *checker) line(p string) int {
	if v.lines == nil {
		return 0
	}
	for {
		if l, ok := v.lines[p]; ok {
			return l
		}
		if p == "" {
			return 0
		}
		p = parentPath(p)
	}
}

func parentPath(p string) string {
	switch {
	case strings.HasSuffix(p, `"]`):
		if i := strings.LastIndex(p, `["`); i >= 0 {
			return p[:i]
		}
	case strings.HasSuffix(p, "]"):
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// where names a path for a message about another place ("already listed
// at spec.hosts[0].ips[1], line 9").
func (v *checker) where(p string) string {
	if l := v.line(p); l > 0 {
		return fmt.Sprintf("%s (line %d)", p, l)
	}
	return p
}

func (v *checker) err() error { return errors.Join(v.errs...) }

var (
	nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
	// safePathRE is what a path written into scripts and unit files may hold.
	safePathRE = regexp.MustCompile(`^/[A-Za-z0-9._/-]+$`)
	// pluginNameRE: a plugin's name is part of the file that records it on
	// each host, so it is one plain path element.
	pluginNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	envKeyRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// Kubernetes label names and values: alphanumerics at both ends.
	labelNameRE = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	dnsLabelRE  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
)

func (v *checker) cluster(c *Cluster) {
	switch {
	case c.Name == "":
		v.errorf("metadata.name", "missing (the cluster needs a name)")
	case len(c.Name) > 63 || !nameRE.MatchString(c.Name):
		v.errorf("metadata.name", "%q: want lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 63 characters", c.Name)
	}
	if strings.ContainsFunc(c.Image, isSpaceOrControl) {
		v.errorf("spec.image", "%q: an image reference has no spaces", c.Image)
	}
	v.ssh("spec.ssh", c.SSH)
	v.env("spec.env", c.Env)
	v.registry("spec.registry", c.Registry)
	if c.DataRoot != "" {
		switch {
		case !path.IsAbs(c.DataRoot) || path.Clean(c.DataRoot) != c.DataRoot || c.DataRoot == "/":
			v.errorf("spec.dataRoot", "%q: want an absolute, clean path below / such as %s", c.DataRoot, DefaultDataRoot)
		case !safePathRE.MatchString(c.DataRoot):
			// It is written into shell scripts and the registry's systemd
			// unit, where spaces, quotes, '$', '%' or a newline would change
			// what runs.
			v.errorf("spec.dataRoot", "%q: want only letters, digits, '.', '_', '-' and '/' (the path goes into scripts and a systemd unit)", c.DataRoot)
		}
	}
	v.hosts(c.Hosts)
	v.plugins(c.Plugins)
}

func (v *checker) hosts(hosts []Host) {
	if len(hosts) == 0 {
		v.errorf("spec.hosts", "no hosts (want at least one master)")
		return
	}
	seen := map[netip.Addr]string{} // IP → path where first listed
	master := false
	for i, h := range hosts {
		p := fmt.Sprintf("spec.hosts[%d]", i)
		if len(h.IPs) == 0 {
			v.errorf(p+".ips", "no IPs (want at least one)")
		}
		for j, ip := range h.IPs {
			ipp := fmt.Sprintf("%s.ips[%d]", p, j)
			a, err := checkIP(ip)
			if err != nil {
				v.errorf(ipp, "%v", err)
				continue
			}
			if first, dup := seen[a]; dup {
				v.errorf(ipp, "IP %s is listed twice: also at %s", ip, v.where(first))
				continue
			}
			seen[a] = ipp
		}
		if len(h.Roles) == 0 {
			v.errorf(p+".roles", "no roles (want master, node or both)")
		}
		for j, r := range h.Roles {
			rp := fmt.Sprintf("%s.roles[%d]", p, j)
			switch {
			case r != RoleMaster && r != RoleNode:
				v.errorf(rp, "unknown role %q (want master or node)", r)
			case slices.Index(h.Roles, r) < j:
				v.errorf(rp, "role %q is listed twice", r)
			}
		}
		master = master || slices.Contains(h.Roles, RoleMaster)
		v.ssh(p+".ssh", h.SSH)
		v.env(p+".env", h.Env)
		for _, k := range slices.Sorted(maps.Keys(h.Labels)) {
			lp := fmt.Sprintf("%s.labels[%q]", p, k)
			if err := checkLabelKey(k); err != nil {
				v.errorf(lp, "key: %v", err)
			}
			if err := checkLabelValue(h.Labels[k]); err != nil {
				v.errorf(lp, "value: %v", err)
			}
		}
		for j, t := range h.Taints {
			if err := t.check(); err != nil {
				v.errorf(fmt.Sprintf("%s.taints[%d]", p, j), "taint %q: %v", t, err)
			}
		}
		if h.HostKey != "" {
			if _, err := normalizeHostKey(h.HostKey); err != nil {
				v.errorf(p+".hostKey", "%v", err)
			}
		}
	}
	if !master {
		v.errorf("spec.hosts", "no host has the master role (want at least one)")
	}
}

// checkIP accepts a plain unicast IPv4 or IPv6 address. Ports and host
// names get their own messages because they are the likely mistakes.
func checkIP(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		if _, perr := netip.ParseAddrPort(s); perr == nil {
			return a, fmt.Errorf("%q has a port: write the IP alone and the port in ssh.port", s)
		}
		if s == "" {
			return a, errors.New("empty IP address")
		}
		if strings.HasPrefix(s, "<") {
			return a, fmt.Errorf("%q: replace the placeholder with the host's IP address", s)
		}
		return a, fmt.Errorf("%q is not an IP address (host names are not supported)", s)
	}
	switch {
	case a.Zone() != "":
		return a, fmt.Errorf("%q: IPv6 zones are not supported", s)
	case a.IsUnspecified(), a.IsMulticast():
		return a, fmt.Errorf("%q is not a host address", s)
	}
	return a.Unmap(), nil
}

func (v *checker) ssh(p string, s SSH) {
	if strings.ContainsFunc(s.User, isSpaceOrControl) {
		v.errorf(p+".user", "%q: a user name has no spaces", s.User)
	}
	if s.Port < 0 || s.Port > 65535 {
		v.errorf(p+".port", "%d is out of range (want 1..65535)", s.Port)
	}
	v.secretSource(p, "passwd", s.PasswordEnv, s.PasswordFile)
	v.secretSource(p, "pkPasswd", s.PrivateKeyPasswordEnv, s.PrivateKeyPasswordFile)
}

func (v *checker) secretSource(p, field, env, file string) {
	if env != "" && file != "" {
		v.errorf(p+"."+field+"File", "%sEnv is set too: set only one source for %s", field, field)
	}
	if env != "" && !envKeyRE.MatchString(env) {
		v.errorf(p+"."+field+"Env", "%q is not an environment variable name", env)
	}
}

func (v *checker) env(p string, env []string) {
	firstAt := map[string]int{}
	for i, kv := range env {
		ep := fmt.Sprintf("%s[%d]", p, i)
		k, _, ok := strings.Cut(kv, "=")
		switch {
		case !ok:
			v.errorf(ep, "%q: want KEY=value", kv)
			continue
		case !envKeyRE.MatchString(k):
			v.errorf(ep, "%q is not a variable name (want letters, digits and _, not starting with a digit)", k)
			continue
		}
		if j, dup := firstAt[k]; dup {
			v.errorf(ep, "%s is set twice: also at %s", k, v.where(fmt.Sprintf("%s[%d]", p, j)))
			continue
		}
		firstAt[k] = i
	}
}

func (v *checker) registry(p string, r Registry) {
	if r.Domain != "" && !isHostname(r.Domain) {
		v.errorf(p+".domain", "%q is not a host name", r.Domain)
	}
	if r.Port < 0 || r.Port > 65535 {
		v.errorf(p+".port", "%d is out of range (want 1..65535)", r.Port)
	}
	if r.Addr != "" {
		if _, err := checkIP(r.Addr); err != nil {
			v.errorf(p+".addr", "%v", err)
		}
	}
}

var pluginActions = []string{ActionPreInitHost, ActionPostInitHost, ActionPreInstall, ActionPostInstall}

func (v *checker) plugins(ps []Plugin) {
	firstAt := map[string]int{}
	for i, pl := range ps {
		p := fmt.Sprintf("plugins[%d]", i)
		if pl.Name == "" {
			v.errorf(p+".metadata.name", "missing (a plugin needs a name)")
		} else if !pluginNameRE.MatchString(pl.Name) {
			v.errorf(p+".metadata.name", "%q: want at most 63 letters, digits, '.', '_' and '-', starting with a letter or digit", pl.Name)
		} else if j, dup := firstAt[pl.Name]; dup {
			v.errorf(p+".metadata.name", "plugin %q is defined twice: also at %s", pl.Name, v.where(fmt.Sprintf("plugins[%d].metadata.name", j)))
		} else {
			firstAt[pl.Name] = i
		}
		if pl.Type != "SHELL" {
			v.errorf(p+".spec.type", "%q is not supported (want SHELL)", pl.Type)
		}
		if !slices.Contains(pluginActions, pl.Action) {
			v.errorf(p+".spec.action", "unknown action %q (want %s)", pl.Action, strings.Join(pluginActions, ", "))
		}
		if pl.Scope != "" {
			var seen []string
			for s := range strings.SplitSeq(pl.Scope, "|") {
				s = strings.TrimSpace(s)
				if (s != RoleMaster && s != RoleNode) || slices.Contains(seen, s) {
					v.errorf(p+".spec.scope", "%q: want master, node or master|node", pl.Scope)
					break
				}
				seen = append(seen, s)
			}
		}
		if strings.TrimSpace(pl.Data) == "" {
			v.errorf(p+".spec.data", "empty script")
		}
	}
}

// checkLabelKey follows Kubernetes: an optional DNS subdomain prefix and
// "/", then a name of at most 63 characters.
func checkLabelKey(k string) error {
	prefix, name, hasPrefix := strings.Cut(k, "/")
	if !hasPrefix {
		name, prefix = prefix, ""
	} else if len(prefix) > 253 || !isHostname(prefix) {
		return fmt.Errorf("prefix %q is not a DNS subdomain", prefix)
	}
	if name == "" {
		return errors.New("empty name")
	}
	if len(name) > 63 || !labelNameRE.MatchString(name) {
		return fmt.Errorf("%q: want at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", name)
	}
	return nil
}

func checkLabelValue(val string) error {
	if val == "" {
		return nil
	}
	if len(val) > 63 || !labelNameRE.MatchString(val) {
		return fmt.Errorf("%q: want at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", val)
	}
	return nil
}

func isHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for l := range strings.SplitSeq(s, ".") {
		if len(l) > 63 || !dnsLabelRE.MatchString(strings.ToLower(l)) {
			return false
		}
	}
	return true
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// normalizeHostKey checks a pinned host key and returns it in the form the
// file keeps: "type base64" without comment, or the fingerprint as
// ssh-keygen -l prints it.
func normalizeHostKey(s string) (string, error) {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "SHA256:"); ok {
		b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(rest, "="))
		if err != nil || len(b) != sha256.Size {
			return "", fmt.Errorf("fingerprint %q: want SHA256: and 43 base64 characters, as ssh-keygen -lf prints", s)
		}
		return "SHA256:" + base64.RawStdEncoding.EncodeToString(b), nil
	}
	pk, _, opts, rest, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return "", fmt.Errorf("host key %q: want an authorized_keys line such as \"ssh-ed25519 AAAA…\" or a SHA256:… fingerprint", truncate(s, 40))
	}
	if len(opts) > 0 || len(bytes.TrimSpace(rest)) > 0 {
		return "", errors.New("host key: want one key with no options")
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk))), nil
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
