package metrics

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/moongate/moongate/gateway/outbound"
)

// scrape reads /metrics over a real socket and returns its sample lines
// whose name starts with prefix, keyed by name and labels.
func scrape(t *testing.T, m *Metrics, prefix string) map[string]string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	samples := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		samples[line[:i]] = line[i+1:]
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return samples
}

func expect(t *testing.T, samples map[string]string, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got, ok := samples[k]; !ok {
			t.Errorf("no sample %s", k)
		} else if got != v {
			t.Errorf("%s = %s, want %s", k, got, v)
		}
	}
}

func TestCallMetrics(t *testing.T) {
	m := New()
	chat, other := m.Endpoint("/chat"), m.Endpoint("/other")
	boom := errors.New("boom")

	chat.DBCall("main", 2*time.Millisecond, nil)
	chat.DBCall("main", 3*time.Millisecond, nil)
	chat.DBCall("main", time.Second, boom)
	other.DBCall("logs", time.Millisecond, nil)

	chat.HTTPCall("api.example.com", 10*time.Millisecond, nil)
	chat.HTTPCall("api.example.com:8443", 10*time.Millisecond, boom)

	// HTTPCall is an outbound.Observer: a refused call is counted as such.
	c := outbound.New(outbound.Policy{}, outbound.WithObserver(chat.HTTPCall))
	if _, err := c.Do(context.Background(), outbound.Request{URL: "https://evil.example/"}); !errors.Is(err, outbound.ErrNotAllowed) {
		t.Fatalf("err = %v", err)
	}

	chat.Suspended.Inc()
	chat.Suspended.Inc()
	chat.Suspended.Dec()

	s := scrape(t, m, "moongate_")
	expect(t, s, map[string]string{
		`moongate_db_calls_total{database="main",endpoint="/chat",result="ok"}`:                  "2",
		`moongate_db_calls_total{database="main",endpoint="/chat",result="error"}`:               "1",
		`moongate_db_calls_total{database="logs",endpoint="/other",result="ok"}`:                 "1",
		`moongate_db_call_duration_seconds_count{database="main",endpoint="/chat"}`:              "3",
		`moongate_db_call_duration_seconds_bucket{database="main",endpoint="/chat",le="0.008"}`:  "2",
		`moongate_db_call_duration_seconds_bucket{database="main",endpoint="/chat",le="+Inf"}`:   "3",
		`moongate_http_calls_total{endpoint="/chat",host="api.example.com",result="ok"}`:         "1",
		`moongate_http_calls_total{endpoint="/chat",host="api.example.com:8443",result="error"}`: "1",
		`moongate_http_calls_total{endpoint="/chat",host="(refused)",result="error"}`:            "1",
		`moongate_http_call_duration_seconds_count{endpoint="/chat",host="api.example.com"}`:     "1",
		`moongate_suspended_handlers{endpoint="/chat"}`:                                          "1",
		`moongate_suspended_handlers{endpoint="/other"}`:                                         "0",
	})
	if _, ok := s[`moongate_db_calls_total{database="logs",endpoint="/other",result="error"}`]; ok {
		t.Error("a result never seen is exported")
	}
}
