// Package aritma is a Vault secrets engine that keeps OAuth 2.0 client
// credentials for bank APIs (Aritma's id.aritma.io and others) and hands out
// their client_credentials access tokens as leased secrets.
package aritma

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
)

// Factory returns a configured backend; Vault calls it when the engine is mounted.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := newBackend()
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

// backend owns the engine's storage layout and, in memory, one token source
// per role: the role's grant settings and its cached access token. The token
// read path uses only this memory; storage is read when a role is first used
// after a start or a change.
type backend struct {
	*framework.Backend

	// now is the clock; tests replace it.
	now func() time.Time
	// retryBase scales the backoff between retries of a failed grant.
	retryBase time.Duration

	// sourcesMu guards sources, retired, httpClients and generation. It is
	// never held across storage or network calls.
	sourcesMu sync.RWMutex
	sources   map[string]*tokenSource // by role name
	// retired holds each role's last dropped source until the role is read
	// again: the source rebuilt then takes over its token if the grant
	// settings are the same (a key rotation, a write that changed nothing).
	retired map[string]*tokenSource
	// httpClients holds one client per environment, shared by its roles so
	// that they share connections to the authorization server.
	httpClients map[string]*http.Client
	// generation counts invalidations, so that a source built from storage
	// read before a change is not cached after it.
	generation uint64

	// performanceStandby caches whether this node is a performance standby,
	// asked of Vault at most once per standbyCheckInterval.
	performanceStandby atomic.Bool
	standbyCheckedAt   atomic.Int64 // UnixNano

	// writeMu serialises writes, so that a check such as "no role uses this
	// environment" still holds when the write lands.
	writeMu sync.Mutex
}

func newBackend() *backend {
	b := &backend{
		now:         time.Now,
		retryBase:   250 * time.Millisecond,
		sources:     make(map[string]*tokenSource),
		retired:     make(map[string]*tokenSource),
		httpClients: make(map[string]*http.Client),
	}
	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			Unauthenticated: []string{jwksPathPattern},
			// Client secrets live in roles; environments may hold CA material
			// and, later, client keys. Seal-wrap them where the seal can.
			SealWrapStorage: []string{
				configPath,
				environmentStoragePrefix,
				roleStoragePrefix,
			},
		},
		// token/ comes first: the framework tries the patterns in order,
		// and the token read is the hot path.
		Paths: framework.PathAppend(
			[]*framework.Path{pathToken(b), pathConfig(b)},
			pathEnvironments(b),
			pathRoles(b),
			pathRoleKeys(b),
		),
		Secrets:        []*framework.Secret{secretAccessToken(b)},
		Invalidate:     b.invalidate,
		Clean:          b.clean,
		RunningVersion: Version,
	}
	return b
}

// writeOperation declares a write. Vault forwards every write from
// performance standbys and secondaries, so that its side effects (discovery,
// key generation) happen once, on the node that can write.
func writeOperation(callback framework.OperationFunc, summary string) *framework.PathOperation {
	return &framework.PathOperation{
		Callback:                    callback,
		Summary:                     summary,
		ForwardPerformanceStandby:   true,
		ForwardPerformanceSecondary: true,
	}
}

// invalidate is called on standbys and performance replicas when storage
// changes under them; the active node calls the same drop functions itself
// after each write.
func (b *backend) invalidate(_ context.Context, key string) {
	switch {
	case key == configPath:
		b.dropAllSources()
	case strings.HasPrefix(key, environmentStoragePrefix):
		b.dropEnvironmentSources(strings.TrimPrefix(key, environmentStoragePrefix))
	case strings.HasPrefix(key, roleStoragePrefix):
		b.dropRoleSource(strings.TrimPrefix(key, roleStoragePrefix))
	}
}

// standbyCheckInterval bounds how often the token read asks Vault for the
// node's replication state: the question costs a round trip to Vault for an
// external plugin, and a node's role changes rarely (Vault sets mounts up
// anew when it does).
const standbyCheckInterval = time.Second

// onPerformanceStandby reports whether this node is a performance standby,
// which cannot store the lease a token read creates. A token read there
// answers logical.ErrReadOnly before any grant, and Vault forwards it to the
// active node, where the role's one cached token lives. Performance
// secondaries keep leases of their own and serve token reads themselves.
func (b *backend) onPerformanceStandby() bool {
	now := time.Now().UnixNano()
	if checked := b.standbyCheckedAt.Load(); checked == 0 || now-checked > int64(standbyCheckInterval) {
		b.performanceStandby.Store(b.System().ReplicationState().HasState(consts.ReplicationPerformanceStandby))
		b.standbyCheckedAt.Store(now)
	}
	return b.performanceStandby.Load()
}

// cachedSource returns the role's token source if one is cached, and the
// generation to hand to storeSource after building one.
func (b *backend) cachedSource(role string) (*tokenSource, uint64) {
	b.sourcesMu.RLock()
	defer b.sourcesMu.RUnlock()
	return b.sources[role], b.generation
}

func (b *backend) cachedHTTPClient(environment string) *http.Client {
	b.sourcesMu.RLock()
	defer b.sourcesMu.RUnlock()
	return b.httpClients[environment]
}

// storeSource caches src and its environment's HTTP client, unless another
// reader cached a source first (that one wins, so concurrent first reads share
// one token) or something was invalidated since generation (then src serves
// only the read that built it). A cached src takes over the token of the
// role's retired source when their settings match.
func (b *backend) storeSource(role string, src *tokenSource, generation uint64) *tokenSource {
	b.sourcesMu.Lock()
	defer b.sourcesMu.Unlock()
	if existing := b.sources[role]; existing != nil {
		return existing
	}
	if b.generation == generation {
		if old := b.retired[role]; old != nil {
			src.adopt(old)
			delete(b.retired, role)
		}
		b.sources[role] = src
		if src.sharedHTTPClient && b.httpClients[src.environment] == nil {
			b.httpClients[src.environment] = src.grant.httpClient
		}
	}
	return src
}

// dropRoleSource is called when the role's storage changes: the source is
// retired, and rebuilt from storage on the role's next read.
func (b *backend) dropRoleSource(role string) {
	b.sourcesMu.Lock()
	defer b.sourcesMu.Unlock()
	b.generation++
	b.retireLocked(role)
}

func (b *backend) retireLocked(role string) {
	if src := b.sources[role]; src != nil {
		b.retired[role] = src
		delete(b.sources, role)
	}
}

// forgetRetiredSource lets go of a deleted role's retired source.
func (b *backend) forgetRetiredSource(role string) {
	b.sourcesMu.Lock()
	defer b.sourcesMu.Unlock()
	delete(b.retired, role)
}

// dropEnvironmentSources retires the sources of the roles that use the
// environment, and drops its HTTP client.
func (b *backend) dropEnvironmentSources(environment string) {
	b.dropSources(func(name string) bool { return name == environment })
}

// dropAllSources is for a config change.
func (b *backend) dropAllSources() {
	b.dropSources(func(string) bool { return true })
}

func (b *backend) dropSources(environmentMatches func(string) bool) {
	b.sourcesMu.Lock()
	b.generation++
	for role, src := range b.sources {
		if environmentMatches(src.environment) {
			b.retireLocked(role)
		}
	}
	var dropped []*http.Client
	for environment, client := range b.httpClients {
		if environmentMatches(environment) {
			delete(b.httpClients, environment)
			dropped = append(dropped, client)
		}
	}
	b.sourcesMu.Unlock()
	for _, client := range dropped {
		client.CloseIdleConnections()
	}
}

// clean forgets everything: the mount is going away.
func (b *backend) clean(context.Context) {
	b.sourcesMu.Lock()
	b.generation++
	clients := b.httpClients
	b.sources = make(map[string]*tokenSource)
	b.retired = make(map[string]*tokenSource)
	b.httpClients = make(map[string]*http.Client)
	b.sourcesMu.Unlock()
	for _, client := range clients {
		client.CloseIdleConnections()
	}
}

const backendHelp = `
The Aritma secrets engine keeps OAuth 2.0 client credentials for bank APIs
(Aritma's id.aritma.io and id.dev.aritma.io, and other banks' authorization
servers) and hands out short-lived Bearer access tokens from the
client_credentials grant as leased secrets, so that applications never hold
the client secret.

An environment is an authorization server (its token endpoint and how the
client authenticates); "production" and "development" are built in. A role
holds one client's credentials and scopes for one environment. Reading
token/<role> returns an access token whose lease lasts as long as the token;
tokens are cached and shared by all readers of the role until close to expiry.
`
