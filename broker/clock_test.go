package broker

import (
	"context"
	"encoding/base64"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestExpiryFromIDTokenOnConfigNow: an answer with no expires_in but an
// id_token whose exp is absolute gets its lifetime on Config.Now, not on
// the wall clock.
func TestExpiryFromIDTokenOnConfigNow(t *testing.T) {
	ep := newFakeEndpoint(t)
	b, clock, _ := newTestBroker(t, ep, nil)
	exp := clock.Now().Add(time.Hour)
	seg := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	idToken := seg(`{"alg":"RS256","typ":"JWT"}`) + "." + seg(fmt.Sprintf(`{"exp":%d}`, exp.Unix())) + "." + seg("sig")
	ep.override(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"ya29.idtoken","token_type":"Bearer","id_token":%q}`, idToken)
	})
	tok, err := b.Token(context.Background(), "", bot)
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	if !tok.Expiry.Equal(exp) {
		t.Errorf("Expiry = %v, want %v (the id_token's exp, an hour after the fake clock's now)", tok.Expiry, exp)
	}
}

// TestTimeOnlyThroughConfig keeps every time read of the package on
// Config.Now and every wait on Config.After: the only mentions of the
// time package's clock in its code are New's defaults for the two.
func TestTimeOnlyThroughConfig(t *testing.T) {
	clockFuncs := map[string]bool{
		"Now": true, "Since": true, "Until": true, "After": true, "AfterFunc": true,
		"Sleep": true, "Tick": true, "NewTimer": true, "NewTicker": true,
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		allowed := map[ast.Expr]bool{}
		ast.Inspect(f, func(n ast.Node) bool {
			// b.now = time.Now and b.after = time.After: the defaults.
			if as, ok := n.(*ast.AssignStmt); ok && len(as.Lhs) == 1 && len(as.Rhs) == 1 {
				lhs, ok1 := as.Lhs[0].(*ast.SelectorExpr)
				rhs, ok2 := as.Rhs[0].(*ast.SelectorExpr)
				if ok1 && ok2 && isPkg(rhs.X, "time") &&
					(lhs.Sel.Name == "now" && rhs.Sel.Name == "Now" || lhs.Sel.Name == "after" && rhs.Sel.Name == "After") {
					allowed[rhs] = true
				}
			}
			return true
		})
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if ok && isPkg(sel.X, "time") && clockFuncs[sel.Sel.Name] && !allowed[sel] {
				t.Errorf("%s: time.%s reads the wall clock: use b.now (Config.Now) or b.after (Config.After)", fset.Position(sel.Pos()), sel.Sel.Name)
			}
			return true
		})
	}
	if checked == 0 {
		t.Fatal("no Go files checked")
	}
}

func isPkg(x ast.Expr, name string) bool {
	id, ok := x.(*ast.Ident)
	return ok && id.Name == name
}
