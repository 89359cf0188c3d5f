package testservers

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Prometheus is a Prometheus server (Debian's, scripts/install-prometheus.sh)
// on 127.0.0.1 that scrapes the targets it was started with every second.
type Prometheus struct {
	url     string
	logPath string
	http    *http.Client
	proc    *Process
}

// PrometheusTarget is one scrape_config: Address (host:port) scraped over
// http at MetricsPath (default /metrics) with Params as its query, e.g.
// Vault's /v1/sys/metrics with format=prometheus. With BearerTokenFile, each
// scrape sends "Authorization: Bearer <the file's content>", read anew each
// time, as Vault wants a token.
type PrometheusTarget struct {
	Job             string
	Address         string
	MetricsPath     string
	Params          url.Values
	BearerTokenFile string
}

// StartPrometheus writes dir/prometheus.yml for targets and ruleFiles
// (alerting rules, evaluated every second), starts bin with its data and
// log in dir, and waits until the server is ready. The first
// scrapes come about 5 s later: Prometheus hands new targets to its scrape
// manager every 5 s.
func StartPrometheus(bin, dir string, ruleFiles []string, targets ...PrometheusTarget) (*Prometheus, error) {
	config, err := prometheusConfig(ruleFiles, targets)
	if err != nil {
		return nil, err
	}
	configPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configPath, config, 0o600); err != nil {
		return nil, err
	}
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	p := &Prometheus{
		url:     "http://" + addr,
		logPath: filepath.Join(dir, "prometheus.log"),
		http:    &http.Client{Timeout: 10 * time.Second},
	}
	proc, err := Start(p.logPath, nil, nil, bin,
		"--config.file="+configPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr)
	if err != nil {
		return nil, err
	}
	p.proc = proc
	exited := false
	if err := WaitFor(60*time.Second, "Prometheus to be ready", func() bool {
		select {
		case <-proc.Exited():
			exited = true
			return true
		default:
		}
		resp, err := p.http.Get(p.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}); err != nil {
		return p, fmt.Errorf("%w\n%s", err, Tail(p.logPath, 30))
	}
	if exited {
		return p, fmt.Errorf("prometheus exited before it was ready\n%s", Tail(p.logPath, 30))
	}
	return p, nil
}

// prometheusConfig is prometheus.yml for targets, written as JSON, which
// is YAML too and which encoding/json quotes correctly.
func prometheusConfig(ruleFiles []string, targets []PrometheusTarget) ([]byte, error) {
	type authorization struct {
		Type            string `json:"type"`
		CredentialsFile string `json:"credentials_file"`
	}
	type staticConfig struct {
		Targets []string `json:"targets"`
	}
	type scrapeConfig struct {
		JobName       string         `json:"job_name"`
		MetricsPath   string         `json:"metrics_path,omitempty"`
		Params        url.Values     `json:"params,omitempty"`
		Authorization *authorization `json:"authorization,omitempty"`
		StaticConfigs []staticConfig `json:"static_configs"`
	}
	var scrapes []scrapeConfig
	for _, t := range targets {
		s := scrapeConfig{
			JobName:       t.Job,
			MetricsPath:   t.MetricsPath,
			Params:        t.Params,
			StaticConfigs: []staticConfig{{Targets: []string{t.Address}}},
		}
		if t.BearerTokenFile != "" {
			// Prometheus would read a relative path from the config's folder.
			file, err := filepath.Abs(t.BearerTokenFile)
			if err != nil {
				return nil, err
			}
			s.Authorization = &authorization{Type: "Bearer", CredentialsFile: file}
		}
		scrapes = append(scrapes, s)
	}
	var rules []string
	for _, f := range ruleFiles {
		file, err := filepath.Abs(f)
		if err != nil {
			return nil, err
		}
		rules = append(rules, file)
	}
	return json.MarshalIndent(map[string]any{
		"global":         map[string]string{"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
		"rule_files":     rules,
		"scrape_configs": scrapes,
	}, "", "  ")
}

// Stop stops the server.
func (p *Prometheus) Stop() {
	if p.proc != nil {
		p.proc.Stop()
	}
}

// URL is the server's base URL, http://127.0.0.1:port.
func (p *Prometheus) URL() string { return p.url }

// LogPath is the server's log.
func (p *Prometheus) LogPath() string { return p.logPath }

// PrometheusError is an error the HTTP API answered, e.g. Type "bad_data"
// for a query that does not parse.
type PrometheusError struct {
	Type    string // errorType
	Message string // error
}

func (e *PrometheusError) Error() string {
	return fmt.Sprintf("prometheus answered %s: %s", e.Type, e.Message)
}

// api GETs path with query from the HTTP API and decodes its data into
// data, or returns the API's error as a *PrometheusError.
func (p *Prometheus) api(path string, query url.Values, data any) error {
	resp, err := p.http.Get(p.url + path + "?" + query.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	var body struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return fmt.Errorf("%s answered %s, not the API's JSON: %.200s", path, resp.Status, raw)
	}
	if body.Status != "success" {
		return &PrometheusError{Type: body.ErrorType, Message: body.Error}
	}
	if err := json.Unmarshal(body.Data, data); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Sample is one series of an instant vector: its labels (__name__ among
// them, unless the query dropped it) and its value.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Query evaluates promql now (/api/v1/query) and returns the instant
// vector it yields; any other result type is an error.
func (p *Prometheus) Query(promql string) ([]Sample, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"` // [unix seconds, "value"]
		} `json:"result"`
	}
	if err := p.api("/api/v1/query", url.Values{"query": {promql}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("%s is a %s, not an instant vector", promql, data.ResultType)
	}
	samples := make([]Sample, 0, len(data.Result))
	for _, r := range data.Result {
		text, _ := r.Value[1].(string)
		value, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: the value of %v: %w", promql, r.Metric, err)
		}
		samples = append(samples, Sample{Labels: r.Metric, Value: value})
	}
	return samples, nil
}

// WaitForQuery polls Query every 100 ms until ok holds for its samples and
// returns them, or after timeout returns the last samples with an error
// that names the query, the last samples and the last error. A query that
// Prometheus refuses as bad_data fails at once.
func (p *Prometheus) WaitForQuery(timeout time.Duration, promql string, ok func([]Sample) bool) ([]Sample, error) {
	var samples []Sample
	var last error
	refused := false
	err := WaitFor(timeout, "the query "+promql, func() bool {
		samples, last = p.Query(promql)
		var apiErr *PrometheusError
		refused = errors.As(last, &apiErr) && apiErr.Type == "bad_data"
		return refused || (last == nil && ok(samples))
	})
	switch {
	case refused:
		return nil, fmt.Errorf("the query %s: %w", promql, last)
	case err != nil && last != nil:
		return samples, fmt.Errorf("%w (the last query failed: %v)", err, last)
	case err != nil:
		return samples, fmt.Errorf("%w (the last answer: %v)", err, samples)
	}
	return samples, nil
}

// TargetHealth is how the last scrape of a target went.
type TargetHealth struct {
	Job        string
	ScrapeURL  string
	Health     string // up, down or unknown (not scraped yet)
	LastError  string
	LastScrape time.Time // zero before the first scrape
}

// Targets are the server's active targets (/api/v1/targets).
func (p *Prometheus) Targets() ([]TargetHealth, error) {
	var data struct {
		ActiveTargets []struct {
			Labels     map[string]string `json:"labels"`
			ScrapeURL  string            `json:"scrapeUrl"`
			Health     string            `json:"health"`
			LastError  string            `json:"lastError"`
			LastScrape time.Time         `json:"lastScrape"`
		} `json:"activeTargets"`
	}
	if err := p.api("/api/v1/targets", url.Values{"state": {"active"}}, &data); err != nil {
		return nil, err
	}
	targets := make([]TargetHealth, 0, len(data.ActiveTargets))
	for _, t := range data.ActiveTargets {
		targets = append(targets, TargetHealth{
			Job: t.Labels["job"], ScrapeURL: t.ScrapeURL, Health: t.Health,
			LastError: t.LastError, LastScrape: t.LastScrape,
		})
	}
	return targets, nil
}

// Alert is an alert of the server's rules, as /api/v1/alerts has it.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"` // pending or firing
}

// Alerts are the alerts the server's rules have raised.
func (p *Prometheus) Alerts() ([]Alert, error) {
	var data struct {
		Alerts []Alert `json:"alerts"`
	}
	if err := p.api("/api/v1/alerts", nil, &data); err != nil {
		return nil, err
	}
	return data.Alerts, nil
}
