package aritma

import (
	"testing"
	"time"
)

func TestReuseThreshold(t *testing.T) {
	for name, tc := range map[string]struct {
		lifetime, minRemaining, want time.Duration
	}{
		"1h token, default 1m: a fifth and a second": {lifetime: time.Hour, minRemaining: time.Minute, want: 12*time.Minute + time.Second},
		"1h token, 30m":                     {lifetime: time.Hour, minRemaining: 30 * time.Minute, want: 30 * time.Minute},
		"1h token, 0":                       {lifetime: time.Hour, minRemaining: 0, want: 12*time.Minute + time.Second},
		"1h token, 2h: capped at half":      {lifetime: time.Hour, minRemaining: 2 * time.Hour, want: 30 * time.Minute},
		"20s token, 1m: capped at half":     {lifetime: 20 * time.Second, minRemaining: time.Minute, want: 10 * time.Second},
		"6s token, 0: a fifth and a second": {lifetime: 6 * time.Second, minRemaining: 0, want: 2200 * time.Millisecond},
		"2s token: half":                    {lifetime: 2 * time.Second, minRemaining: 0, want: time.Second},
		"5m token, 1m":                      {lifetime: 5 * time.Minute, minRemaining: time.Minute, want: time.Minute + time.Second},
		"24h token, 1m: a fifth":            {lifetime: 24 * time.Hour, minRemaining: time.Minute, want: 288*time.Minute + time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			if got := reuseThreshold(tc.lifetime, tc.minRemaining); got != tc.want {
				t.Errorf("reuseThreshold(%s, %s) = %s, want %s", tc.lifetime, tc.minRemaining, got, tc.want)
			}
		})
	}
}

// A cached token serves a reader when it is reusable and its lease meets the
// reader's want.
func TestAccessTokenReusableWithLease(t *testing.T) {
	issued := time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC)
	tok := &accessToken{issuedAt: issued, expiresAt: issued.Add(time.Hour)}
	for name, tc := range map[string]struct {
		elapsed, minRemaining, want time.Duration
		usable                      bool
	}{
		"fresh":                        {elapsed: 0, minRemaining: time.Minute, usable: true},
		"just above threshold":         {elapsed: 48*time.Minute - time.Second - time.Nanosecond, minRemaining: time.Minute, usable: true},
		"at threshold":                 {elapsed: 48*time.Minute - time.Second, minRemaining: time.Minute, usable: false},
		"reader wants more than left":  {elapsed: 30 * time.Minute, minRemaining: time.Minute, want: 31 * time.Minute, usable: false},
		"reader wants exactly left":    {elapsed: 30 * time.Minute, minRemaining: time.Minute, want: 30 * time.Minute, usable: true},
		"expired":                      {elapsed: 2 * time.Hour, minRemaining: 0, usable: false},
		"role min_remaining above 1/5": {elapsed: 40 * time.Minute, minRemaining: 25 * time.Minute, usable: false},
	} {
		t.Run(name, func(t *testing.T) {
			now := issued.Add(tc.elapsed)
			_, leaseOK := leaseFor(tok, now, tc.want)
			if got := tok.reusable(now, tc.minRemaining) && leaseOK; got != tc.usable {
				t.Errorf("usable after %s (min_remaining %s, want %s) = %v, want %v", tc.elapsed, tc.minRemaining, tc.want, got, tc.usable)
			}
		})
	}
}

// A lease is what the token has left at one instant, rounded down, and never
// under a second or under what the reader wants.
func TestLeaseFor(t *testing.T) {
	issued := time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC)
	tok := &accessToken{issuedAt: issued, expiresAt: issued.Add(time.Hour)}
	for name, tc := range map[string]struct {
		left, want time.Duration
		ttl        time.Duration
		ok         bool
	}{
		"whole hour":              {left: time.Hour, ttl: time.Hour, ok: true},
		"rounded down":            {left: 10*time.Second + 999*time.Millisecond, ttl: 10 * time.Second, ok: true},
		"exactly a second":        {left: time.Second, ttl: time.Second, ok: true},
		"just under a second":     {left: time.Second - time.Nanosecond, ttl: 0, ok: false},
		"1.2s left is a 1s lease": {left: 1200 * time.Millisecond, ttl: time.Second, ok: true},
		"expired":                 {left: -time.Second, ttl: -time.Second, ok: false},
		"meets want":              {left: 20*time.Minute + 500*time.Millisecond, want: 20 * time.Minute, ttl: 20 * time.Minute, ok: true},
		"short of want":           {left: 20*time.Minute - time.Millisecond, want: 20 * time.Minute, ttl: 19*time.Minute + 59*time.Second, ok: false},
	} {
		t.Run(name, func(t *testing.T) {
			ttl, ok := leaseFor(tok, tok.expiresAt.Add(-tc.left), tc.want)
			if ttl != tc.ttl || ok != tc.ok {
				t.Errorf("leaseFor with %s left, want %s = %s, %v; want %s, %v", tc.left, tc.want, ttl, ok, tc.ttl, tc.ok)
			}
		})
	}
}
