package tui

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// maxRange bounds one range so a typo such as 10.0.0.1-10.0.200.1 cannot
// add tens of thousands of rows.
const maxRange = 256

// parseIPs reads what the user typed in the Hosts screen: addresses
// separated by commas or spaces, each an IP or a range. A range is either
// 192.168.0.10-20 (the last octet, or the last group for IPv6) or
// 192.168.0.10-192.168.0.20. It returns the addresses in order and the
// first problem found, naming the token, so the screen can show it as the
// user types.
func parseIPs(s string) ([]string, error) {
	var out []string
	for tok := range strings.FieldsFuncSeq(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		ips, err := parseToken(tok)
		if err != nil {
			return out, err
		}
		out = append(out, ips...)
	}
	return out, nil
}

func parseToken(tok string) ([]string, error) {
	from, to, isRange := strings.Cut(tok, "-")
	first, err := netip.ParseAddr(from)
	if err != nil || first.Zone() != "" {
		return nil, fmt.Errorf("%q is not an IP address", from)
	}
	if !isRange {
		return []string{first.String()}, nil
	}
	last, err := rangeEnd(first, to)
	if err != nil {
		return nil, fmt.Errorf("range %q: %w", tok, err)
	}
	if last.Less(first) {
		return nil, fmt.Errorf("range %q ends before it starts", tok)
	}
	var out []string
	for a := first; ; a = a.Next() {
		if len(out) == maxRange {
			return nil, fmt.Errorf("range %q has more than %d addresses", tok, maxRange)
		}
		out = append(out, a.String())
		if a == last {
			return out, nil
		}
	}
}

// rangeEnd reads the end of a range: a whole address of the same family,
// or a number replacing the last octet (decimal) or IPv6 group (hex).
func rangeEnd(first netip.Addr, to string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(to); err == nil {
		if a.Is4() != first.Is4() {
			return netip.Addr{}, fmt.Errorf("mixes IPv4 and IPv6")
		}
		return a, nil
	}
	if first.Is4() {
		n, err := strconv.ParseUint(to, 10, 8)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("%q is not an address or a last octet (0-255)", to)
		}
		b := first.As4()
		b[3] = byte(n)
		return netip.AddrFrom4(b), nil
	}
	n, err := strconv.ParseUint(to, 16, 16)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an address or a last group (0-ffff)", to)
	}
	b := first.As16()
	b[14], b[15] = byte(n>>8), byte(n)
	return netip.AddrFrom16(b), nil
}
