package client

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"testing"
)

// codeValues returns the values of the string constants of type Code
// declared in the Go file at path.
func codeValues(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Code" {
				continue
			}
			for _, v := range vs.Values {
				if lit, ok := v.(*ast.BasicLit); ok {
					s, _ := strconv.Unquote(lit.Value)
					out[s] = true
				}
			}
		}
	}
	return out
}

// Every code the relay can send has its constant here, so callers can
// compare with a name instead of a string.
func TestEveryRelayCodeHasAConstant(t *testing.T) {
	relay := codeValues(t, "../protocol/errors.go")
	mine := codeValues(t, "errors.go")
	if len(relay) < 19 {
		t.Fatalf("found %d codes in relay/protocol/errors.go", len(relay))
	}
	for c := range relay {
		if !mine[c] {
			t.Errorf("relay code %q has no client.Code constant", c)
		}
	}
}
