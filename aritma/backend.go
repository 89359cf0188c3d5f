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
	b.storage = conf.StorageView
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

	// credentialsMu guards credentials: the cached access token of each
	// bank customer's credential.
	credentialsMu sync.RWMutex
	credentials   map[credentialID]*credentialSource

	// statsMu guards stats, each role's counters on this node; metrics
	// holds what is not counted per role (path_metrics.go).
	statsMu sync.Mutex
	stats   map[string]*roleStats
	metrics *engineMetrics

	// storage is the mount's storage, for what a grant stores itself (a
	// switch to the next client secret) outside a request's own writes.
	storage logical.Storage

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
		credentials: make(map[credentialID]*credentialSource),
		stats:       make(map[string]*roleStats),
		metrics:     newEngineMetrics(),
	}
	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			Unauthenticated: []string{jwksPathPattern, callbackPath},
			// Client secrets live in roles; environments may hold CA material
			// and, later, client keys. Seal-wrap them where the seal can.
			SealWrapStorage: []string{
				configPath,
				environmentStoragePrefix,
				roleStoragePrefix,
				credentialStoragePrefix,
				pendingConsentPrefix,
			},
		},
		// token/ comes first: the framework tries the patterns in order,
		// and the token read is the hot path.
		Paths: framework.PathAppend(
			[]*framework.Path{pathToken(b), pathCredRead(b), pathConfig(b)},
			pathEnvironments(b),
			pathRoles(b),
			pathRoleKeys(b),
			pathRoleSecret(b),
			[]*framework.Path{pathMetrics(b)},
			pathCreds(b),
		),
		Secrets:        []*framework.Secret{secretAccessToken(b)},
		Invalidate:     b.invalidate,
		Clean:          b.clean,
		PeriodicFunc:   b.periodic,
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
		role := strings.TrimPrefix(key, roleStoragePrefix)
		b.dropRoleSource(role)
		b.dropCredentials(role, "")
	case strings.HasPrefix(key, credentialStoragePrefix):
		role, name, _ := strings.Cut(strings.TrimPrefix(key, credentialStoragePrefix), "/")
		b.dropCredentials(role, name)
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
