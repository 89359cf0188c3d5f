package aritma

// In-process benchmarks of the token read path. They run only with -bench
// (make bench, through scripts/bench.sh), never as part of make test's
// pass/fail:
//
//	go test -run '^$' -bench . -benchmem ./aritma/
//
// Each benchmark goes through HandleRequest as Vault's plugin server does,
// with the engine's own clock (time.Now, pushed forward without a lock where
// a benchmark needs tokens to expire) and the plugin's own logger settings
// (Trace, JSON; Vault filters what it re-logs).

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// benchClock is the real clock plus an offset that benchmarks push forward,
// lock-free, to make the cached token too old to hand out.
type benchClock struct{ offset atomic.Int64 }

func (c *benchClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// expireCached moves the clock past any cached token's reuse threshold (an
// hour-long token is reused for its first 48 minutes).
func (c *benchClock) expireCached() { c.offset.Add(int64(50 * time.Minute)) }

// newBenchEnv is newTestEnv with the benchmark clock.
func newBenchEnv(tb testing.TB) (*testEnv, *benchClock) {
	tb.Helper()
	e := newTestEnv(tb)
	clock := &benchClock{}
	e.b.now = clock.Now
	return e, clock
}

// benchServer is the fake authorization server (fakeAuthServer's handler)
// with the time spent in its handler counted, so that benchmarks can take
// the server's own time out of the engine's.
type benchServer struct {
	*fakeAuthServer
	handlerNanos atomic.Int64
}

func newBenchServer(tb testing.TB) *benchServer {
	tb.Helper()
	s := &benchServer{fakeAuthServer: &fakeAuthServer{expiresIn: 3600}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		s.serve(w, r)
		s.handlerNanos.Add(int64(time.Since(start)))
	}))
	tb.Cleanup(s.Close)
	return s
}

// benchRole points environment env at url and writes role with it.
func benchRole(tb testing.TB, e *testEnv, env, url, role string, envExtra map[string]interface{}) {
	tb.Helper()
	envData := map[string]interface{}{"token_url": url}
	for k, v := range envExtra {
		envData[k] = v
	}
	e.mustWrite(tb, "environments/"+env, envData)
	e.mustWrite(tb, "roles/"+role, map[string]interface{}{
		"environment": env, "client_id": "client-" + role, "client_secret": testClientSecret, "scopes": "api",
	})
}

// mustRead reads path and fails on a Go error or an error response.
func mustRead(tb testing.TB, e *testEnv, path string) *logical.Response {
	resp, err := e.request(logical.ReadOperation, path, nil)
	if err != nil || resp == nil || resp.IsError() {
		tb.Fatalf("read %s: %v %v", path, err, respError(resp))
	}
	return resp
}

// BenchmarkFloor_ConfigRead is the framework's floor: the same backend's
// most trivial read (one storage lookup of an unset key, three fields back).
func BenchmarkFloor_ConfigRead(b *testing.B) {
	e, _ := newBenchEnv(b)
	b.ReportAllocs()
	for b.Loop() {
		mustRead(b, e, "config")
	}
}

// BenchmarkProbe_ConstantLease is the in-process twin of the end-to-end
// ceiling probe (bench/cmd/probe): a framework backend whose only path is
// token/<name> and whose read returns a constant leased secret with the
// engine's four fields. What it costs is what the framework costs any
// read of a named, leased path; the cache hit is compared with it too.
func BenchmarkProbe_ConstantLease(b *testing.B) {
	data := map[string]interface{}{
		"access_token": strings.Repeat("x", 712), "token_type": "Bearer",
		"expires_at": "2099-01-01T00:00:00Z", "scope": "api",
	}
	probe := &framework.Backend{
		BackendType: logical.TypeLogical,
		Paths: []*framework.Path{{
			Pattern: "token/" + framework.GenericNameRegex("name"),
			Fields:  map[string]*framework.FieldSchema{"name": {Type: framework.TypeString}},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
						return &logical.Response{
							Secret: &logical.Secret{
								LeaseOptions: logical.LeaseOptions{TTL: time.Hour, MaxTTL: time.Hour},
								InternalData: map[string]interface{}{"secret_type": "probe"},
							},
							Data: data,
						}, nil
					},
				},
			},
		}},
		Secrets: []*framework.Secret{{Type: "probe"}},
	}
	storage := &logical.InmemStorage{}
	if err := probe.Setup(context.Background(), &logical.BackendConfig{
		Logger: hclog.NewNullLogger(), System: logical.TestSystemView(), StorageView: storage,
	}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := probe.HandleRequest(context.Background(), &logical.Request{
			Operation: logical.ReadOperation, Path: "token/r", Storage: storage,
		})
		if err != nil || resp == nil || resp.IsError() {
			b.Fatalf("probe read: %v %v", err, respError(resp))
		}
	}
}

// BenchmarkTokenRead_CacheHit reads token/<role> while its token is cached:
// the path every reader but one per rotation takes.
func BenchmarkTokenRead_CacheHit(b *testing.B) {
	e, _ := newBenchEnv(b)
	srv := newBenchServer(b)
	benchRole(b, e, "fake", srv.tokenURL(), "r", nil)
	mustRead(b, e, "token/r")
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
	e, _ := newBenchEnv(b)
	srv := newBenchServer(b)
	benchRole(b, e, "fake", srv.tokenURL(), "r", nil)
	mustRead(b, e, "token/r")
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

// The parallel pair: every core reading at once (lock and cache-line
// contention on the shared token source).
func BenchmarkFloor_ConfigReadParallel(b *testing.B) {
	e, _ := newBenchEnv(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mustRead(b, e, "config")
		}
	})
}

func BenchmarkTokenRead_CacheHitParallel(b *testing.B) {
	e, _ := newBenchEnv(b)
	srv := newBenchServer(b)
	benchRole(b, e, "fake", srv.tokenURL(), "r", nil)
	mustRead(b, e, "token/r")
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mustRead(b, e, "token/r")
		}
	})
}

// BenchmarkTokenRead_Grant is the cold path: every read finds the cached
// token too old and runs a grant against a local httptest server. Besides
// ns/op it reports the server handler's own time (server-ns/op) and the rest
// (engine-ns/op: the engine, the oauth2 library, net/http and loopback TCP).
// Allocations include the in-process server's.
func BenchmarkTokenRead_Grant(b *testing.B) {
	e, clock := newBenchEnv(b)
	srv := newBenchServer(b)
	benchRole(b, e, "fake", srv.tokenURL(), "r", nil)
	mustRead(b, e, "token/r")
	grants0 := srv.count()
	srv.handlerNanos.Store(0)
	b.ReportAllocs()
	for b.Loop() {
		clock.expireCached()
		mustRead(b, e, "token/r")
	}
	n := float64(b.N)
	server := float64(srv.handlerNanos.Load())
	b.ReportMetric(float64(srv.count()-grants0)/n, "grants/op")
	b.ReportMetric(server/n, "server-ns/op")
	b.ReportMetric((float64(b.Elapsed().Nanoseconds())-server)/n, "engine-ns/op")
}

// BenchmarkTokenRead_Coalesced: per op, the role's token is too old and N
// readers arrive at once; they must share one grant. ns/op is one rotation
// (all N readers answered); ns/read divides it by N.
func BenchmarkTokenRead_Coalesced(b *testing.B) {
	for _, readers := range []int{1, 64, 1024} {
		b.Run(fmt.Sprintf("readers=%d", readers), func(b *testing.B) {
			e, clock := newBenchEnv(b)
			srv := newBenchServer(b)
			benchRole(b, e, "fake", srv.tokenURL(), "r", nil)
			mustRead(b, e, "token/r")
			grants0 := srv.count()
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
						resp, err := e.request(logical.ReadOperation, "token/r", nil)
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
			n := float64(b.N)
			b.ReportMetric(float64(srv.count()-grants0)/n, "grants/op")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n/float64(readers), "ns/read")
		})
	}
}

// BenchmarkTokenRead_OtherRoleWhileOneHangs: cache-hit reads of role B, once
// with role A idle and once while A's grant hangs at its server. It fails if
// the backend's lock is held while A's request is open, or if B's first
// (cold, storage-reading) read waits on A.
func BenchmarkTokenRead_OtherRoleWhileOneHangs(b *testing.B) {
	for _, hang := range []bool{false, true} {
		name := "A=idle"
		if hang {
			name = "A=hanging"
		}
		b.Run(name, func(b *testing.B) {
			e, _ := newBenchEnv(b)
			fast := newBenchServer(b)
			slow := newBenchServer(b)
			release := make(chan struct{})
			arrived := make(chan struct{}, 1)
			if hang {
				slow.respond = func(w http.ResponseWriter, r *http.Request, n int) {
					arrived <- struct{}{}
					<-release
					writeJSON(w, http.StatusOK, map[string]interface{}{"access_token": "a", "expires_in": 3600, "token_type": "Bearer"})
				}
			}
			benchRole(b, e, "slow", slow.tokenURL(), "a", map[string]interface{}{"request_timeout": "5m"})
			benchRole(b, e, "fast", fast.tokenURL(), "b", nil)

			aDone := make(chan struct{})
			go func() {
				defer close(aDone)
				_, _ = e.request(logical.ReadOperation, "token/a", nil)
			}()
			if hang {
				<-arrived
				defer func() { close(release); <-aDone }()
				if !e.b.sourcesMu.TryLock() {
					b.Fatal("the backend's sourcesMu is held while role a's grant is open")
				}
				e.b.sourcesMu.Unlock()
			} else {
				<-aDone
			}
			coldStart := time.Now()
			mustRead(b, e, "token/b") // b's first read: storage, a grant, storeSource
			if d := time.Since(coldStart); d > time.Second {
				b.Fatalf("role b's first read took %s while role a's grant was open", d)
			}

			b.ReportAllocs()
			for b.Loop() {
				mustRead(b, e, "token/b")
			}
			if hang {
				select {
				case <-aDone:
					b.Fatal("role a's read ended before it was released: the benchmark did not measure a hanging grant")
				default:
				}
			}
		})
	}
}
