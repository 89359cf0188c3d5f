package aritma

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aritma/vault-plugin-secrets-aritma/internal/testservers"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
)

// testClock is a settable clock for the backend, so tests cross expiry
// boundaries without sleeping.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock {
	return &testClock{now: time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// syncBuffer is a log sink that tests read while the backend writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

type testEnv struct {
	b       *backend
	storage logical.Storage
	clock   *testClock
	logs    *syncBuffer
}

// newTestEnv builds a backend on in-memory storage with a test clock and its
// log, at Trace level, captured.
func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	logs := &syncBuffer{}
	system := logical.TestSystemView()
	system.PluginEnvironment = &logical.PluginEnvironment{VaultVersion: "1.21.1"}
	conf := &logical.BackendConfig{
		Logger:      hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: logs}),
		System:      system,
		StorageView: &logical.InmemStorage{},
	}
	raw, err := Factory(context.Background(), conf)
	if err != nil {
		t.Fatalf("Factory: %v", err)
	}
	b := raw.(*backend)
	clock := newTestClock()
	b.now = clock.Now
	b.retryBase = time.Millisecond
	return &testEnv{b: b, storage: conf.StorageView, clock: clock, logs: logs}
}

// do sends one request and fails the test on a Go error.
func (e *testEnv) do(t testing.TB, op logical.Operation, path string, data map[string]interface{}) *logical.Response {
	t.Helper()
	resp, err := e.request(op, path, data)
	if err != nil {
		t.Fatalf("%s %s: unexpected error: %v", op, path, err)
	}
	return resp
}

func (e *testEnv) request(op logical.Operation, path string, data map[string]interface{}) (*logical.Response, error) {
	return e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: op,
		Path:      path,
		Data:      data,
		Storage:   e.storage,
	})
}

// write creates or updates path, as Vault does: create when the path's
// existence check says it does not exist yet.
func (e *testEnv) write(t testing.TB, path string, data map[string]interface{}) *logical.Response {
	t.Helper()
	var op logical.Operation = logical.UpdateOperation
	if _, exists, err := e.b.HandleExistenceCheck(context.Background(), &logical.Request{
		Operation: logical.CreateOperation, Path: path, Data: data, Storage: e.storage,
	}); err == nil && !exists {
		op = logical.CreateOperation
	}
	return e.do(t, op, path, data)
}

// mustWrite writes and fails the test on an error response.
func (e *testEnv) mustWrite(t testing.TB, path string, data map[string]interface{}) {
	t.Helper()
	if resp := e.write(t, path, data); resp != nil && resp.IsError() {
		t.Fatalf("write %s: %v", path, resp.Error())
	}
}

// readToken reads token/<role> and fails the test on any error.
func (e *testEnv) readToken(t testing.TB, role string) *logical.Response {
	t.Helper()
	resp := e.do(t, logical.ReadOperation, "token/"+role, nil)
	if resp == nil || resp.IsError() {
		t.Fatalf("read token/%s: %v", role, respError(resp))
	}
	return resp
}

func respError(resp *logical.Response) error {
	if resp == nil {
		return fmt.Errorf("nil response")
	}
	return resp.Error()
}

// recordedRequest is what reached the fake authorization server.
type recordedRequest struct {
	RemoteAddr    string
	Method        string
	Path          string
	ContentType   string
	Authorization string
	Form          url.Values
}

// fakeAuthServer is an httptest authorization server. By default it issues
// an opaque token per request; respond replaces that.
type fakeAuthServer struct {
	*httptest.Server
	mu        sync.Mutex
	requests  []recordedRequest
	expiresIn int
	respond   func(w http.ResponseWriter, r *http.Request, n int)
}

func newFakeAuthServer(t testing.TB) *fakeAuthServer {
	t.Helper()
	return startFakeAuthServer(t, httptest.NewServer)
}

// newFakeTLSAuthServer is newFakeAuthServer on https; environments trust it
// with ca_cert = serverCAPEM(f.Server).
func newFakeTLSAuthServer(t testing.TB) *fakeAuthServer {
	t.Helper()
	return startFakeAuthServer(t, httptest.NewTLSServer)
}

func startFakeAuthServer(t testing.TB, start func(http.Handler) *httptest.Server) *fakeAuthServer {
	f := &fakeAuthServer{expiresIn: 3600}
	f.Server = start(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAuthServer) tokenURL() string { return f.URL + "/connect/token" }

func (f *fakeAuthServer) serve(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	f.mu.Lock()
	f.requests = append(f.requests, recordedRequest{
		RemoteAddr:    r.RemoteAddr,
		Method:        r.Method,
		Path:          r.URL.Path,
		ContentType:   r.Header.Get("Content-Type"),
		Authorization: r.Header.Get("Authorization"),
		Form:          r.PostForm,
	})
	n := len(f.requests)
	respond := f.respond
	expiresIn := f.expiresIn
	f.mu.Unlock()
	if respond != nil {
		respond(w, r, n)
		return
	}
	writeJSON(w, http.StatusOK, map[string]interface{}{
		"access_token": fmt.Sprintf("opaque-access-token-%d", n),
		"expires_in":   expiresIn,
		"token_type":   "Bearer",
		"scope":        r.PostForm.Get("scope"),
	})
}

func (f *fakeAuthServer) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

func (f *fakeAuthServer) request(i int) recordedRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[i]
}

func writeJSON(w http.ResponseWriter, status int, body interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// testClientSecret is distinctive so that hygiene tests can search for it.
const testClientSecret = "s3cret-7f1c9e2a-do-not-leak"

// setupRole points an environment at srv and writes a role using it.
func (e *testEnv) setupRole(t testing.TB, srv *fakeAuthServer, role string, extra map[string]interface{}) {
	t.Helper()
	e.mustWrite(t, "environments/fake", map[string]interface{}{"token_url": srv.tokenURL()})
	data := map[string]interface{}{
		"environment":   "fake",
		"client_id":     "client-" + role,
		"client_secret": testClientSecret,
		"scopes":        "api",
	}
	for k, v := range extra {
		data[k] = v
	}
	e.mustWrite(t, "roles/"+role, data)
}

// The running version is checked where Vault reports it (the e2e upgrade
// test reads it from sys/mounts).
func TestFactory_SealWrapsSecrets(t *testing.T) {
	e := newTestEnv(t)
	want := map[string]bool{"config": true, "environments/": true, "roles/": true}
	for _, p := range e.b.SpecialPaths().SealWrapStorage {
		delete(want, p)
	}
	if len(want) != 0 {
		t.Errorf("SealWrapStorage misses %v", want)
	}
	if e.b.Type() != logical.TypeLogical {
		t.Errorf("backend type = %v, want logical", e.b.Type())
	}
}

// Every path and field has help text: `vault path-help` is the user's manual.
func TestPaths_HaveHelpAndFieldDescriptions(t *testing.T) {
	e := newTestEnv(t)
	for _, p := range e.b.Paths {
		if p.HelpSynopsis == "" || p.HelpDescription == "" {
			t.Errorf("path %q has no help synopsis or description", p.Pattern)
		}
		for name, f := range p.Fields {
			if f.Description == "" {
				t.Errorf("path %q field %q has no description", p.Pattern, name)
			}
		}
		for op, h := range p.Operations {
			if h.Properties().Summary == "" {
				t.Errorf("path %q operation %s has no summary", p.Pattern, op)
			}
		}
	}
	for _, s := range e.b.Secrets {
		for name, f := range s.Fields {
			if f.Description == "" {
				t.Errorf("secret %q field %q has no description", s.Type, name)
			}
		}
	}
}

// The user's path from the README: write a role, read a token.
func TestUserPath_WriteRoleReadToken(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	e.setupRole(t, srv, "payments", map[string]interface{}{"scopes": "bankservice"})

	resp := e.readToken(t, "payments")
	if got, want := resp.Data["access_token"], "opaque-access-token-1"; got != want {
		t.Errorf("access_token = %v, want %v", got, want)
	}
	if got := resp.Data["token_type"]; got != "Bearer" {
		t.Errorf("token_type = %v, want Bearer", got)
	}
	if got := resp.Data["scope"]; got != "bankservice" {
		t.Errorf("scope = %v, want bankservice", got)
	}
	// An hour from a second before the request (issueRounding).
	wantExpiry := e.clock.Now().Add(time.Hour - time.Second).UTC().Format(time.RFC3339)
	if got := resp.Data["expires_at"]; got != wantExpiry {
		t.Errorf("expires_at = %v, want %v", got, wantExpiry)
	}
	if resp.Secret == nil {
		t.Fatal("response has no lease")
	}
	if want := time.Hour - time.Second; resp.Secret.TTL != want || resp.Secret.MaxTTL != want {
		t.Errorf("lease TTL/MaxTTL = %s/%s, want what the token has left, %s", resp.Secret.TTL, resp.Secret.MaxTTL, want)
	}
	if resp.Secret.Renewable {
		t.Error("lease is renewable; want renewable=false")
	}
	if got := resp.Secret.InternalData["role"]; got != "payments" {
		t.Errorf("lease internal role = %v, want payments", got)
	}
}

// invalidate (called on standbys and replicas, after another node changed
// storage) drops exactly the tokens whose grant settings changed: a change
// to a role's signing keys alone, or a write that changed nothing, keeps it.
func TestInvalidate_DropsCachedTokensWhoseSettingsChanged(t *testing.T) {
	for name, tc := range map[string]struct {
		key       string
		change    map[string]interface{} // written to key in storage, behind the backend's back
		wantFresh bool
	}{
		"own role":                {key: "roles/a", change: map[string]interface{}{"scopes": "bankservice"}, wantFresh: true},
		"own role, same settings": {key: "roles/a", change: map[string]interface{}{"scopes": "api"}, wantFresh: false},
		"another role":            {key: "roles/b", change: map[string]interface{}{"scopes": "bankservice"}, wantFresh: false},
		"own environment":         {key: "environments/fake", change: map[string]interface{}{"assumed_token_lifetime": "2m"}, wantFresh: true},
		"other environment":       {key: "environments/production", change: map[string]interface{}{"assumed_token_lifetime": "2m"}, wantFresh: false},
		"config":                  {key: "config", change: map[string]interface{}{"request_timeout": "20s"}, wantFresh: true},
		"unrelated key":           {key: "something/else", wantFresh: false},
	} {
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t)
			srv := newFakeAuthServer(t)
			e.setupRole(t, srv, "a", nil)
			e.setupRole(t, srv, "b", nil)
			first := e.readToken(t, "a").Data["access_token"]

			// Another node's write: storage changes, then the invalidation.
			if tc.change != nil {
				other := newTestEnv(t)
				other.storage = e.storage
				other.mustWrite(t, tc.key, tc.change)
			}
			e.b.invalidate(context.Background(), tc.key)

			second := e.readToken(t, "a").Data["access_token"]
			if gotFresh := second != first; gotFresh != tc.wantFresh {
				t.Errorf("after a change to %q: new token = %v, want %v (grants: %d)", tc.key, gotFresh, tc.wantFresh, srv.count())
			}
		})
	}
}

// Secrets never appear in logs (Trace level included), in reads other than
// token/, or in errors, in any encoding. The run covers success, reuse, an
// upstream error that echoes the secret, every read path, and a role with an
// imported private key and a TLS client key, so that the scan knows the keys.
func TestSecretHygiene_NoSecretOutsideTokenPath(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	e.setupRole(t, srv, "app", nil)
	signingKey := testECKeyPEM(t)
	tlsCert, tlsKey := tlsClientPair(t, "hygiene-client")
	e.mustWrite(t, "roles/keyed", map[string]interface{}{
		"environment": "fake", "client_id": "keyed", "auth_method": "private_key_jwt", "private_key": signingKey,
		"tls_client_cert": tlsCert, "tls_client_key": tlsKey,
	})
	e.readToken(t, "keyed")

	tokenResp := e.readToken(t, "app")
	accessToken := tokenResp.Data["access_token"].(string)
	e.readToken(t, "app")

	var outputs []string
	record := func(resp *logical.Response, err error) {
		if err != nil {
			outputs = append(outputs, err.Error())
		}
		if resp != nil {
			b, _ := json.Marshal(resp)
			outputs = append(outputs, string(b))
			if raw, ok := resp.Data[logical.HTTPRawBody].([]byte); ok {
				outputs = append(outputs, string(raw))
			}
		}
	}
	for _, path := range []string{"roles/app", "roles/keyed", "roles/keyed/jwks", "environments/fake", "config"} {
		record(e.request(logical.ReadOperation, path, nil))
	}
	for _, path := range []string{"roles/", "environments/"} {
		record(e.request(logical.ListOperation, path, nil))
	}
	record(e.request(logical.HelpOperation, "token/app", nil))

	// A server that rejects the client and quotes its secret back.
	srv.respond = func(w http.ResponseWriter, r *http.Request, _ int) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{
			"error":             "invalid_client",
			"error_description": "bad secret " + r.PostForm.Get("client_secret"),
		})
	}
	// The next secret is tried too, and quoted back too.
	e.mustWrite(t, "roles/app", map[string]interface{}{"scopes": "bankservice", "next_client_secret": testNextClientSecret}) // drops the cached token
	resp, err := e.request(logical.ReadOperation, "token/app", nil)
	if err == nil {
		t.Fatalf("read with a rejected client succeeded: %v", resp.Data)
	}
	if !strings.Contains(err.Error(), "invalid_client") || !strings.Contains(err.Error(), "next_client_secret was tried too") {
		t.Errorf("error %q does not carry the server's invalid_client for both secrets", err)
	}
	record(resp, err)
	for _, path := range []string{"roles/app", "roles/app/status", "metrics"} {
		record(e.request(logical.ReadOperation, path, nil))
	}
	record(e.request(logical.ListOperation, "roles/", nil))

	logs := e.logs.String()
	if !strings.Contains(logs, "token issued") || !strings.Contains(logs, "token request failed") {
		t.Fatalf("the captured log does not cover the run; got:\n%s", logs)
	}
	for what, secret := range map[string]string{
		"client secret": testClientSecret, "next client secret": testNextClientSecret, "access token": accessToken,
		"imported signing key": signingKey, "TLS client key": tlsKey,
	} {
		for _, form := range testservers.SecretForms(secret) {
			if strings.Contains(logs, form) {
				t.Errorf("the %s appears in the log", what)
			}
			for _, out := range outputs {
				if strings.Contains(out, form) {
					t.Errorf("the %s appears in a response or error", what)
				}
			}
		}
	}
}

// testECKeyPEM is a new P-256 key, PKCS #8 PEM, for a test that must know
// the key it imports.
func testECKeyPEM(t testing.TB) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// The generated OpenAPI document names every operation well, for clients
// generated from it and for the Vault UI.
func TestOpenAPI_OperationIDs(t *testing.T) {
	e := newTestEnv(t)
	resp := e.do(t, logical.HelpOperation, "", nil)
	doc, ok := resp.Data["openapi"].(map[string]interface{})
	if !ok {
		raw, _ := json.Marshal(resp.Data["openapi"])
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("no OpenAPI document: %v", err)
		}
	}
	raw, _ := json.Marshal(doc)
	for _, id := range []string{
		"aritma-read-configuration", "aritma-configure", "aritma-delete-configuration",
		"aritma-list-environments", "aritma-read-environment", "aritma-write-environment", "aritma-delete-environment",
		"aritma-list-roles", "aritma-read-role", "aritma-write-role", "aritma-delete-role",
		"aritma-generate-token",
		"aritma-rotate-role-key", "aritma-promote-role-key", "aritma-delete-role-key", "aritma-read-role-jwks",
	} {
		if !strings.Contains(string(raw), `"operationId":"`+id+`"`) {
			t.Errorf("OpenAPI has no operation %q", id)
		}
	}
}
