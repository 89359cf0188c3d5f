// Package aritma is a Vault secrets engine that keeps OAuth 2.0 client
// credentials for bank APIs (Aritma's id.aritma.io and others) and hands out
// their client_credentials access tokens as leased secrets.
package aritma

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
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

	// sourcesMu guards sources, httpClients and generation. It is never held
	// across storage or network calls.
	sourcesMu sync.RWMutex
	sources   map[string]*tokenSource // by role name
	// httpClients holds one client per environment, shared by its roles so
	// that they share connections to the authorization server.
	httpClients map[string]*http.Client
	// generation counts invalidations, so that a source built from storage
	// read before a change is not cached after it.
	generation uint64

	// writeMu serialises writes, so that a check such as "no role uses this
	// environment" still holds when the write lands.
	writeMu sync.Mutex
}

func newBackend() *backend {
	b := &backend{
		now:         time.Now,
		retryBase:   250 * time.Millisecond,
		sources:     make(map[string]*tokenSource),
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

func (b *backend) clean(context.Context) {
	b.dropAllSources()
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
// only the read that built it).
func (b *backend) storeSource(role string, src *tokenSource, generation uint64) *tokenSource {
	b.sourcesMu.Lock()
	defer b.sourcesMu.Unlock()
	if existing := b.sources[role]; existing != nil {
		return existing
	}
	if b.generation == generation {
		b.sources[role] = src
		if src.sharedHTTPClient && b.httpClients[src.environment] == nil {
			b.httpClients[src.environment] = src.grant.httpClient
		}
	}
	return src
}

// swapRoleSigner makes signer sign the role's next private_key_jwt
// assertions, keeping its cached token: a new key does not make issued
// tokens any less valid. The generation moves on, so that a source being
// built from the role as it was before is not cached.
func (b *backend) swapRoleSigner(role string, signer *assertionSigner) {
	b.sourcesMu.Lock()
	defer b.sourcesMu.Unlock()
	b.generation++
	if src := b.sources[role]; src != nil {
		src.grant.auth.signer.Store(signer)
	}
}

func (b *backend) dropRoleSource(role string) {
	b.sourcesMu.Lock()
	defer b.sourcesMu.Unlock()
	b.generation++
	delete(b.sources, role)
}

// dropEnvironmentSources drops the environment's HTTP client and the sources
// of the roles that use it.
func (b *backend) dropEnvironmentSources(environment string) {
	b.dropSources(func(name string) bool { return name == environment })
}

func (b *backend) dropAllSources() {
	b.dropSources(func(string) bool { return true })
}

func (b *backend) dropSources(environmentMatches func(string) bool) {
	b.sourcesMu.Lock()
	b.generation++
	for role, src := range b.sources {
		if environmentMatches(src.environment) {
			delete(b.sources, role)
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
