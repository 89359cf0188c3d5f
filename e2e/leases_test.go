//go:build e2e

package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// tokenRelay stands between Vault and the OAuth server as the token
// endpoint, to inject faults into real grants: it holds the server's answer
// back for a while after the token was signed, or answers 503 itself.
type tokenRelay struct {
	*httptest.Server
	upstream string
	holdMs   atomic.Int64
	failing  atomic.Bool
}

func startTokenRelay(t *testing.T, upstream string) *tokenRelay {
	t.Helper()
	r := &tokenRelay{upstream: upstream}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.failing.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"temporarily_unavailable","error_description":"injected by the test relay"}`))
			return
		}
		body, _ := io.ReadAll(req.Body)
		out, _ := http.NewRequest(http.MethodPost, r.upstream, bytes.NewReader(body))
		out.Header = req.Header.Clone()
		resp, err := http.DefaultClient.Do(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		time.Sleep(time.Duration(r.holdMs.Load()) * time.Millisecond) // the token is signed; the answer waits
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(answer)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *tokenRelay) tokenURL() string { return r.URL + "/connect/token" }

// jwtExp reads a JWT's exp claim.
func jwtExp(t *testing.T, token string) time.Time {
	t.Helper()
	exp, err := jwtExpiry(token)
	if err != nil {
		t.Fatal(err)
	}
	return exp
}

// jwtExpiry reads a JWT's exp claim, unverified: the tests compare it with
// what the engine handed out.
func jwtExpiry(token string) (time.Time, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, errors.New("not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, err
	}
	var claims struct {
		Exp int64 `json:"exp"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil || claims.Exp == 0 {
		return time.Time{}, fmt.Errorf("no exp claim: %v", err)
	}
	return time.Unix(claims.Exp, 0), nil
}

// leaseEnd is when Vault will revoke the lease: its expire_time.
func leaseEnd(t *testing.T, client *api.Client, leaseID string) time.Time {
	t.Helper()
	lease, err := client.Sys().Lookup(leaseID)
	if err != nil {
		t.Fatalf("lease lookup: %v", err)
	}
	end, err := time.Parse(time.RFC3339Nano, lease.Data["expire_time"].(string))
	if err != nil {
		t.Fatalf("expire_time %v: %v", lease.Data["expire_time"], err)
	}
	return end
}

// noRetries is a client for the test's own reads: Vault's default client
// retries 5xx answers, which would hide failures.
func noRetries(t *testing.T, v *vaultServer) *api.Client {
	t.Helper()
	c, err := v.Client.Clone()
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(v.Token)
	c.SetMaxRetries(0)
	return c
}

// The engine's promises at their edges, inside a real Vault against
// oidc-provider: a token answer held back after the token was signed still
// gives a lease that ends by the JWT's exp; reads with an impossible
// min_remaining cost one grant and answer 400; short-lived tokens under a
// failing server never give a lease that outlives them.
func TestE2E_LeaseEdges(t *testing.T) {
	t.Parallel()
	held := oauthClient{ID: "held-client", Secret: randomSecret("held-secret"), AuthMethod: "client_secret_post", Scope: "api", Format: "jwt"}
	short := oauthClient{ID: "short-client", Secret: randomSecret("short-secret"), AuthMethod: "client_secret_post", Scope: "api", Format: "jwt"}
	hourly := startOAuthServer(t, 3600, held)
	brief := startOAuthServer(t, 8, short)
	heldRelay, briefRelay := startTokenRelay(t, hourly.TokenEndpoint), startTokenRelay(t, brief.TokenEndpoint)

	v := startVaultDev(t)
	v.registerPlugin(t, "v0.1.0")
	v.enableAritma(t)
	v.write(t, "aritma/environments/held", map[string]interface{}{"token_url": heldRelay.tokenURL()})
	v.write(t, "aritma/environments/brief", map[string]interface{}{"token_url": briefRelay.tokenURL()})
	v.write(t, "aritma/roles/held", map[string]interface{}{"environment": "held", "client_id": held.ID, "client_secret": held.Secret, "scopes": "api"})
	v.write(t, "aritma/roles/short", map[string]interface{}{
		"environment": "brief", "client_id": short.ID, "client_secret": short.Secret, "scopes": "api", "min_remaining": 0,
	})
	client := noRetries(t, v)
	secrets := map[string]string{"held client secret": held.Secret, "short client secret": short.Secret}

	t.Run("answer held back 3s", func(t *testing.T) {
		heldRelay.holdMs.Store(3000)
		secret, err := client.Logical().Read("aritma/token/held")
		if err != nil {
			t.Fatal(err)
		}
		token := secret.Data["access_token"].(string)
		secrets["held access token"] = token
		noteSecret(token)
		end, exp := leaseEnd(t, client, secret.LeaseID), jwtExp(t, token)
		recordFigure(t, "held_answer_lease_margin_ms", exp.Sub(end).Milliseconds())
		if end.After(exp) {
			t.Errorf("the lease ends at %s, after the token's exp %s", end.Format(time.RFC3339Nano), exp.Format(time.RFC3339))
		}
		if secret.LeaseDuration > 3596 {
			t.Errorf("lease_duration = %d after a 3s wait, want at most 3596", secret.LeaseDuration)
		}
	})

	t.Run("impossible min_remaining", func(t *testing.T) {
		// A role of its own, which has not learned what its tokens live.
		heldRelay.holdMs.Store(0)
		v.write(t, "aritma/roles/eager", map[string]interface{}{"environment": "held", "client_id": held.ID, "client_secret": held.Secret, "scopes": "api"})
		before := hourly.stats(t).Grants
		for i := 0; i < 10; i++ {
			_, err := client.Logical().ReadWithData("aritma/token/eager", map[string][]string{"min_remaining": {"2h"}})
			var respErr *api.ResponseError
			if !errors.As(err, &respErr) || respErr.StatusCode != http.StatusBadRequest ||
				!strings.Contains(err.Error(), "less than the 2h0m0s asked for with min_remaining") {
				t.Fatalf("read %d with min_remaining=2h: %v, want 400 naming min_remaining", i, err)
			}
		}
		grants := hourly.stats(t).Grants - before
		recordFigure(t, "impossible_min_remaining_grants_for_10_reads", grants)
		if grants != 1 {
			t.Errorf("10 reads with an impossible min_remaining cost %d grants, want 1 (the first, which learns what tokens live)", grants)
		}
		// The token that grant bought serves ordinary readers.
		if _, err := client.Logical().Read("aritma/token/eager"); err != nil || hourly.stats(t).Grants-before != 1 {
			t.Errorf("an ordinary read after them: %v, %d grants in all", err, hourly.stats(t).Grants-before)
		}
	})

	t.Run("short-lived tokens under a failing server", func(t *testing.T) {
		secret, err := client.Logical().Read("aritma/token/short")
		if err != nil {
			t.Fatal(err)
		}
		briefRelay.failing.Store(true)
		served, fallbacks := 0, 0
		deadline := time.Now().Add(10 * time.Second)
		for ; time.Now().Before(deadline); time.Sleep(150 * time.Millisecond) {
			if secret != nil {
				token := secret.Data["access_token"].(string)
				noteSecret(token)
				served++
				if len(secret.Warnings) > 0 {
					fallbacks++
				}
				if end, exp := leaseEnd(t, client, secret.LeaseID), jwtExp(t, token); end.After(exp) {
					t.Errorf("a lease ends at %s, after its token's exp %s", end.Format(time.RFC3339Nano), exp.Format(time.RFC3339))
				}
			}
			secret, err = client.Logical().Read("aritma/token/short")
			if err != nil {
				secret = nil
			}
		}
		recordFigure(t, "failing_server_short_token_leases_checked", served)
		recordFigure(t, "failing_server_fallback_leases", fallbacks)
		if fallbacks == 0 {
			t.Errorf("no read was served from the cached token while the server failed (%d served)", served)
		}
		if err == nil {
			t.Errorf("reads still succeed 10s into an outage with 8s tokens")
		}
	})

	assertNoSecrets(t, secrets, append(v.logFiles(), hourly.LogPath, brief.LogPath))
}
