//go:build e2e && reliability

package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// Under a bounded load on a real Vault and the real OAuth server, with
// tokens short-lived enough to rotate many times during the run: no read
// fails (readers do not retry), no read gets a token past its exp claim,
// none is served from the cache after a failed grant, and the server sees
// exactly one grant per role per rotation.
func TestReliability_Load(t *testing.T) {
	const (
		readers  = 64
		lifetime = 10 // seconds: rotations every 8 s under load
	)
	duration := 60 * time.Second
	if s, err := strconv.Atoi(os.Getenv("ARITMA_LOAD_SECONDS")); err == nil && s > 0 {
		duration = time.Duration(s) * time.Second
	}
	roles := []string{"load-a", "load-b"}
	var clients []oauthClient
	for _, role := range roles {
		clients = append(clients, oauthClient{ID: role, Secret: randomSecret(role + "-secret"), AuthMethod: "client_secret_post", Scope: "api", Format: "jwt"})
	}
	oauth := startOAuthServer(t, lifetime, clients...)
	v := startVaultDev(t)
	v.setupEngine(t, oauth, "bank", "client_secret_post")
	for _, c := range clients {
		v.write(t, "aritma/roles/"+c.ID, map[string]interface{}{"environment": "bank", "client_id": c.ID, "client_secret": c.Secret, "scopes": "api"})
	}

	var reads, failures, expired, fallbacks atomic.Int64
	var mu sync.Mutex
	tokens := map[string]map[string]bool{} // role -> tokens seen
	for _, role := range roles {
		tokens[role] = map[string]bool{}
	}
	var firstErr atomic.Value

	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var wg sync.WaitGroup
	for i := range readers {
		client, err := v.Client.Clone()
		if err != nil {
			t.Fatal(err)
		}
		client.SetToken(v.Token)
		// No retries: a failed read counts, rather than being hidden by the
		// client's retry of 5xx answers.
		client.SetMaxRetries(0)
		role := roles[i%len(roles)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				secret, err := client.Logical().ReadWithContext(ctx, "aritma/token/"+role)
				received := time.Now()
				if ctx.Err() != nil {
					return // the run ended mid-request
				}
				reads.Add(1)
				if err != nil || secret == nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%v", err))
					continue
				}
				if !checkLeasedToken(secret, received) {
					expired.Add(1)
				}
				if len(secret.Warnings) > 0 { // a grant failed; the cached token served
					fallbacks.Add(1)
				}
				mu.Lock()
				tokens[role][secret.Data["access_token"].(string)] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()

	stats := oauth.stats(t)
	rotations := 0
	for _, role := range roles {
		rotations += len(tokens[role])
		if got := stats.ByClient[role]; got != len(tokens[role]) {
			t.Errorf("role %s: %d grants at the server for %d tokens handed out: want one grant per rotation", role, got, len(tokens[role]))
		}
	}
	t.Logf("%d readers for %s, %ds tokens: %d reads (%.0f/s)", readers, duration, lifetime, reads.Load(), float64(reads.Load())/duration.Seconds())
	recordFigure(t, "load_readers", readers)
	recordFigure(t, "load_seconds", int(duration.Seconds()))
	recordFigure(t, "load_reads", reads.Load())
	recordFigure(t, "load_errors", failures.Load())
	recordFigure(t, "load_fallbacks", fallbacks.Load())
	recordFigure(t, "load_expired_tokens", expired.Load())
	recordFigure(t, "load_grants", stats.Grants)
	recordFigure(t, "load_rotations", rotations)
	if failures.Load() != 0 {
		t.Errorf("%d of %d reads failed; first: %v", failures.Load(), reads.Load(), firstErr.Load())
	}
	if expired.Load() != 0 {
		t.Errorf("%d reads got an expired token (or a lease under a second)", expired.Load())
	}
	if minRotations := int(duration.Seconds()) / lifetime * len(roles); rotations < minRotations {
		t.Errorf("%d rotations in %s, want at least %d: tokens were not replaced under load", rotations, duration, minRotations)
	}
	if fallbacks.Load() != 0 {
		t.Errorf("%d reads were served the cached token after a failed grant; the server should not fail here", fallbacks.Load())
	}
	secrets := map[string]string{"client secret a": clients[0].Secret, "client secret b": clients[1].Secret}
	for role, seen := range tokens {
		i := 0
		for token := range seen {
			i++
			secrets[fmt.Sprintf("access token %d of %s", i, role)] = token
		}
	}
	assertNoSecrets(t, secrets, append(v.logFiles(), oauth.LogPath))
}

// checkLeasedToken: the token is alive when the reader received it, judged
// by a JWT's own exp claim (the OAuth server's word, not the engine's
// expires_at), with a lease of at least a second, not renewable. (That the
// lease ends by exp is checked against Vault's lease records in
// TestE2E_LeaseEdges: the reader's clock cannot tell.)
func checkLeasedToken(secret *api.Secret, received time.Time) bool {
	token, _ := secret.Data["access_token"].(string)
	exp, err := jwtExpiry(token)
	if err != nil {
		// An opaque token carries no exp; the engine's expires_at (whole
		// seconds, rounded down) is all the reader has.
		exp, err = time.Parse(time.RFC3339, fmt.Sprint(secret.Data["expires_at"]))
	}
	return err == nil && exp.After(received) && secret.LeaseDuration >= 1 && !secret.Renewable
}
