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
// than '/'.
func globMatch(p, s string) bool {
	for len(p) > 0 {
		star := strings.IndexByte(p, '*')
		if star < 0 {
			return p == s
		}
		if !strings.HasPrefix(s, p[:star]) {
			return false
		}
		s = s[star:]
		p = p[star+1:]
		// Try every split of s for the star, shortest first.
		for i := 0; ; i++ {
			if globMatch(p, s[i:]) {
				return true
			}
			if i == len(s) || s[i] == '/' {
				return false
			}
		}
	}
	return s == ""
}
