// Package auth decides who is an authority (by address or static token),
// which address a request really comes from (trusted proxies), and which
// browser origins may connect.
package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/netip"
	"strings"
)

// Rule is one authority entry: an address range or a static token, valid for
// every protocol or only for the listed ones.
type rule struct {
	protocols map[string]struct{} // nil: every protocol
}

func (r rule) allows(protocol string) bool {
	if r.protocols == nil {
		return true
	}
	_, ok := r.protocols[protocol]
	return ok
}

// parseEntry splits "VALUE" or "VALUE#proto1|proto2".
func parseEntry(entry string) (value string, r rule, err error) {
	value, protos, restricted := strings.Cut(strings.TrimSpace(entry), "#")
	value = strings.TrimSpace(value)
	if !restricted {
		return value, rule{}, nil
	}
	r.protocols = map[string]struct{}{}
	for p := range strings.SplitSeq(protos, "|") {
		p = strings.TrimSpace(p)
		if p == "" {
			return "", rule{}, fmt.Errorf("%q: empty protocol name after '#'", entry)
		}
		r.protocols[p] = struct{}{}
	}
	return value, r, nil
}

type ipRule struct {
	rule
	prefix netip.Prefix
}

type tokenRule struct {
	rule
	sum [sha256.Size]byte
}

// Authorities holds the permanent authorities: address ranges and static
// tokens. It is read-only after construction and safe for concurrent use.
type Authorities struct {
	ips    []ipRule
	tokens []tokenRule
}

// NoAddrs is the address list that turns address authority off
// (RELAY_AUTHORITY_IPS=none).
const NoAddrs = "none"

// NewAuthorities parses address entries ("127.0.0.1", "10.0.0.0/8",
// "::1#chat|jobs") and token entries ("s3cret", "s3cret#chat"). An entry
// without "#" applies to every protocol. The address list "none" (NoAddrs)
// alone means no address is an authority.
func NewAuthorities(ips, tokens []string) (*Authorities, error) {
	a := &Authorities{}
	off := false
	for _, e := range ips {
		if strings.TrimSpace(e) == "" {
			continue
		}
		if strings.EqualFold(strings.TrimSpace(e), NoAddrs) {
			off = true
			continue
		}
		v, r, err := parseEntry(e)
		if err != nil {
			return nil, err
		}
		p, err := ParsePrefix(v)
		if err != nil {
			return nil, err
		}
		a.ips = append(a.ips, ipRule{rule: r, prefix: p})
	}
	if off && len(a.ips) > 0 {
		return nil, fmt.Errorf("%q turns address authority off and cannot be listed with addresses", NoAddrs)
	}
	for _, e := range tokens {
		if strings.TrimSpace(e) == "" {
			continue
		}
		v, r, err := parseEntry(e)
		if err != nil {
			return nil, fmt.Errorf("token entry: %w", redact(err))
		}
		if v == "" {
			return nil, fmt.Errorf("token entry: empty token")
		}
		a.tokens = append(a.tokens, tokenRule{rule: r, sum: sha256.Sum256([]byte(v))})
	}
	return a, nil
}

// redact drops the entry text from a token parse error so no secret reaches
// a log.
func redact(err error) error {
	if _, after, ok := strings.Cut(err.Error(), ": "); ok {
		return fmt.Errorf("%s", after)
	}
	return err
}

// ParsePrefix parses an address ("10.1.2.3", "::1") as a single-address
// prefix, or a CIDR range ("10.0.0.0/8"). IPv4-mapped IPv6 addresses are
// unmapped so either form matches.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR range", s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR range", s)
	}
	addr = addr.Unmap()
	return netip.PrefixFrom(addr, addr.BitLen()), nil
}

// ByAddr reports whether client is an authority for protocol by its
// address. An unknown address never is, and neither is a loopback address
// a proxy forwarded: loopback is an authority only as the socket peer
// itself, the one case where the relay sees it rather than being told it.
func (a *Authorities) ByAddr(client Client, protocol string) bool {
	if !client.Known() || client.Forwarded && client.Addr.IsLoopback() {
		return false
	}
	addr := client.Addr.Unmap()
	for _, r := range a.ips {
		if r.prefix.Contains(addr) && r.allows(protocol) {
			return true
		}
	}
	return false
}

// ByAddrAnyProtocol reports whether client is an authority by address for
// at least one protocol: such a connection has proved it is an operator's
// backend. The rules of ByAddr apply: an unknown address, or a forwarded
// loopback one, never is.
func (a *Authorities) ByAddrAnyProtocol(client Client) bool {
	if !client.Known() || client.Forwarded && client.Addr.IsLoopback() {
		return false
	}
	addr := client.Addr.Unmap()
	for _, r := range a.ips {
		if r.prefix.Contains(addr) {
			return true
		}
	}
	return false
}

// ByToken reports whether token is a static authority token for protocol.
// The comparison takes the same time whichever token (if any) matches: it
// compares SHA-256 digests in constant time and visits every entry.
func (a *Authorities) ByToken(token, protocol string) bool {
	if token == "" || len(a.tokens) == 0 {
		return false
	}
	sum := sha256.Sum256([]byte(token))
	found := 0
	for _, r := range a.tokens {
		if subtle.ConstantTimeCompare(sum[:], r.sum[:]) == 1 && r.allows(protocol) {
			found = 1
		}
	}
	return found == 1
}

// Addrs returns the authority address ranges; none when address
// authority is off.
func (a *Authorities) Addrs() []netip.Prefix {
	out := make([]netip.Prefix, len(a.ips))
	for i, r := range a.ips {
		out[i] = r.prefix
	}
	return out
}
