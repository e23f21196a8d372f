package db

import "testing"

func TestRebind(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"SELECT 1", "SELECT 1"},
		{"SELECT ?", "SELECT $1"},
		{"INSERT INTO t (a, b) VALUES (?,?)", "INSERT INTO t (a, b) VALUES ($1,$2)"},
		{"SELECT * FROM t WHERE a = ? AND b IN (?, ?)", "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)"},
		// string literals, '' inside
		{"SELECT '?', ?", "SELECT '?', $1"},
		{"SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1"},
		{"SELECT '', ?", "SELECT '', $1"},
		// E'' strings with backslash escapes
		{`SELECT E'\'?', ?`, `SELECT E'\'?', $1`},
		{`SELECT e'a\\', ?`, `SELECT e'a\\', $1`},
		// a backslash in a standard string is an ordinary character
		{`SELECT 'a\', ?`, `SELECT 'a\', $1`},
		// a name ending in e is not an E'' prefix
		{`SELECT name'x\', ?`, `SELECT name'x\', $1`},
		// quoted identifiers
		{`SELECT "what?" FROM t WHERE x = ?`, `SELECT "what?" FROM t WHERE x = $1`},
		{`SELECT "a""?" , ?`, `SELECT "a""?" , $1`},
		// comments
		{"SELECT ? -- why?\n, ?", "SELECT $1 -- why?\n, $2"},
		{"SELECT ? -- why?", "SELECT $1 -- why?"},
		{"SELECT /* ? */ ?", "SELECT /* ? */ $1"},
		{"SELECT /* a /* nested ? */ still ? */ ?", "SELECT /* a /* nested ? */ still ? */ $1"},
		{"SELECT 1 - ?", "SELECT 1 - $1"},
		{"SELECT 4 / ?", "SELECT 4 / $1"},
		// dollar quoting
		{"SELECT $$?$$, ?", "SELECT $$?$$, $1"},
		{"SELECT $fn$ a ? $$ b ? $fn$, ?", "SELECT $fn$ a ? $$ b ? $fn$, $1"},
		{"SELECT $a_1$?$a_1$ || ?", "SELECT $a_1$?$a_1$ || $1"},
		{"SELECT $1, ?", "SELECT $1, $1"},
		{"SELECT a$b$ FROM t WHERE x = ?", "SELECT a$b$ FROM t WHERE x = $1"},
		// unterminated: everything after the opening is left alone
		{"SELECT '?", "SELECT '?"},
		{"SELECT ? /* ?", "SELECT $1 /* ?"},
		{"SELECT $$ ?", "SELECT $$ ?"},
		// many
		{"VALUES (?,?,?,?,?,?,?,?,?,?,?)", "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)"},
		{"SELECT 'é?', ?", "SELECT 'é?', $1"},
	} {
		if got := Rebind(c.in); got != c.want {
			t.Errorf("Rebind(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}
