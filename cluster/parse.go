package cluster

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sealpack/sealpack/internal/sshsig"
)

// API versions accepted; the first is the one Marshal writes.
var apiVersions = []string{"sealer.io/v2", "sealer.cloud/v2"}

// Load reads an answers file: Parse with the file's name, so messages say
// "cluster.yaml:12: …" and relative passwdFile paths are found beside it.
func Load(path string) (*Cluster, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load answers file: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes the documents of an answers file (one kind: Cluster and any
// number of kind: Plugin), reads secrets from the environment variables and
// files they name, applies defaults and validates.
//
// name is used in messages and, as a path, to find relative passwdFile and
// pkPasswdFile (relative to its directory). All problems are returned
// together, each an *Error with line and path, sorted by line. When the
// text is YAML but has problems, the Cluster read so far is returned with
// the error, so a wizard can open the file for fixing; it is nil only when
// the text is not YAML or has no Cluster document.
func Parse(name string, data []byte) (*Cluster, error) {
	d := &decoder{file: name, dir: filepath.Dir(name), lines: map[string]int{}}
	c := d.documents(data)
	if c == nil {
		return nil, d.sorted()
	}
	c.ApplyDefaults()
	v := &checker{file: name, lines: d.lines, bad: d.bad}
	v.cluster(c)
	d.errs = append(d.errs, v.errs...)
	return c, d.sorted()
}

// decoder walks yaml.Node trees by hand rather than using struct tags, so
// that every problem carries its line and field path, unknown fields are
// caught with a suggestion, and several problems are reported at once.
type decoder struct {
	file  string
	dir   string
	lines map[string]int // field path → line, for the checker's messages
	bad   []string       // paths that failed to decode
	errs  []error
}

func (d *decoder) errorf(n *yaml.Node, p, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Path: p, Msg: fmt.Sprintf(format, args...)})
	d.bad = append(d.bad, p)
}

func (d *decoder) sorted() error {
	slices.SortStableFunc(d.errs, func(a, b error) int {
		var ea, eb *Error
		errors.As(a, &ea)
		errors.As(b, &eb)
		if ea == nil || eb == nil {
			return 0
		}
		return cmp.Compare(ea.Line, eb.Line)
	})
	return errors.Join(d.errs...)
}

func (d *decoder) documents(data []byte) *Cluster {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var c *Cluster
	clusterLine := 0
	var plugins []Plugin
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			d.syntax(err)
			return nil
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := deref(doc.Content[0])
		if isNull(root) {
			continue // an empty document, e.g. a trailing ---
		}
		if root.Kind != yaml.MappingNode {
			d.errorf(root, "", "want a mapping with kind: Cluster or kind: Plugin, got %s", describe(root))
			continue
		}
		switch kind := scalarField(root, "kind"); kind {
		case "Cluster":
			if c != nil {
				d.errorf(root, "", "a second kind: Cluster document (the first is at line %d); want one", clusterLine)
				continue
			}
			clusterLine = root.Line
			c = d.cluster(root)
		case "Plugin":
			plugins = append(plugins, d.plugin(root, fmt.Sprintf("plugins[%d]", len(plugins))))
		case "":
			d.errorf(root, "kind", "missing (want Cluster or Plugin)")
		default:
			d.errorf(root, "kind", "%q is not supported (want Cluster or Plugin)", kind)
		}
	}
	if c == nil {
		if len(d.errs) == 0 {
			d.errorf(nil, "", "no kind: Cluster document")
		}
		return nil
	}
	c.Plugins = plugins
	return c
}

// syntax turns a YAML error ("yaml: line 3: mapping values are not
// allowed in this context") into an *Error with its line.
func (d *decoder) syntax(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, tail, ok := strings.Cut(rest, ": "); ok {
			if l, err := strconv.Atoi(n); err == nil {
				line, msg = l, tail
			}
		}
	}
	// yaml/v3 reports parser (not scanner) errors with a 0-based line, and
	// no line at all for the first one.
	if slices.Contains(yamlParserProblems, msg) {
		line++
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Msg: "not valid YAML: " + msg})
}

// yamlParserProblems are the messages of yaml/v3's parser (parserc.go);
// all others come from its scanner, whose lines are right.
var yamlParserProblems = []string{
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"did not find expected <document start>",
	"did not find expected <stream-start>",
	"did not find expected key",
	"did not find expected node content",
	"found duplicate %TAG directive",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found undefined tag handle",
}

func (d *decoder) apiVersion(v *yaml.Node, p string) {
	if s := d.str(v, p); !slices.Contains(apiVersions, s) {
		d.errorf(deref(v), p, "%q is not supported (want %s)", s, strings.Join(apiVersions, " or "))
	}
}

func (d *decoder) cluster(root *yaml.Node) *Cluster {
	c := &Cluster{}
	d.lines[""] = root.Line
	sawAPI := false
	d.fields(root, "", []string{"apiVersion", "kind", "metadata", "spec"}, func(key string, v *yaml.Node, p string) {
		switch key {
		case "apiVersion":
			sawAPI = true
			d.apiVersion(v, p)
		case "metadata":
			d.fields(v, p, []string{"name"}, func(_ string, v *yaml.Node, p string) { c.Name = d.str(v, p) })
		case "spec":
			d.spec(c, v, p)
		}
	})
	if !sawAPI {
		d.errorf(root, "apiVersion", "missing (want %s)", apiVersions[0])
	}
	return c
}

func (d *decoder) spec(c *Cluster, n *yaml.Node, path string) {
	d.fields(n, path, []string{"image", "hosts", "ssh", "env", "registry", "dataRoot", "requireSignature"}, func(key string, v *yaml.Node, p string) {
		switch key {
		case "image":
			c.Image = d.str(v, p)
		case "hosts":
			d.list(v, p, func(e *yaml.Node, ep string) {
				c.Hosts = append(c.Hosts, d.host(e, ep))
			})
		case "ssh":
			c.SSH = d.ssh(v, p)
		case "env":
			c.Env = d.strList(v, p)
		case "registry":
			d.fields(v, p, []string{"domain", "port", "addr"}, func(key string, v *yaml.Node, p string) {
				switch key {
				case "domain":
					c.Registry.Domain = d.str(v, p)
				case "port":
					c.Registry.Port = d.port(v, p)
				case "addr":
					c.Registry.Addr = d.str(v, p)
				}
			})
		case "dataRoot":
			c.DataRoot = d.str(v, p)
		case "requireSignature":
			c.RequireSignature = d.trustFile(v, p)
		}
	})
}

func (d *decoder) host(n *yaml.Node, path string) Host {
	var h Host
	d.fields(n, path, []string{"ips", "roles", "ssh", "env", "labels", "taints", "hostKey"}, func(key string, v *yaml.Node, p string) {
		switch key {
		case "ips":
			h.IPs = d.strList(v, p)
		case "roles":
			h.Roles = d.strList(v, p)
		case "ssh":
			h.SSH = d.ssh(v, p)
		case "env":
			h.Env = d.strList(v, p)
		case "labels":
			h.Labels = d.strMap(v, p)
		case "taints":
			for i, s := range d.strList(v, p) {
				tp := fmt.Sprintf("%s[%d]", p, i)
				t, ok := splitTaint(s)
				if !ok && !slices.Contains(d.bad, tp) {
					d.errorf(deref(deref(v).Content[i]), tp, "%q: want key=value:Effect or key:Effect", s)
				}
				h.Taints = append(h.Taints, t) // keep indices aligned with the file
			}
		case "hostKey":
			h.HostKey = d.str(v, p)
			if k, err := normalizeHostKey(h.HostKey); err == nil {
				h.HostKey = k
			}
		}
	})
	return h
}

// splitTaint only splits; the checker judges the parts.
func splitTaint(s string) (Taint, bool) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return Taint{}, false
	}
	t := Taint{Key: s[:i], Effect: s[i+1:]}
	if k, v, ok := strings.Cut(t.Key, "="); ok {
		t.Key, t.Value = k, v
	}
	return t, true
}

var sshFields = []string{"user", "passwd", "passwdEnv", "passwdFile", "pk", "pkPasswd", "pkPasswdEnv", "pkPasswdFile", "port"}

func (d *decoder) ssh(n *yaml.Node, path string) SSH {
	var s SSH
	nodes := map[string]*yaml.Node{} // which secret fields were written, for the one-source check
	d.fields(n, path, sshFields, func(key string, v *yaml.Node, p string) {
		nodes[key] = deref(v)
		switch key {
		case "user":
			s.User = d.str(v, p)
		case "passwd":
			s.Password = Secret(d.str(v, p))
		case "passwdEnv":
			s.PasswordEnv = d.str(v, p)
		case "passwdFile":
			s.PasswordFile = d.str(v, p)
		case "pk":
			s.PrivateKey = d.str(v, p)
		case "pkPasswd":
			s.PrivateKeyPassword = Secret(d.str(v, p))
		case "pkPasswdEnv":
			s.PrivateKeyPasswordEnv = d.str(v, p)
		case "pkPasswdFile":
			s.PrivateKeyPasswordFile = d.str(v, p)
		case "port":
			s.Port = d.port(v, p)
		}
	})
	s.Password = d.secret(path, "passwd", s.Password, s.PasswordEnv, s.PasswordFile, nodes)
	s.PrivateKeyPassword = d.secret(path, "pkPasswd", s.PrivateKeyPassword, s.PrivateKeyPasswordEnv, s.PrivateKeyPasswordFile, nodes)
	return s
}

// secret checks that at most one source is given and reads the secret
// from it. Errors name the source field, so the user knows which variable
// or file is missing.
func (d *decoder) secret(path, field string, inline Secret, env, file string, nodes map[string]*yaml.Node) Secret {
	var set []string
	for _, f := range []string{field, field + "Env", field + "File"} {
		if n := nodes[f]; n != nil && !isNull(n) {
			set = append(set, f)
		}
	}
	if len(set) > 1 {
		last := set[len(set)-1]
		d.errorf(nodes[last], path+"."+last, "%s is set too: give only one of %s, %sEnv and %sFile", set[0], field, field, field)
		return inline
	}
	switch {
	case env != "":
		p := path + "." + field + "Env"
		val, ok := os.LookupEnv(env)
		if !ok || val == "" {
			d.errorf(nodes[field+"Env"], p, "environment variable %s is not set", env)
			return ""
		}
		return Secret(val)
	case file != "":
		p := path + "." + field + "File"
		name := file
		if !filepath.IsAbs(name) {
			name = filepath.Join(d.dir, name)
		}
		b, err := os.ReadFile(name)
		if err != nil {
			d.errorf(nodes[field+"File"], p, "read secret: %v", err)
			return ""
		}
		// Files written by editors and echo end in a newline that is not
		// part of the secret.
		val := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if val == "" {
			d.errorf(nodes[field+"File"], p, "%s is empty", name)
		}
		return Secret(val)
	}
	return inline
}

// trustFile reads the path of a file of trusted keys and checks that it
// holds some, so a typo is reported with its line and not at install time.
func (d *decoder) trustFile(v *yaml.Node, p string) string {
	name := d.str(v, p)
	if name == "" {
		return ""
	}
	if !filepath.IsAbs(name) {
		name = filepath.Join(d.dir, name)
	}
	if _, err := sshsig.LoadTrust(name); err != nil {
		d.errorf(v, p, "%v", err)
	}
	return name
}

func (d *decoder) plugin(root *yaml.Node, path string) Plugin {
	var pl Plugin
	d.lines[path] = root.Line
	sawAPI := false
	d.fields(root, path, []string{"apiVersion", "kind", "metadata", "spec"}, func(key string, v *yaml.Node, p string) {
		switch key {
		case "apiVersion":
			sawAPI = true
			d.apiVersion(v, p)
		case "metadata":
			d.fields(v, p, []string{"name"}, func(_ string, v *yaml.Node, p string) { pl.Name = d.str(v, p) })
		case "spec":
			d.fields(v, p, []string{"type", "action", "scope", "data"}, func(key string, v *yaml.Node, p string) {
				switch key {
				case "type":
					pl.Type = d.str(v, p)
				case "action":
					pl.Action = d.str(v, p)
				case "scope":
					pl.Scope = d.str(v, p)
				case "data":
					pl.Data = d.str(v, p)
				}
			})
		}
	})
	if !sawAPI {
		d.errorf(root, path+".apiVersion", "missing (want %s)", apiVersions[0])
	}
	return pl
}

// fields walks a mapping, reporting repeated and unknown keys (with a
// suggestion), and calls set for each known key with its value and path.
func (d *decoder) fields(n *yaml.Node, path string, known []string, set func(key string, v *yaml.Node, p string)) {
	n = deref(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping (fields %s), got %s", strings.Join(known, ", "), describe(n))
		return
	}
	if _, ok := d.lines[path]; !ok {
		d.lines[path] = n.Line
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "want a field name, got %s", describe(k))
			continue
		}
		p := joinPath(path, k.Value)
		if line, dup := seen[k.Value]; dup {
			d.errorf(k, p, "repeated field (first at line %d)", line)
			continue
		}
		seen[k.Value] = k.Line
		if !slices.Contains(known, k.Value) {
			hint, alt := suggest(k.Value, known)
			d.errorf(k, p, "unknown field%s", hint)
			if alt != "" {
				// The misspelt field is the problem; don't also say the
				// intended one is missing.
				d.bad = append(d.bad, joinPath(path, alt))
			}
			continue
		}
		d.lines[p] = k.Line
		set(k.Value, v, p)
	}
}

func (d *decoder) list(n *yaml.Node, path string, each func(e *yaml.Node, p string)) {
	n = deref(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "want a list, got %s", describe(n))
		return
	}
	for i, e := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		d.lines[p] = deref(e).Line
		if e.Kind == yaml.AliasNode {
			d.lines[p] = e.Line // report where the alias is used
		}
		each(e, p)
	}
}

// strList keeps an element for every item, even a bad one, so indices in
// the Cluster match the file's and the checker's paths find their lines.
func (d *decoder) strList(n *yaml.Node, path string) []string {
	var out []string
	d.list(n, path, func(e *yaml.Node, p string) { out = append(out, d.str(e, p)) })
	return out
}

func (d *decoder) strMap(n *yaml.Node, path string) map[string]string {
	n = deref(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping of key: value, got %s", describe(n))
		return nil
	}
	out := map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "want a key, got %s", describe(k))
			continue
		}
		p := fmt.Sprintf("%s[%q]", path, k.Value)
		d.lines[p] = k.Line
		if _, dup := out[k.Value]; dup {
			d.errorf(k, p, "repeated key")
			continue
		}
		out[k.Value] = d.str(v, p)
	}
	if len(out) == 0 {
		return nil // "labels: {}" and no labels are the same Cluster
	}
	return out
}

func (d *decoder) str(n *yaml.Node, p string) string {
	n = deref(n)
	switch {
	case isNull(n):
		return ""
	case n.Kind == yaml.ScalarNode:
		return n.Value
	}
	d.errorf(n, p, "want a string, got %s", describe(n))
	return ""
}

// port accepts a number or, as Sealer writes it, a quoted number.
func (d *decoder) port(n *yaml.Node, p string) int {
	n = deref(n)
	if isNull(n) {
		return 0
	}
	var port int
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!str") {
		d.errorf(n, p, "want a port number 1..65535, got %s", describe(n))
		return 0
	}
	var err error
	if n.Tag == "!!int" {
		err = n.Decode(&port)
	} else {
		port, err = strconv.Atoi(strings.TrimSpace(n.Value))
	}
	if err != nil || port < 1 || port > 65535 {
		d.errorf(n, p, "%q is not a port number (want 1..65535)", n.Value)
		return 0
	}
	return port
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// deref follows an alias to its anchor. The schema has a fixed depth, so
// following aliases cannot recurse without end or blow up.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 16; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func scalarField(m *yaml.Node, key string) string {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := deref(m.Content[i]); k.Kind == yaml.ScalarNode && k.Value == key {
			if v := deref(m.Content[i+1]); v.Kind == yaml.ScalarNode {
				return v.Value
			}
		}
	}
	return ""
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", truncate(n.Value, 30))
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

// suggest offers the known field closest to a misspelt one, returning the
// hint for the message and the suggested field.
func suggest(key string, known []string) (string, string) {
	if alt, ok := fieldAliases[strings.ToLower(key)]; ok && slices.Contains(known, alt) {
		return fmt.Sprintf(" (did you mean %q?)", alt), alt
	}
	if key == "<<" {
		return " (merge keys are not supported)", ""
	}
	best, bestD := "", len(key)/3+1
	if bestD > 3 {
		bestD = 3
	}
	for _, k := range known {
		if dist := levenshtein(strings.ToLower(key), strings.ToLower(k)); dist < bestD || (dist == bestD && best == "") {
			best, bestD = k, dist
		}
	}
	if best == "" {
		return fmt.Sprintf(" (want one of %s)", strings.Join(known, ", ")), ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best), best
}

// fieldAliases maps names people write from other tools (Sealer v1, k0sctl)
// to ours.
var fieldAliases = map[string]string{
	"password":           "passwd",
	"privatekey":         "pk",
	"keypath":            "pk",
	"privatekeypassword": "pkPasswd",
	"ip":                 "ips",
	"address":            "ips",
	"role":               "roles",
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
