package aritma

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// roleStats are one role's counters on this node, kept across rebuilds of
// its token source. The read path only adds to atomics: no lock.
type roleStats struct {
	since          time.Time
	grants         atomic.Int64
	cacheHits      atomic.Int64
	leases         atomic.Int64    // token reads answered with a lease
	failures       [4]atomic.Int64 // by failureClasses
	lastGrantNanos atomic.Int64    // latency of the last successful grant
	lastGrantAt    atomic.Int64    // UnixNano
	lastFailure    atomic.Pointer[grantFailure]
	// environment is the one the role's last source or credential request
	// used; nil until the role is used on this node.
	environment atomic.Pointer[string]
	// secretSwitches count switches to the next client secret on a refusal.
	secretSwitches   atomic.Int64
	secretSwitchedAt atomic.Int64 // UnixNano

	// Customer credentials: renewals by outcome, and the credentials this
	// node has seen needing the customer's consent (not on the read path).
	credRenewals [len(credentialOutcomes)]atomic.Int64
	credMu       sync.Mutex
	needsConsent map[string]struct{}
}

// credentialOutcomes are the outcomes of customer credential renewals as
// counted: granted, the customer's consent needed (invalid_grant), and the
// failure classes.
var credentialOutcomes = [...]string{"granted", credNeedsConsent, failRefused, failServer, failNetwork, failTimeout}

// usedWith notes the environment a role is used with on this node.
func (st *roleStats) usedWith(environment string) {
	if p := st.environment.Load(); p == nil || *p != environment {
		st.environment.Store(&environment)
	}
}

// recordRenewal counts a customer credential's renewal by its outcome.
func (st *roleStats) recordRenewal(outcome string) {
	for i, o := range credentialOutcomes {
		if o == outcome {
			st.credRenewals[i].Add(1)
		}
	}
}

// noteCredential notes whether a credential needs its customer's consent
// (gone: it does not, since it does not exist).
func (st *roleStats) noteCredential(name string, needsConsent bool) {
	st.credMu.Lock()
	defer st.credMu.Unlock()
	if needsConsent {
		if st.needsConsent == nil {
			st.needsConsent = make(map[string]struct{})
		}
		st.needsConsent[name] = struct{}{}
	} else {
		delete(st.needsConsent, name)
	}
}

// credentialsNeedingConsent is how many of the role's credentials this
// node last saw needing consent.
func (st *roleStats) credentialsNeedingConsent() int {
	st.credMu.Lock()
	defer st.credMu.Unlock()
	return len(st.needsConsent)
}

// grantFailure is the last failure of a role's grants as its status shows
// it: the class, the server's status, error and error_description (as the
// reader's message has them, scrubbed), never a secret.
type grantFailure struct {
	at          time.Time
	class       string
	status      int
	code        string
	description string
	message     string
}

// statsFor returns the role's counters, made on first use.
func (b *backend) statsFor(role string) *roleStats {
	b.statsMu.Lock()
	defer b.statsMu.Unlock()
	st := b.stats[role]
	if st == nil {
		st = &roleStats{since: b.now().UTC()}
		b.stats[role] = st
	}
	return st
}

// forgetStats drops a deleted role's counters.
func (b *backend) forgetStats(role string) {
	b.statsMu.Lock()
	defer b.statsMu.Unlock()
	delete(b.stats, role)
}

// recordGrant counts a grant that succeeded after latency.
func (st *roleStats) recordGrant(at time.Time, latency time.Duration) {
	st.grants.Add(1)
	st.lastGrantNanos.Store(int64(latency))
	st.lastGrantAt.Store(at.UnixNano())
}

// recordFailure counts a failed grant by its class and keeps it as the
// last error.
func (st *roleStats) recordFailure(at time.Time, err error) {
	f := &grantFailure{at: at.UTC(), class: failServer, message: err.Error()}
	var g *grantError
	if errors.As(err, &g) {
		f.class, f.status, f.code, f.description = g.class, g.status, g.code, g.description
	}
	for i, class := range failureClasses {
		if class == f.class {
			st.failures[i].Add(1)
		}
	}
	st.lastFailure.Store(f)
}

// renewals is the customer credential renewals by outcome, nil for a role
// without customer credentials on this node.
func (st *roleStats) renewals() map[string]interface{} {
	out := map[string]interface{}{}
	used := st.credentialsNeedingConsent() > 0
	for i, o := range credentialOutcomes {
		n := st.credRenewals[i].Load()
		out[o], used = n, used || n > 0
	}
	if !used {
		return nil
	}
	return out
}

// nodeName says which node's counters a status read shows.
var nodeName = sync.OnceValue(func() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown host"
	}
	return fmt.Sprintf("%s (plugin process %d)", host, os.Getpid())
})

// status is the role's status data: its counters, the current token's
// expiry and when it will be replaced, the failure pause, and for
// private_key_jwt the current and next key (role nil: without them). Never
// a token or a secret.
func (st *roleStats) status(src *tokenSource, role *roleEntry, now time.Time) map[string]interface{} {
	failures := map[string]interface{}{}
	for i, class := range failureClasses {
		failures[class] = st.failures[i].Load()
	}
	data := map[string]interface{}{
		"since":           st.since.Format(time.RFC3339),
		"node":            nodeName(),
		"grants":          st.grants.Load(),
		"cache_hits":      st.cacheHits.Load(),
		"leases_issued":   st.leases.Load(),
		"failures":        failures,
		"secret_switches": st.secretSwitches.Load(),
	}
	if at := st.secretSwitchedAt.Load(); at != 0 {
		data["client_secret_switched_at"] = time.Unix(0, at).UTC().Format(time.RFC3339)
	}
	if renewals := st.renewals(); renewals != nil {
		data["credential_renewals"] = renewals
		data["credentials_needing_consent"] = st.credentialsNeedingConsent()
	}
	if at := st.lastGrantAt.Load(); at != 0 {
		data["last_grant_at"] = time.Unix(0, at).UTC().Format(time.RFC3339)
		data["last_grant_latency_ms"] = float64(st.lastGrantNanos.Load()) / float64(time.Millisecond)
	}
	if f := st.lastFailure.Load(); f != nil {
		data["last_error"] = map[string]interface{}{
			"at": f.at.Format(time.RFC3339), "class": f.class, "status": f.status,
			"error": f.code, "error_description": f.description, "message": f.message,
		}
	}
	if src != nil {
		if t := src.current.Load(); t != nil {
			data["token_expires_at"] = t.expiresAt.UTC().Format(time.RFC3339)
			// Handed out while it has the reuse threshold left; replaced by
			// the first read after that.
			data["token_replaced_after"] = t.expiresAt.Add(-reuseThreshold(t.lifetime(), src.minRemaining)).UTC().Format(time.RFC3339)
		}
		failures, until := src.pause.state()
		pause := map[string]interface{}{"failures_in_a_row": failures, "paused": failures > 0 && now.Before(until)}
		if failures > 0 {
			pause["until"] = until.UTC().Format(time.RFC3339)
		}
		data["pause"] = pause
	}
	if role != nil && len(role.Keys) > 0 {
		current := signingKeyAt(role.Keys, now)
		for i, k := range role.Keys {
			switch {
			case i == current:
				data["current_key"] = k.ID
			case keyState(role.Keys, i, current, now) == "pending":
				data["next_key"] = k.ID
				data["next_key_activates_at"] = k.activation().UTC().Format(time.RFC3339)
			}
		}
	}
	return data
}
