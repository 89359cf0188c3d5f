package aritma

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestTokenRead_RoleMissing(t *testing.T) {
	e := newTestEnv(t)
	resp := e.do(t, logical.ReadOperation, "token/nobody", nil)
	if resp == nil || !resp.IsError() {
		t.Fatalf("want an error response, got %#v", resp)
	}
	if got, want := resp.Error().Error(), `role "nobody" does not exist`; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

// The requests that reach the server match the banks' documented curl examples:
// client_secret_post sends the credentials in the form body, client_secret_basic
// in an Authorization header (url-encoded first, RFC 6749 section 2.3.1).
func TestTokenRead_AuthMethodsSendExactRequest(t *testing.T) {
	for name, tc := range map[string]struct {
		authMethod string
		wantForm   string
		wantAuth   string
	}{
		"client_secret_post": {
			authMethod: "client_secret_post",
			wantForm:   "client_id=my+client&client_secret=s3cret%2Fx&grant_type=client_credentials&scope=api+bankservice",
		},
		"client_secret_basic": {
			authMethod: "client_secret_basic",
			wantForm:   "grant_type=client_credentials&scope=api+bankservice",
			wantAuth:   "Basic " + base64.StdEncoding.EncodeToString([]byte("my+client:s3cret%2Fx")),
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t)
			srv := newFakeAuthServer(t)
			e.mustWrite(t, "environments/bank", map[string]interface{}{
				"token_url":   srv.tokenURL(),
				"auth_method": tc.authMethod,
			})
			e.mustWrite(t, "roles/r", map[string]interface{}{
				"environment":   "bank",
				"client_id":     "my client",
				"client_secret": "s3cret/x",
				"scopes":        "api,bankservice",
			})
			e.readToken(t, "r")

			if srv.count() != 1 {
				t.Fatalf("server saw %d requests, want 1", srv.count())
			}
			got := srv.request(0)
			if got.Method != http.MethodPost || got.Path != "/connect/token" {
				t.Errorf("request = %s %s, want POST /connect/token", got.Method, got.Path)
			}
			if got.ContentType != "application/x-www-form-urlencoded" {
				t.Errorf("Content-Type = %q, want application/x-www-form-urlencoded", got.ContentType)
			}
			if form := got.Form.Encode(); form != tc.wantForm {
				t.Errorf("form body = %q, want %q", form, tc.wantForm)
			}
			if got.Authorization != tc.wantAuth {
				t.Errorf("Authorization = %q, want %q", got.Authorization, tc.wantAuth)
			}
		})
	}
}

func TestTokenRead_SendsAudienceResourceAndExtraParams(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	e.setupRole(t, srv, "r", map[string]interface{}{
		"audience":     "https://api.aritma.io",
		"resource":     "https://api.aritma.io/banking,https://api.aritma.io/payments",
		"token_params": map[string]interface{}{"tenant": "acme"},
	})
	e.readToken(t, "r")
	form := srv.request(0).Form
	if got := form.Get("audience"); got != "https://api.aritma.io" {
		t.Errorf("audience = %q", got)
	}
	if got := form["resource"]; len(got) != 2 || got[0] != "https://api.aritma.io/banking" || got[1] != "https://api.aritma.io/payments" {
		t.Errorf("resource = %q, want both resources in order", got)
	}
	if got := form.Get("tenant"); got != "acme" {
		t.Errorf("tenant = %q, want acme", got)
	}
}

// A cached token is handed out, with a lease of what it has left, while more
// than the reuse threshold is left; at the threshold the next read gets a new
// token. With expires_in=3600 and min_remaining=1m the threshold is a fifth
// of the lifetime and a second: 12m01s. The token dies 59m59s after the
// request (issueRounding).
func TestTokenRead_ReusesUntilThresholdThenRenews(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	e.setupRole(t, srv, "r", nil)

	first := e.readToken(t, "r")
	e.clock.Advance(48*time.Minute - 3*time.Second) // 12m02s left
	second := e.readToken(t, "r")
	if second.Data["access_token"] != first.Data["access_token"] {
		t.Fatalf("with 12m02s left the token was replaced; want it reused")
	}
	if want := 12*time.Minute + 2*time.Second; second.Secret.TTL != want {
		t.Errorf("cached token lease = %s, want what it has left, %s", second.Secret.TTL, want)
	}
	if second.Data["expires_at"] != first.Data["expires_at"] {
		t.Errorf("cached token expires_at changed: %v -> %v", first.Data["expires_at"], second.Data["expires_at"])
	}

	e.clock.Advance(time.Second) // exactly 12m01s left
	third := e.readToken(t, "r")
	if third.Data["access_token"] == first.Data["access_token"] {
		t.Fatalf("with 12m01s left the cached token was handed out; want a new one")
	}
	if third.Secret.TTL != time.Hour-time.Second {
		t.Errorf("new token lease = %s, want 59m59s", third.Secret.TTL)
	}
	if srv.count() != 2 {
		t.Errorf("server saw %d grants, want 2", srv.count())
	}
}

// A cached token's lease is rounded down to whole seconds, never up.
func TestTokenRead_CachedLeaseNeverOutlivesToken(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	e.setupRole(t, srv, "r", nil)
	e.readToken(t, "r")
	e.clock.Advance(10*time.Minute + 300*time.Millisecond)
	resp := e.readToken(t, "r")
	if want := 49*time.Minute + 58*time.Second; resp.Secret.TTL != want {
		t.Errorf("lease = %s, want %s (49m58.7s left, rounded down)", resp.Secret.TTL, want)
	}
}

func TestTokenRead_MinRemainingOnRead(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	e.setupRole(t, srv, "r", nil)
	first := e.readToken(t, "r")
	e.clock.Advance(30 * time.Minute)

	// 30m left: enough for 20m, not for 40m.
	resp := e.do(t, logical.ReadOperation, "token/r", map[string]interface{}{"min_remaining": "20m"})
	if resp.Data["access_token"] != first.Data["access_token"] {
		t.Errorf("min_remaining=20m with 30m left replaced the token")
	}
	resp = e.do(t, logical.ReadOperation, "token/r", map[string]interface{}{"min_remaining": "40m"})
	if resp.Data["access_token"] == first.Data["access_token"] {
		t.Errorf("min_remaining=40m with 30m left handed out the cached token")
	}
	if srv.count() != 2 {
		t.Errorf("server saw %d grants, want 2", srv.count())
	}

	// More than the server's tokens ever live.
	resp, err := e.request(logical.ReadOperation, "token/r", map[string]interface{}{"min_remaining": "2h"})
	if err == nil {
		t.Fatalf("min_remaining=2h with 1h tokens succeeded: %v", resp.Data)
	}
	if want := `role "r": the authorization server issues tokens that live 59m59s, less than the 2h0m0s asked for with min_remaining`; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	for _, bad := range []string{"-5s", "soon", "25h"} {
		resp, err := e.request(logical.ReadOperation, "token/r", map[string]interface{}{"min_remaining": bad})
		if err != nil || resp == nil || !resp.IsError() || !strings.Contains(resp.Error().Error(), "min_remaining") {
			t.Errorf("min_remaining=%q: want an error response naming min_remaining, got %v, %v", bad, resp, err)
		}
	}
}

// Vault Agent re-reads a non-renewable secret after 85-95% of its lease.
// Driving that schedule over many lifetimes, every re-read must get a new
// token (one grant per token lifetime, no re-read loop near expiry), and no
// rendered token may be expired.
func TestTokenRead_VaultAgentScheduleGetsNewTokenEveryRead(t *testing.T) {
	for name, lifetime := range map[string]int{"20s": 20, "5m": 300, "1h": 3600, "24h": 86400} {
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t)
			srv := newFakeAuthServer(t)
			srv.expiresIn = lifetime
			e.setupRole(t, srv, "r", nil)

			const reads = 30
			var previous string
			for i := 0; i < reads; i++ {
				resp := e.readToken(t, "r")
				token := resp.Data["access_token"].(string)
				if token == previous {
					t.Fatalf("read %d re-rendered the previous token", i)
				}
				previous = token
				expiresAt, _ := time.Parse(time.RFC3339, resp.Data["expires_at"].(string))
				if !expiresAt.After(e.clock.Now()) {
					t.Fatalf("read %d got an expired token", i)
				}
				// The agent's stagger: 85%, 90% or 95% of the lease.
				fraction := []float64{0.85, 0.90, 0.95}[i%3]
				e.clock.Advance(time.Duration(float64(resp.Secret.TTL) * fraction))
			}
			if srv.count() != reads {
				t.Errorf("server saw %d grants for %d agent reads, want one each", srv.count(), reads)
			}
		})
	}
}

// An agent that first reads a shared token late in its life also gets a new
// token on its next read.
func TestTokenRead_LateReaderRereadsOnce(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	e.setupRole(t, srv, "r", nil)
	e.readToken(t, "r")
	e.clock.Advance(40 * time.Minute) // another reader arrives with 20m left
	late := e.readToken(t, "r")
	if late.Secret.TTL != 20*time.Minute-time.Second {
		t.Fatalf("late reader's lease = %s, want 19m59s", late.Secret.TTL)
	}
	e.clock.Advance(time.Duration(float64(late.Secret.TTL) * 0.85))
	next := e.readToken(t, "r")
	if next.Data["access_token"] == late.Data["access_token"] {
		t.Errorf("the late reader's re-read got the same token with %s left", 3*time.Minute)
	}
}

// 200 concurrent readers of one role make one request.
func TestTokenRead_ConcurrentReadersShareOneGrant(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	release := make(chan struct{})
	srv.respond = func(w http.ResponseWriter, r *http.Request, n int) {
		<-release // hold the grant open so readers pile up on it
		writeJSON(w, http.StatusOK, map[string]interface{}{
			"access_token": fmt.Sprintf("shared-%d", n), "expires_in": 3600, "token_type": "Bearer",
		})
	}
	e.setupRole(t, srv, "r", nil)

	const readers = 200
	var started, done sync.WaitGroup
	tokens := make([]string, readers)
	errs := make([]error, readers)
	started.Add(readers)
	done.Add(readers)
	for i := 0; i < readers; i++ {
		go func() {
			defer done.Done()
			started.Done()
			resp, err := e.request(logical.ReadOperation, "token/r", nil)
			if err != nil || resp.IsError() {
				errs[i] = fmt.Errorf("%v %v", err, respError(resp))
				return
			}
			tokens[i] = resp.Data["access_token"].(string)
		}()
	}
	started.Wait()
	for srv.count() == 0 {
		time.Sleep(time.Millisecond) // wait for the one grant to reach the server
	}
	time.Sleep(50 * time.Millisecond) // let the other readers queue behind it
	close(release)
	done.Wait()

	for i := range readers {
		if errs[i] != nil {
			t.Fatalf("reader %d: %v", i, errs[i])
		}
		if tokens[i] != "shared-1" {
			t.Fatalf("reader %d got %q, want shared-1", i, tokens[i])
		}
	}
	if srv.count() != 1 {
		t.Errorf("server saw %d requests for %d concurrent readers, want 1", srv.count(), readers)
	}
}

// A slow authorization server for one role does not hold up another role.
func TestTokenRead_RolesDoNotWaitOnEachOther(t *testing.T) {
	e := newTestEnv(t)
	slow := newFakeAuthServer(t)
	release := make(chan struct{})
	arrived := make(chan struct{})
	slow.respond = func(w http.ResponseWriter, r *http.Request, n int) {
		close(arrived)
		<-release
		writeJSON(w, http.StatusOK, map[string]interface{}{"access_token": "slow", "expires_in": 3600, "token_type": "Bearer"})
	}
	fast := newFakeAuthServer(t)
	e.mustWrite(t, "environments/slow", map[string]interface{}{"token_url": slow.tokenURL()})
	e.mustWrite(t, "roles/slow", map[string]interface{}{"environment": "slow", "client_id": "a", "client_secret": "b"})
	e.setupRole(t, fast, "fast", nil)

	slowDone := make(chan error, 1)
	go func() {
		_, err := e.request(logical.ReadOperation, "token/slow", nil)
		slowDone <- err
	}()
	<-arrived
	e.readToken(t, "fast") // completes while the slow grant is still open
	select {
	case <-slowDone:
		t.Fatal("the slow read finished before it was released")
	default:
	}
	close(release)
	if err := <-slowDone; err != nil {
		t.Fatalf("slow read: %v", err)
	}
}

// A reader that gives up does not cancel the grant others share.
func TestTokenRead_CancelledReaderLeavesGrantRunning(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	release := make(chan struct{})
	arrived := make(chan struct{})
	srv.respond = func(w http.ResponseWriter, r *http.Request, n int) {
		close(arrived)
		<-release
		writeJSON(w, http.StatusOK, map[string]interface{}{"access_token": "kept", "expires_in": 3600, "token_type": "Bearer"})
	}
	e.setupRole(t, srv, "r", nil)

	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() {
		_, err := e.b.HandleRequest(ctx, &logical.Request{Operation: logical.ReadOperation, Path: "token/r", Storage: e.storage})
		result <- err
	}()
	<-arrived
	cancel()
	if err := <-result; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled reader got %v, want context.Canceled", err)
	}
	close(release)
	// The grant finished and was cached: the next read needs no request.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if src, _ := e.b.cachedSource("r"); src != nil && src.current.Load() != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the abandoned grant was never cached")
		}
		time.Sleep(time.Millisecond)
	}
	if got := e.readToken(t, "r").Data["access_token"]; got != "kept" {
		t.Errorf("token = %v, want the abandoned grant's", got)
	}
	if srv.count() != 1 {
		t.Errorf("server saw %d requests, want 1", srv.count())
	}
}

// Errors from the authorization server reach the reader with its status,
// error and error_description; only failures that may pass are retried.
func TestTokenRead_UpstreamErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		respond  func(w http.ResponseWriter, r *http.Request, n int)
		wantCode int
		wantMsg  string
		// wantRequests is 1, or 3 for failures worth retrying (5xx).
		wantRequests int
	}{
		"invalid_client": {
			respond: func(w http.ResponseWriter, r *http.Request, n int) {
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client", "error_description": "client authentication failed"})
			},
			wantCode: http.StatusBadRequest,
			wantMsg:  "failed: 401 Unauthorized: invalid_client: client authentication failed",
		},
		"invalid_scope": {
			respond: func(w http.ResponseWriter, r *http.Request, n int) {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_scope"})
			},
			wantCode: http.StatusBadRequest,
			wantMsg:  "failed: 400 Bad Request: invalid_scope",
		},
		"HTML error page": {
			respond: func(w http.ResponseWriter, r *http.Request, n int) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusBadGateway)
				fmt.Fprint(w, "<html>bad gateway</html>")
			},
			wantCode:     http.StatusBadGateway,
			wantMsg:      "failed: 502 Bad Gateway with 24 bytes of text/html and no OAuth error code",
			wantRequests: 1 + maxGrantRetries,
		},
		"non-JSON 200": {
			respond: func(w http.ResponseWriter, r *http.Request, n int) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, "surprise")
			},
			wantCode: http.StatusBadGateway,
			wantMsg:  "is not a valid token response: cannot parse json",
		},
		"no access_token": {
			respond: func(w http.ResponseWriter, r *http.Request, n int) {
				writeJSON(w, http.StatusOK, map[string]interface{}{"expires_in": 3600, "token_type": "Bearer"})
			},
			wantCode: http.StatusBadGateway,
			wantMsg:  "is not a valid token response: server response missing access_token",
		},
		"redirect": {
			respond: func(w http.ResponseWriter, r *http.Request, n int) {
				http.Redirect(w, r, "https://elsewhere.example/steal", http.StatusTemporaryRedirect)
			},
			wantCode: http.StatusBadGateway,
			wantMsg:  `failed: 307 Temporary Redirect (a redirect to "https://elsewhere.example/steal"; token endpoints are never followed across redirects)`,
		},
		"expires_in zero": {
			respond: func(w http.ResponseWriter, r *http.Request, n int) {
				writeJSON(w, http.StatusOK, map[string]interface{}{"access_token": "x", "expires_in": 0, "token_type": "Bearer"})
			},
			wantCode: http.StatusBadGateway,
			wantMsg:  "the token response's expires_in is 0: the token is already expired",
		},
		"MAC token": {
			respond: func(w http.ResponseWriter, r *http.Request, n int) {
				writeJSON(w, http.StatusOK, map[string]interface{}{"access_token": "x", "expires_in": 60, "token_type": "mac"})
			},
			wantCode: http.StatusBadGateway,
			wantMsg:  `the authorization server issued a token of type "mac"; only Bearer tokens are supported`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t)
			srv := newFakeAuthServer(t)
			srv.respond = tc.respond
			e.setupRole(t, srv, "r", nil)
			resp, err := e.request(logical.ReadOperation, "token/r", nil)
			if err == nil {
				t.Fatalf("read succeeded: %v", resp.Data)
			}
			var coded logical.HTTPCodedError
			if !errors.As(err, &coded) || coded.Code() != tc.wantCode {
				t.Errorf("error %q: want HTTP status %d", err, tc.wantCode)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error = %q, want it to contain %q", err, tc.wantMsg)
			}
			if want := max(tc.wantRequests, 1); srv.count() != want {
				t.Errorf("server saw %d requests, want %d", srv.count(), want)
			}
		})
	}
}

func TestTokenRead_Timeout(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	unblock := make(chan struct{})
	defer close(unblock)
	srv.respond = func(w http.ResponseWriter, r *http.Request, n int) { <-unblock }
	e.setupRole(t, srv, "r", nil)
	e.mustWrite(t, "environments/fake", map[string]interface{}{"request_timeout": "1s"})

	_, err := e.request(logical.ReadOperation, "token/r", nil)
	var coded logical.HTTPCodedError
	if !errors.As(err, &coded) || coded.Code() != http.StatusGatewayTimeout {
		t.Fatalf("error = %v, want a 504", err)
	}
	if want := fmt.Sprintf("token request to %s timed out after 1s", srv.tokenURL()); err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

func TestTokenRead_ConnectionRefused(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	e.setupRole(t, srv, "r", nil)
	srv.Close()
	_, err := e.request(logical.ReadOperation, "token/r", nil)
	if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), srv.tokenURL()) {
		t.Fatalf("error = %v, want connection refused naming the token URL", err)
	}
}

// Without expires_in the expiry comes from the JWT's exp claim, else from the
// environment's assumed_token_lifetime.
func TestTokenRead_ExpiryWithoutExpiresIn(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	exp := e.clock.Now().Add(15 * time.Minute).Unix()
	jwt := testJWT(fmt.Sprintf(`{"exp":%d,"scope":"api"}`, exp))
	srv.respond = func(w http.ResponseWriter, r *http.Request, n int) {
		token := "opaque"
		if r.PostForm.Get("client_id") == "client-jwt" {
			token = jwt
		}
		writeJSON(w, http.StatusOK, map[string]interface{}{"access_token": token, "token_type": "Bearer"})
	}
	e.setupRole(t, srv, "jwt", nil)
	e.setupRole(t, srv, "opaque", nil)
	e.mustWrite(t, "environments/fake", map[string]interface{}{"assumed_token_lifetime": "2m"})

	if resp := e.readToken(t, "jwt"); resp.Secret.TTL != 15*time.Minute {
		t.Errorf("JWT token lease = %s, want 15m from its exp claim", resp.Secret.TTL)
	}
	if resp := e.readToken(t, "opaque"); resp.Secret.TTL != 2*time.Minute-time.Second {
		t.Errorf("opaque token lease = %s, want the assumed 2m, less issueRounding", resp.Secret.TTL)
	}
}

// When a grant fails while the cached token still has the role's
// min_remaining left, readers get that token and a warning.
func TestTokenRead_FallsBackToCachedTokenWhenServerFails(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	e.setupRole(t, srv, "r", map[string]interface{}{"min_remaining": "5m"})
	first := e.readToken(t, "r")
	srv.respond = func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable"})
	}

	e.clock.Advance(50 * time.Minute) // 10m left: below the 12m threshold, above min_remaining
	resp := e.readToken(t, "r")
	if resp.Data["access_token"] != first.Data["access_token"] {
		t.Fatalf("want the cached token while it has min_remaining left")
	}
	if resp.Secret.TTL != 10*time.Minute-time.Second {
		t.Errorf("fallback lease = %s, want the 9m59s the token has left", resp.Secret.TTL)
	}
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "temporarily_unavailable") {
		t.Errorf("warnings = %q, want one carrying the server's error", resp.Warnings)
	}

	e.clock.Advance(6 * time.Minute) // 4m left: below min_remaining
	if _, err := e.request(logical.ReadOperation, "token/r", nil); err == nil || !strings.Contains(err.Error(), "temporarily_unavailable") {
		t.Errorf("with less than min_remaining left: error = %v, want the server's error", err)
	}
}

// An expired token is never handed out, whatever the reuse settings.
func TestTokenRead_NeverHandsOutExpiredToken(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	e.setupRole(t, srv, "r", map[string]interface{}{"min_remaining": "0s"})
	first := e.readToken(t, "r")
	srv.respond = func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable"})
	}
	start := e.clock.Now()
	for _, left := range []time.Duration{time.Second - time.Nanosecond, 0, -time.Minute} {
		e.clock.Advance(start.Add(time.Hour - left).Sub(e.clock.Now()))
		resp, err := e.request(logical.ReadOperation, "token/r", nil)
		if err == nil && resp.Data["access_token"] == first.Data["access_token"] {
			t.Errorf("with %s left the cached token was handed out", left)
		}
	}
	// 1 grant; then 3 tries (with retries) at 999ms left; none at 0s left,
	// while the role pauses after that failure; 3 tries a minute later.
	if want := 1 + 2*(1+maxGrantRetries); srv.count() != want {
		t.Errorf("server saw %d requests, want %d", srv.count(), want)
	}
}

func TestTokenRead_DeletedRoleStopsServing(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	e.setupRole(t, srv, "r", nil)
	e.readToken(t, "r")
	e.do(t, logical.DeleteOperation, "roles/r", nil)
	resp := e.do(t, logical.ReadOperation, "token/r", nil)
	if resp == nil || !resp.IsError() || resp.Error().Error() != `role "r" does not exist` {
		t.Errorf("after delete: want role does not exist, got %v", respError(resp))
	}
}

// testJWT builds an unsigned JWT with the given claims.
func testJWT(claims string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"RS256","typ":"at+jwt"}`)) + "." +
		enc.EncodeToString([]byte(claims)) + "." + enc.EncodeToString([]byte("signature"))
}

// An agent that reads a shared token part-way through its life gets a lease
// of what is left, rounded down to whole seconds; when it re-reads at 85% of
// that lease, it must get a new token, even for short-lived tokens where the
// rounding is a large part of the lease.
func TestTokenRead_AgentArrivingMidLifeRereadsOnce(t *testing.T) {
	for _, lifetime := range []int{6, 20, 3600} {
		for _, arrival := range []time.Duration{500 * time.Millisecond, 900 * time.Millisecond, time.Second + 999*time.Millisecond} {
			t.Run(fmt.Sprintf("%ds token, reader at %s", lifetime, arrival), func(t *testing.T) {
				e := newTestEnv(t)
				srv := newFakeAuthServer(t)
				srv.expiresIn = lifetime
				// min_remaining 0: the fifth alone decides (the default 1m
				// would cap these short tokens at half their life).
				e.setupRole(t, srv, "r", map[string]interface{}{"min_remaining": "0s"})
				e.readToken(t, "r")
				e.clock.Advance(arrival)
				mid := e.readToken(t, "r")
				if srv.count() != 1 {
					t.Fatalf("the token was not shared at %s", arrival)
				}
				e.clock.Advance(time.Duration(float64(mid.Secret.TTL) * 0.85))
				if next := e.readToken(t, "r"); next.Data["access_token"] == mid.Data["access_token"] {
					t.Errorf("the re-read at 85%% of a %s lease got the same token again", mid.Secret.TTL)
				}
			})
		}
	}
}
