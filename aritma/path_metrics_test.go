package aritma

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/aritma/vault-plugin-secrets-aritma/internal/testservers"
)

// scrape reads metrics as Prometheus would, and parses them with its text
// parser; it returns the families and the body.
func (e *testEnv) scrape(t *testing.T) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	resp := e.do(t, logical.ReadOperation, "metrics", nil)
	if resp.Data[logical.HTTPStatusCode] != http.StatusOK ||
		!strings.HasPrefix(resp.Data[logical.HTTPContentType].(string), "text/plain; version=0.0.4") {
		t.Fatalf("metrics answered %v %v", resp.Data[logical.HTTPStatusCode], resp.Data[logical.HTTPContentType])
	}
	body := string(resp.Data[logical.HTTPRawBody].([]byte))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("the metrics do not parse: %v\n%s", err, body)
	}
	return families, body
}

// metricValue is the value of the series of family with exactly labels
// (name=value pairs); ok is false when there is none.
func metricValue(families map[string]*dto.MetricFamily, family string, labels ...string) (float64, bool) {
	f := families[family]
	if f == nil {
		return 0, false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			match = match && want[l.GetName()] == l.GetValue()
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// Every counter reaches the metrics, with the labels they are named for:
// grants by outcome, the latency histogram, cache hits, leases, the token's
// seconds left and the pause. No token or secret does.
func TestMetrics_CountGrantsHitsLeasesAndFailures(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	e.setupRole(t, srv, "r", nil)
	token := e.readToken(t, "r").Data["access_token"].(string)
	e.readToken(t, "r")
	e.readToken(t, "r")
	e.clock.Advance(10 * time.Minute)

	families, body := e.scrape(t)
	role := []string{"role", "r", "environment", "fake"}
	for _, c := range []struct {
		family string
		labels []string
		want   float64
	}{
		{"aritma_grants_total", append(role, "outcome", "granted"), 1},
		{"aritma_grants_total", append(role, "outcome", failRefused), 0},
		{"aritma_cache_hits_total", role, 2},
		{"aritma_leases_issued_total", role, 3},
		{"aritma_token_seconds_left", role, 3600 - 600 - 1}, // a token's life counts from a second before its request
		{"aritma_grant_paused", role, 0},
		{"aritma_grant_duration_seconds", []string{"environment", "fake", "outcome", "granted"}, 1},
		{"aritma_metrics_roles_aggregated", nil, 0},
	} {
		if got, ok := metricValue(families, c.family, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.family, c.labels, got, ok, c.want)
		}
	}

	// A refusal: counted as refused, and the role paused.
	srv.respond = func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client", "error_description": "secret " + r.PostForm.Get("client_secret")})
	}
	e.clock.Advance(time.Hour)
	if _, err := e.request(logical.ReadOperation, "token/r", nil); err == nil {
		t.Fatal("the refused grant succeeded")
	}
	families, body2 := e.scrape(t)
	for family, want := range map[string]float64{"aritma_grant_paused": 1, "aritma_grant_failures_in_a_row": 1} {
		if got, _ := metricValue(families, family, role...); got != want {
			t.Errorf("after a refusal %s = %v, want %v", family, got, want)
		}
	}
	if got, _ := metricValue(families, "aritma_grants_total", append(role, "outcome", failRefused)...); got != 1 {
		t.Errorf("refused grants = %v, want 1", got)
	}
	if got, _ := metricValue(families, "aritma_grant_duration_seconds", "environment", "fake", "outcome", "failed"); got != 1 {
		t.Errorf("failed grants in the histogram = %v, want 1", got)
	}
	for _, secret := range []string{token, testClientSecret} {
		for _, form := range testservers.SecretForms(secret) {
			if strings.Contains(body+body2, form) {
				t.Errorf("the metrics show a token or secret")
			}
		}
	}
}

// Past metrics_role_limit, roles are summed per environment under
// role="_other": the scrape's size does not grow with the role count.
func TestMetrics_RoleLimitSumsTheRest(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	for i := range 5 {
		e.setupRole(t, srv, fmt.Sprintf("r%d", i), nil)
		for range i + 1 {
			e.readToken(t, fmt.Sprintf("r%d", i))
		}
	}
	e.mustWrite(t, "config", map[string]interface{}{"metrics_role_limit": 2})
	families, _ := e.scrape(t)
	if got := len(families["aritma_cache_hits_total"].GetMetric()); got != 3 {
		t.Errorf("%d cache-hit series, want 3 (r0, r1, _other)", got)
	}
	other := []string{"role", otherRoles, "environment", "fake"}
	// r2, r3 and r4 were read 3, 4 and 5 times: one grant and the rest hits each.
	if got, _ := metricValue(families, "aritma_cache_hits_total", other...); got != 2+3+4 {
		t.Errorf("_other's cache hits = %v, want 9", got)
	}
	if got, _ := metricValue(families, "aritma_grants_total", append(other, "outcome", "granted")...); got != 3 {
		t.Errorf("_other's grants = %v, want 3", got)
	}
	if got, _ := metricValue(families, "aritma_cache_hits_total", "role", "r1", "environment", "fake"); got != 1 {
		t.Errorf("r1's cache hits = %v, want 1", got)
	}
	if got, _ := metricValue(families, "aritma_metrics_roles_aggregated"); got != 3 {
		t.Errorf("roles aggregated = %v, want 3", got)
	}
	// Changing the limit is no change to how grants run: the cached
	// sources stay, so no read goes back to storage for them.
	e.readToken(t, "r0")
	src, _ := e.b.cachedSource("r0")
	e.mustWrite(t, "config", map[string]interface{}{"metrics_role_limit": 3})
	if again, _ := e.b.cachedSource("r0"); again == nil || again != src {
		t.Errorf("a metrics_role_limit change dropped the role's cached source")
	}
	before := srv.count()
	e.readToken(t, "r0")
	if srv.count() != before {
		t.Errorf("a metrics_role_limit change dropped the cached token")
	}

	resp := e.write(t, "config", map[string]interface{}{"metrics_role_limit": -1})
	if resp == nil || !resp.IsError() || !strings.Contains(resp.Error().Error(), "metrics_role_limit must be between 0 and 100000, got -1") {
		t.Errorf("a negative limit: %v", respError(resp))
	}
}

// Customer credentials: renewals by outcome, and the credentials that
// need consent again, back to 0 when the credential is deleted.
func TestMetrics_CredentialRenewalsAndNeedsConsent(t *testing.T) {
	e := newTestEnv(t)
	bank := newFakeBank(t)
	e.setupConsentRole(t, bank, nil)
	e.consent(t, bank, "kari")
	e.consent(t, bank, "ola")
	e.clock.Advance(time.Hour)
	if _, err := e.readCredential(t, "kari"); err != nil {
		t.Fatal(err)
	}
	bank.refuseWith = "invalid_grant"
	if _, err := e.readCredential(t, "ola"); err == nil {
		t.Fatal("a refused refresh succeeded")
	}
	families, _ := e.scrape(t)
	role := []string{"role", "acct", "environment", "bank"}
	for outcome, want := range map[string]float64{"granted": 1, credNeedsConsent: 1, failServer: 0} {
		if got, ok := metricValue(families, "aritma_credential_renewals_total", append(role, "outcome", outcome)...); !ok || got != want {
			t.Errorf("renewals %s = %v (found %v), want %v", outcome, got, ok, want)
		}
	}
	if got, _ := metricValue(families, "aritma_credentials_needing_consent", role...); got != 1 {
		t.Errorf("credentials needing consent = %v, want 1", got)
	}
	if _, ok := metricValue(families, "aritma_grants_total", append(role, "outcome", "granted")...); ok {
		t.Errorf("a customer-only role has grant series")
	}
	e.do(t, logical.DeleteOperation, "creds/acct/ola", nil)
	families, _ = e.scrape(t)
	if got, _ := metricValue(families, "aritma_credentials_needing_consent", role...); got != 0 {
		t.Errorf("after deleting the credential, %v need consent", got)
	}
}

// After a restart, the keep-alive job's round tells the metrics which of a
// keep-alive role's credentials need consent, before any read.
func TestMetrics_NeedsConsentKnownAfterARestart(t *testing.T) {
	e := newTestEnv(t)
	bank := newFakeBank(t)
	e.setupConsentRole(t, bank, map[string]interface{}{"refresh_keep_alive": "1h"})
	e.consent(t, bank, "kari")
	cred := e.storedCredential(t, "kari")
	cred.Status = credNeedsConsent
	if err := e.b.putCredential(context.Background(), e.storage, "acct", "kari", cred); err != nil {
		t.Fatal(err)
	}

	restarted := newTestEnv(t)
	restarted.storage = e.storage
	families, _ := restarted.scrape(t)
	if _, ok := metricValue(families, "aritma_credentials_needing_consent", "role", "acct", "environment", "bank"); ok {
		t.Fatalf("a fresh node knows of credentials before reading any")
	}
	if err := restarted.b.periodic(context.Background(), &logical.Request{Storage: e.storage}); err != nil {
		t.Fatal(err)
	}
	families, _ = restarted.scrape(t)
	if got, _ := metricValue(families, "aritma_credentials_needing_consent", "role", "acct", "environment", "bank"); got != 1 {
		t.Errorf("after the keep-alive round, %v credentials need consent, want 1", got)
	}
}
