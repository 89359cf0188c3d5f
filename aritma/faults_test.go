package aritma

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"go.uber.org/goleak"
)

// rawServer accepts TCP connections and hands each to serve, for faults an
// HTTP server cannot produce (a reset mid-answer, a drip of bytes).
func rawServer(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				// Read the request head (and its small body) first.
				reader := bufio.NewReader(conn)
				for {
					line, err := reader.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				_ = conn.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
				_, _ = reader.Read(make([]byte, 4096))
				serve(conn)
			}()
		}
	}()
	return "http://" + l.Addr().String() + "/connect/token"
}

// resetAfter writes some bytes and then resets the connection.
func resetAfter(partial string) func(net.Conn) {
	return func(conn net.Conn) {
		_, _ = conn.Write([]byte(partial))
		_ = conn.(*net.TCPConn).SetLinger(0)
	}
}

type fault struct {
	// One of tokenURL (a raw or special server) or respond (an HTTP handler).
	tokenURL func(t *testing.T) string
	respond  func(w http.ResponseWriter, r *http.Request, n int)
	caCert   func(t *testing.T) string
	wantMsg  string
	// wantRequests: how many requests the server should see (retries), 0 to
	// skip the check (raw servers).
	wantRequests int
	wantCode     int
}

func jsonAnswer(status int, body string) func(w http.ResponseWriter, r *http.Request, n int) {
	return func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}
}

// faults is every authorization server fault the engine handles, each with the
// error the reader must get.
func faults() map[string]fault {
	retried := 1 + maxGrantRetries
	return map[string]fault{
		"500": {respond: jsonAnswer(500, `{"error":"server_error"}`), wantMsg: "failed: 500 Internal Server Error: server_error", wantRequests: retried, wantCode: 502},
		"502": {respond: jsonAnswer(502, `{}`), wantMsg: "failed: 502 Bad Gateway with 2 bytes of application/json", wantRequests: retried, wantCode: 502},
		"503": {respond: jsonAnswer(503, `{"error":"temporarily_unavailable"}`), wantMsg: "503 Service Unavailable: temporarily_unavailable", wantRequests: retried, wantCode: 502},
		"429 with a Retry-After past the time limit": {
			respond: func(w http.ResponseWriter, r *http.Request, n int) {
				w.Header().Set("Retry-After", "120")
				jsonAnswer(429, `{"error":"slow_down"}`)(w, r, n)
			},
			wantMsg: "429 Too Many Requests: slow_down; not retried: the next try (in 2m0s) would pass the 2s time limit", wantRequests: 1, wantCode: 502,
		},
		"connection refused": {
			tokenURL: func(t *testing.T) string {
				l, _ := net.Listen("tcp", "127.0.0.1:0")
				addr := l.Addr().String()
				l.Close()
				return "http://" + addr + "/connect/token"
			},
			wantMsg: "connect: connection refused", wantCode: 502,
		},
		"reset before the answer": {
			tokenURL: func(t *testing.T) string { return rawServer(t, resetAfter("")) },
			wantMsg:  "connection reset by peer", wantCode: 502,
		},
		"reset mid-body": {
			tokenURL: func(t *testing.T) string {
				return rawServer(t, resetAfter("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"access_tok"))
			},
			wantMsg: "failed while reading the answer: read tcp", wantCode: 502,
		},
		"TLS handshake failure (unknown CA)": {
			tokenURL: func(t *testing.T) string {
				srv := httptest.NewTLSServer(http.NotFoundHandler())
				t.Cleanup(srv.Close)
				return srv.URL + "/connect/token"
			},
			caCert:  func(t *testing.T) string { return testCertPEM(t) },
			wantMsg: "tls: failed to verify certificate: x509: certificate signed by unknown authority", wantCode: 502,
		},
		"plain HTTP answered to TLS": {
			tokenURL: func(t *testing.T) string {
				srv := httptest.NewServer(http.NotFoundHandler())
				t.Cleanup(srv.Close)
				return strings.Replace(srv.URL, "http://", "https://", 1) + "/connect/token"
			},
			wantMsg: "http: server gave HTTP response to HTTPS client", wantCode: 502,
		},
		"hang past the time limit": {
			respond: func(w http.ResponseWriter, r *http.Request, n int) {
				select {
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
				}
			},
			wantMsg: "timed out after 2s", wantRequests: 1, wantCode: 504,
		},
		"slow drip of bytes": {
			tokenURL: func(t *testing.T) string {
				return rawServer(t, func(conn net.Conn) {
					answer := "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 60\r\n\r\n{\"access_token\":\"x\",\"expires_in\":60,\"token_type\":\"Bearer\"}"
					for i := range len(answer) {
						if _, err := conn.Write([]byte{answer[i]}); err != nil {
							return
						}
						time.Sleep(100 * time.Millisecond)
					}
				})
			},
			wantMsg: "timed out after 2s", wantCode: 504,
		},
		"HTML error page": {
			respond: func(w http.ResponseWriter, r *http.Request, n int) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(500)
				fmt.Fprint(w, "<html><body>Oops</body></html>")
			},
			wantMsg: "500 Internal Server Error with 30 bytes of text/html and no OAuth error code", wantRequests: retried, wantCode: 502,
		},
		"HTML with 200": {
			respond: func(w http.ResponseWriter, r *http.Request, n int) {
				w.Header().Set("Content-Type", "text/html")
				fmt.Fprint(w, "<html>maintenance</html>")
			},
			wantMsg: "is not a valid token response: cannot parse json: invalid character '<'", wantRequests: 1, wantCode: 502,
		},
		"non-JSON":                  {respond: jsonAnswer(200, `access_token=x`), wantMsg: "is not a valid token response: cannot parse json", wantRequests: 1, wantCode: 502},
		"JSON without access_token": {respond: jsonAnswer(200, `{"expires_in":3600,"token_type":"Bearer"}`), wantMsg: "server response missing access_token", wantRequests: 1, wantCode: 502},
		"expires_in zero":           {respond: jsonAnswer(200, `{"access_token":"x","expires_in":0,"token_type":"Bearer"}`), wantMsg: "expires_in is 0: the token is already expired", wantRequests: 1, wantCode: 502},
		"expires_in negative":       {respond: jsonAnswer(200, `{"access_token":"x","expires_in":-60,"token_type":"Bearer"}`), wantMsg: "expires_in is -60: the token is already expired", wantRequests: 1, wantCode: 502},
		"expires_in not a number":   {respond: jsonAnswer(200, `{"access_token":"x","expires_in":"soon","token_type":"Bearer"}`), wantMsg: "cannot parse json", wantRequests: 1, wantCode: 502},
		"expires_in an object":      {respond: jsonAnswer(200, `{"access_token":"x","expires_in":{},"token_type":"Bearer"}`), wantMsg: "cannot parse json", wantRequests: 1, wantCode: 502},
		"token_type not Bearer":     {respond: jsonAnswer(200, `{"access_token":"x","expires_in":60,"token_type":"N_A"}`), wantMsg: `a token of type "N_A"; only Bearer tokens are supported`, wantRequests: 1, wantCode: 502},
		"10 MiB body": {
			respond: func(w http.ResponseWriter, r *http.Request, n int) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, `{"access_token":"`)
				chunk := strings.Repeat("A", 1<<16)
				for range 160 {
					if _, err := fmt.Fprint(w, chunk); err != nil {
						return
					}
				}
				fmt.Fprint(w, `","expires_in":60,"token_type":"Bearer"}`)
			},
			wantMsg: "is not a valid token response: cannot parse json: unexpected end of JSON input", wantRequests: 1, wantCode: 502,
		},
		"redirect": {
			respond: func(w http.ResponseWriter, r *http.Request, n int) {
				http.Redirect(w, r, "https://attacker.example/token", http.StatusFound)
			},
			wantMsg: `302 Found (a redirect to "https://attacker.example/token"; token endpoints are never followed across redirects)`, wantRequests: 1, wantCode: 502,
		},
	}
}

// Every fault gives the reader a clear error with the right status, within
// the time limit, without a panic, a leaked goroutine or a token.
func TestFaults_AuthorizationServer(t *testing.T) {
	const timeLimit = 2 * time.Second
	all := faults()
	var handled atomic.Int32
	for name, f := range all {
		t.Run(name, func(t *testing.T) {
			// Registered first, so it runs after every other cleanup (the
			// servers' and the backend's, which closes idle connections).
			ignore := goleak.IgnoreCurrent()
			t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
			e := newTestEnv(t)
			t.Cleanup(func() { e.b.Cleanup(context.Background()) })
			srv := newFakeAuthServer(t)
			srv.respond = f.respond
			tokenURL := srv.tokenURL()
			if f.tokenURL != nil {
				tokenURL = f.tokenURL(t)
			}
			env := map[string]interface{}{"token_url": tokenURL, "request_timeout": int(timeLimit.Seconds())}
			if f.caCert != nil {
				env["ca_cert"] = f.caCert(t)
			}
			e.mustWrite(t, "environments/faulty", env)
			e.mustWrite(t, "roles/r", map[string]interface{}{"environment": "faulty", "client_id": "c", "client_secret": testClientSecret})

			start := time.Now()
			resp, err := e.request(logical.ReadOperation, "token/r", nil)
			took := time.Since(start)

			ok := true
			if err == nil {
				t.Errorf("read succeeded: %v", resp.Data)
				ok = false
			} else {
				if !strings.Contains(err.Error(), f.wantMsg) {
					t.Errorf("error = %q, want it to contain %q", err, f.wantMsg)
					ok = false
				}
				if coded, isCoded := err.(logical.HTTPCodedError); !isCoded || coded.Code() != f.wantCode {
					t.Errorf("status of %q: want %d", err, f.wantCode)
					ok = false
				}
				if strings.Contains(err.Error(), testClientSecret) {
					t.Error("the error carries the client secret")
					ok = false
				}
			}
			if took > timeLimit+time.Second {
				t.Errorf("the read took %s, more than the %s time limit", took, timeLimit)
				ok = false
			}
			if f.wantRequests > 0 && srv.count() != f.wantRequests {
				t.Errorf("server saw %d requests, want %d", srv.count(), f.wantRequests)
				ok = false
			}
			if ok {
				handled.Add(1)
			}
		})
	}
	recordFigure(t, "faults_tried", len(all))
	recordFigure(t, "faults_handled", int(handled.Load()))
}

// With a cached token that still has the role's min_remaining, every fault
// gives the reader that token (and a warning), never an expired one.
func TestFaults_CachedTokenBridgesOutage(t *testing.T) {
	for name, f := range faults() {
		if f.tokenURL != nil || f.caCert != nil {
			continue // the same server must first issue a good token
		}
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t)
			srv := newFakeAuthServer(t)
			e.mustWrite(t, "environments/faulty", map[string]interface{}{"token_url": srv.tokenURL(), "request_timeout": 2})
			e.mustWrite(t, "roles/r", map[string]interface{}{"environment": "faulty", "client_id": "c", "client_secret": "s", "min_remaining": "5m"})
			good := e.readToken(t, "r").Data["access_token"]
			srv.respond = f.respond
			e.clock.Advance(50 * time.Minute) // 10m left: a new grant is due
			resp := e.readToken(t, "r")
			if resp.Data["access_token"] != good || len(resp.Warnings) != 1 {
				t.Errorf("got %v with warnings %q, want the cached token and a warning", resp.Data["access_token"], resp.Warnings)
			}
			e.clock.Advance(6 * time.Minute) // 4m left: below min_remaining
			if resp, err := e.request(logical.ReadOperation, "token/r", nil); err == nil {
				t.Errorf("with 4m left the cached token was handed out: %v", resp.Data)
			}
		})
	}
}

// A failure that passes is retried: a 503 then a token is one read.
func TestRetry_TransientFailureRecovers(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	srv.respond = func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			jsonAnswer(503, `{"error":"temporarily_unavailable"}`)(w, r, n)
			return
		}
		writeJSON(w, 200, map[string]interface{}{"access_token": "after-retry", "expires_in": 3600, "token_type": "Bearer"})
	}
	e.setupRole(t, srv, "r", nil)
	if got := e.readToken(t, "r").Data["access_token"]; got != "after-retry" || srv.count() != 2 {
		t.Errorf("token %v after %d requests, want after-retry after 2", got, srv.count())
	}
}

// A 429's Retry-After is honoured when it fits in the time limit.
func TestRetry_HonoursRetryAfter(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	var first time.Time
	var waited time.Duration
	srv.respond = func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			first = time.Now()
			w.Header().Set("Retry-After", "1")
			jsonAnswer(429, `{"error":"slow_down"}`)(w, r, n)
			return
		}
		waited = time.Since(first)
		writeJSON(w, 200, map[string]interface{}{"access_token": "t", "expires_in": 3600, "token_type": "Bearer"})
	}
	e.setupRole(t, srv, "r", nil)
	e.readToken(t, "r")
	if waited < time.Second {
		t.Errorf("retried after %s, want at least the 1s Retry-After", waited)
	}
}

// After a failure the role pauses: readers get the last error without a
// request to the server, until the pause ends; the pause doubles with each
// failure in a row, and a success ends it.
func TestGrantPause_SparesFailingServer(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	failing := atomic.Bool{}
	failing.Store(true)
	srv.respond = func(w http.ResponseWriter, r *http.Request, n int) {
		if failing.Load() {
			jsonAnswer(401, `{"error":"invalid_client"}`)(w, r, n)
			return
		}
		writeJSON(w, 200, map[string]interface{}{"access_token": "t", "expires_in": 3600, "token_type": "Bearer"})
	}
	e.setupRole(t, srv, "r", nil)

	// A thousand readers, one after another and at once, within the pause.
	var wg sync.WaitGroup
	for range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.request(logical.ReadOperation, "token/r", nil); err == nil || !strings.Contains(err.Error(), "invalid_client") {
				t.Errorf("reader: %v, want the invalid_client error", err)
			}
		}()
	}
	wg.Wait()
	if srv.count() != 1 {
		t.Fatalf("1000 readers of a failing role made %d requests, want 1", srv.count())
	}
	_, err := e.request(logical.ReadOperation, "token/r", nil)
	if err == nil || !strings.Contains(err.Error(), "(1 failed in a row; the next request to the server is allowed at 2026-11-23T16:00:02Z)") {
		t.Errorf("paused error = %v", err)
	}

	e.clock.Advance(2 * time.Second) // the pause ends; the next failure doubles it
	e.request(logical.ReadOperation, "token/r", nil)
	e.clock.Advance(3 * time.Second)
	e.request(logical.ReadOperation, "token/r", nil)
	if srv.count() != 2 {
		t.Errorf("requests = %d, want 2: the second pause lasts 4s", srv.count())
	}

	// Fixing the role (a new secret) ends the pause at once.
	failing.Store(false)
	e.mustWrite(t, "roles/r", map[string]interface{}{"client_secret": "fixed"})
	if got := e.readToken(t, "r").Data["access_token"]; got != "t" {
		t.Errorf("after the fix: %v", got)
	}
}
