package keel

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"testing"

	"github.com/keel-run/keel/internal/catalog"
)

// TestCodeConstants checks that codes.go has a constant for every catalog
// entry, named Code + the code, and none for a code the catalog lacks.
func TestCodeConstants(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "codes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{} // value → name
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, sp := range g.Specs {
			vs := sp.(*ast.ValueSpec)
			for i, n := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok {
					t.Fatalf("%s is not a string literal", n.Name)
				}
				v, _ := strconv.Unquote(lit.Value)
				consts[v] = n.Name
			}
		}
	}
	for _, e := range catalog.All() {
		name, ok := consts[e.Code]
		if !ok {
			t.Errorf("no constant for catalog code %s: add Code%s to codes.go", e.Code, e.Code)
			continue
		}
		if name != "Code"+e.Code {
			t.Errorf("constant %s for %s; want Code%s", name, e.Code, e.Code)
		}
		delete(consts, e.Code)
	}
	for v, name := range consts {
		t.Errorf("constant %s = %q names no catalog entry", name, v)
	}
	// A spot check that the constants compile to the catalog's values.
	if CodeThrottlingException != catalog.CodeThrottling || CodeCircuitOpen != catalog.CodeCircuitOpen {
		t.Error("constants differ from the catalog's")
	}
}
