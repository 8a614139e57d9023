package auth

import (
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// TestOriginManyStarsLinear: a pattern with several stars against a 40 KB
// Origin is decided in linear time (backtracking took 2.4 s).
func TestOriginManyStarsLinear(t *testing.T) {
	o, err := NewOrigins([]string{"https://*.*.example.com", "http://*-*-*:*"})
	if err != nil {
		t.Fatal(err)
	}
	origin := "https://" + strings.Repeat("a.", 20000) + "x"
	start := time.Now()
	if o.Allowed(origin) {
		t.Fatal("allowed")
	}
	if d := time.Since(start); d > time.Second { // 2.4 s when it backtracked; ~5 ms now (~140 ms under -race)
		t.Fatalf("matching a %d-byte origin took %v", len(origin), d)
	}
	if !o.Allowed("https://a.b.example.com") || !o.Allowed("http://a-b-c:80") || o.Allowed("https://a.example.com") {
		t.Fatal("multi-star patterns match wrongly")
	}
}

// globRegexp is the meaning of a pattern, spelled as a regular expression
// (Go's regexp runs in linear time too): the oracle for the fuzz target.
func globRegexp(p string) *regexp.Regexp {
	parts := strings.Split(p, "*")
	for i := range parts {
		parts[i] = regexp.QuoteMeta(parts[i])
	}
	return regexp.MustCompile(`^(?s:` + strings.Join(parts, `[^/]*`) + `)$`)
}

// FuzzOriginMatch checks origin patterns against their regular-expression
// meaning. Seeds: testdata/fuzz/FuzzOriginMatch.
func FuzzOriginMatch(f *testing.F) {
	f.Add("https://*.example.com", "https://a.example.com")
	f.Add("http://localhost:*", "http://localhost:8080")
	f.Add("https://*.*.example.com", "https://a.b/c.example.com")
	f.Add("*", "")
	f.Add("a**b", "ab")
	f.Fuzz(func(t *testing.T, pattern, origin string) {
		// The oracle reads runes: keep to UTF-8 (bytes are compared alike).
		if len(pattern) > 256 || len(origin) > 4096 || !utf8.ValidString(pattern) || !utf8.ValidString(origin) {
			return
		}
		if got, want := globMatch(pattern, origin), globRegexp(pattern).MatchString(origin); got != want {
			t.Fatalf("globMatch(%q, %q) = %v, want %v", pattern, origin, got, want)
		}
	})
}
