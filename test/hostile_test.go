package test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// dialFrom dials url from a given loopback source address.
func dialFrom(ctx context.Context, url, source string) (*websocket.Conn, *http.Response, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
	client := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client})
}

func TestConnectionLimitsRefuseWith503(t *testing.T) {
	g := startGateway(t, echoFiles(t, "limits: {max_connections: 3, max_per_ip: 2}\n"))
	ctx, cancel := contextWithTimeout(10 * time.Second)
	defer cancel()
	open := func(source string) (*websocket.Conn, int) {
		c, resp, err := dialFrom(ctx, g.url("/echo"), source)
		if err != nil {
			if resp == nil {
				t.Fatalf("dial from %s: %v", source, err)
			}
			return nil, resp.StatusCode
		}
		t.Cleanup(func() { c.CloseNow() })
		return c, 101
	}
	a, _ := open("127.0.0.1")
	open("127.0.0.1")
	if _, status := open("127.0.0.1"); status != http.StatusServiceUnavailable {
		t.Errorf("third connection from one address: %d, want 503", status)
	}
	if _, status := open("127.0.0.2"); status != 101 {
		t.Errorf("another address within the global limit: %d", status)
	}
	if _, status := open("127.0.0.3"); status != http.StatusServiceUnavailable {
		t.Errorf("past the global limit: %d, want 503", status)
	}
	a.Close(websocket.StatusNormalClosure, "")
	eventually(t, "a freed place", func() bool { _, status := open("127.0.0.1"); return status == 101 })
	if v := metricValue(t, g, `moongate_connections_refused_total{endpoint="/echo",reason="limit"}`); v < 2 {
		t.Errorf("refusals counted: %v", v)
	}
}

func TestSlowLorisHandshakeIsCutOff(t *testing.T) {
	g := startGateway(t, echoFiles(t, "limits: {handshake_timeout: 300ms}\n"))
	conn, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, conn)
		closed <- err
	}()
	request := "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	for i := range len(request) {
		select {
		case <-closed:
			if i == len(request) {
				t.Fatal("the whole request went through")
			}
			return // cut off while still trickling
		default:
		}
		conn.Write([]byte{request[i]})
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("a client trickling its headers for 7 s was not cut off")
}

// blastScript sends the room N messages of 64 KiB when asked, one a
// millisecond: a pace a reading client keeps up with.
const blastScript = `
local big = string.rep("b", 65536)
return {
  connect = function(c) rooms.join("r", c) end,
  message = function(c, data)
    local n = tonumber(data:match("^blast (%d+)$") or "")
    if not n then return end
    local sent, id = 0, nil
    id = timer.every(0.001, function()
      sent = sent + 1
      rooms.broadcast("r", big)
      if sent == n then timer.cancel(id) end
    end)
  end,
}
`

func TestASlowReaderDelaysNobodyElse(t *testing.T) {
	g := startGateway(t, map[string]string{
		"blast.lua":   blastScript,
		"config.yaml": "endpoints:\n  - path: /blast\n    script: blast.lua\n    send_queue: 64\n",
	})
	slow := dial(t, g.url("/blast")) // never reads
	fast := dial(t, g.url("/blast"))
	const n = 500 // 32 MiB: far more than the slow reader's queue and socket buffers hold
	send(t, fast, "blast 500")
	for i := range n {
		if _, data := recv(t, fast); len(data) != 65536 {
			t.Fatalf("message %d: %d bytes", i, len(data))
		}
	}
	if code, _ := expectClose(t, slow); code != websocket.StatusPolicyViolation {
		t.Errorf("the slow reader was closed with %d, want 1008", code)
	}
}

func TestTLSListenerServesWSS(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := selfSigned(t)
	files := echoFiles(t, "tls: {cert: cert.pem, key: key.pem}\n")
	files["cert.pem"], files["key.pem"] = string(certPEM), string(keyPEM)
	writeFiles(t, dir, files)
	g := startGatewayIn(t, dir, "run", "-config", "config.yaml", "-listen", "127.0.0.1:0", "-log-format", "json")
	if !strings.Contains(g.logs.String(), `"url":"wss://`) {
		t.Errorf("the log does not announce wss://")
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	ctx, cancel := contextWithTimeout(10 * time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "wss://"+g.addr+"/echo", &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if got := ask(t, c, "over tls"); got != "over tls" {
		t.Errorf("echo over wss: %q", got)
	}
	resp, err := client.Get("https://" + g.addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("https /healthz: %v %v", resp, err)
	}
	if _, err := http.Get("http://" + g.addr + "/healthz"); err == nil {
		resp, _ := http.Get("http://" + g.addr + "/healthz")
		if resp != nil && resp.StatusCode == 200 {
			t.Error("plain http is served on the TLS listener")
		}
	}
}

// selfSigned makes a certificate for 127.0.0.1 and its key, in PEM.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "moongate test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}
