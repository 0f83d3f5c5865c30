package repo

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Limits that keep every piece of ironlb readable on its own: a file
// reads as one concern, a function as one step.
const (
	maxFileLines = 600
	maxFuncLines = 80
)

// sources lists the repository's Go files that are neither tests nor
// generated, as git tracks them (untracked new files included).
func sources(t *testing.T) []string {
	t.Helper()
	cmd := exec.Command("git", "ls-files", "--cached", "--others", "--exclude-standard", "*.go")
	cmd.Dir = root(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	var files []string
	for _, f := range strings.Fields(string(out)) {
		if strings.HasSuffix(f, "_test.go") || strings.HasPrefix(f[strings.LastIndex(f, "/")+1:], "zz_generated") {
			continue
		}
		files = append(files, f)
	}
	if len(files) < 50 {
		t.Fatalf("only %d Go files found: %v", len(files), files)
	}
	return files
}

// No source file is longer than maxFileLines and no function or function
// literal longer than maxFuncLines, outside tests and generated code.
func TestSourceSizes(t *testing.T) {
	fset := token.NewFileSet()
	for _, f := range sources(t) {
		src, err := os.ReadFile(root(t) + "/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(src), "\n"); n > maxFileLines {
			t.Errorf("%s has %d lines; at most %d: split it along a seam", f, n, maxFileLines)
		}
		file, err := parser.ParseFile(fset, f, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			var body *ast.BlockStmt
			name := "a function literal"
			switch x := n.(type) {
			case *ast.FuncDecl:
				body, name = x.Body, x.Name.Name
			case *ast.FuncLit:
				body = x.Body
			}
			if body == nil {
				return true
			}
			start := fset.Position(n.Pos())
			if lines := fset.Position(body.Rbrace).Line - start.Line + 1; lines > maxFuncLines {
				t.Errorf("%s:%d: %s has %d lines; at most %d: give its steps names", f, start.Line, name, lines, maxFuncLines)
			}
			return true
		})
	}
}
