package auth

import (
	"fmt"
	"strings"
)

// Origins is an allowlist of browser origins. An entry is an exact origin
// ("https://app.example.com") or a pattern where '*' stands for any run of
// characters other than '/' ("https://*.example.com", "http://localhost:*").
// The single entry "*" allows every origin. Comparison ignores case.
type Origins struct {
	patterns []string
	any      bool
}

// NewOrigins validates and returns an allowlist.
func NewOrigins(entries []string) (*Origins, error) {
	o := &Origins{}
	for _, e := range entries {
		e = strings.ToLower(strings.TrimSpace(e))
		if e == "" {
			continue
		}
		if e == "*" {
			o.any = true
			continue
		}
		if !strings.Contains(e, "://") {
			return nil, fmt.Errorf("%q is not an origin: want scheme://host[:port], e.g. https://app.example.com", e)
		}
		o.patterns = append(o.patterns, strings.TrimSuffix(e, "/"))
	}
	return o, nil
}

// Allowed reports whether origin may connect.
func (o *Origins) Allowed(origin string) bool {
	if o.any {
		return true
	}
	origin = strings.ToLower(origin)
	for _, p := range o.patterns {
		if globMatch(p, origin) {
			return true
		}
	}
	return false
}

// globMatch matches s against p where '*' matches any run of bytes other
// than '/'. It runs p as a set of states over s (state k: p[:k] matched), so
// it takes len(s)·len(p) steps whatever the pattern: a pattern with several
// stars used to backtrack, quadratic in the Origin header.
func globMatch(p, s string) bool {
	if !strings.Contains(p, "*") {
		return p == s
	}
	// States 0..len(p): on the stack up to a 63-byte pattern.
	var small [2][64]bool
	var cur, next []bool
	if len(p) < len(small[0]) {
		cur, next = small[0][:len(p)+1], small[1][:len(p)+1]
	} else {
		cur, next = make([]bool, len(p)+1), make([]bool, len(p)+1)
	}
	cur[0] = true
	closeStars(p, cur)
	for i := 0; i < len(s); i++ {
		c := s[i]
		clear(next)
		alive := false
		for k, on := range cur[:len(p)] {
			if !on {
				continue
			}
			switch {
			case p[k] == '*':
				if c != '/' {
					next[k], alive = true, true
				}
			case p[k] == c:
				next[k+1], alive = true, true
			}
		}
		if !alive {
			return false
		}
		closeStars(p, next)
		cur, next = next, cur
	}
	return cur[len(p)]
}

// closeStars adds the states reached by letting stars match nothing.
func closeStars(p string, states []bool) {
	for k := 0; k < len(p); k++ {
		if states[k] && p[k] == '*' {
			states[k+1] = true
		}
	}
}
