package testservers

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A real Prometheus scrapes a metrics endpoint the way it will scrape
// Vault's /v1/sys/metrics: with the token in a file. The series of the
// target with the right token reach a query; the target with the wrong one
// is down with the endpoint's 403.
func TestPrometheus_ScrapesWithTheBearerTokenInItsFile(t *testing.T) {
	bin := os.Getenv("ARITMA_PROMETHEUS")
	if bin == "" {
		t.Skip("ARITMA_PROMETHEUS is not set: make unit sets it to Debian's prometheus (scripts/install-prometheus.sh)")
	}
	token := randomSecret("metrics-token")
	metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/sys/metrics" || r.URL.Query().Get("format") != "prometheus" {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, `{"errors":["permission denied"]}`, http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, `# HELP aritma_test_tokens_issued_total Tokens issued.
# TYPE aritma_test_tokens_issued_total counter
aritma_test_tokens_issued_total{role="app"} 42
# TYPE aritma_test_cached_tokens gauge
aritma_test_cached_tokens 3
`)
	}))
	t.Cleanup(metrics.Close)

	dir := t.TempDir()
	target := func(job, token string) PrometheusTarget {
		file := filepath.Join(dir, job+".token")
		// With a newline, as Vault Agent's sink writes it.
		if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return PrometheusTarget{
			Job:             job,
			Address:         metrics.Listener.Addr().String(),
			MetricsPath:     "/v1/sys/metrics",
			Params:          url.Values{"format": {"prometheus"}},
			BearerTokenFile: file,
		}
	}
	right, wrong := target("right-token", token), target("wrong-token", randomSecret("other-token"))
	p, err := StartPrometheus(bin, dir, nil, right, wrong)
	if p != nil {
		// Cleanups run last first: the server stops, then its log is read.
		t.Cleanup(func() {
			raw, _ := os.ReadFile(p.LogPath())
			for _, form := range SecretForms(token) {
				if strings.Contains(string(raw), form) {
					t.Error("Prometheus's log holds the scrape token (not shown)")
					break
				}
			}
			if t.Failed() {
				t.Log(Tail(p.LogPath(), 40))
			}
		})
		t.Cleanup(p.Stop)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p.URL(), "http://127.0.0.1:") {
		t.Errorf("Prometheus listens at %s, want http://127.0.0.1:<port>", p.URL())
	}

	samples, err := p.WaitForQuery(15*time.Second, `aritma_test_tokens_issued_total{job="right-token"}`, func(s []Sample) bool {
		return len(s) == 1 && s[0].Value == 42
	})
	if err != nil {
		t.Fatalf("the served counter (42) never reached a query: %v", err)
	}
	if got := samples[0].Labels; got["role"] != "app" || got["instance"] != right.Address {
		t.Errorf("the counter's labels are %v, want role=app and instance=%s", got, right.Address)
	}
	if s, err := p.Query(`aritma_test_tokens_issued_total{job="wrong-token"}`); err != nil || len(s) != 0 {
		t.Errorf("the wrong token's target: series %v (error %v), want none", s, err)
	}

	var down TargetHealth
	if err := WaitFor(10*time.Second, "the wrong token's target to be down", func() bool {
		targets, err := p.Targets()
		for _, target := range targets {
			if err == nil && target.Job == "wrong-token" {
				down = target
			}
		}
		return down.Health == "down"
	}); err != nil {
		t.Fatalf("%v; it is %+v", err, down)
	}
	if !strings.Contains(down.LastError, "403") {
		t.Errorf("the wrong token's target's lastError is %q, want the endpoint's 403", down.LastError)
	}
	if want := "http://" + wrong.Address + "/v1/sys/metrics?format=prometheus"; down.ScrapeURL != want || down.LastScrape.IsZero() {
		t.Errorf("the wrong token's target scraped %s at %v, want %s at a time", down.ScrapeURL, down.LastScrape, want)
	}

	// A query that does not parse fails at once, with Prometheus's reason.
	start := time.Now()
	_, err = p.WaitForQuery(10*time.Second, "sum(", func([]Sample) bool { return true })
	var apiErr *PrometheusError
	if !errors.As(err, &apiErr) || apiErr.Type != "bad_data" || time.Since(start) > 5*time.Second {
		t.Errorf("WaitForQuery(\"sum(\") = %v after %s, want a bad_data PrometheusError at once", err, time.Since(start).Round(time.Millisecond))
	}
}
