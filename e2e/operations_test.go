//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aritma/vault-plugin-secrets-aritma/internal/testservers"
)

// make e2e unpacks Debian's prometheus (scripts/install-prometheus.sh) and
// sets it; promtool comes with it.
var prometheusBin = os.Getenv("ARITMA_PROMETHEUS")

// alertRules are the example's alerting rules, and alertRuleTests their
// promtool tests.
var (
	alertRules     = filepath.Join("..", "terraform", "examples", "prometheus", "alerts.yml")
	alertRuleTests = filepath.Join("..", "terraform", "examples", "prometheus", "alerts_test.yml")
)

// The example's alerting rules pass their own tests in promtool: each
// alert fires when it should and stays quiet when it should not.
func TestE2E_AlertRules(t *testing.T) {
	requirePrometheus(t)
	t.Parallel()
	out, err := exec.Command(filepath.Join(filepath.Dir(prometheusBin), "promtool"), "test", "rules", alertRuleTests).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

func requirePrometheus(t *testing.T) {
	t.Helper()
	requireVault(t)
	if prometheusBin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("ARITMA_PROMETHEUS is not set; run make e2e")
		}
		t.Skip("ARITMA_PROMETHEUS is not set; run make e2e, which unpacks Debian's prometheus")
	}
}

// A real Prometheus scrapes the engine's metrics through Vault's API with a
// token whose policy reads only aritma/metrics, and its query API finds the
// grants, cache hits, leases and the refusal the test caused at the OAuth
// server. A token without that path is refused, and Prometheus says so.
func TestE2E_PrometheusScrapesTheEngine(t *testing.T) {
	requirePrometheus(t)
	t.Parallel()
	app := oauthClient{ID: "metrics-app", Secret: randomSecret("metrics-app-secret"), AuthMethod: "client_secret_post", Scope: "api", Format: "jwt"}
	victim := oauthClient{ID: "metrics-victim", Secret: randomSecret("metrics-victim-secret"), AuthMethod: "client_secret_post", Scope: "api", Format: "jwt"}
	oauth := startOAuthServer(t, 3600, app, victim)
	v := startVaultDev(t)
	v.setupEngine(t, oauth, "bank", "client_secret_post")
	for role, c := range map[string]oauthClient{"app": app, "victim": victim} {
		v.write(t, "aritma/roles/"+role, map[string]interface{}{"environment": "bank", "client_id": c.ID, "client_secret": c.Secret, "scopes": "api"})
	}

	var tokens []string
	for range 3 {
		tokens = append(tokens, v.readTokenCLI(t, v.Token, "app").Data["access_token"].(string))
	}
	// The failure, injected at the OAuth server: the bank rotates the
	// victim's secret, and the role's first grant is refused.
	rotated := randomSecret("metrics-victim-rotated")
	if err := oauth.SetClientSecret(victim.ID, rotated); err != nil {
		t.Fatal(err)
	}
	if out, err := v.cli(v.Token, "read", "aritma/token/victim"); err == nil || !strings.Contains(out, "invalid_client") {
		t.Fatalf("the victim's read after the bank's rotation: err=%v\n%s", err, out)
	}

	v.mustCLI(t, "policy", "write", "metrics", writePolicy(t, `path "aritma/metrics" { capabilities = ["read"] }`))
	v.mustCLI(t, "policy", "write", "app-only", writePolicy(t, `path "aritma/token/app" { capabilities = ["read"] }`))
	dir := t.TempDir()
	tokenFile := func(policy string) string {
		path := filepath.Join(dir, policy+".token")
		writeFile(t, path, strings.TrimSpace(v.mustCLI(t, "token", "create", "-policy="+policy, "-field=token")))
		return path
	}
	metricsToken, appToken := tokenFile("metrics"), tokenFile("app-only")
	prom, err := testservers.StartPrometheus(prometheusBin, dir, []string{alertRules},
		testservers.PrometheusTarget{Job: "aritma", Address: v.Addr, MetricsPath: "/v1/aritma/metrics", BearerTokenFile: metricsToken},
		testservers.PrometheusTarget{Job: "aritma-no-policy", Address: v.Addr, MetricsPath: "/v1/aritma/metrics", BearerTokenFile: appToken})
	if prom != nil {
		t.Cleanup(prom.Stop)
		t.Cleanup(func() {
			if t.Failed() {
				t.Log(tail(prom.LogPath()))
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		query string
		ok    func(float64) bool
		want  string
	}{
		{`aritma_grants_total{job="aritma",role="app",environment="bank",outcome="granted"}`, func(v float64) bool { return v == 1 }, "1"},
		{`aritma_cache_hits_total{job="aritma",role="app"}`, func(v float64) bool { return v == 2 }, "2"},
		{`aritma_leases_issued_total{job="aritma",role="app"}`, func(v float64) bool { return v == 3 }, "3"},
		{`aritma_token_seconds_left{job="aritma",role="app"}`, func(v float64) bool { return v > 3000 && v <= 3600 }, "in (3000, 3600]"},
		{`aritma_grants_total{job="aritma",role="victim",outcome="refused"}`, func(v float64) bool { return v == 1 }, "1"},
		{`aritma_grant_failures_in_a_row{job="aritma",role="victim"}`, func(v float64) bool { return v == 1 }, "1"}, // its 2 s pause is over by the first scrape
		{`sum(aritma_grant_duration_seconds_count{job="aritma",environment="bank"})`, func(v float64) bool { return v == 2 }, "2"},
	} {
		samples, err := prom.WaitForQuery(30*time.Second, c.query, func(s []testservers.Sample) bool { return len(s) == 1 && c.ok(s[0].Value) })
		if err != nil {
			t.Errorf("%s: want %s: %v (samples %v)", c.query, c.want, err, samples)
		}
	}

	// The example's alerting rules, evaluated by the same server, raise
	// the refusal.
	waitFor(t, 30*time.Second, "the AritmaGrantsRefused alert for the victim role", func() bool {
		alerts, err := prom.Alerts()
		for _, a := range alerts {
			if a.Labels["alertname"] == "AritmaGrantsRefused" && a.Labels["role"] == "victim" && a.State == "firing" {
				return err == nil
			}
		}
		return false
	})
	alerts, err := prom.Alerts()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts {
		if a.Labels["role"] == "app" {
			t.Errorf("the healthy role raised %s", a.Labels["alertname"])
		}
	}

	// Each target is scraped on its own schedule: wait for both.
	var targets []testservers.TargetHealth
	waitFor(t, 30*time.Second, "Prometheus to scrape both targets", func() bool {
		var err error
		targets, err = prom.Targets()
		scraped := 0
		for _, target := range targets {
			if target.Health != "unknown" {
				scraped++
			}
		}
		return err == nil && scraped == 2
	})
	var refused bool
	for _, target := range targets {
		switch target.Job {
		case "aritma":
			if target.Health != "up" {
				t.Errorf("the metrics-policy target is %s: %s", target.Health, target.LastError)
			}
		case "aritma-no-policy":
			refused = target.Health == "down" && strings.Contains(target.LastError, "403")
		}
	}
	if !refused {
		t.Errorf("the scrape with a token without the metrics path was not refused with 403: %+v", targets)
	}
	out, err := v.cli(strings.TrimSpace(readFile(t, appToken)), "read", "aritma/metrics")
	if err == nil || !strings.Contains(out, "Code: 403") {
		t.Errorf("vault read aritma/metrics with the app's token: want 403, got err=%v\n%s", err, out)
	}

	// What Prometheus stored and what it was served hold no secret.
	body := scrapeMetrics(t, v, strings.TrimSpace(readFile(t, metricsToken)))
	secrets := map[string]string{"client secret": app.Secret, "victim's secret": victim.Secret, "rotated secret": rotated}
	for i, token := range tokens {
		secrets[fmt.Sprintf("access token %d", i)] = token
	}
	assertNoSecrets(t, secrets, append(v.logFiles(), oauth.LogPath, prom.LogPath()), body)
}

// scrapeMetrics reads aritma/metrics as Prometheus does: a GET with a
// Bearer token, answered in the text format.
func scrapeMetrics(t *testing.T, v *vaultServer, token string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+v.Addr+"/v1/aritma/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("metrics answered %s %q:\n%s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	return string(body)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// The bank rotates a client secret while readers read: with the new
// secret written as next_client_secret beforehand, the first grant after
// the rotation meets invalid_client, switches, and every reader is served;
// the role and its status say so, and the bank saw one refusal.
func TestE2E_ClientSecretRotationMidLoad(t *testing.T) {
	requireVault(t)
	t.Parallel()
	const lifetime = 4 // seconds: a grant every two seconds under load
	client := oauthClient{ID: "rotating-app", Secret: randomSecret("rotating-old"), AuthMethod: "client_secret_post", Scope: "api", Format: "jwt"}
	oauth := startOAuthServer(t, lifetime, client)
	v := startVaultDev(t)
	v.setupEngine(t, oauth, "bank", "client_secret_post")
	v.write(t, "aritma/roles/app", map[string]interface{}{"environment": "bank", "client_id": client.ID, "client_secret": client.Secret, "scopes": "api"})
	next := randomSecret("rotating-new")

	var reads, failed atomic.Int64
	var failures sync.Map
	var seen sync.Map // every token handed out
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				secret, err := v.Client.Logical().Read("aritma/token/app")
				reads.Add(1)
				switch {
				case err != nil:
					failed.Add(1)
					failures.Store(err.Error(), true)
				case len(secret.Warnings) > 0:
					failed.Add(1)
					failures.Store(strings.Join(secret.Warnings, "; "), true)
				default:
					seen.Store(secret.Data["access_token"].(string), true)
				}
			}
		}()
	}
	time.Sleep(2 * time.Second)
	v.write(t, "aritma/roles/app", map[string]interface{}{"next_client_secret": next})
	time.Sleep(time.Second)
	if err := oauth.SetClientSecret(client.ID, next); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * lifetime * time.Second)
	close(stop)
	wg.Wait()

	failures.Range(func(k, _ any) bool { t.Errorf("a failed read: %v", k); return true })
	if failed.Load() != 0 || reads.Load() < 100 {
		t.Errorf("%d of %d reads failed; want none of at least 100", failed.Load(), reads.Load())
	}
	st := oauth.stats(t)
	if st.Errors["invalid_client"] != 1 || st.Grants < 5 {
		t.Errorf("the bank saw %d invalid_client refusals in %d grants; want exactly one (one grant for every reader), and grants after the switch",
			st.Errors["invalid_client"], st.Grants)
	}
	role, err := v.Client.Logical().Read("aritma/roles/app")
	if err != nil {
		t.Fatal(err)
	}
	if role.Data["next_client_secret_set"] != false || role.Data["client_secret_switched_at"] == nil ||
		!strings.Contains(fmt.Sprint(role.Data["client_secret_switch_reason"]), "invalid_client") {
		t.Errorf("the role after the switch: %v", role.Data)
	}
	status, err := v.Client.Logical().Read("aritma/roles/app/status")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(status.Data["secret_switches"]) != "1" {
		t.Errorf("status after the switch: %v", status.Data)
	}
	// The switch survives a reload: the stored client secret is the new one.
	v.mustCLI(t, "plugin", "reload", "-plugin="+pluginName)
	if tok := v.readTokenCLI(t, v.Token, "app").Data["access_token"].(string); !oauth.verify(t, tok).Active {
		t.Errorf("after a plugin reload, the token is not active at the bank")
	}
	if st := oauth.stats(t); st.Errors["invalid_client"] != 1 {
		t.Errorf("after a plugin reload the old secret was sent again (%d refusals)", st.Errors["invalid_client"])
	}
	secrets := map[string]string{"old client secret": client.Secret, "new client secret": next}
	seen.Range(func(k, _ any) bool { secrets["access token "+k.(string)[:12]] = k.(string); return true })
	assertNoSecrets(t, secrets, append(v.logFiles(), oauth.LogPath))
}
