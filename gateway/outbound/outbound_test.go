package outbound

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingListener counts the connections a server accepts.
type countingListener struct {
	net.Listener
	accepts atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepts.Add(1)
	}
	return c, err
}

// server is an httptest server over a real loopback socket that counts the
// connections it accepts and the requests each path gets.
type server struct {
	*httptest.Server
	ln   *countingListener
	mu   sync.Mutex
	hits map[string]int
}

func newServer(t *testing.T, tlsServer bool, h http.HandlerFunc) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: &countingListener{Listener: ln}, hits: map[string]int{}}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		s.mu.Unlock()
		h(w, r)
	}))
	s.Listener = s.ln
	if tlsServer {
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s
}

func (s *server) hit(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

// observed records what an Observer is told.
type observed struct {
	mu    sync.Mutex
	calls []call
}

type call struct {
	host string
	err  error
}

func (o *observed) observer() Observer {
	return func(host string, took time.Duration, err error) {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.calls = append(o.calls, call{host, err})
	}
}

func (o *observed) last(t *testing.T, n int) call {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.calls) != n {
		t.Fatalf("observer called %d times, want %d", len(o.calls), n)
	}
	return o.calls[n-1]
}

func host(s *server) string {
	return strings.TrimPrefix(strings.TrimPrefix(s.URL, "http://"), "https://")
}

func TestGetAllowed(t *testing.T) {
	s := newServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		w.Header()["x-lower-case"] = []string{"a"} // not canonical as written
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "hello %s %s", r.Method, r.URL.RequestURI())
	})
	var obs observed
	c := New(Policy{Allow: []string{s.URL + "/api"}}, WithObserver(obs.observer()))
	defer c.Close()

	resp, err := c.Do(context.Background(), Request{URL: s.URL + "/api/items?id=3"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || string(resp.Body) != "hello GET /api/items?id=3" {
		t.Fatalf("got %d %q", resp.Status, resp.Body)
	}
	if got := resp.Header["X-Lower-Case"]; len(got) != 1 || got[0] != "a" {
		t.Errorf("header X-Lower-Case = %v in %v", got, resp.Header)
	}
	if resp.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("Content-Type = %q", resp.Header.Get("Content-Type"))
	}
	if got := obs.last(t, 1); got.host != host(s) || got.err != nil {
		t.Errorf("observer got %+v, want host %s and no error", got, host(s))
	}
}

func TestRefusedBeforeConnecting(t *testing.T) {
	s := newServer(t, false, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	var obs observed
	c := New(Policy{Allow: []string{s.URL + "/api"}}, WithObserver(obs.observer()))
	defer c.Close()

	port := s.URL[strings.LastIndex(s.URL, ":")+1:]
	refused := []string{
		s.URL + "/admin",
		s.URL + "/apix",
		s.URL + "/",
		s.URL,
		s.URL + "/api/../admin",
		s.URL + "/api/%2e%2e/admin",
		s.URL + "/api/..%5cadmin",
		"http://user:pw@127.0.0.1:" + port + "/api",
		"http://localhost:" + port + "/api", // the same server, another host name
		"https://127.0.0.1:" + port + "/api",
	}
	for i, u := range refused {
		_, err := c.Do(context.Background(), Request{URL: u})
		if !errors.Is(err, ErrNotAllowed) {
			t.Errorf("%s: err = %v, want ErrNotAllowed", u, err)
		}
		var e *Error
		if !errors.As(err, &e) || e.URL != u || e.Method != "GET" {
			t.Errorf("%s: err = %#v, want an *Error with the URL and method", u, err)
		}
		if got := obs.last(t, i+1); got.host != RefusedHost || !errors.Is(got.err, ErrNotAllowed) {
			t.Errorf("%s: observer got %+v", u, got)
		}
		if c.Allowed(u) {
			t.Errorf("Allowed(%s) = true", u)
		}
	}
	if n := s.ln.accepts.Load(); n != 0 {
		t.Fatalf("%d connections accepted for refused calls", n)
	}
	// An allowed call does connect, on the same listener.
	if _, err := c.Do(context.Background(), Request{URL: s.URL + "/api/x"}); err != nil {
		t.Fatal(err)
	}
	if n := s.ln.accepts.Load(); n != 1 {
		t.Fatalf("%d connections accepted, want 1 (the allowed call's)", n)
	}
}

func TestErrorText(t *testing.T) {
	c := New(Policy{Allow: []string{"https://x/api", "https://y"}})
	_, err := c.Do(context.Background(), Request{URL: "https://x/y"})
	want := "http GET https://x/y: not allowed (allow: https://x/api, https://y)"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
	_, err = New(Policy{}).Do(context.Background(), Request{Method: "post", URL: "https://x/y"})
	want = "http POST https://x/y: not allowed (allow: none)"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
}

func TestAllowedPrefixes(t *testing.T) {
	c := New(Policy{Allow: []string{
		"https://api.example.com",
		"http://h.test:8080/v1",
		"https://files.example.com/pub/",
		"https://[::1]:8443/x",
		"ftp://bad.example.com", // invalid: matches nothing
	}})
	cases := []struct {
		url  string
		want bool
	}{
		{"https://api.example.com", true},
		{"https://api.example.com/", true},
		{"https://api.example.com/anything/at/all?q=1#f", true},
		{"https://API.Example.COM/x", true},
		{"HTTPS://api.example.com/x", true},
		{"https://api.example.com:443/x", true},
		{"https://api.example.com./x", true},
		{"https://api.example.com.evil.net/", false},
		{"https://api.example.com@evil/", false},
		{"https://api.example.com:pw@evil/", false},
		{"https://user@api.example.com/", false},
		{"https://evil/?https://api.example.com", false},
		{"https://evil/https://api.example.com", false},
		{"https://api.example.com:8443/", false},
		{"http://api.example.com/", false},
		{"https://xapi.example.com/", false},
		{"https://api.example.co/", false},
		{"https://api.example.com/a/../b", false},

		{"http://h.test:8080/v1", true},
		{"http://h.test:8080/v1/", true},
		{"http://h.test:8080/v1/users/3", true},
		{"http://h.test:8080/v1?x=1", true},
		{"http://h.test:8080/v10", false},
		{"http://h.test:8080/v1.json", false},
		{"http://h.test:8080/v1%2Fadmin", false},
		{"http://h.test:8080/v1/../admin", false},
		{"http://h.test:8080/v1/%2E%2E/admin", false},
		{"http://h.test:8080/v1/./x", false},
		{"http://h.test:8080/V1/x", false},
		{"http://h.test:8080/", false},
		{"http://h.test/v1", false},
		{"http://h.test:80/v1", false},
		{"https://h.test:8080/v1", false},

		{"https://files.example.com/pub/", true},
		{"https://files.example.com/pub/a.txt", true},
		{"https://files.example.com/pub", false},
		{"https://files.example.com/public", false},

		{"https://[::1]:8443/x/y", true},
		{"https://[::1]/x/y", false},

		{"ftp://bad.example.com/", false},
		{"not a url", false},
		{"/relative/path", false},
		{"https:///nohost", false},
		{"", false},
	}
	for _, tc := range cases {
		if got := c.Allowed(tc.url); got != tc.want {
			t.Errorf("Allowed(%q) = %v, want %v", tc.url, got, tc.want)
		}
	}
}

func TestRedirects(t *testing.T) {
	other := newServer(t, false, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "other") })
	var s *server
	s = newServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/a":
			http.Redirect(w, r, "/api/b", http.StatusFound)
		case "/api/b":
			io.WriteString(w, "b")
		case "/api/out":
			http.Redirect(w, r, "/private", http.StatusFound)
		case "/api/other":
			http.Redirect(w, r, other.URL+"/api/x", http.StatusTemporaryRedirect)
		case "/api/loop":
			n, _ := strconv.Atoi(r.URL.Query().Get("n"))
			if n >= 100 {
				io.WriteString(w, "end")
				return
			}
			http.Redirect(w, r, "/api/loop?n="+strconv.Itoa(n+1), http.StatusFound)
		case "/private":
			io.WriteString(w, "secret")
		}
	})
	var obs observed
	c := New(Policy{Allow: []string{s.URL + "/api/"}}, WithObserver(obs.observer()))
	defer c.Close()
	ctx := context.Background()

	resp, err := c.Do(ctx, Request{URL: s.URL + "/api/a"})
	if err != nil || resp.Status != 200 || string(resp.Body) != "b" {
		t.Fatalf("redirect inside: %v %+v", err, resp)
	}

	_, err = c.Do(ctx, Request{URL: s.URL + "/api/out"})
	if !errors.Is(err, ErrNotAllowed) || !strings.Contains(err.Error(), "redirect to "+s.URL+"/private") {
		t.Fatalf("redirect outside: err = %v", err)
	}
	if n := s.hit("/private"); n != 0 {
		t.Fatalf("/private was requested %d times", n)
	}
	if got := obs.last(t, 2); got.host != host(s) || !errors.Is(got.err, ErrNotAllowed) {
		t.Errorf("observer got %+v", got)
	}

	_, err = c.Do(ctx, Request{Method: "POST", URL: s.URL + "/api/other", Body: []byte("x")})
	if !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("redirect to another server: err = %v", err)
	}
	if n := other.ln.accepts.Load(); n != 0 {
		t.Fatalf("the other server accepted %d connections", n)
	}

	_, err = c.Do(ctx, Request{URL: s.URL + "/api/loop"})
	if !errors.Is(err, ErrTooManyRedirects) {
		t.Fatalf("redirect loop: err = %v", err)
	}
	if n := s.hit("/api/loop"); n != 1+MaxRedirects {
		t.Fatalf("/api/loop requested %d times, want %d", n, 1+MaxRedirects)
	}
	// Exactly MaxRedirects redirects are followed.
	resp, err = c.Do(ctx, Request{URL: fmt.Sprintf("%s/api/loop?n=%d", s.URL, 100-MaxRedirects)})
	if err != nil || string(resp.Body) != "end" {
		t.Fatalf("%d redirects: %v %+v", MaxRedirects, err, resp)
	}
}

// hold returns a handler that waits until the test ends or the client goes,
// after writing what first writes (if anything).
func hold(t *testing.T, first func(w http.ResponseWriter)) http.HandlerFunc {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // runs before the server's Close
	return func(w http.ResponseWriter, r *http.Request) {
		if first != nil {
			first(w)
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
}

func TestTimeout(t *testing.T) {
	t.Run("headers", func(t *testing.T) {
		s := newServer(t, false, hold(t, nil))
		var obs observed
		c := New(Policy{Allow: []string{s.URL}, Timeout: 100 * time.Millisecond}, WithObserver(obs.observer()))
		defer c.Close()
		_, err := c.Do(context.Background(), Request{URL: s.URL + "/slow"})
		if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "timed out after 100ms") {
			t.Fatalf("err = %v, want ErrTimeout after 100ms", err)
		}
		if got := obs.last(t, 1); got.host != host(s) || !errors.Is(got.err, ErrTimeout) {
			t.Errorf("observer got %+v", got)
		}
	})
	t.Run("body", func(t *testing.T) {
		s := newServer(t, false, hold(t, func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "1000")
			io.WriteString(w, "part of it")
		}))
		c := New(Policy{Allow: []string{s.URL}, Timeout: 100 * time.Millisecond})
		defer c.Close()
		_, err := c.Do(context.Background(), Request{URL: s.URL + "/slow-body"})
		if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "reading the body") {
			t.Fatalf("err = %v, want ErrTimeout while reading the body", err)
		}
	})
	t.Run("per call shorter", func(t *testing.T) {
		s := newServer(t, false, hold(t, nil))
		c := New(Policy{Allow: []string{s.URL}, Timeout: time.Hour})
		defer c.Close()
		_, err := c.Do(context.Background(), Request{URL: s.URL, Timeout: 50 * time.Millisecond})
		if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "after 50ms") {
			t.Fatalf("err = %v, want ErrTimeout after 50ms", err)
		}
	})
	t.Run("per call longer is cut to the policy", func(t *testing.T) {
		s := newServer(t, false, hold(t, nil))
		c := New(Policy{Allow: []string{s.URL}, Timeout: 50 * time.Millisecond})
		defer c.Close()
		_, err := c.Do(context.Background(), Request{URL: s.URL, Timeout: time.Hour})
		if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "after 50ms") {
			t.Fatalf("err = %v, want ErrTimeout after 50ms", err)
		}
	})
	t.Run("caller cancels", func(t *testing.T) {
		arrived := make(chan struct{})
		held := hold(t, nil)
		s := newServer(t, false, func(w http.ResponseWriter, r *http.Request) {
			close(arrived)
			held(w, r)
		})
		c := New(Policy{Allow: []string{s.URL}, Timeout: time.Hour})
		defer c.Close()
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-arrived // cancel once the request has reached the server
			cancel()
		}()
		_, err := c.Do(ctx, Request{URL: s.URL + "/"})
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

func TestTooLarge(t *testing.T) {
	const limit = 1000
	s := newServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		if r.URL.Query().Get("chunked") != "" {
			w.(http.Flusher).Flush() // no Content-Length
		}
		io.WriteString(w, strings.Repeat("x", n))
	})
	c := New(Policy{Allow: []string{s.URL}, MaxResponseBytes: limit})
	defer c.Close()
	for _, q := range []string{"n=1001", "n=1001&chunked=1", "n=100000", "n=100000&chunked=1"} {
		_, err := c.Do(context.Background(), Request{URL: s.URL + "/?" + q})
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: err = %v, want ErrTooLarge", q, err)
		}
	}
	for _, q := range []string{"n=1000", "n=1000&chunked=1", "n=0"} {
		resp, err := c.Do(context.Background(), Request{URL: s.URL + "/?" + q})
		if err != nil {
			t.Errorf("%s: %v", q, err)
			continue
		}
		if want, _ := strconv.Atoi(strings.Split(strings.TrimPrefix(q, "n="), "&")[0]); len(resp.Body) != want {
			t.Errorf("%s: %d bytes", q, len(resp.Body))
		}
	}
}

func TestPostWithBodyAndHeaders(t *testing.T) {
	s := newServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("X-Token", r.Header.Get("X-Token"))
		w.Header().Set("X-Type", r.Header.Get("Content-Type"))
		w.Header().Set("X-Length", strconv.FormatInt(r.ContentLength, 10))
		w.WriteHeader(http.StatusCreated)
		w.Write(body)
	})
	c := New(Policy{Allow: []string{s.URL + "/items"}})
	defer c.Close()
	resp, err := c.Do(context.Background(), Request{
		Method: "post",
		URL:    s.URL + "/items",
		Header: http.Header{"X-Token": {"t0k"}, "content-type": {"application/json"}},
		Body:   []byte(`{"name":"moon"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusCreated || string(resp.Body) != `{"name":"moon"}` {
		t.Fatalf("got %d %q", resp.Status, resp.Body)
	}
	for k, want := range map[string]string{"X-Method": "POST", "X-Token": "t0k", "X-Type": "application/json", "X-Length": "15"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

func TestInvalidRequests(t *testing.T) {
	s := newServer(t, false, func(w http.ResponseWriter, r *http.Request) {})
	var obs observed
	c := New(Policy{Allow: []string{s.URL}}, WithObserver(obs.observer()))
	defer c.Close()
	cases := []Request{
		{URL: "::not a url"},
		{URL: "ftp://127.0.0.1/x"},
		{URL: "/relative"},
		{URL: s.URL, Method: "CONNECT"},
		{URL: s.URL, Method: "GE T"},
		{URL: s.URL, Header: http.Header{"X-A": {"a\r\nX-Injected: 1"}}},
		{URL: s.URL, Header: http.Header{"Bad Name": {"a"}}},
		{URL: s.URL, Timeout: -time.Second},
	}
	for i, r := range cases {
		_, err := c.Do(context.Background(), r)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: err = %v, want ErrInvalid", r, err)
		}
		if got := obs.last(t, i+1); got.host != RefusedHost {
			t.Errorf("%+v: observer host %q", r, got.host)
		}
	}
	if n := s.ln.accepts.Load(); n != 0 {
		t.Fatalf("%d connections accepted", n)
	}
}

func TestHTTPS(t *testing.T) {
	s := newServer(t, true, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) })
	c := New(Policy{Allow: []string{s.URL + "/"}})
	defer c.Close()
	pool := x509.NewCertPool()
	pool.AddCert(s.Certificate())
	c.transport.TLSClientConfig.RootCAs = pool

	resp, err := c.Do(context.Background(), Request{URL: s.URL + "/x"})
	if err != nil || resp.Status != 200 {
		t.Fatalf("%v %+v", err, resp)
	}
	plain := "http://" + host(s) + "/x"
	if _, err := c.Do(context.Background(), Request{URL: plain}); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("%s: err = %v, want ErrNotAllowed", plain, err)
	}
}

func TestCloseDropsIdleConnections(t *testing.T) {
	s := newServer(t, false, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	c := New(Policy{Allow: []string{s.URL}})
	for range 3 {
		if _, err := c.Do(context.Background(), Request{URL: s.URL}); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.ln.accepts.Load(); n != 1 {
		t.Fatalf("%d connections for 3 sequential calls, want 1 (kept alive)", n)
	}
	c.Close()
	if _, err := c.Do(context.Background(), Request{URL: s.URL}); err != nil {
		t.Fatal(err)
	}
	if n := s.ln.accepts.Load(); n != 2 {
		t.Fatalf("%d connections after Close and a call, want 2", n)
	}
	c.Close()
}

func TestValidate(t *testing.T) {
	ok := []Policy{
		{},
		{Allow: []string{"https://api.example.com", "http://127.0.0.1:8080/v1/", "https://[::1]/x", "HTTPS://Example.COM"}},
		{Timeout: time.Second, MaxResponseBytes: 10},
	}
	for _, p := range ok {
		if err := p.Validate(); err != nil {
			t.Errorf("%+v: %v", p, err)
		}
	}
	bad := []struct {
		p    Policy
		want string
	}{
		{Policy{Allow: []string{"https://ok", "ftp://files"}}, `http allow[1] "ftp://files": invalid: the scheme must be http or https`},
		{Policy{Allow: []string{"api.example.com"}}, `allow[0] "api.example.com": invalid: the scheme must be http or https`},
		{Policy{Allow: []string{"/v1"}}, "the scheme must be http or https"},
		{Policy{Allow: []string{"https:api.example.com"}}, "must be an absolute URL with a host"},
		{Policy{Allow: []string{"https:///v1"}}, "must be an absolute URL with a host"},
		{Policy{Allow: []string{"https://user@api.example.com"}}, "must not have userinfo"},
		{Policy{Allow: []string{"https://api.example.com/v1?key=1"}}, "must not have a query or fragment"},
		{Policy{Allow: []string{"https://api.example.com/v1#x"}}, "must not have a query or fragment"},
		{Policy{Allow: []string{"https://api.example.com/v1/../admin"}}, "must not have . or .. segments"},
		{Policy{Allow: []string{"https://api.example.com:99999"}}, "bad port"},
		{Policy{Allow: []string{"https://api example.com"}}, "not a URL"},
		{Policy{Allow: []string{""}}, "the scheme must be http or https"},
		{Policy{Timeout: -1}, "must not be negative"},
		{Policy{MaxResponseBytes: -1}, "must not be negative"},
	}
	for _, tc := range bad {
		err := tc.p.Validate()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want ErrInvalid and %q", tc.p, err, tc.want)
		}
	}
}

func TestDefaults(t *testing.T) {
	c := New(Policy{})
	if c.timeout != DefaultTimeout || c.maxBody != DefaultMaxResponseBytes {
		t.Fatalf("timeout %s, max body %d", c.timeout, c.maxBody)
	}
	if c.transport.MaxConnsPerHost != MaxConnsPerHost || c.transport.MaxIdleConnsPerHost != MaxIdleConnsPerHost ||
		c.transport.Proxy != nil {
		t.Fatalf("transport not bounded as documented")
	}
}
