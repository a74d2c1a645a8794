// sealpack-nft: the netfilter work a Kubernetes host itself must do, over netlink in pure Go, so
// the host needs neither nft nor iptables (scripts/k8s/build-runtime.sh says which tool went where).
//
//	sealpack-nft list-tables                       every table, as `nft list tables` prints them
//	sealpack-nft delete-table FAMILY NAME          delete one table (absent: nothing to do)
//	sealpack-nft delete-chains PREFIX...           in every ip/ip6/inet table: the chains whose
//	                                               name starts with a PREFIX, and the rules that jump to them
//	sealpack-nft masquerade --pod-cidr CIDR        table ip sealpack: masquerade what pods send
//	                                               outside CIDR (replaced whole, so safe to run again)
package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// the table masquerade owns; reset-host.sh deletes it with every other table the install made
const masqTable = "sealpack"

var families = map[nftables.TableFamily]string{
	nftables.TableFamilyINet: "inet", nftables.TableFamilyIPv4: "ip", nftables.TableFamilyIPv6: "ip6",
	nftables.TableFamilyARP: "arp", nftables.TableFamilyBridge: "bridge", nftables.TableFamilyNetdev: "netdev",
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "sealpack-nft:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: sealpack-nft list-tables | delete-table FAMILY NAME | delete-chains PREFIX... | masquerade --pod-cidr CIDR")
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "list-tables":
		return listTables(c)
	case "delete-table":
		if len(rest) != 2 {
			return errors.New("usage: delete-table FAMILY NAME")
		}
		return deleteTable(c, rest[0], rest[1])
	case "delete-chains":
		if len(rest) == 0 {
			return errors.New("usage: delete-chains PREFIX [PREFIX ...]")
		}
		return deleteChains(c, rest)
	case "masquerade":
		if len(rest) != 2 || rest[0] != "--pod-cidr" {
			return errors.New("usage: masquerade --pod-cidr CIDR")
		}
		_, cidr, err := net.ParseCIDR(rest[1])
		if err != nil || cidr.IP.To4() == nil {
			return fmt.Errorf("--pod-cidr %q: want an IPv4 CIDR such as 10.244.0.0/16", rest[1])
		}
		return masquerade(c, cidr)
	default:
		return fmt.Errorf("unknown command %q", cmd)
	}
}

func listTables(c *nftables.Conn) error {
	ts, err := c.ListTables()
	if err != nil {
		return fmt.Errorf("list tables: %w", err)
	}
	for _, t := range ts {
		fmt.Printf("table %s %s\n", familyName(t.Family), t.Name)
	}
	return nil
}

func familyName(f nftables.TableFamily) string {
	if n, ok := families[f]; ok {
		return n
	}
	return fmt.Sprintf("family-%d", f)
}

func deleteTable(c *nftables.Conn, family, name string) error {
	for f, n := range families {
		if n != family {
			continue
		}
		t, err := c.ListTableOfFamily(name, f)
		if err != nil {
			return nil // absent: already done
		}
		c.DelTable(t)
		if err := c.Flush(); err != nil {
			return fmt.Errorf("delete table %s %s: %w", family, name, err)
		}
		return nil
	}
	return fmt.Errorf("family %q: want one of ip ip6 inet arp bridge netdev", family)
}

// deleteChains removes, in one transaction, the chains named PREFIX* of every ip, ip6 and inet
// table and every rule of another chain that jumps or goes to one of them: what kube-proxy's
// iptables (nf_tables backend) and the CNI plugins add to tables the host already had.
func deleteChains(c *nftables.Conn, prefixes []string) error {
	match := func(name string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(name, p) {
				return true
			}
		}
		return false
	}
	chains, err := c.ListChains()
	if err != nil {
		return fmt.Errorf("list chains: %w", err)
	}
	var doomed []*nftables.Chain
	n := 0
	for _, ch := range chains {
		if f := ch.Table.Family; f != nftables.TableFamilyIPv4 && f != nftables.TableFamilyIPv6 && f != nftables.TableFamilyINet {
			continue
		}
		if match(ch.Name) {
			c.FlushChain(ch)
			doomed = append(doomed, ch)
			continue
		}
		rules, err := c.GetRules(ch.Table, ch)
		if err != nil {
			return fmt.Errorf("rules of %s %s %s: %w", familyName(ch.Table.Family), ch.Table.Name, ch.Name, err)
		}
		for _, r := range rules {
			if jumpsTo(r, match) {
				if err := c.DelRule(r); err != nil {
					return fmt.Errorf("delete a rule of %s %s %s: %w", familyName(ch.Table.Family), ch.Table.Name, ch.Name, err)
				}
				n++
			}
		}
	}
	for _, ch := range doomed {
		c.DelChain(ch)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("delete %d chains and %d rules: %w", len(doomed), n, err)
	}
	return nil
}

func jumpsTo(r *nftables.Rule, match func(string) bool) bool {
	for _, e := range r.Exprs {
		if v, ok := e.(*expr.Verdict); ok && (v.Kind == expr.VerdictJump || v.Kind == expr.VerdictGoto) && match(v.Chain) {
			return true
		}
	}
	return false
}

// masquerade replaces table ip sealpack with one rule: ip saddr CIDR ip daddr != CIDR masquerade
// (pod to pod keeps its addresses; pod to anything else leaves with the node's address).
func masquerade(c *nftables.Conn, cidr *net.IPNet) error {
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: masqTable}
	if _, err := c.ListTableOfFamily(masqTable, nftables.TableFamilyIPv4); err == nil {
		c.DelTable(t)
	}
	c.AddTable(t)
	ch := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	net4, mask := []byte(cidr.IP.To4()), []byte(cidr.Mask)
	addr := func(offset uint32, op expr.CmpOp) []expr.Any { // ip saddr/daddr (masked) op net4
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: op, Register: 1, Data: net4},
		}
	}
	exprs := append(addr(12, expr.CmpOpEq), addr(16, expr.CmpOpNeq)...)
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: append(exprs, &expr.Masq{})})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("table ip %s: %w", masqTable, err)
	}
	return nil
}
