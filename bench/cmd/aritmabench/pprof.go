package main

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/google/pprof/profile"
)

// bucketShare is the part of a profile whose stacks match one rule, per
// read (CPU microseconds, or allocations) and as a share of the total.
type bucketShare struct {
	Name    string  `json:"name"`
	PerRead float64 `json:"per_read"`
	Share   float64 `json:"share"`
}

// funcShare is one function's flat and cumulative cost per read.
type funcShare struct {
	Func string  `json:"func"`
	Flat float64 `json:"flat"`
	Cum  float64 `json:"cum"`
}

type rule struct {
	name  string
	match []string // any frame containing any of these
}

// Plugin stacks are put in the first bucket that matches (the engine's own
// code before the framework that calls it, so the buckets do not overlap).
var pluginRules = []rule{
	{"GC (background marking)", []string{"runtime.gcBgMarkWorker"}},
	{"engine code (aritma package)", []string{"github.com/aritma/vault-plugin-secrets-aritma/aritma."}},
	{"probe's handler", []string{"main.factory.func"}},
	{"SDK framework: routing, field data", []string{"sdk/framework.(*Backend).HandleRequest"}},
	{"plugin protocol: gRPC, protobuf, JSON", []string{"google.golang.org/grpc", "sdk/plugin", "golang.org/x/net/http2"}},
	{"other (runtime, scheduler, syscalls)", []string{""}},
}

var vaultRules = []rule{
	{"GC (background marking)", []string{"runtime.gcBgMarkWorker"}},
	{"lease registration (ExpirationManager)", []string{"vault.(*ExpirationManager)"}},
	{"calling the plugin (gRPC client)", []string{"sdk/plugin.(*backendGRPCPluginClient)", "sdk/plugin/pb", "google.golang.org/grpc"}},
	{"audit, policy and token checks", []string{"vault.(*Core).CheckToken", "vault.(*Core).fetchACLTokenEntryAndEntity", "vault.(*AuditBroker)", "vault.(*ACL)"}},
	{"HTTP and request handling", []string{"net/http.", "vault/http.", "vault.(*Core).handle", "vault.(*Router)"}},
	{"other (runtime, scheduler, syscalls)", []string{""}},
}

func loadProfile(path string) (*profile.Profile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return profile.Parse(f)
}

func sampleIndex(p *profile.Profile, typ string) int {
	for i, st := range p.SampleType {
		if st.Type == typ {
			return i
		}
	}
	return len(p.SampleType) - 1
}

func frames(s *profile.Sample) []string {
	var out []string
	for _, loc := range s.Location {
		for i := len(loc.Line) - 1; i >= 0; i-- { // inlined frames, callee first
			if loc.Line[i].Function != nil {
				out = append(out, loc.Line[i].Function.Name)
			}
		}
	}
	return out
}

// buckets splits a profile's values by rules, scaled by scale per read.
func buckets(p *profile.Profile, idx int, rules []rule, scale float64) []bucketShare {
	totals := make([]float64, len(rules))
	var all float64
	for _, s := range p.Sample {
		v := float64(s.Value[idx])
		all += v
		fs := frames(s)
	rules:
		for i, r := range rules {
			for _, f := range fs {
				for _, m := range r.match {
					if strings.Contains(f, m) {
						totals[i] += v
						break rules
					}
				}
			}
			if i == len(rules)-1 {
				totals[i] += v
			}
		}
	}
	var out []bucketShare
	for i, r := range rules {
		if totals[i] == 0 {
			continue
		}
		out = append(out, bucketShare{Name: r.name, PerRead: totals[i] * scale, Share: totals[i] / all})
	}
	return out
}

// underFrame lists the functions in stacks that contain frame, by
// cumulative value per read, at most n.
func underFrame(p *profile.Profile, idx int, frame string, scale float64, n int) []funcShare {
	flat := map[string]float64{}
	cum := map[string]float64{}
	for _, s := range p.Sample {
		fs := frames(s)
		at := slices.IndexFunc(fs, func(f string) bool { return strings.Contains(f, frame) })
		if at < 0 {
			continue
		}
		v := float64(s.Value[idx])
		flat[fs[0]] += v
		seen := map[string]bool{}
		for _, f := range fs[:at+1] {
			if !seen[f] {
				cum[f] += v
				seen[f] = true
			}
		}
	}
	var out []funcShare
	for f, c := range cum {
		out = append(out, funcShare{Func: shortFunc(f), Flat: flat[f] * scale, Cum: c * scale})
	}
	slices.SortFunc(out, func(a, b funcShare) int {
		switch {
		case a.Cum > b.Cum:
			return -1
		case a.Cum < b.Cum:
			return 1
		}
		return strings.Compare(a.Func, b.Func)
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

func shortFunc(f string) string {
	for _, prefix := range []string{
		"github.com/aritma/vault-plugin-secrets-aritma/",
		"github.com/hashicorp/vault/sdk/",
		"github.com/hashicorp/",
		"google.golang.org/",
		"github.com/",
	} {
		if rest, ok := strings.CutPrefix(f, prefix); ok {
			return rest
		}
	}
	return f
}

func total(p *profile.Profile, idx int) float64 {
	var t float64
	for _, s := range p.Sample {
		t += float64(s.Value[idx])
	}
	return t
}

// analyzeProfiles fills entry from its profile files.
func analyzeProfiles(entry *profileEntry, files map[string]string) {
	reads := entry.Reads
	cpu, err := loadProfile(files["plugin_cpu"])
	if err != nil {
		entry.Error += fmt.Sprintf("plugin cpu profile: %v; ", err)
		return
	}
	idx := sampleIndex(cpu, "cpu")
	usPerRead := 1 / 1e3 / reads // nanoseconds in the profile
	entry.PluginCPUUs = total(cpu, idx) * usPerRead
	entry.PluginBuckets = buckets(cpu, idx, pluginRules, usPerRead)
	entry.HandlerFuncs = underFrame(cpu, idx, "sdk/framework.(*Backend).HandleRequest", usPerRead, 25)

	allocs, err := loadProfile(files["plugin_allocs"])
	if err != nil {
		entry.Error += fmt.Sprintf("plugin allocs profile: %v; ", err)
	} else {
		objs := sampleIndex(allocs, "alloc_objects")
		entry.AllocsPerRead = total(allocs, objs) / reads
		entry.BytesPerRead = total(allocs, sampleIndex(allocs, "alloc_space")) / reads
		entry.AllocBuckets = buckets(allocs, objs, pluginRules[1:], 1/reads)
		entry.HandlerAllocs = underFrame(allocs, objs, "sdk/framework.(*Backend).HandleRequest", 1/reads, 15)
	}

	vcpu, err := loadProfile(files["vault_cpu"])
	if err != nil {
		entry.Error += fmt.Sprintf("vault cpu profile: %v; ", err)
		return
	}
	vidx := sampleIndex(vcpu, "cpu")
	entry.VaultCPUUs = total(vcpu, vidx) * usPerRead
	entry.VaultBuckets = buckets(vcpu, vidx, vaultRules, usPerRead)
}
