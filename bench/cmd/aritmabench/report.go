package main

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
)

// updateDoc replaces the generated blocks of the report at path with
// tables rendered from res; everything outside the markers is written by
// hand and kept as it is.
func updateDoc(path string, res *results) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	doc := string(raw)
	for _, b := range []struct{ name, body string }{
		{"run", runBlock(res)},
		{"targets", targetsBlock(res)},
		{"inprocess", inProcessBlock(res.InProcess)},
		{"load", loadBlock(res.Load)},
		{"grants", grantsBlock(res.Grants)},
		{"growth", growthBlock(res.Growth)},
		{"declarative", declarativeBlock(res.Declarative)},
	} {
		if doc, err = replaceBlock(doc, b.name, b.body); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}

// replaceBlock puts body between the markers <!-- bench:NAME:start --> and
// <!-- bench:NAME:end -->, which must each be in doc once, in that order.
func replaceBlock(doc, name, body string) (string, error) {
	start, end := "<!-- bench:"+name+":start -->", "<!-- bench:"+name+":end -->"
	i, j := strings.Index(doc, start), strings.Index(doc, end)
	if i < 0 || j < i || strings.Count(doc, start) != 1 || strings.Count(doc, end) != 1 {
		return "", fmt.Errorf("want one %s and then one %s", start, end)
	}
	return doc[:i+len(start)] + "\n" + strings.TrimRight(body, "\n") + "\n" + doc[j:], nil
}

const notMeasured = "_Not measured in this run._"

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

func fmtRatio(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "n/a"
	}
	return fmt.Sprintf("×%.2f", x)
}

// fmtInt writes n with thousands separators.
func fmtInt(n float64) string {
	if math.IsNaN(n) {
		return "n/a"
	}
	s := fmt.Sprintf("%.0f", math.Abs(n))
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if n <= -0.5 {
		s = "-" + s
	}
	return s
}

// fmtCI is a median with its 95% confidence interval, when finite.
func fmtCI(xs []float64, f func(float64) string) string {
	s := summarize(xs)
	if math.IsInf(s.Lo, 0) || math.IsInf(s.Hi, 0) || math.IsNaN(s.Lo) {
		return f(s.Center)
	}
	return fmt.Sprintf("%s (%s–%s)", f(s.Center), f(s.Lo), f(s.Hi))
}

func runBlock(res *results) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Measured on %s on %s, in a run of `aritmabench` that took %dm%02ds", res.Date, cmp.Or(res.Commit, "an unrecorded commit"), int(res.Seconds)/60, int(res.Seconds)%60)
	if res.Quick {
		b.WriteString(" **with `-quick`: short runs, figures for trying the harness only**")
	}
	b.WriteString(".\n\n| machine | |\n|---|---|\n")
	for _, m := range res.Machine {
		k, v, _ := strings.Cut(m, ": ")
		fmt.Fprintf(&b, "| %s | %s |\n", k, v)
	}
	return b.String()
}

// targetRow is one target as printed, with the verdict computed against
// exactly what its first column states.
type targetRow struct{ target, measured, verdict string }

func targetRows(res *results) []targetRow {
	var rows []targetRow
	add := func(target, measured string, ok bool) { rows = append(rows, targetRow{target, measured, verdict(ok)}) }
	skip := func(target string) { rows = append(rows, targetRow{target, notMeasured, ""}) }

	const (
		tFloor  = "cache hit within 2× of the framework's floor (in process: `TokenRead_CacheHit` ÷ `Floor_ConfigRead`, median ns/op)"
		tAllocs = "the engine's own allocations on a cache hit under 10 (in process: `TokenRead_CacheHitHandler`, the engine's read callback without the framework's routing)"
		tOne    = "one grant for concurrent readers (in process: 64 and 1024 readers at an expired token, grants/op in every sample)"
		// A bank customer's credential (creds/<role>/<name>).
		tCredFloor  = "customer credential cache hit within 2× of the framework's floor (in process: `CredentialRead_CacheHit` ÷ `Floor_ConfigRead`, median ns/op)"
		tOneRefresh = "one refresh per rotation of a customer's token (in process: 1, 64 and 1024 readers at an expired token, refreshes/op in every sample, no refresh token reused)"
	)
	if ip := res.InProcess; ip != nil {
		ratio := ip.median(bHit, "ns/op") / ip.median(bFloor, "ns/op")
		add(tFloor, fmtRatio(ratio), ratio <= 2)
		allocs := ip.median(bHandler, "allocs/op")
		add(tAllocs, fmt.Sprintf("%.0f allocs/op", allocs), allocs < 10)
		ok, parts := true, []string{}
		for _, n := range []string{"64", "1024"} {
			g := ip.Samples[bCoalesced+"/readers="+n]["grants/op"]
			lo, hi := math.NaN(), math.NaN()
			if len(g) > 0 {
				lo, hi = slices.Min(g), slices.Max(g)
			}
			ok = ok && lo == 1 && hi == 1
			parts = append(parts, fmt.Sprintf("%s readers: %.2f–%.2f in %d samples", n, lo, hi, len(g)))
		}
		add(tOne, strings.Join(parts, "; "), ok)
		credRatio := ip.median(bCredHit, "ns/op") / ip.median(bFloor, "ns/op")
		add(tCredFloor, fmtRatio(credRatio), credRatio <= 2)
		ok, parts = true, nil
		for _, n := range []int{1, 64, 1024} {
			g := ip.Samples[fmt.Sprintf("%s/readers=%d", bCredCoalesced, n)]["refreshes/op"]
			lo, hi := math.NaN(), math.NaN()
			if len(g) > 0 {
				lo, hi = slices.Min(g), slices.Max(g)
			}
			ok = ok && lo == 1 && hi == 1
			parts = append(parts, fmt.Sprintf("%d reader%s: %.2f–%.2f in %d samples", n, plural(n), lo, hi, len(g)))
		}
		add(tOneRefresh, strings.Join(parts, "; "), ok)
	} else {
		skip(tFloor)
		skip(tAllocs)
		skip(tOne)
		skip(tCredFloor)
		skip(tOneRefresh)
	}

	const tProbe = "token reads ≥ 0.9× the ceiling probe's reads/s (through Vault, 16 clients, status and metrics counters on, median of per-round ratios)"
	const tCredProbe = "customer credential reads ≥ 0.9× the ceiling probe's reads/s (`creds/accounts/c`, through Vault, 16 clients, median of per-round ratios)"
	if l := res.Load; l != nil {
		xs := roundRatios(l.Runs, 16, "aritma", "probe")
		add(tProbe, fmtCI(xs, fmtRatio), summarize(xs).Center >= 0.9)
		if cs := roundRatios(l.Runs, 16, "creds", "probe"); len(cs) > 0 {
			add(tCredProbe, fmtCI(cs, fmtRatio), summarize(cs).Center >= 0.9)
		} else {
			skip(tCredProbe)
		}
	} else {
		skip(tProbe)
		skip(tCredProbe)
	}

	const tGrants = "exactly one grant per rotation (real OAuth server, short-lived tokens, every reader count; at least two rotations seen)"
	if len(res.Grants) > 0 {
		ok, parts := true, []string{}
		for _, g := range res.Grants {
			ok = ok && g.Non2xx == 0 && g.Tokens >= 2 && g.Grants == g.Tokens
			parts = append(parts, fmt.Sprintf("%d reader%s: %d grants for %d tokens", g.Readers, plural(g.Readers), g.Grants, g.Tokens))
		}
		add(tGrants, strings.Join(parts, "; "), ok)
	} else {
		skip(tGrants)
	}

	if g := res.Growth; g != nil && len(g.Levels) > 1 {
		first, last := g.Levels[0], g.Levels[len(g.Levels)-1]
		a, z := growthVsKV(g, first), growthVsKV(g, last)
		add(fmt.Sprintf("read latency flat from %s to %s roles: token reads/s as a ratio to KV's at %s roles ≥ 0.85× that at %s",
			fmtInt(float64(first.Roles)), fmtInt(float64(last.Roles)), fmtInt(float64(last.Roles)), fmtInt(float64(first.Roles))),
			fmt.Sprintf("%s at %s roles, %s at %s: %s", fmtRatio(a), fmtInt(float64(first.Roles)), fmtRatio(z), fmtInt(float64(last.Roles)), fmtRatio(z/a)),
			z/a >= 0.85)
		rss, heap := perRole(g)
		rows = append(rows, targetRow{"memory per cached role reported", fmt.Sprintf("%s bytes of RSS, %s bytes of Go heap", fmtInt(rss), fmtInt(heap)), "reported"})
		if all, ok := scrapeAt(last, scrapeLimits[len(scrapeLimits)-1]); ok {
			add(fmt.Sprintf("a metrics scrape with %s roles, every one with its own series, ≤ %d ms through Vault (a tenth of Prometheus's default 10 s scrape_timeout; median of %d)",
				fmtInt(float64(last.Roles)), scrapeTargetMs, len(all.Millis)),
				fmt.Sprintf("%.0f ms for %s series (%s bytes)", all.MedianMs, fmtInt(float64(all.Series)), fmtInt(float64(all.Bytes))),
				all.MedianMs <= scrapeTargetMs)
		}
	} else {
		skip("read latency flat in the number of roles")
		skip("memory per cached role reported")
	}

	const tDeclarative = "the provider no slower than `vault_generic_endpoint`: `tofu plan` and `tofu apply` (one field of every role changed), provider ÷ generic seconds ≤ ×1.00 for each (median of per-round ratios)"
	if d := res.Declarative; d != nil {
		plan, update := summarize(opRatios(d.Runs, d.Roles, "plan")).Center, summarize(opRatios(d.Runs, d.Roles, "update")).Center
		add(tDeclarative, fmt.Sprintf("%d roles: plan %s, apply %s", d.Roles, fmtRatio(plan), fmtRatio(update)), plan <= 1 && update <= 1)
		reads := opRequests(d.Runs, d.Roles, "provider", "plan")
		add("a plan makes one read per role (requests on the provider's roles/ paths in Vault's audit log during `tofu plan`)",
			fmt.Sprintf("%d requests for %d roles", reads, d.Roles), reads == d.Roles)
	} else {
		skip(tDeclarative)
		skip("a plan makes one read per role")
	}
	return rows
}

func targetsBlock(res *results) string {
	var b strings.Builder
	b.WriteString("| target | this run | |\n|---|---|---|\n")
	for _, r := range targetRows(res) {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", r.target, r.measured, r.verdict)
	}
	return b.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// roundRatios are name's reads/s over base's, round by round, over the
// rounds at conc clients in which both were counted.
func roundRatios(runs []roundResult, conc int, name, base string) []float64 {
	of, to, rounds := map[int]float64{}, map[int]float64{}, 0
	for _, r := range runs {
		if r.Conc == conc && r.counted() {
			if r.Target == name {
				of[r.Round] = r.ReadsPerSec
			}
			if r.Target == base {
				to[r.Round] = r.ReadsPerSec
			}
			rounds = max(rounds, r.Round+1)
		}
	}
	var xs []float64
	for round := range rounds {
		if a, ok := of[round]; ok && to[round] > 0 {
			xs = append(xs, a/to[round])
		}
	}
	return xs
}

// figures are the medians of name's counted rounds at conc clients, and
// how many rounds were left out for error answers.
type figures struct {
	rate, p50, p99   float64
	counted, dropped int
}

func medians(runs []roundResult, conc int, name string) figures {
	var rates, p50s, p99s []float64
	dropped := 0
	for _, r := range runs {
		if r.Conc != conc || r.Target != name {
			continue
		}
		if !r.counted() {
			dropped++
			continue
		}
		rates, p50s, p99s = append(rates, r.ReadsPerSec), append(p50s, r.P50Ms), append(p99s, r.P99Ms)
	}
	return figures{summarize(rates).Center, summarize(p50s).Center, summarize(p99s).Center, len(rates), dropped}
}

func growthVsKV(g *growthResults, l growthLevel) float64 {
	return summarize(roundRatios(l.Runs, g.Conc, "token", "kv")).Center
}

// perRole is the memory each cached role adds, from the first level to
// the last.
func perRole(g *growthResults) (rss, heap float64) {
	first, last := g.Levels[0], g.Levels[len(g.Levels)-1]
	n := float64(last.Roles - first.Roles)
	return float64(last.RSS-first.RSS) / n, float64(last.Heap-first.Heap) / n
}

var benchWhat = map[string]string{
	bFloor:                           "framework floor: read `config`",
	bHit:                             "read `token/r`, token cached",
	bHandler:                         "the engine's read callback alone (no routing)",
	bCoalesced + "/readers=64":       "64 readers arrive at an expired token (one op: all answered)",
	bCoalesced + "/readers=1024":     "1024 readers arrive at an expired token",
	bCredHit:                         "read `creds/acct/c`, the customer's token cached",
	bCredCoalesced + "/readers=1":    "1 reader at a customer's expired token (one op: one refresh)",
	bCredCoalesced + "/readers=64":   "64 readers at a customer's expired token",
	bCredCoalesced + "/readers=1024": "1024 readers at a customer's expired token",
}

func inProcessBlock(ip *inProcessResults) string {
	if ip == nil {
		return notMeasured
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d rounds of `-count %d -benchtime %s` for the first three, `-count %d -benchtime %s` for the coalesced readers.\n\n",
		ip.Rounds, ip.Count, ip.BenchTime, ip.CoalescedCount, ip.CoalescedTime)
	b.WriteString("| benchmark | what | ns/op (95% CI) | B/op | allocs/op | grants or refreshes/op | samples |\n|---|---|---:|---:|---:|---:|---:|\n")
	for _, name := range []string{bFloor, bHit, bHandler, bCoalesced + "/readers=64", bCoalesced + "/readers=1024",
		bCredHit, bCredCoalesced + "/readers=1", bCredCoalesced + "/readers=64", bCredCoalesced + "/readers=1024"} {
		s := ip.Samples[name]
		grants := ""
		if g, ok := s["grants/op"]; ok {
			grants = fmt.Sprintf("%.2f", summarize(g).Center)
		}
		if g, ok := s["refreshes/op"]; ok {
			grants = fmt.Sprintf("%.2f", summarize(g).Center)
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s | %d |\n", name, benchWhat[name], fmtCI(s["ns/op"], fmtInt),
			fmtInt(ip.median(name, "B/op")), fmtInt(ip.median(name, "allocs/op")), grants, len(s["ns/op"]))
	}
	return b.String()
}

func loadBlock(l *loadResults) string {
	if l == nil {
		return notMeasured
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d rounds of %.1fs per target and client count; access tokens of %d bytes.\n\n", l.Rounds, l.RoundSecs, l.TokenBytes)
	for _, conc := range l.Conc {
		fmt.Fprintf(&b, "**%d concurrent client%s**\n\n", conc, plural(conc))
		b.WriteString("| target | reads/s | × KV | × probe (95% CI) | p50 ms | p99 ms | rounds counted |\n|---|---:|---:|---:|---:|---:|---|\n")
		for _, t := range loadTargets {
			f := medians(l.Runs, conc, t.name)
			counted := fmt.Sprintf("%d", f.counted)
			if f.dropped > 0 {
				counted += fmt.Sprintf(" (%d with errors)", f.dropped)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %.2f | %.2f | %s |\n", t.name, fmtInt(f.rate),
				fmtRatio(summarize(roundRatios(l.Runs, conc, t.name, "kv")).Center),
				fmtCI(roundRatios(l.Runs, conc, t.name, "probe"), fmtRatio), f.p50, f.p99, counted)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func grantsBlock(runs []grantRun) string {
	if len(runs) == 0 {
		return notMeasured
	}
	var b strings.Builder
	b.WriteString("| readers | token life | seconds | reads | not 2xx | tokens seen | grants | grants per rotation |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, g := range runs {
		fmt.Fprintf(&b, "| %d | %d s | %.1f | %s | %d | %d | %d | %.2f |\n", g.Readers, g.TokenTTL, g.Seconds, fmtInt(float64(g.Reads)),
			g.Non2xx, g.Tokens, g.Grants, float64(g.Grants)/math.Max(1, float64(g.Tokens)))
	}
	for _, g := range runs {
		if g.FirstError != "" {
			fmt.Fprintf(&b, "\n%d readers, first error: `%s`\n", g.Readers, strings.ReplaceAll(g.FirstError, "`", "'"))
		}
	}
	return b.String()
}

// scrapeCell is a scrape's median time and series, or "not measured".
func scrapeCell(l growthLevel, limit int) string {
	s, ok := scrapeAt(l, limit)
	if !ok {
		return "not measured"
	}
	return fmt.Sprintf("%.1f ms, %s series", s.MedianMs, fmtInt(float64(s.Series)))
}

// scrapeTargetMs is the metrics scrape's target.
const scrapeTargetMs = 1000

// scrapeAt is the level's scrape at metrics_role_limit limit.
func scrapeAt(l growthLevel, limit int) (scrapeResult, bool) {
	for _, s := range l.Scrapes {
		if s.Limit == limit {
			return s, true
		}
	}
	return scrapeResult{}, false
}

func growthBlock(g *growthResults) string {
	if g == nil || len(g.Levels) < 2 {
		return notMeasured
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d clients, %d rounds of %.1fs per level.\n\n", g.Conc, g.Rounds, g.RoundSecs)
	b.WriteString("| roles | plugin RSS | Go heap | token reads/s | × KV | p50 ms | p99 ms | metrics scrape, limit 1,000 | metrics scrape, every role |\n" +
		"|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, l := range g.Levels {
		f := medians(l.Runs, g.Conc, "token")
		fmt.Fprintf(&b, "| %s | %.1f MiB | %.1f MiB | %s | %s | %.2f | %.2f | %s | %s |\n", fmtInt(float64(l.Roles)), mib(l.RSS), mib(l.Heap),
			fmtInt(f.rate), fmtRatio(growthVsKV(g, l)), f.p50, f.p99, scrapeCell(l, scrapeLimits[0]), scrapeCell(l, scrapeLimits[len(scrapeLimits)-1]))
	}
	rss, heap := perRole(g)
	fmt.Fprintf(&b, "\nMemory per cached role, from %s to %s roles: **%s bytes of RSS, %s bytes of Go heap**.\n",
		fmtInt(float64(g.Levels[0].Roles)), fmtInt(float64(g.Levels[len(g.Levels)-1].Roles)), fmtInt(rss), fmtInt(heap))
	return b.String()
}
