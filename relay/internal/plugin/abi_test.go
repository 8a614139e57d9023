package plugin_test

import (
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"path/filepath"
	"strings"
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

// TestBodyIndexerMatchesSDK checks that the host's body indexer
// (bodyindex.go) is the SDK's (plugin-sdk/body.go) declaration for
// declaration: the index format is part of the ABI, and the two modules
// cannot share a package.
func TestBodyIndexerMatchesSDK(t *testing.T) {
	decls := func(path string) map[string]string {
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, d := range f.Decls {
			var name string
			switch x := d.(type) {
			case *ast.FuncDecl:
				if x.Recv != nil {
					continue
				}
				name = x.Name.Name
			case *ast.GenDecl:
				v, ok := x.Specs[0].(*ast.ValueSpec)
				if len(x.Specs) != 1 || !ok {
					continue
				}
				name = v.Names[0].Name
			}
			var b strings.Builder
			if err := printer.Fprint(&b, fset, d); err != nil {
				t.Fatal(err)
			}
			m[name] = b.String()
		}
		return m
	}
	host := decls("bodyindex.go")
	sdk := decls(filepath.Join(plugintest.RepoRoot(t), "plugin-sdk", "body.go"))
	if len(host) < 7 {
		t.Fatalf("found %d declarations in bodyindex.go", len(host))
	}
	for name, src := range host {
		if name == "errNotObject" {
			continue // each side names itself in its error text
		}
		if sdk[name] != src {
			t.Errorf("%s differs between bodyindex.go and plugin-sdk/body.go:\nhost:\n%s\nsdk:\n%s", name, src, sdk[name])
		}
	}
}
