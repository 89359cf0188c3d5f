package aritma

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// Metrics in the Prometheus text format, at <mount>/metrics: what the role
// counters (role_status.go) hold, for a Prometheus server that scrapes with a
// Vault token whose policy can read the path, as Vault's own sys/metrics
// asks. Vault passes external plugins no metrics sink, so the engine serves
// its own.
//
// Cardinality: the labels are role, environment and outcome, and outcome
// has a fixed set of values. No label carries a token, a scope, an error
// message, a client ID or a customer credential's name. The latency
// histogram is by environment only. The first metrics_role_limit roles in
// name order get series of their own; the others are summed per
// environment under role="_other". A scrape of 10,000 roles at the default
// limit of 1,000 has about 11,000 series (11 a role).

const metricsPath = "metrics"

// otherRoles is the role label of the roles past metrics_role_limit.
const otherRoles = "_other"

// grantOutcomes are the outcome label values of aritma_grants_total: a
// grant, then the failure classes in their order.
var grantOutcomes = [...]string{"granted", failRefused, failServer, failNetwork, failTimeout}

// engineMetrics are the metrics that are not role counters: the grant
// latency histogram, observed when a grant ends.
type engineMetrics struct {
	grantDuration *prometheus.HistogramVec
}

func newEngineMetrics() *engineMetrics {
	return &engineMetrics{grantDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "aritma_grant_duration_seconds",
		Help: "How long client_credentials grants took, retries included, by environment and outcome (granted or failed).",
		// Banks answer in tens of milliseconds; retries and time limits take seconds.
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"environment", "outcome"})}
}

// observeGrant records a grant's latency.
func (m *engineMetrics) observeGrant(environment string, err error, latency time.Duration) {
	if m == nil {
		return
	}
	outcome := "granted"
	if err != nil {
		outcome = "failed"
	}
	m.grantDuration.WithLabelValues(environment, outcome).Observe(latency.Seconds())
}

func pathMetrics(b *backend) *framework.Path {
	return &framework.Path{
		Pattern: metricsPath,
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
			OperationSuffix: "metrics",
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathMetricsRead,
				Summary:  "This node's metrics in the Prometheus text format.",
			},
		},
		HelpSynopsis:    "This node's grant, cache and credential metrics, in the Prometheus text format.",
		HelpDescription: pathMetricsHelpDescription,
	}
}

func (b *backend) pathMetricsRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	cfg, err := getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	registry := prometheus.NewRegistry()
	registry.MustRegister(b.metrics.grantDuration, &roleCollector{b: b, limit: cfg.MetricsRoleLimit})
	families, err := registry.Gather()
	if err != nil {
		return nil, fmt.Errorf("gathering metrics: %w", err)
	}
	var body bytes.Buffer
	format := expfmt.NewFormat(expfmt.TypeTextPlain)
	enc := expfmt.NewEncoder(&body, format)
	for _, family := range families {
		if err := enc.Encode(family); err != nil {
			return nil, fmt.Errorf("encoding metrics: %w", err)
		}
	}
	return &logical.Response{Data: map[string]interface{}{
		logical.HTTPStatusCode:  http.StatusOK,
		logical.HTTPContentType: string(format),
		logical.HTTPRawBody:     body.Bytes(),
	}}, nil
}

// Descriptions of the role counters' metrics.
var (
	descGrants = prometheus.NewDesc("aritma_grants_total",
		"client_credentials grants by role, environment and outcome (granted, refused, server, network, timeout), on this node since the plugin started.",
		[]string{"role", "environment", "outcome"}, nil)
	descCacheHits = prometheus.NewDesc("aritma_cache_hits_total",
		"Token reads answered with the role's cached token.", []string{"role", "environment"}, nil)
	descLeases = prometheus.NewDesc("aritma_leases_issued_total",
		"Token reads answered with a lease.", []string{"role", "environment"}, nil)
	descSecondsLeft = prometheus.NewDesc("aritma_token_seconds_left",
		"Seconds until the role's cached token expires (for role \"_other\", the soonest); absent without one.",
		[]string{"role", "environment"}, nil)
	descPaused = prometheus.NewDesc("aritma_grant_paused",
		"1 while the role makes no grant after failures (for role \"_other\", how many roles are paused).",
		[]string{"role", "environment"}, nil)
	descFailuresInARow = prometheus.NewDesc("aritma_grant_failures_in_a_row",
		"Grants that failed in a row, ended by a success (for role \"_other\", the most of any role).",
		[]string{"role", "environment"}, nil)
	descSecretSwitches = prometheus.NewDesc("aritma_client_secret_switches_total",
		"Switches to next_client_secret after the bank refused client_secret.", []string{"role", "environment"}, nil)
	descRenewals = prometheus.NewDesc("aritma_credential_renewals_total",
		"Customer credential renewals (refresh or password grant) by outcome (granted, needs_consent, refused, server, network, timeout).",
		[]string{"role", "environment", "outcome"}, nil)
	descNeedsConsent = prometheus.NewDesc("aritma_credentials_needing_consent",
		"Customer credentials that this node last saw needing the customer's consent again.", []string{"role", "environment"}, nil)
	descAggregated = prometheus.NewDesc("aritma_metrics_roles_aggregated",
		"Roles past metrics_role_limit, whose series are summed under role \"_other\".", nil, nil)
)

// roleCollector turns the role counters into metrics at scrape time. It
// reads atomics and takes each lock once per scrape, never for long.
type roleCollector struct {
	b     *backend
	limit int
}

func (c *roleCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descGrants, descCacheHits, descLeases, descSecondsLeft, descPaused,
		descFailuresInARow, descSecretSwitches, descRenewals, descNeedsConsent, descAggregated} {
		ch <- d
	}
}

// roleSample is one series' worth of a role's counters (or, for "_other",
// the sum of several roles').
type roleSample struct {
	grants         [5]float64 // by grantOutcomes
	cacheHits      float64
	leases         float64
	secondsLeft    float64
	hasToken       bool
	paused         float64
	failuresInARow float64
	hasSource      bool
	secretSwitches float64
	renewals       [len(credentialOutcomes)]float64
	needsConsent   float64
	hasCredentials bool
}

// add sums another role's sample into s, as "_other" shows them.
func (s *roleSample) add(o *roleSample) {
	for i := range s.grants {
		s.grants[i] += o.grants[i]
	}
	for i := range s.renewals {
		s.renewals[i] += o.renewals[i]
	}
	s.cacheHits += o.cacheHits
	s.leases += o.leases
	s.secretSwitches += o.secretSwitches
	s.needsConsent += o.needsConsent
	s.paused += o.paused
	s.failuresInARow = max(s.failuresInARow, o.failuresInARow)
	if o.hasToken && (!s.hasToken || o.secondsLeft < s.secondsLeft) {
		s.secondsLeft, s.hasToken = o.secondsLeft, true
	}
	s.hasSource = s.hasSource || o.hasSource
	s.hasCredentials = s.hasCredentials || o.hasCredentials
}

func (c *roleCollector) Collect(ch chan<- prometheus.Metric) {
	b := c.b
	b.statsMu.Lock()
	names := make([]string, 0, len(b.stats))
	stats := make(map[string]*roleStats, len(b.stats))
	for name, st := range b.stats {
		if st.environment.Load() != nil { // used on this node
			names = append(names, name)
			stats[name] = st
		}
	}
	b.statsMu.Unlock()
	slices.Sort(names)

	b.sourcesMu.RLock()
	sources := make(map[string]*tokenSource, len(b.sources))
	for name, src := range b.sources {
		sources[name] = src
	}
	b.sourcesMu.RUnlock()

	now := b.now()
	others := map[string]*roleSample{} // by environment
	for i, name := range names {
		env := *stats[name].environment.Load()
		sample := stats[name].sample(sources[name], now)
		if i < c.limit {
			sample.emit(ch, name, env)
			continue
		}
		if others[env] == nil {
			others[env] = &roleSample{}
		}
		others[env].add(sample)
	}
	for env, sample := range others {
		sample.emit(ch, otherRoles, env)
	}
	ch <- prometheus.MustNewConstMetric(descAggregated, prometheus.GaugeValue, float64(max(len(names)-c.limit, 0)))
}

// sample reads a role's counters, and its token and pause from its source
// (nil when it has none on this node).
func (st *roleStats) sample(src *tokenSource, now time.Time) *roleSample {
	s := &roleSample{
		cacheHits:      float64(st.cacheHits.Load()),
		leases:         float64(st.leases.Load()),
		secretSwitches: float64(st.secretSwitches.Load()),
	}
	s.grants[0] = float64(st.grants.Load())
	for i := range st.failures {
		s.grants[i+1] = float64(st.failures[i].Load())
	}
	for i := range st.credRenewals {
		s.renewals[i] = float64(st.credRenewals[i].Load())
		s.hasCredentials = s.hasCredentials || s.renewals[i] > 0
	}
	if n := st.credentialsNeedingConsent(); n > 0 {
		s.needsConsent, s.hasCredentials = float64(n), true
	}
	if src != nil {
		s.hasSource = true
		if t := src.current.Load(); t != nil {
			s.secondsLeft, s.hasToken = max(t.expiresAt.Sub(now).Seconds(), 0), true
		}
		failures, until := src.pause.state()
		s.failuresInARow = float64(failures)
		if failures > 0 && now.Before(until) {
			s.paused = 1
		}
	}
	return s
}

// emit sends the sample's series for role in environment. A role that only
// has customer credentials has no grant series, and one without them no
// credential series.
func (s *roleSample) emit(ch chan<- prometheus.Metric, role, env string) {
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, append([]string{role, env}, labels...)...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, role, env)
	}
	if s.hasSource || s.grants != [len(grantOutcomes)]float64{} {
		for i, outcome := range grantOutcomes {
			counter(descGrants, s.grants[i], outcome)
		}
		counter(descCacheHits, s.cacheHits)
		counter(descLeases, s.leases)
		counter(descSecretSwitches, s.secretSwitches)
		gauge(descPaused, s.paused)
		gauge(descFailuresInARow, s.failuresInARow)
		if s.hasToken {
			gauge(descSecondsLeft, s.secondsLeft)
		}
	}
	if s.hasCredentials {
		for i, outcome := range credentialOutcomes {
			counter(descRenewals, s.renewals[i], outcome)
		}
		gauge(descNeedsConsent, s.needsConsent)
	}
}

const pathMetricsHelpDescription = `
This node's metrics in the Prometheus text format, for a Prometheus server
that scrapes <vault>/v1/<mount>/metrics with a Vault token (the
"authorization" of its scrape config) whose policy can read this path:

  aritma_grants_total{role,environment,outcome}     grants: granted, refused,
                                                    server, network, timeout
  aritma_grant_duration_seconds{environment,outcome}  grant latency histogram
  aritma_cache_hits_total{role,environment}         reads served from the cache
  aritma_leases_issued_total{role,environment}      token reads with a lease
  aritma_token_seconds_left{role,environment}       life left on the cached token
  aritma_grant_paused{role,environment}             1 while failures pause grants
  aritma_grant_failures_in_a_row{role,environment}
  aritma_client_secret_switches_total{role,environment}
  aritma_credential_renewals_total{role,environment,outcome}
  aritma_credentials_needing_consent{role,environment}
  aritma_metrics_roles_aggregated

Counters are per node and start at 0 when the plugin starts there; a role
appears once it is used on the node. The first metrics_role_limit roles
(config, 1000 by default) in name order have series of their own; the others
are summed per environment under role="_other". roles/<name>/status shows any
role's counters.
`
