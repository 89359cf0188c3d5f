package main

// results is everything one run measured; results.json holds it and the
// report is rendered from it alone.
type results struct {
	Date    string  `json:"date"`
	Machine machine `json:"machine"`
	Go      string  `json:"go"`
	Vault   string  `json:"vault"`
	Quick   bool    `json:"quick"`
	Seconds float64 `json:"seconds"`
	// BuildSeconds is the time scripts/bench.sh spent before the run
	// (builds, npm ci), when it said when it started.
	BuildSeconds float64           `json:"build_seconds"`
	InProcess    *inProcessResults `json:"in_process,omitempty"`
	Load         *loadResults      `json:"load,omitempty"`
	Upstream     *upstreamResults  `json:"upstream,omitempty"`
	Growth       *growthResults    `json:"growth,omitempty"`
	Leases       *leaseResults     `json:"leases,omitempty"`
}
