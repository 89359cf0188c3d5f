package aritma

import (
	"context"
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
	now      func() time.Time
	logger   hclog.Logger

	flight  singleflight.Group
	current atomic.Pointer[accessToken]
	pause   grantPause
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

// usable reports whether t may be handed out at now to a reader that wants at
// least want of life left.
func (t *accessToken) usable(now time.Time, minRemaining, want time.Duration) bool {
	left := t.expiresAt.Sub(now)
	return left > reuseThreshold(t.lifetime(), minRemaining) && left >= want && left >= time.Second
}

// handout is what a read gets: a token, whether it was issued for this read
// (or the flight this read joined), and warnings for the reader.
type handout struct {
	token    *accessToken
	fresh    bool
	warnings []string
}

// token returns a token with at least want of life left (and the reuse rule
// above), and whether it was issued just now. Readers of one role share one
// grant; readers of other roles never wait on it.
func (s *tokenSource) token(ctx context.Context, want time.Duration) (handout, error) {
	if s.perLease {
		t, err := s.fetch(ctx)
		if err != nil {
			return handout{}, err
		}
		if t.lifetime() < want {
			return handout{}, tooShortLived(t, want)
		}
		s.logger.Debug("per-lease token issued", "role", s.role, "environment", s.environment,
			"lifetime", t.lifetime().Round(time.Second).String(), "scope", t.scope)
		return handout{token: t, fresh: true}, nil
	}
	for attempt := 0; attempt < 2; attempt++ {
		if t := s.current.Load(); t != nil && t.usable(s.now(), s.minRemaining, want) {
			return handout{token: t}, nil
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
		got := res.Val.(handout)
		left := got.token.expiresAt.Sub(s.now())
		if left >= want && left >= time.Second {
			return got, nil
		}
		if got.fresh {
			return handout{}, tooShortLived(got.token, want)
		}
		// The flight served a cached token to a reader that wanted less;
		// go round once more for our own grant.
	}
	return handout{}, fmt.Errorf("no token for role %q after two attempts", s.role)
}

// tooShortLived answers a reader whose min_remaining no new token can meet.
func tooShortLived(t *accessToken, want time.Duration) error {
	return upstreamError(fmt.Sprintf(
		"the authorization server issues tokens that live %s, less than the %s asked for with min_remaining",
		t.lifetime().Round(time.Second), want))
}

// refresh runs inside the shared flight. It checks the cache again first: a
// flight that ended after this reader's own check may have stored a good token.
func (s *tokenSource) refresh(ctx context.Context, want time.Duration) (handout, error) {
	if t := s.current.Load(); t != nil && t.usable(s.now(), s.minRemaining, want) {
		return handout{token: t}, nil
	}
	t, err := s.fetch(ctx)
	if err != nil {
		return handout{}, err
	}
	s.current.Store(t)
	s.logger.Debug("token issued", "role", s.role, "environment", s.environment,
		"lifetime", t.lifetime().Round(time.Second).String(), "scope", t.scope)
	return handout{token: t, fresh: true}, nil
}

// fetch runs a grant unless the role is paused after failures.
func (s *tokenSource) fetch(ctx context.Context) (*accessToken, error) {
	if err := s.pause.check(s.now()); err != nil {
		return nil, err
	}
	t, err := s.grant.fetch(ctx, s.now)
	if ctx.Err() == nil {
		// A per-lease reader that went away is no failure of the server.
		s.pause.record(s.now(), err)
	}
	if err != nil {
		s.logger.Warn("token request failed", "role", s.role, "environment", s.environment, "error", err.Error())
	}
	return t, err
}

// fallback answers a failed grant: with the cached token if it still meets
// the role's min_remaining and the reader's want (and a warning saying so),
// otherwise with the error.
func (s *tokenSource) fallback(want time.Duration, grantErr error) (handout, error) {
	if t := s.current.Load(); t != nil {
		left := t.expiresAt.Sub(s.now())
		need := max(min(s.minRemaining, t.lifetime()/2), want, time.Second)
		if left >= need {
			warning := fmt.Sprintf("a new token could not be fetched (%s); this cached token expires at %s",
				grantErr.Error(), t.expiresAt.UTC().Format(time.RFC3339))
			return handout{token: t, warnings: []string{warning}}, nil
		}
	}
	return handout{}, grantErr
}
