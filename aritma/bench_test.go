package aritma

// In-process benchmarks of the token read path, for the targets in
// docs/benchmarks.md. They run only with -bench (make bench, through
// scripts/bench.sh), never as part of make test's pass/fail:
//
//	go test -run '^$' -bench . -benchmem ./aritma/
//
// Each benchmark goes through HandleRequest as Vault's plugin server does
// (except CacheHitHandler, which is the engine's callback alone), with the
// engine's own clock, pushed forward without a lock where a benchmark needs
// tokens to expire.

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// benchClock is the real clock plus an offset that benchmarks push forward,
// lock-free, to make the cached token too old to hand out.
type benchClock struct{ offset atomic.Int64 }

func (c *benchClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// expireCached moves the clock past any cached token's reuse threshold (an
// hour-long token is reused for well under 50 minutes).
func (c *benchClock) expireCached() { c.offset.Add(int64(50 * time.Minute)) }

// newBenchEnv is newTestEnv with the real clock, a fake authorization server
// issuing hour-long tokens, and role r using it, its token cached.
func newBenchEnv(b *testing.B) (*testEnv, *benchClock, *fakeAuthServer) {
	b.Helper()
	e := newTestEnv(b)
	clock := &benchClock{}
	e.b.now = clock.Now
	srv := newFakeAuthServer(b)
	e.setupRole(b, srv, "r", nil)
	mustRead(b, e, "token/r")
	return e, clock, srv
}

// mustRead reads path and fails on a Go error or an error response.
func mustRead(b *testing.B, e *testEnv, path string) {
	resp, err := e.request(logical.ReadOperation, path, nil)
	if err != nil || resp == nil || resp.IsError() {
		b.Fatalf("read %s: %v %v", path, err, respError(resp))
	}
}

// BenchmarkFloor_ConfigRead is the framework's floor: the same backend's
// most trivial read (one storage lookup of an unset key, three fields back).
func BenchmarkFloor_ConfigRead(b *testing.B) {
	e, _, _ := newBenchEnv(b)
	b.ReportAllocs()
	for b.Loop() {
		mustRead(b, e, "config")
	}
}

// BenchmarkTokenRead_CacheHit reads token/<role> while its token is cached:
// the path every reader but one per rotation takes.
func BenchmarkTokenRead_CacheHit(b *testing.B) {
	e, _, srv := newBenchEnv(b)
	b.ReportAllocs()
	for b.Loop() {
		mustRead(b, e, "token/r")
	}
	if n := srv.count(); n != 1 {
		b.Fatalf("%d grants during cache hits, want the first one only", n)
	}
}

// BenchmarkTokenRead_CacheHitHandler is the engine's own share of a cache
// hit: its read callback, given the FieldData the framework builds, without
// the framework's routing and request handling around it.
func BenchmarkTokenRead_CacheHitHandler(b *testing.B) {
	e, _, _ := newBenchEnv(b)
	schema := pathToken(e.b).Fields
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		req := &logical.Request{Operation: logical.ReadOperation, Path: "token/r", Storage: e.storage}
		d := &framework.FieldData{Raw: map[string]interface{}{"name": "r"}, Schema: schema}
		resp, err := e.b.pathTokenRead(ctx, req, d)
		if err != nil || resp == nil || resp.IsError() {
			b.Fatalf("read: %v %v", err, respError(resp))
		}
	}
}

// BenchmarkTokenRead_Coalesced: per op, the role's token is too old and N
// readers arrive at once; they must share one grant (grants/op is 1).
// ns/op is one rotation, all N readers answered.
func BenchmarkTokenRead_Coalesced(b *testing.B) {
	for _, readers := range []int{64, 1024} {
		b.Run(fmt.Sprintf("readers=%d", readers), func(b *testing.B) {
			e, clock, srv := newBenchEnv(b)
			grants0 := srv.count()
			coalescedReads(b, e, clock, readers, "token/r")
			b.ReportMetric(float64(srv.count()-grants0)/float64(b.N), "grants/op")
		})
	}
}

// coalescedReads is one op per b.Loop: the clock moves past the cached
// token's reuse threshold, and readers read path at once.
func coalescedReads(b *testing.B, e *testEnv, clock *benchClock, readers int, path string) {
	var failed atomic.Int64
	b.ReportAllocs()
	for b.Loop() {
		clock.expireCached()
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(readers)
		for range readers {
			go func() {
				defer wg.Done()
				<-start
				resp, err := e.request(logical.ReadOperation, path, nil)
				if err != nil || resp == nil || resp.IsError() {
					failed.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
	}
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d reads failed", f)
	}
}

// newCredentialBenchEnv is newBenchEnv for a bank customer's credential:
// role acct at a fake bank with hour-long tokens, credential c consented,
// its token cached.
func newCredentialBenchEnv(b *testing.B) (*testEnv, *benchClock, *fakeBank) {
	b.Helper()
	e := newTestEnv(b)
	clock := &benchClock{}
	e.b.now = clock.Now
	bank := newFakeBank(b)
	bank.expiresIn = 3600
	e.setupConsentRole(b, bank, nil)
	e.consent(b, bank, "c")
	mustRead(b, e, "creds/acct/c")
	return e, clock, bank
}

// BenchmarkCredentialRead_CacheHit reads creds/<role>/<name> while the
// customer's token is cached.
func BenchmarkCredentialRead_CacheHit(b *testing.B) {
	e, _, bank := newCredentialBenchEnv(b)
	refreshes := bank.grantsOf("refresh_token")
	b.ReportAllocs()
	for b.Loop() {
		mustRead(b, e, "creds/acct/c")
	}
	if n := bank.grantsOf("refresh_token"); n != refreshes {
		b.Fatalf("%d refreshes during cache hits", n-refreshes)
	}
}

// BenchmarkCredentialRead_Coalesced: per op, the customer's token is too
// old and N readers arrive at once; they must share one refresh
// (refreshes/op is 1), and the bank must see no reused refresh token.
func BenchmarkCredentialRead_Coalesced(b *testing.B) {
	for _, readers := range []int{1, 64, 1024} {
		b.Run(fmt.Sprintf("readers=%d", readers), func(b *testing.B) {
			e, clock, bank := newCredentialBenchEnv(b)
			refreshes0 := bank.grantsOf("refresh_token")
			coalescedReads(b, e, clock, readers, "creds/acct/c")
			if bank.reuses > 0 {
				b.Fatalf("%d refresh tokens reused", bank.reuses)
			}
			b.ReportMetric(float64(bank.grantsOf("refresh_token")-refreshes0)/float64(b.N), "refreshes/op")
		})
	}
}
