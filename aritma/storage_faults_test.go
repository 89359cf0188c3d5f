package aritma

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// faultyStorage fails one kind of storage call (get, put, delete or list)
// once armed, as a failing storage backend would.
type faultyStorage struct {
	logical.Storage
	failOp string
	armed  atomic.Bool
	hits   atomic.Int32
}

var errInjected = errors.New("injected storage fault")

func (s *faultyStorage) fail(op string) error {
	if s.armed.Load() && s.failOp == op {
		s.hits.Add(1)
		return errInjected
	}
	return nil
}

func (s *faultyStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if err := s.fail("get"); err != nil {
		return nil, err
	}
	return s.Storage.Get(ctx, key)
}

func (s *faultyStorage) Put(ctx context.Context, entry *logical.StorageEntry) error {
	if err := s.fail("put"); err != nil {
		return err
	}
	return s.Storage.Put(ctx, entry)
}

func (s *faultyStorage) Delete(ctx context.Context, key string) error {
	if err := s.fail("delete"); err != nil {
		return err
	}
	return s.Storage.Delete(ctx, key)
}

func (s *faultyStorage) List(ctx context.Context, prefix string) ([]string, error) {
	if err := s.fail("list"); err != nil {
		return nil, err
	}
	return s.Storage.List(ctx, prefix)
}

// snapshot reads every stored entry.
func snapshot(t *testing.T, s logical.Storage) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(prefix string)
	walk = func(prefix string) {
		keys, err := s.List(context.Background(), prefix)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if strings.HasSuffix(k, "/") {
				walk(prefix + k)
				continue
			}
			entry, err := s.Get(context.Background(), prefix+k)
			if err != nil {
				t.Fatal(err)
			}
			out[prefix+k] = string(entry.Value)
		}
	}
	walk("")
	return out
}

// Storage errors on every read, write, delete and list of config,
// environments, roles and customer credentials give the caller an error naming what failed, and
// leave the stored data as it was.
func TestStorageFaults_ClearErrorsAndNothingLost(t *testing.T) {
	type call struct {
		op   logical.Operation
		path string
		data map[string]interface{}
	}
	calls := map[string]call{
		"write config":       {logical.UpdateOperation, "config", map[string]interface{}{"request_timeout": "20s"}},
		"delete config":      {logical.DeleteOperation, "config", nil},
		"read config":        {logical.ReadOperation, "config", nil},
		"write environment":  {logical.UpdateOperation, "environments/bank", map[string]interface{}{"auth_method": "client_secret_basic"}},
		"delete environment": {logical.DeleteOperation, "environments/spare", nil},
		"read environment":   {logical.ReadOperation, "environments/bank", nil},
		"list environments":  {logical.ListOperation, "environments/", nil},
		"write role":         {logical.UpdateOperation, "roles/r", map[string]interface{}{"scopes": "bankservice"}},
		"create role":        {logical.CreateOperation, "roles/new", map[string]interface{}{"environment": "bank", "client_id": "n", "client_secret": "s"}},
		"delete role":        {logical.DeleteOperation, "roles/r", nil},
		"read role":          {logical.ReadOperation, "roles/r", nil},
		"list roles":         {logical.ListOperation, "roles/", nil},
		"rotate key":         {logical.UpdateOperation, "roles/k/keys/rotate", nil},
		"read token":         {logical.ReadOperation, "token/r", nil},
		"read credential":    {logical.ReadOperation, "creds/acct/kari", nil},
		"credential status":  {logical.ReadOperation, "creds/acct/kari/status", nil},
		"list credentials":   {logical.ListOperation, "creds/acct/", nil},
		"delete credential":  {logical.DeleteOperation, "creds/acct/kari", nil},
		"start consent":      {logical.UpdateOperation, "creds/acct/kari/authorize", nil},
	}
	injected, intact := 0, 0
	var hitless sync.Map
	for name, c := range calls {
		for _, failOp := range []string{"get", "put", "delete", "list"} {
			t.Run(name+"/"+failOp, func(t *testing.T) {
				e := newTestEnv(t)
				srv := newFakeAuthServer(t)
				storage := &faultyStorage{Storage: e.storage, failOp: failOp}
				e.storage = storage
				e.mustWrite(t, "environments/bank", map[string]interface{}{"token_url": srv.tokenURL()})
				e.mustWrite(t, "environments/spare", map[string]interface{}{"token_url": srv.tokenURL()})
				e.mustWrite(t, "roles/r", map[string]interface{}{"environment": "bank", "client_id": "c", "client_secret": testClientSecret})
				e.mustWrite(t, "roles/k", map[string]interface{}{"environment": "bank", "client_id": "k", "auth_method": "private_key_jwt", "signing_algorithm": "ES256"})
				e.mustWrite(t, "config", map[string]interface{}{"default_environment": "bank"})
				// A bank customer's credential, its token stored and valid.
				e.mustWrite(t, "roles/acct", map[string]interface{}{"environment": "bank", "client_id": "a", "client_secret": testClientSecret,
					"allowed_grant_types": "authorization_code", "redirect_uris": "https://app.example/cb"})
				e.mustWrite(t, "environments/bank", map[string]interface{}{"authorization_url": srv.URL + "/authorize", "revocation_url": srv.URL + "/revoke"})
				now := e.clock.Now()
				if err := e.b.putCredential(context.Background(), storage.Storage, "acct", "kari", &credentialEntry{
					GrantType: grantAuthorizationCode, ClientID: "a", RefreshToken: "refresh-kept", Status: credActive,
					Access: &storedToken{Value: "access-kept", Type: "Bearer", IssuedAt: now, ExpiresAt: now.Add(time.Hour)},
				}); err != nil {
					t.Fatal(err)
				}
				before := snapshot(t, storage.Storage)

				storage.armed.Store(true)
				resp, err := e.request(c.op, c.path, c.data)
				storage.armed.Store(false)

				if storage.hits.Load() == 0 {
					hitless.Store(name+"/"+failOp, true)
					return
				}
				injected++
				if err == nil {
					t.Fatalf("a %s failure was swallowed: response %v", failOp, resp)
				}
				if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "injected storage fault") {
					t.Errorf("error %q does not carry the storage error", err)
				}
				if strings.Contains(err.Error(), testClientSecret) {
					t.Error("the error carries the client secret")
				}
				if after := snapshot(t, storage.Storage); reflect.DeepEqual(before, after) {
					intact++
				} else {
					t.Errorf("a failed %s changed storage", name)
				}
			})
		}
	}
	// Every combination this test claims must hit its fault; the ones that
	// make no such storage call are listed, so a change in what a call does
	// shows here.
	wantHitless := map[string]bool{
		"read config/put": true, "read config/delete": true, "read config/list": true,
		"delete config/get": true, "delete config/put": true, "delete config/list": true,
		"write config/delete": true, "write config/list": true,
		"read environment/put": true, "read environment/delete": true, "read environment/list": true,
		"write environment/delete": true, "write environment/list": true,
		"list environments/get": true, "list environments/put": true, "list environments/delete": true,
		"delete environment/put": true,
		"read role/put":          true, "read role/delete": true, "read role/list": true,
		"write role/delete": true, "write role/list": true,
		"create role/delete": true, "create role/list": true,
		"delete role/get": true, "delete role/put": true,
		"list roles/get": true, "list roles/put": true, "list roles/delete": true,
		"rotate key/delete": true, "rotate key/list": true,
		"read token/put": true, "read token/delete": true, "read token/list": true,
		// A stored token that is still good: the read writes nothing.
		"read credential/put": true, "read credential/delete": true, "read credential/list": true,
		"credential status/put": true, "credential status/delete": true, "credential status/list": true,
		"list credentials/put": true, "list credentials/delete": true,
		"delete credential/put": true, "delete credential/list": true,
		"start consent/delete": true, "start consent/list": true,
	}
	hitless.Range(func(k, _ any) bool {
		if !wantHitless[k.(string)] {
			t.Errorf("%s hit no injected fault", k)
		}
		delete(wantHitless, k.(string))
		return true
	})
	for k := range wantHitless {
		t.Errorf("%s is listed as making no such storage call, but it hit the fault", k)
	}
	recordFigure(t, "storage_faults_injected", injected)
	recordFigure(t, "storage_faults_data_intact", intact)
	if injected < len(calls) {
		t.Errorf("only %d storage faults hit for %d calls", injected, len(calls))
	}
}
