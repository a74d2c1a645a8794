package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// innerEnv marks the copy of the test binary that runs in its own network
// namespace.
const innerEnv = "SEALPACK_NFT_NETNS"

// needsExit is the inner run's exit code for "this machine cannot run it"
// (no nf_tables in the kernel): the outer test skips, or fails under CI.
const needsExit = 3

// TestInOwnNetns runs TestRulesAddedAndRemoved in a network namespace of its
// own (unshare -n), so that it neither sees nor changes this machine's
// rules. It needs root, unshare and nf_tables; without them it skips, or
// fails when CI=true so that a CI run never passes by skipping.
func TestInOwnNetns(t *testing.T) {
	if os.Getenv(innerEnv) != "" {
		return
	}
	missing := func(why string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("sealpack-nft test needs %s (CI=true: not skipped)", why)
		}
		t.Skipf("needs %s", why)
	}
	if os.Geteuid() != 0 {
		missing("root (it creates a network namespace)")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		missing("unshare (util-linux)")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), unshare, "-n", self, "-test.run", "^TestRulesAddedAndRemoved$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), innerEnv+"=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == needsExit:
		missing(strings.TrimSpace(string(out)))
	case err != nil:
		t.Fatalf("in its own network namespace: %v\n%s", err, out)
	case !strings.Contains(string(out), "--- PASS: TestRulesAddedAndRemoved"):
		t.Fatalf("the test in its own network namespace did not run:\n%s", out)
	}
	t.Logf("in its own network namespace:\n%s", out)
}

// TestRulesAddedAndRemoved does, in an empty network namespace, what a host
// goes through: init-host lists its tables (nft.before), masquerade adds
// table ip sealpack, kube-proxy and the CNI plugins add chains to a table
// the host had and tables of their own, and reset-host deletes the KUBE- and
// CNI- chains and every table not in nft.before. The host's own tables,
// chains and rules come out exactly as they were (handles included), and
// everything the install added is gone. Run by TestInOwnNetns only.
func TestRulesAddedAndRemoved(t *testing.T) {
	if os.Getenv(innerEnv) == "" {
		return
	}
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListTables(); err != nil {
		fmt.Printf("nf_tables over netlink: %v\n", err)
		os.Exit(needsExit)
	}
	if tables, _ := c.ListTables(); len(tables) != 0 {
		t.Fatalf("the namespace is not empty: %d tables", len(tables))
	}

	// The host's own rules: a filter table whose input chain accepts ssh,
	// and a table of another family.
	hostFilter := &nftables.Table{Family: nftables.TableFamilyINet, Name: "filter"}
	c.AddTable(hostFilter)
	accept := nftables.ChainPolicyAccept
	input := c.AddChain(&nftables.Chain{Name: "input", Table: hostFilter, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	c.AddRule(&nftables.Rule{Table: hostFilter, Chain: input, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{6}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0, 22}},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}})
	c.AddChain(&nftables.Chain{Name: "mine", Table: hostFilter})
	c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv6, Name: "hostv6"})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	hostRules := ruleset(t, c)
	nftBefore := nftRuleset(t)
	before := capture(t, "list-tables")
	if want := "table inet filter\ntable ip6 hostv6\n"; !sameLines(before, want) {
		t.Errorf("list-tables:\n%s\nwant:\n%s", before, want)
	}

	// init-host/k8s-prep: masquerade, twice (it runs at every start).
	for range 2 {
		if err := run([]string{"masquerade", "--pod-cidr", "10.244.0.0/16"}); err != nil {
			t.Fatal(err)
		}
	}
	masq := ruleset(t, c)
	var added []string
	for _, l := range masq {
		if !slices.Contains(hostRules, l) {
			added = append(added, l)
		}
	}
	want := []string{
		"table ip sealpack",
		"chain ip sealpack postrouting type=nat hook=4 prio=100 policy=1", // the kernel reports accept (1) for a chain made without a policy
		"rule ip sealpack postrouting: " + exprString([]expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 255, 0, 0}, Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{10, 244, 0, 0}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 255, 0, 0}, Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{10, 244, 0, 0}},
			&expr.Masq{},
		}),
	}
	if !reflect.DeepEqual(added, want) {
		t.Errorf("masquerade (run twice) added:\n%s\nwant:\n%s", strings.Join(added, "\n"), strings.Join(want, "\n"))
	}
	if len(masq)-len(added) != len(hostRules) {
		t.Errorf("masquerade changed the host's rules:\n%s", strings.Join(masq, "\n"))
	}
	if nft, err := exec.LookPath("nft"); err == nil {
		out, err := exec.Command(nft, "list", "table", "ip", "sealpack").CombinedOutput()
		if err != nil {
			t.Fatalf("nft list table ip sealpack: %v\n%s", err, out)
		}
		for _, w := range []string{"type nat hook postrouting priority srcnat", "ip saddr 10.244.0.0/16 ip daddr != 10.244.0.0/16 masquerade"} {
			if !strings.Contains(string(out), w) {
				t.Errorf("nft list table ip sealpack:\n%s\nwant a line with %q", out, w)
			}
		}
	}

	// kube-proxy (iptables, nf_tables backend) and the CNI plugins: chains
	// in the host's table with a rule of the host's chain jumping to one,
	// and tables of their own.
	kubeSvc := c.AddChain(&nftables.Chain{Name: "KUBE-SERVICES", Table: hostFilter})
	c.AddRule(&nftables.Rule{Table: hostFilter, Chain: kubeSvc, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictReturn}}})
	c.AddChain(&nftables.Chain{Name: "CNI-FORWARD", Table: hostFilter})
	c.AddRule(&nftables.Rule{Table: hostFilter, Chain: input, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: "KUBE-SERVICES"}}})
	nat := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: "nat"}
	c.AddTable(nat)
	c.AddChain(&nftables.Chain{Name: "KUBE-POSTROUTING", Table: nat})
	c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "kube-proxy"})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}

	// reset-host.sh.
	if err := run([]string{"delete-chains", "KUBE-", "CNI-"}); err != nil {
		t.Fatal(err)
	}
	now := capture(t, "list-tables")
	for _, l := range strings.Split(strings.TrimSpace(now), "\n") {
		if !strings.Contains(before, l+"\n") {
			f := strings.Fields(l)
			if err := run([]string{"delete-table", f[1], f[2]}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if after := ruleset(t, c); !reflect.DeepEqual(after, hostRules) {
		t.Errorf("after the cleanup:\n%s\nwant the host's rules as they were:\n%s", strings.Join(after, "\n"), strings.Join(hostRules, "\n"))
	}
	if nftAfter := nftRuleset(t); nftAfter != nftBefore {
		t.Errorf("nft list ruleset after the cleanup:\n%s\nbefore:\n%s", nftAfter, nftBefore)
	}

	// Deleting what is already gone is not an error (reset runs again).
	for _, args := range [][]string{{"delete-table", "ip", "sealpack"}, {"delete-chains", "KUBE-"}} {
		if err := run(args); err != nil {
			t.Errorf("%v a second time: %v", args, err)
		}
	}
}

// ruleset is every table, chain and rule of the namespace, a line each, in
// the kernel's order, rules with their handles.
func ruleset(t *testing.T, c *nftables.Conn) []string {
	t.Helper()
	tables, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	chains, err := c.ListChains()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tb := range tables {
		out = append(out, fmt.Sprintf("table %s %s", familyName(tb.Family), tb.Name))
		for _, ch := range chains {
			if ch.Table.Name != tb.Name || ch.Table.Family != tb.Family {
				continue
			}
			line := fmt.Sprintf("chain %s %s %s", familyName(tb.Family), tb.Name, ch.Name)
			if ch.Hooknum != nil {
				policy := "<nil>"
				if ch.Policy != nil {
					policy = fmt.Sprint(*ch.Policy)
				}
				line += fmt.Sprintf(" type=%s hook=%d prio=%d policy=%s", ch.Type, *ch.Hooknum, *ch.Priority, policy)
			}
			out = append(out, line)
			rules, err := c.GetRules(tb, ch)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rules {
				out = append(out, fmt.Sprintf("rule %s %s %s #%d: %s", familyName(tb.Family), tb.Name, ch.Name, r.Handle, exprString(r.Exprs)))
			}
		}
	}
	// Rules of the masquerade table are compared without their handle:
	// the table is replaced at each run, so its handles grow.
	for i, l := range out {
		if strings.HasPrefix(l, "rule ip "+masqTable+" ") {
			out[i] = l[:strings.Index(l, " #")] + l[strings.Index(l, ":"):]
		}
	}
	return out
}

func exprString(es []expr.Any) string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = fmt.Sprintf("%T%+v", e, reflect.ValueOf(e).Elem().Interface())
	}
	return strings.Join(s, " ")
}

// nftRuleset is `nft list ruleset` when nft is installed, "" otherwise.
func nftRuleset(t *testing.T) string {
	t.Helper()
	nft, err := exec.LookPath("nft")
	if err != nil {
		return ""
	}
	out, err := exec.Command(nft, "list", "ruleset").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list ruleset: %v\n%s", err, out)
	}
	return string(out)
}

// capture runs a command of sealpack-nft and returns what it printed.
func capture(t *testing.T, args ...string) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	runErr := run(args)
	os.Stdout = stdout
	w.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	r.Close()
	if runErr != nil {
		t.Fatalf("%v: %v", args, runErr)
	}
	return b.String()
}

func sameLines(a, b string) bool {
	x, y := strings.Split(strings.TrimSpace(a), "\n"), strings.Split(strings.TrimSpace(b), "\n")
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}
