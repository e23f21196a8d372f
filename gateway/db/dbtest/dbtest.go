// Package dbtest opens real databases for tests: a fresh SQLite file, and
// the PostgreSQL server of the test machine.
package dbtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moongate/moongate/gateway/db"
)

// PostgresDSN is the test server: MOONGATE_TEST_POSTGRES, or a local one
// with trust authentication and a database named test.
func PostgresDSN() string {
	if s := os.Getenv("MOONGATE_TEST_POSTGRES"); s != "" {
		return s
	}
	return "postgres://127.0.0.1:5432/test"
}

// Postgres opens the test server as a database named name, closed when the
// test ends. It skips the test when the server cannot be reached, and fails
// it instead when CI=true.
func Postgres(t testing.TB, name string) db.DB {
	t.Helper()
	return PostgresTimeout(t, name, 0)
}

// PostgresTimeout is Postgres with a statement timeout (0: the default).
func PostgresTimeout(t testing.TB, name string, timeout time.Duration) db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), db.Config{Name: name, Driver: "postgres", DSN: PostgresDSN(), Timeout: timeout})
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err = d.Query(ctx, "SELECT 1")
		cancel()
		if err != nil {
			d.Close()
		}
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL at %s: %v", PostgresDSN(), err)
		}
		t.Skipf("PostgreSQL at %s unreachable, skipping (set CI=true to fail instead): %v", PostgresDSN(), err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// SQLite opens a fresh SQLite file in a temporary folder as a database
// named name, closed when the test ends.
func SQLite(t testing.TB, name string) db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), db.Config{Name: name, Driver: "sqlite", DSN: filepath.Join(t.TempDir(), name+".db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// Table returns a table name unique to this run of t, dropped from d when
// the test ends.
func Table(t testing.TB, d db.DB) string {
	t.Helper()
	name := strings.ToLower(fmt.Sprintf("mg_%s_%d", t.Name(), time.Now().UnixNano()))
	name = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, name)
	t.Cleanup(func() {
		if _, err := d.Exec(context.Background(), "DROP TABLE IF EXISTS "+name); err != nil {
			t.Errorf("dropping %s: %v", name, err)
		}
	})
	return name
}

// Set is a fixed set of open databases by name, for services under test.
type Set map[string]db.DB

// Get returns the database named name.
func (s Set) Get(name string) (db.DB, bool) {
	d, ok := s[name]
	return d, ok
}

// Proxy is a TCP proxy to a database server that a test can take down
// and bring back, to see what a client of the server does when it goes
// away: down, it closes the connections it carries and every new one
// at once.
type Proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// NewProxy starts a proxy to target (host:port) on a free local port,
// stopped when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.SetDown(true)
		p.wg.Wait()
	})
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetDown takes the server away (true) or brings it back (false).
func (p *Proxy) SetDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
	}
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.carry(c)
		}()
	}
}

// carry copies between c and a new connection to the target until either
// ends or the proxy goes down.
func (p *Proxy) carry(c net.Conn) {
	defer c.Close()
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if down {
		return
	}
	s, err := net.DialTimeout("tcp", p.target, 3*time.Second)
	if err != nil {
		return
	}
	defer s.Close()
	if !p.track(c, s) {
		return
	}
	defer p.untrack(c, s)
	done := make(chan struct{}, 2)
	go func() { io.Copy(s, c); done <- struct{}{} }()
	go func() { io.Copy(c, s); done <- struct{}{} }()
	<-done
	c.Close()
	s.Close()
	<-done
}

func (p *Proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		delete(p.conns, c)
	}
}
