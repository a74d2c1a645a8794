package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const workerKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA5KXYl/QWUWYq/2j4RmQXFe85W54xaYYU2NCJn9nEtR"

func testdata(name string) string { return filepath.Join("..", "testdata", "cluster", name) }

func ips(nodes []Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.IP)
	}
	return out
}

func TestLoadValid(t *testing.T) {
	tests := []struct {
		file  string
		check func(t *testing.T, c *Cluster)
	}{
		{"one-master.yaml", func(t *testing.T, c *Cluster) {
			m := c.Master0()
			if m.IP != "192.168.10.2" || !m.IsMaster() || m.Addr() != "192.168.10.2:22" {
				t.Errorf("master0 = %+v", m)
			}
			if m.SSH.User != "root" || m.SSH.Port != 22 || m.SSH.Password.Reveal() != "s3cret-one" || m.SSH.PrivateKey != "" {
				t.Errorf("ssh = %#v / %q", m.SSH, m.SSH.Password.Reveal())
			}
			if c.Registry != (Registry{Domain: "sea.hub", Port: 5000}) || c.DataRoot != "/var/lib/sealpack" {
				t.Errorf("defaults: registry %+v dataRoot %q", c.Registry, c.DataRoot)
			}
			if len(c.Nodes()) != 0 || len(c.All()) != 1 {
				t.Errorf("nodes %v all %v", ips(c.Nodes()), ips(c.All()))
			}
		}},
		{"ha.yaml", func(t *testing.T, c *Cluster) {
			if got := ips(c.Masters()); !slices.Equal(got, []string{"10.0.0.11", "10.0.0.12", "10.0.0.13"}) {
				t.Errorf("masters %v", got)
			}
			nodes := c.Nodes()
			if got := ips(nodes); !slices.Equal(got, []string{"10.0.0.21", "fd00::22"}) {
				t.Fatalf("nodes %v", got)
			}
			w := nodes[1]
			want := SSH{User: "ubuntu", Password: "123456", PrivateKey: "/home/ops/.ssh/worker_ed25519", Port: 2222}
			if w.SSH != want {
				t.Errorf("worker ssh = %#v, want %#v", w.SSH, want)
			}
			if w.Addr() != "[fd00::22]:2222" {
				t.Errorf("addr %s", w.Addr())
			}
			wantEnv := []string{"HTTP_PROXY=http://proxy.example:3128", "NODE_ONLY=yes", "TZ=Europe/Berlin"}
			if !slices.Equal(w.Env, wantEnv) {
				t.Errorf("worker env %q, want %q", w.Env, wantEnv)
			}
			if m := c.Master0(); !slices.Equal(m.Env, []string{"HTTP_PROXY=", "TZ=Europe/Berlin"}) || m.SSH.Port != 22 || m.SSH.User != "root" {
				t.Errorf("master0 env %q ssh %+v", m.Env, m.SSH)
			}
			if w.HostKey != workerKey {
				t.Errorf("host key %q (comment should be dropped)", w.HostKey)
			}
			if w.Labels["topology.kubernetes.io/zone"] != "eu1-b" || w.Taints[0] != (Taint{"dedicated", "gpu", "NoExecute"}) {
				t.Errorf("labels %v taints %v", w.Labels, w.Taints)
			}
			if got := c.Masters()[2].Taints; len(got) != 1 || got[0].String() != "node-role.kubernetes.io/control-plane:NoSchedule" {
				t.Errorf("master taints %v", got)
			}
			if c.Registry != (Registry{Domain: "hub.example.internal", Port: 5443, Addr: "10.0.0.5"}) || c.DataRoot != "/data/sealpack" {
				t.Errorf("registry %+v dataRoot %q", c.Registry, c.DataRoot)
			}
			// Nodes are copies: changing one must not change the cluster.
			w.Labels["disk"] = "hdd"
			if c.Hosts[1].Labels["disk"] != "ssd" {
				t.Error("Node shares its labels map with the Cluster")
			}
		}},
		{"plugins.yaml", func(t *testing.T, c *Cluster) {
			if len(c.Plugins) != 2 || c.Plugins[0].Name != "timezone" || c.Plugins[1].Name != "label-gpu" {
				t.Fatalf("plugins %+v", c.Plugins)
			}
			p := c.Plugins[1]
			if p.Action != ActionPostInstall || p.Data != "kubectl label node --all gpu=none --overwrite\necho done\n" {
				t.Errorf("plugin %+v", p)
			}
			if !c.Plugins[0].Applies([]string{RoleNode}) || p.Applies([]string{RoleNode}) || !p.Applies([]string{RoleMaster, RoleNode}) {
				t.Error("Applies is wrong")
			}
			// master+node is a schedulable master: a master, not a worker.
			if len(c.Masters()) != 1 || len(c.Nodes()) != 0 {
				t.Errorf("masters %v nodes %v", ips(c.Masters()), ips(c.Nodes()))
			}
		}},
		{"sealer-cloud.yaml", func(t *testing.T, c *Cluster) {
			if c.Name != "legacy" || c.Master0().IP != "192.168.0.2" || len(c.Nodes()) != 2 {
				t.Errorf("cluster %+v", c)
			}
			if c.Nodes()[0].SSH.PrivateKey != "/root/.ssh/id_rsa" {
				t.Errorf("inherited pk: %+v", c.Nodes()[0].SSH)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c, err := Load(testdata(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate after Load: %v", err)
			}
			tt.check(t, c)
		})
	}
}

// base is a valid file that the error cases edit. Line numbers matter:
// the cases assert them.
const base = `apiVersion: sealer.io/v2
kind: Cluster
metadata:
  name: test
spec:
  hosts:
    - ips: [10.0.0.1, 10.0.0.2]
      roles: [master]
    - ips: [10.0.0.3]
      roles: [node]
  ssh:
    passwd: pw
`

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		from string // replaced in base by to; or, when to is empty and from contains "kind:", the whole file
		to   string
		want []string // each joined error, exactly
	}{
		{"unknown role", "roles: [node]", "roles: [worker]",
			[]string{`x.yaml:10: spec.hosts[1].roles[0]: unknown role "worker" (want master or node)`}},
		{"did you mean", "      roles: [node]", "      role: [node]",
			// and not also "no roles": the typo explains it
			[]string{`x.yaml:10: spec.hosts[1].role: unknown field (did you mean "roles"?)`}},
		{"unknown field with no close match", "  ssh:\n", "  sshKeys: 1\n  ssh:\n",
			[]string{`x.yaml:11: spec.sshKeys: unknown field (want one of image, hosts, ssh, env, registry, dataRoot, requireSignature)`}},
		{"password alias", "    passwd: pw", "    password: pw",
			[]string{`x.yaml:12: spec.ssh.password: unknown field (did you mean "passwd"?)`}},
		{"no master", "roles: [master]", "roles: [node]",
			[]string{`x.yaml:6: spec.hosts: no host has the master role (want at least one)`}},
		{"duplicate ip", "ips: [10.0.0.3]", "ips: [10.0.0.2]",
			[]string{`x.yaml:9: spec.hosts[1].ips[0]: IP 10.0.0.2 is listed twice: also at spec.hosts[0].ips[1] (line 7)`}},
		{"invalid ip", "ips: [10.0.0.3]", "ips: [10.0.0.300]",
			[]string{`x.yaml:9: spec.hosts[1].ips[0]: "10.0.0.300" is not an IP address (host names are not supported)`}},
		{"ip with port", "ips: [10.0.0.3]", "ips: [\"10.0.0.3:22\"]",
			[]string{`x.yaml:9: spec.hosts[1].ips[0]: "10.0.0.3:22" has a port: write the IP alone and the port in ssh.port`}},
		{"no ips", "    - ips: [10.0.0.3]\n", "    - ips: []\n",
			[]string{`x.yaml:9: spec.hosts[1].ips: no IPs (want at least one)`}},
		{"port range", "    passwd: pw", "    passwd: pw\n    port: 70000",
			[]string{`x.yaml:13: spec.ssh.port: "70000" is not a port number (want 1..65535)`}},
		{"port type", "    passwd: pw", "    passwd: pw\n    port: [22]",
			[]string{`x.yaml:13: spec.ssh.port: want a port number 1..65535, got a list`}},
		{"env without =", "  ssh:", "  env: [A=1, JUSTKEY]\n  ssh:",
			[]string{`x.yaml:11: spec.env[1]: "JUSTKEY": want KEY=value`}},
		{"env twice", "  ssh:", "  env:\n    - A=1\n    - A=2\n  ssh:",
			[]string{`x.yaml:13: spec.env[1]: A is set twice: also at spec.env[0] (line 12)`}},
		{"bad taint effect", "      roles: [node]", "      roles: [node]\n      taints: [a=b:NoScheduel]",
			[]string{`x.yaml:11: spec.hosts[1].taints[0]: taint "a=b:NoScheduel": unknown effect "NoScheduel" (want NoSchedule, PreferNoSchedule or NoExecute)`}},
		{"taint without effect", "      roles: [node]", "      roles: [node]\n      taints:\n        - dedicated",
			[]string{`x.yaml:12: spec.hosts[1].taints[0]: "dedicated": want key=value:Effect or key:Effect`}},
		{"bad label", "      roles: [node]", "      roles: [node]\n      labels: {\"-x\": y}",
			[]string{`x.yaml:11: spec.hosts[1].labels["-x"]: key: "-x": want at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`}},
		{"bad host key", "      roles: [node]", "      roles: [node]\n      hostKey: ssh-ed25519 nope",
			[]string{`x.yaml:11: spec.hosts[1].hostKey: host key "ssh-ed25519 nope": want an authorized_keys line such as "ssh-ed25519 AAAA…" or a SHA256:… fingerprint`}},
		{"two password sources", "    passwd: pw", "    passwd: pw\n    passwdEnv: X",
			[]string{`x.yaml:13: spec.ssh.passwdEnv: passwd is set too: give only one of passwd, passwdEnv and passwdFile`}},
		{"env var missing", "    passwd: pw", "    passwdEnv: SEALPACK_TEST_SURELY_UNSET",
			[]string{`x.yaml:12: spec.ssh.passwdEnv: environment variable SEALPACK_TEST_SURELY_UNSET is not set`}},
		{"host secret file missing", "      roles: [node]", "      roles: [node]\n      ssh:\n        pkPasswdFile: /nonexistent/pass",
			[]string{`x.yaml:12: spec.hosts[1].ssh.pkPasswdFile: read secret: open /nonexistent/pass: no such file or directory`}},
		{"relative dataRoot", "  ssh:", "  dataRoot: var/lib/x\n  ssh:",
			[]string{`x.yaml:11: spec.dataRoot: "var/lib/x": want an absolute, clean path below / such as /var/lib/sealpack`}},
		{"unclean dataRoot", "  ssh:", "  dataRoot: /var/lib/../x/\n  ssh:",
			[]string{`x.yaml:11: spec.dataRoot: "/var/lib/../x/": want an absolute, clean path below / such as /var/lib/sealpack`}},
		{"registry", "  ssh:", "  registry:\n    domain: bad_name\n    port: 0\n    addr: nowhere\n  ssh:",
			[]string{`x.yaml:12: spec.registry.domain: "bad_name" is not a host name`,
				`x.yaml:13: spec.registry.port: "0" is not a port number (want 1..65535)`,
				`x.yaml:14: spec.registry.addr: "nowhere" is not an IP address (host names are not supported)`}},
		{"requireSignature missing", "  ssh:", "  requireSignature: /nonexistent/k.allowed_signers\n  ssh:",
			[]string{`x.yaml:11: spec.requireSignature: read trusted keys: open /nonexistent/k.allowed_signers: no such file or directory`}},
		{"requireSignature without keys", "  ssh:", "  requireSignature: /dev/null\n  ssh:",
			[]string{`x.yaml:11: spec.requireSignature: /dev/null: no keys (want an allowed_signers file or a public key)`}},
		{"api version", "sealer.io/v2", "sealer.io/v1",
			[]string{`x.yaml:1: apiVersion: "sealer.io/v1" is not supported (want sealer.io/v2 or sealer.cloud/v2)`}},
		{"missing api version", "apiVersion: sealer.io/v2\n", "\n",
			[]string{`x.yaml:2: apiVersion: missing (want sealer.io/v2)`}},
		{"missing name", "  name: test\n", "  name:\n",
			[]string{`x.yaml:4: metadata.name: missing (the cluster needs a name)`}},
		{"hosts not a list", "  hosts:\n", "  hosts: {}\n  old:\n",
			[]string{`x.yaml:6: spec.hosts: want a list, got a mapping`,
				`x.yaml:7: spec.old: unknown field (want one of image, hosts, ssh, env, registry, dataRoot, requireSignature)`}},
		{"repeated field", "  ssh:", "  dataRoot: /a\n  dataRoot: /b\n  ssh:",
			[]string{`x.yaml:12: spec.dataRoot: repeated field (first at line 11)`}},
		{"syntax", "  ssh:\n", "  ssh: [\n",
			[]string{`x.yaml:11: not valid YAML: did not find expected ',' or ']'`}},
		{"syntax scanner", "  ssh:\n", "  ssh:\n\tuser: x\n",
			[]string{`x.yaml:12: not valid YAML: found character that cannot start any token`}},
		{"syntax first line", "apiVersion: sealer.io/v2", "- apiVersion: sealer.io/v2",
			[]string{`x.yaml:2: not valid YAML: did not find expected '-' indicator`}},
		{"unsupported kind", "kind: Cluster", "kind: Config",
			[]string{`x.yaml:1: kind: "Config" is not supported (want Cluster or Plugin)`,
				`x.yaml: no kind: Cluster document`}[:1]},
		{"second cluster", "", base + "---\n" + base,
			[]string{`x.yaml:14: a second kind: Cluster document (the first is at line 1); want one`}},
		{"plugin errors", "", base + `---
apiVersion: sealer.io/v2
kind: Plugin
metadata:
  name: p
spec:
  type: GO
  action: after-install
  scope: worker
  data: ""
`,
			[]string{
				`x.yaml:19: plugins[0].spec.type: "GO" is not supported (want SHELL)`,
				`x.yaml:20: plugins[0].spec.action: unknown action "after-install" (want pre-init-host, post-init-host, pre-install, post-install)`,
				`x.yaml:21: plugins[0].spec.scope: "worker": want master, node or master|node`,
				`x.yaml:22: plugins[0].spec.data: empty script`,
			}},
		{"placeholder", "10.0.0.3", "<worker-ip>",
			[]string{`x.yaml:9: spec.hosts[1].ips[0]: "<worker-ip>": replace the placeholder with the host's IP address`}},
		{"many at once", "", `apiVersion: sealer.io/v2
kind: Cluster
metadata: {name: Bad Name}
spec:
  hosts:
    - ips: [10.0.0.1]
      roles: [node, node]
`,
			[]string{
				`x.yaml:3: metadata.name: "Bad Name": want lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 63 characters`,
				`x.yaml:5: spec.hosts: no host has the master role (want at least one)`,
				`x.yaml:7: spec.hosts[0].roles[1]: role "node" is listed twice`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.to
			if tt.from != "" {
				if !strings.Contains(base, tt.from) {
					t.Fatalf("%q not in base", tt.from)
				}
				src = strings.Replace(base, tt.from, tt.to, 1)
			}
			_, err := Parse("x.yaml", []byte(src))
			if err == nil {
				t.Fatalf("no error for\n%s", src)
			}
			var got []string
			for _, e := range unjoin(err) {
				var ce *Error
				if !errors.As(e, &ce) {
					t.Errorf("%v is not a *cluster.Error", e)
				}
				got = append(got, e.Error())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n  %s\nwant:\n  %s\nfile:\n%s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "), src)
			}
		})
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestErrorFields(t *testing.T) {
	_, err := Parse("c.yaml", []byte(strings.Replace(base, "roles: [node]", "roles: [worker]", 1)))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%v: not an *Error", err)
	}
	if e.File != "c.yaml" || e.Line != 10 || e.Path != "spec.hosts[1].roles[0]" || !strings.Contains(e.Msg, "worker") {
		t.Errorf("%#v", e)
	}
}

func TestSecretsFromEnvAndFile(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SEALPACK_TEST_PW", "from-env")
	if err := os.WriteFile(filepath.Join(dir, "pk-pass"), []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := strings.Replace(base, "    passwd: pw\n", "    passwdEnv: SEALPACK_TEST_PW\n    pk: /k\n    pkPasswdFile: pk-pass\n", 1)
	src = strings.Replace(src, "      roles: [node]\n", "      roles: [node]\n      ssh: {passwd: own}\n", 1)
	path := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path) // pkPasswdFile is relative to the answers file, not the working directory
	if err != nil {
		t.Fatal(err)
	}
	m := c.Master0().SSH
	if m.Password.Reveal() != "from-env" || m.PrivateKeyPassword.Reveal() != "from-file" {
		t.Errorf("master secrets %q %q", m.Password.Reveal(), m.PrivateKeyPassword.Reveal())
	}
	// The host's own inline password replaces the env source as a whole.
	n := c.Nodes()[0].SSH
	if n.Password.Reveal() != "own" || n.PasswordEnv != "" || n.PrivateKeyPassword.Reveal() != "from-file" {
		t.Errorf("node ssh %#v", n)
	}
	out, err := c.Marshal(MarshalOptions{IncludeSecrets: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"passwdEnv: SEALPACK_TEST_PW", "pkPasswdFile: pk-pass", "passwd: own"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if bytes.Contains(out, []byte("from-env")) || bytes.Contains(out, []byte("from-file")) {
		t.Errorf("secrets from sources written as values:\n%s", out)
	}
	out, _ = c.Marshal(MarshalOptions{})
	if bytes.Contains(out, []byte("own")) || !bytes.Contains(out, []byte("# passwd not saved")) {
		t.Errorf("inline secret without IncludeSecrets:\n%s", out)
	}

	t.Setenv("SEALPACK_TEST_PW", "")
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "spec.ssh.passwdEnv: environment variable SEALPACK_TEST_PW is not set") {
		t.Errorf("empty env var: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	files, _ := filepath.Glob(testdata("*.yaml"))
	if len(files) < 4 {
		t.Fatalf("testdata: %v", files)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			out, err := c.Marshal(MarshalOptions{IncludeSecrets: true})
			if err != nil {
				t.Fatal(err)
			}
			again, err := Parse("out.yaml", out)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !reflect.DeepEqual(c, again) {
				t.Errorf("round trip differs:\n%#v\n%#v\n%s", c, again, out)
			}
			out2, _ := again.Marshal(MarshalOptions{IncludeSecrets: true})
			if !bytes.Equal(out, out2) {
				t.Errorf("not deterministic:\n%s\n---\n%s", out, out2)
			}
			// Without secrets the file still parses and differs only in them.
			out, _ = c.Marshal(MarshalOptions{})
			noSecrets, err := Parse("out.yaml", out)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			want := *c
			want.Hosts = slices.Clone(c.Hosts)
			want.SSH.Password, want.SSH.PrivateKeyPassword = "", ""
			for i := range want.Hosts {
				want.Hosts[i].SSH.Password, want.Hosts[i].SSH.PrivateKeyPassword = "", ""
			}
			if !reflect.DeepEqual(&want, noSecrets) {
				t.Errorf("without secrets:\n%#v\n%#v", &want, noSecrets)
			}
		})
	}
}

func TestMarshalReadable(t *testing.T) {
	c, err := Load(testdata("ha.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Marshal(MarshalOptions{IncludeSecrets: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"    - ips: [10.0.0.11, 10.0.0.12, 10.0.0.13]\n      roles: [master]\n",
		"      labels:\n        disk: ssd\n        topology.kubernetes.io/zone: eu1-b\n",
		`passwd: "123456"`, // quoted, or it would read back as a number
		"      hostKey: " + workerKey + "\n",
	} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	p, _ := Load(testdata("plugins.yaml"))
	out, _ = p.Marshal(MarshalOptions{})
	if !bytes.Contains(out, []byte("---\napiVersion: sealer.io/v2\nkind: Plugin\n")) || !bytes.Contains(out, []byte("  data: |\n    timedatectl")) {
		t.Errorf("plugin output:\n%s", out)
	}
}

func TestTemplate(t *testing.T) {
	tmpl := string(Template())
	if _, err := Parse("answers.yaml", []byte(tmpl)); err == nil || !strings.Contains(err.Error(), "replace the placeholder") {
		t.Errorf("unfilled template: %v", err)
	}
	filled := strings.NewReplacer(
		"<master-ip-1>", "10.1.0.1", "<master-ip-2>", "10.1.0.2", "<master-ip-3>", "10.1.0.3",
		"<worker-ip-1>", "10.1.0.11", "<worker-ip-2>", "10.1.0.12").Replace(tmpl)
	if strings.Contains(filled, "-ip-") {
		t.Fatalf("placeholder left:\n%s", filled)
	}
	c, err := Parse("answers.yaml", []byte(filled))
	if err != nil {
		t.Fatal(err)
	}
	if c.Master0().IP != "10.1.0.1" || len(c.Nodes()) != 2 {
		t.Errorf("%+v", c)
	}
	// The commented plugin example must work once uncommented.
	i := strings.Index(filled, "# ---\n")
	plugin := filled[:i] + strings.ReplaceAll(filled[i:], "# ", "")
	c, err = Parse("answers.yaml", []byte(plugin))
	if err != nil {
		t.Fatalf("%v\n%s", err, plugin)
	}
	if len(c.Plugins) != 1 || c.Plugins[0].Name != "set-timezone" {
		t.Errorf("plugins %+v", c.Plugins)
	}
}

func TestNoSecretInOutput(t *testing.T) {
	c := &Cluster{
		Name:  "x",
		SSH:   SSH{Password: "hunter2-spec", PrivateKeyPassword: "hunter2-pk"},
		Hosts: []Host{{IPs: []string{"10.0.0.1"}, Roles: []string{RoleMaster}, SSH: SSH{Password: "hunter2-host"}}},
	}
	var log bytes.Buffer
	slog.New(slog.NewTextHandler(&log, nil)).Info("cluster", "ssh", c.SSH, "pw", c.SSH.Password, "node", c.Master0())
	js, _ := json.Marshal(c)
	outs := []string{log.String(), string(js)}
	for _, v := range []any{c, *c, c.SSH, c.Hosts, c.Master0(), c.All(), c.SSH.Password} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
			outs = append(outs, fmt.Sprintf(verb, v))
		}
		outs = append(outs, fmt.Sprint(v), fmt.Sprintln(v))
	}
	for _, out := range outs {
		if strings.Contains(out, "hunter2") || strings.Contains(out, fmt.Sprintf("%x", "hunter2")) {
			t.Errorf("secret in output: %s", out)
		}
	}
	if !strings.Contains(fmt.Sprintf("%+v", c.SSH), "Password:***") {
		t.Errorf("a set secret should show as ***: %+v", c.SSH)
	}
}

func TestSetHostKey(t *testing.T) {
	c, err := Parse("x.yaml", []byte(strings.Replace(base, "ips: [10.0.0.1, 10.0.0.2]", "ips: [10.0.0.1, 10.0.0.2, 10.0.0.4]", 1)))
	if err != nil {
		t.Fatal(err)
	}
	before := ips(c.All())
	if err := c.SetHostKey("10.0.0.2", workerKey+" root@m2\n"); err != nil {
		t.Fatal(err)
	}
	if got := ips(c.All()); !slices.Equal(got, before) || c.Master0().IP != "10.0.0.1" {
		t.Errorf("order changed: %v -> %v", before, got)
	}
	if len(c.Hosts) != 4 || c.Hosts[1].HostKey != workerKey || c.Hosts[0].HostKey != "" || c.Hosts[2].HostKey != "" {
		t.Errorf("hosts %+v", c.Hosts)
	}
	if err := c.SetHostKey("10.0.0.3", "SHA256:pMjGsrWK7MSTY0AOUk+FyKQ2IKTKkF46g5moInr+RkA"); err != nil {
		t.Fatal(err)
	}
	if c.Hosts[3].HostKey != "SHA256:pMjGsrWK7MSTY0AOUk+FyKQ2IKTKkF46g5moInr+RkA" {
		t.Errorf("fingerprint: %+v", c.Hosts[3])
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	out, _ := c.Marshal(MarshalOptions{IncludeSecrets: true})
	again, err := Parse("x.yaml", out)
	if err != nil || !reflect.DeepEqual(c, again) {
		t.Errorf("round trip after SetHostKey: %v\n%s", err, out)
	}
	if err := c.SetHostKey("10.9.9.9", workerKey); err == nil {
		t.Error("unknown IP accepted")
	}
	if err := c.SetHostKey("10.0.0.1", "not a key"); err == nil {
		t.Error("bad key accepted")
	}
}

func TestValidateInMemory(t *testing.T) {
	// A cluster built by the wizard: defaults not applied yet, no lines.
	c := &Cluster{Name: "new", Hosts: []Host{{IPs: []string{"10.0.0.1"}, Roles: []string{RoleMaster}}}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if n := c.Master0(); n.SSH.User != DefaultSSHUser || n.SSH.Port != DefaultSSHPort {
		t.Errorf("effective defaults missing: %+v", n.SSH)
	}
	c.Hosts[0].Roles = []string{"boss"}
	c.Hosts[0].SSH.PasswordEnv, c.Hosts[0].SSH.PasswordFile = "A", "/f"
	err := c.Validate()
	var got []string
	for _, e := range unjoin(err) {
		got = append(got, e.Error())
	}
	want := []string{
		`spec.hosts[0].roles[0]: unknown role "boss" (want master or node)`,
		`spec.hosts[0].ssh.passwdFile: passwdEnv is set too: set only one source for passwd`,
		`spec.hosts: no host has the master role (want at least one)`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestParseTaint(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Taint
		ok   bool
	}{
		{"k=v:NoSchedule", Taint{"k", "v", "NoSchedule"}, true},
		{"example.com/k:NoExecute", Taint{"example.com/k", "", "NoExecute"}, true},
		{"k=:PreferNoSchedule", Taint{"k", "", "PreferNoSchedule"}, true},
		{"k=v", Taint{}, false},
		{"k=v:Never", Taint{}, false},
		{":NoSchedule", Taint{}, false},
	} {
		got, err := ParseTaint(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseTaint(%q) = %+v, %v", tt.in, got, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(testdata("*.yaml"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(base))
	f.Add(Template())
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			for _, e := range unjoin(err) {
				var ce *Error
				if !errors.As(e, &ce) {
					t.Fatalf("error %q is not a *cluster.Error", e)
				}
			}
			if c != nil {
				_ = c.Validate() // a partial Cluster must be safe to use
				_, _ = c.Marshal(MarshalOptions{})
			}
			return
		}
		_ = c.All()
		out, err := c.Marshal(MarshalOptions{IncludeSecrets: true})
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse("fuzz.yaml", out)
		if err != nil {
			t.Fatalf("valid input marshals to invalid output: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(c, again) {
			t.Fatalf("round trip differs:\n%#v\n%#v", c, again)
		}
	})
}

// TestRequireSignatureRelative: a relative requireSignature is found beside
// the answers file, wherever the installer runs from, and written back.
func TestRequireSignatureRelative(t *testing.T) {
	dir := t.TempDir()
	keys := "release@example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
	if err := os.WriteFile(filepath.Join(dir, "release.allowed_signers"), []byte(keys), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "cluster.yaml")
	src := strings.Replace(base, "  ssh:", "  requireSignature: release.allowed_signers\n  ssh:", 1)
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "release.allowed_signers"); c.RequireSignature != want {
		t.Errorf("RequireSignature %q, want %q", c.RequireSignature, want)
	}
	out, err := c.Marshal(MarshalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "requireSignature: "+c.RequireSignature) {
		t.Errorf("not written back:\n%s", out)
	}
}

// Values that end up in shell text, file names on the hosts or the
// registry's systemd unit accept only characters that cannot change what
// runs; the error names the field.
func TestUnsafeValuesRefused(t *testing.T) {
	cases := []struct {
		name string
		edit func(c *Cluster)
		path string // the field named, "" when valid
	}{
		{"plain data root", func(c *Cluster) { c.DataRoot = "/opt/sealpack-1.2_x" }, ""},
		{"data root with a space", func(c *Cluster) { c.DataRoot = "/var/lib/my data" }, "spec.dataRoot"},
		{"data root with a quote", func(c *Cluster) { c.DataRoot = "/var/lib/it's" }, "spec.dataRoot"},
		{"data root with $", func(c *Cluster) { c.DataRoot = "/var/lib/$(reboot)" }, "spec.dataRoot"},
		{"data root with a systemd specifier", func(c *Cluster) { c.DataRoot = "/var/lib/%n" }, "spec.dataRoot"},
		{"data root with a newline", func(c *Cluster) { c.DataRoot = "/var/lib/x\nExecStartPre=/bin/true" }, "spec.dataRoot"},
		{"data root with a backslash", func(c *Cluster) { c.DataRoot = `/var/lib/a\b` }, "spec.dataRoot"},
		{"data root with ..", func(c *Cluster) { c.DataRoot = "/var/lib/../etc" }, "spec.dataRoot"},
		{"data root /", func(c *Cluster) { c.DataRoot = "/" }, "spec.dataRoot"},
		{"plain plugin name", func(c *Cluster) { c.Plugins[0].Name = "set-timezone_2.x" }, ""},
		{"plugin name with a path", func(c *Cluster) { c.Plugins[0].Name = "../../../etc/cron.d/x" }, "plugins[0].metadata.name"},
		{"plugin name with a space", func(c *Cluster) { c.Plugins[0].Name = "my plugin" }, "plugins[0].metadata.name"},
		{"plugin name with a quote", func(c *Cluster) { c.Plugins[0].Name = "it's" }, "plugins[0].metadata.name"},
		{"plugin name starting with -", func(c *Cluster) { c.Plugins[0].Name = "-rf" }, "plugins[0].metadata.name"},
		{"registry domain with shell text", func(c *Cluster) { c.Registry.Domain = "hub;reboot" }, "spec.registry.domain"},
		{"registry domain with a space", func(c *Cluster) { c.Registry.Domain = "hub example" }, "spec.registry.domain"},
		{"cluster name with a slash", func(c *Cluster) { c.Name = "a/b" }, "metadata.name"},
		{"env name with shell text", func(c *Cluster) { c.Env = []string{"A;reboot=1"} }, "spec.env[0]"},
		{"host env name with shell text", func(c *Cluster) { c.Hosts[0].Env = []string{"$(id)=1"} }, "spec.hosts[0].env[0]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &Cluster{
				Name:    "safe",
				Hosts:   []Host{{IPs: []string{"10.0.0.1"}, Roles: []string{RoleMaster}}},
				Plugins: []Plugin{{Name: "p", Type: "SHELL", Action: ActionPreInstall, Data: "true"}},
			}
			tc.edit(c)
			err := c.Validate()
			if tc.path == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			errs := unjoin(err)
			var e *Error
			if len(errs) != 1 || !errors.As(errs[0], &e) || e.Path != tc.path {
				t.Fatalf("errors %v, want one at %s", err, tc.path)
			}
		})
	}
}
