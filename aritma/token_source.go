package aritma

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sync/singleflight"
)

// tokenSource hands out one role's access token: the cached one while it has
// enough life left, otherwise a new one from a grant that all concurrent
// readers of the role share. Its settings never change; a role or
// environment change replaces the whole source.
type tokenSource struct {
	role        string
	environment string
	// sharedLeaseData is the internal data of every lease of a shared token.
	sharedLeaseData map[string]interface{}
	grant           *grantClient
	// sharedHTTPClient is false for a role with a client certificate of its
	// own, whose HTTP client is not the environment's.
	sharedHTTPClient bool
	minRemaining     time.Duration
	// perLease roles get a new token for every read and never cache one.
	perLease bool
	// settings digests what the source's grants depend on; a source rebuilt
	// with the same settings takes over this one's token (adopt).
	settings [sha256.Size]byte
	now      func() time.Time
	logger   hclog.Logger

	flight  singleflight.Group
	current atomic.Pointer[accessToken]
	pause   grantPause
	// deliverableNanos is what learn records (a time.Duration).
	deliverableNanos atomic.Int64
	// stats are the role's counters, shared by its sources over time, and
	// metrics the engine's latency histogram.
	stats   *roleStats
	metrics *engineMetrics
	// onSecretSwitch stores a switch to the next client secret (fetch).
	onSecretSwitch func(context.Context)
}

// grantSettings digests everything a role's grants depend on: the role
// without its signing keys, its environment and the config. A change to the
// keys alone (a rotation, an import) leaves it as it was, since a new key
// does not make issued tokens any less valid.
func grantSettings(role *roleEntry, env *environmentEntry, cfg *configEntry) [sha256.Size]byte {
	r := *role
	r.Keys, r.KeyActivationDelay = nil, 0
	// Nor does the next client secret, until it is the client secret.
	r.NextClientSecret, r.SecretSwitch = "", nil
	// The customer grants' settings: client_credentials tokens do not use them.
	r.RedirectURIs, r.ConsentScopes, r.AuthorizationParams = nil, nil, nil
	r.NoPKCE, r.KeepPassword, r.RefreshKeepAlive = false, false, 0
	raw, _ := json.Marshal(struct {
		Role        roleEntry
		Environment *environmentEntry
		Config      configEntry
	}{r, env, cfg.forGrants()})
	return sha256.Sum256(raw)
}

// adopt takes over a replaced source's token and what it learned of the
// server, when both were built from the same settings. The pause is not
// taken over: whatever changed may be what the failures needed.
func (s *tokenSource) adopt(old *tokenSource) {
	if old.settings != s.settings || old.perLease {
		return
	}
	if t := old.current.Load(); t != nil {
		s.current.Store(t)
	}
	s.deliverableNanos.Store(old.deliverableNanos.Load())
}

// grantPause keeps a failing authorization server from being hammered: after
// a grant fails (retries included), the role makes no new request for a
// while, doubling from minGrantPause to maxGrantPause with each failure in a
// row; readers meanwhile get the last error at once (or the cached token,
// when it still has the role's min_remaining). A success, or any change to
// the role (a new source), ends the pause.
type grantPause struct {
	mu       sync.Mutex
	failures int
	until    time.Time
	lastErr  error
}

const (
	minGrantPause = 2 * time.Second
	maxGrantPause = time.Minute
)

// check returns an error while paused.
func (p *grantPause) check(now time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failures == 0 || !now.Before(p.until) {
		return nil
	}
	return withNote(p.lastErr, fmt.Sprintf(" (%d failed in a row; the next request to the server is allowed at %s)",
		p.failures, p.until.UTC().Format(time.RFC3339)))
}

// state is how many grants failed in a row and until when the pause lasts.
func (p *grantPause) state() (int, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failures, p.until
}

func (p *grantPause) record(now time.Time, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		p.failures, p.lastErr = 0, nil
		return
	}
	p.failures++
	p.lastErr = err
	p.until = now.Add(min(minGrantPause<<min(p.failures-1, 10), maxGrantPause))
}

// reuseThreshold is how much life a cached token must have left to be handed
// out again: the role's min_remaining, but at least a fifth of the token's
// lifetime plus a second, and at most half of it.
//
// The fifth is for Vault Agent, which re-reads a non-renewable secret after
// 85-95% of its lease: since a lease here lasts as long as the token has left
// (rounded down to whole seconds, hence the extra second), every such re-read
// finds less than a fifth of the lifetime left and gets a new token. The
// agent then reads once per token and never renders one that is about to
// die. The half keeps a min_remaining longer than the bank's tokens live from
// turning every read into a grant.
func reuseThreshold(lifetime, minRemaining time.Duration) time.Duration {
	return min(max(minRemaining, lifetime/5+time.Second), lifetime/2)
}

// minRemainingHelp is reuseThreshold in words, for every help text that
// explains min_remaining.
const minRemainingHelp = "How much life a cached token must have left to be handed out again; " +
	"a read after that fetches a new one. Whatever is set, a token is reused while more than a fifth of its " +
	"lifetime plus a second is left (so that Vault Agent, which re-reads at 85-95% of a lease, always gets a new " +
	"token), and at least until half of it has passed (so that each token is shared)."

// reusable reports whether a cached token may serve another reader at now.
func (t *accessToken) reusable(now time.Time, minRemaining time.Duration) bool {
	return t.expiresAt.Sub(now) > reuseThreshold(t.lifetime(), minRemaining)
}

// leaseFor is the lease t goes out with at now: what it has left, rounded
// down to whole seconds, so that the lease never outlives the token. ok is
// false when that is less than a second (Vault would read a zero TTL as the
// mount's default, weeks) or less than the reader's want. The check and the
// lease come from one reading of the clock: read twice, a token that passed
// the check could still leave with a lease of 0.
func leaseFor(t *accessToken, now time.Time, want time.Duration) (ttl time.Duration, ok bool) {
	ttl = t.expiresAt.Sub(now).Truncate(time.Second)
	return ttl, ttl >= max(want, time.Second)
}

// handout is what a read gets: a token, its lease, whether the token was
// issued for this read (or the flight this read joined), and warnings for
// the reader.
type handout struct {
	token    *accessToken
	ttl      time.Duration
	fresh    bool
	warnings []string
}

// token returns a token with at least want of life left (and the reuse rule
// above), with its lease. Readers of one role share one grant; readers of
// other roles never wait on it.
func (s *tokenSource) token(ctx context.Context, want time.Duration) (handout, error) {
	if err := s.checkWant(want); err != nil {
		return handout{}, err
	}
	if s.perLease {
		return s.perLeaseToken(ctx, want)
	}
	for attempt := 0; attempt < 2; attempt++ {
		now := s.now()
		if t := s.current.Load(); t != nil && t.reusable(now, s.minRemaining) {
			if ttl, ok := leaseFor(t, now, want); ok {
				s.stats.cacheHits.Add(1)
				return handout{token: t, ttl: ttl}, nil
			}
		}
		// The grant runs without the reader's cancellation: other readers
		// share it, and its result is worth caching even if this reader left.
		ch := s.flight.DoChan("grant", func() (any, error) {
			return s.refresh(context.WithoutCancel(ctx), want)
		})
		var res singleflight.Result
		select {
		case <-ctx.Done():
			return handout{}, ctx.Err()
		case res = <-ch:
		}
		if res.Err != nil {
			return s.fallback(want, res.Err)
		}
		got := res.Val.(flightResult)
		if ttl, ok := leaseFor(got.token, s.now(), want); ok {
			return handout{token: got.token, ttl: ttl, fresh: got.fresh}, nil
		}
		if got.fresh {
			return handout{}, s.tooShortLived(want)
		}
		// The flight served a cached token to a reader that wanted less;
		// go round once more for our own grant.
	}
	return handout{}, fmt.Errorf("no token for role %q after two attempts", s.role)
}

// flightResult is what the shared grant gives its readers.
type flightResult struct {
	token *accessToken
	fresh bool
}

// perLeaseToken runs a grant for this read alone. A token that is not handed
// out (too short-lived for the reader, or the reader went away) is revoked:
// nobody else would ever revoke it.
func (s *tokenSource) perLeaseToken(ctx context.Context, want time.Duration) (handout, error) {
	res, err := s.fetch(ctx)
	if err != nil {
		return handout{}, err
	}
	s.storeSwitch(context.WithoutCancel(ctx), res)
	t := res.token
	if ctx.Err() != nil {
		s.discard(ctx, t, "the reader went away")
		return handout{}, ctx.Err()
	}
	ttl, ok := leaseFor(t, s.now(), want)
	if !ok {
		s.discard(ctx, t, "too short-lived for the reader")
		return handout{}, s.tooShortLived(want)
	}
	s.logger.Debug("per-lease token issued", "role", s.role, "environment", s.environment,
		"lifetime", t.lifetime().Round(time.Second).String(), "scope", t.scope)
	return handout{token: t, ttl: ttl, fresh: true}, nil
}

// discard revokes a per-lease token that no lease carries.
func (s *tokenSource) discard(ctx context.Context, t *accessToken, why string) {
	if s.grant.revocationURL == "" {
		s.logger.Warn("per-lease token not handed out and not revoked: the environment has no revocation endpoint; it expires on its own",
			"role", s.role, "environment", s.environment, "reason", why, "expires_at", t.expiresAt.UTC().Format(time.RFC3339))
		return
	}
	if err := s.grant.revoke(context.WithoutCancel(ctx), t.value, "access_token", s.now); err != nil {
		s.logger.Warn("per-lease token not handed out, and its revocation failed; it expires on its own",
			"role", s.role, "environment", s.environment, "reason", why, "error", err.Error())
		return
	}
	s.logger.Debug("per-lease token not handed out; revoked", "role", s.role, "environment", s.environment, "reason", why)
}

// checkWant refuses, before any grant, a reader's min_remaining that the
// role's tokens cannot meet: a grant for it would succeed, go unused and be
// repeated on every read, each one spending the bank's grants.
func (s *tokenSource) checkWant(want time.Duration) error {
	if d := s.deliverable(); want > 0 && d > 0 && want > d {
		return s.tooShortLived(want)
	}
	return nil
}

// deliverable is how much life the role's last new token had left when it
// arrived, which is the most a reader can ever be handed; 0 until the role
// has had a token.
func (s *tokenSource) deliverable() time.Duration {
	return time.Duration(s.deliverableNanos.Load())
}

// learn records what a new token could deliver; a role change (a new
// source) forgets it, and each new token replaces it, so a server that
// starts issuing longer-lived tokens is believed at once.
func (s *tokenSource) learn(t *accessToken, receivedAt time.Time) {
	s.deliverableNanos.Store(int64(t.expiresAt.Sub(receivedAt)))
}

// tooShortLived answers a reader whose min_remaining no token of the role
// can meet: 400, the reader's request, which no retry would change.
func (s *tokenSource) tooShortLived(want time.Duration) error {
	if want < time.Second {
		return upstreamError(fmt.Sprintf("role %q: the authorization server's token arrived with less than a second left", s.role))
	}
	return refusalError(fmt.Sprintf(
		"role %q: the authorization server issues tokens that live %s, less than the %s asked for with min_remaining",
		s.role, s.deliverable().Round(time.Second), want))
}

// refresh runs inside the shared flight. It checks the cache again first: a
// flight that ended after this reader's own check may have stored a good token.
func (s *tokenSource) refresh(ctx context.Context, want time.Duration) (flightResult, error) {
	now := s.now()
	if t := s.current.Load(); t != nil && t.reusable(now, s.minRemaining) {
		if _, ok := leaseFor(t, now, want); ok {
			return flightResult{token: t}, nil
		}
	}
	res, err := s.fetch(ctx)
	if err != nil {
		return flightResult{}, err
	}
	s.current.Store(res.token)
	s.storeSwitch(ctx, res)
	return flightResult{token: res.token, fresh: true}, nil
}

// fetch runs a grant unless the role is paused after failures, and learns
// what the new token delivers. A result that switched to the next client
// secret is for the caller to store with storeSwitch, once the token is
// where the role's next source can take it over.
func (s *tokenSource) fetch(ctx context.Context) (grantResult, error) {
	if err := s.pause.check(s.now()); err != nil {
		return grantResult{}, err
	}
	failedBefore, _ := s.pause.state()
	sentAt := s.now()
	res, err := s.grant.fetch(ctx, s.now)
	receivedAt := s.now()
	latency := receivedAt.Sub(sentAt)
	if ctx.Err() == nil {
		// A per-lease reader that went away is no failure of the server.
		s.pause.record(receivedAt, err)
	}
	s.metrics.observeGrant(s.environment, err, latency)
	if res.switched {
		s.stats.secretSwitches.Add(1)
		s.stats.secretSwitchedAt.Store(receivedAt.UnixNano())
		s.logger.Warn("client secret switched: the bank refused client_secret (invalid_client) and took next_client_secret, "+
			"which is now the role's client_secret", "role", s.role, "environment", s.environment)
	}
	if err != nil {
		s.stats.recordFailure(receivedAt, err)
		failures, until := s.pause.state()
		s.logger.Warn("token request failed", "role", s.role, "environment", s.environment,
			"outcome", classOf(err), "latency", latency.Round(time.Millisecond).String(), "attempts", res.attempts,
			"failures_in_a_row", failures, "paused_until", until.UTC().Format(time.RFC3339), "error", err.Error())
		return res, err
	}
	t := res.token
	s.stats.recordGrant(receivedAt, latency)
	logArgs := []interface{}{"role", s.role, "environment", s.environment, "outcome", "granted",
		"latency", latency.Round(time.Millisecond).String(), "attempts", res.attempts, "lifetime", t.lifetime().Round(time.Second).String()}
	if failedBefore > 0 {
		logArgs = append(logArgs, "pause_ended_after_failures", failedBefore)
	}
	s.logger.Info("token issued", logArgs...)
	s.learn(t, receivedAt)
	return res, nil
}

// storeSwitch has the role's owner store a switch to the next client secret.
func (s *tokenSource) storeSwitch(ctx context.Context, res grantResult) {
	if res.switched && s.onSecretSwitch != nil {
		s.onSecretSwitch(ctx)
	}
}

// classOf is a grant error's failure class.
func classOf(err error) string {
	var g *grantError
	if errors.As(err, &g) {
		return g.class
	}
	return failServer
}

// fallback answers a failed grant: with the cached token if it still meets
// the role's min_remaining (at most half its lifetime) and the reader's want
// (and a warning saying so), otherwise with the error.
func (s *tokenSource) fallback(want time.Duration, grantErr error) (handout, error) {
	if t := s.current.Load(); t != nil {
		now := s.now()
		ttl, ok := leaseFor(t, now, want)
		if ok && t.expiresAt.Sub(now) >= min(s.minRemaining, t.lifetime()/2) {
			warning := fmt.Sprintf("a new token could not be fetched (%s); this cached token expires at %s",
				grantErr.Error(), t.expiresAt.UTC().Format(time.RFC3339))
			return handout{token: t, ttl: ttl, warnings: []string{warning}}, nil
		}
	}
	return handout{}, grantErr
}
