package plugin_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"testing"

	"github.com/relay-project/relay/relay/internal/plugin/plugintest"
)

// TestABIConstantsMatchSDK checks that every ABI constant has the same name
// and value on both sides.
func TestABIConstantsMatchSDK(t *testing.T) {
	consts := func(path string) map[string]string {
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					m[n.Name] = exprText(vs.Values[i])
				}
			}
		}
		return m
	}
	host := consts("abi.go")
	sdk := consts(filepath.Join(plugintest.RepoRoot(t), "plugin-sdk", "abi.go"))
	if len(host) < 30 || len(host) != len(sdk) {
		t.Fatalf("host has %d constants, sdk %d", len(host), len(sdk))
	}
	for name, v := range host {
		if sdk[name] != v {
			t.Errorf("%s: host %s, sdk %s", name, v, sdk[name])
		}
	}
}

// exprText renders a constant expression as text.
func exprText(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.BasicLit:
		return x.Value
	case *ast.BinaryExpr:
		return exprText(x.X) + x.Op.String() + exprText(x.Y)
	case *ast.Ident:
		return x.Name
	}
	return "?"
}
