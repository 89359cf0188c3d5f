package provider

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/aritma/vault-plugin-secrets-aritma/aritma"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// fakeVault stands in for Vault with the engine mounted: it keeps objects
// by path (aritma/roles/payments) as the engine reads them back and
// records every write.
type fakeVault struct {
	*httptest.Server
	mu         sync.Mutex
	roles      map[string]map[string]interface{}
	writes     []map[string]interface{}
	writePaths []string
}

func newFakeVault(t *testing.T) *fakeVault {
	f := &fakeVault{roles: map[string]map[string]interface{}{}}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, "/v1/")
		if !ok || r.Header.Get("X-Vault-Token") != "test-token" {
			http.Error(w, `{"errors":["permission denied"]}`, http.StatusForbidden)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		switch r.Method {
		case http.MethodPut, http.MethodPost:
			var data map[string]interface{}
			_ = json.NewDecoder(r.Body).Decode(&data)
			f.writes = append(f.writes, data)
			f.writePaths = append(f.writePaths, name)
			role := f.roles[name]
			if role == nil {
				role = map[string]interface{}{"client_secret_set": false}
			}
			for k, v := range data {
				if k == "client_secret" || k == "next_client_secret" || k == "tls_client_key" {
					role[k+"_set"] = v != ""
					continue
				}
				role[k] = v
			}
			f.roles[name] = role
			w.WriteHeader(http.StatusNoContent)
		case http.MethodGet:
			role := f.roles[name]
			if role == nil {
				http.Error(w, `{"errors":[]}`, http.StatusNotFound)
				return
			}
			read := map[string]interface{}{}
			for k, v := range role {
				read[k] = v
			}
			if raw, ok := read["proxy_url"].(string); ok { // the engine hides a proxy's password
				if u, err := url.Parse(raw); err == nil && u.User != nil {
					read["proxy_url"] = u.Redacted()
				}
			}
			_ = json.NewEncoder(w).Encode(map[string]interface{}{"data": read})
		case http.MethodDelete:
			delete(f.roles, name)
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeVault) write(i int) map[string]interface{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes[i]
}

// protocolTest drives the provider through the protocol, as OpenTofu does.
type protocolTest struct {
	t        *testing.T
	server   tfprotov6.ProviderServer
	types    map[string]tftypes.Object // resource types by name
	computed map[string][]string       // computed attributes by resource type
	roleType tftypes.Object
	last     *tfprotov6.DynamicValue // the state the last apply left
}

func newProtocolTest(t *testing.T, vault *fakeVault) *protocolTest {
	t.Helper()
	server, err := providerserver.NewProtocol6WithError(New("test")())()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	schemas, err := server.GetProviderSchema(ctx, &tfprotov6.GetProviderSchemaRequest{})
	if err != nil || len(schemas.Diagnostics) > 0 {
		t.Fatalf("schema: %v %v", err, schemas.Diagnostics)
	}
	p := &protocolTest{t: t, server: server, types: map[string]tftypes.Object{}, computed: map[string][]string{}}
	for name, sch := range schemas.ResourceSchemas {
		p.types[name] = sch.ValueType().(tftypes.Object)
		for _, attr := range sch.Block.Attributes {
			if attr.Computed {
				p.computed[name] = append(p.computed[name], attr.Name)
			}
		}
	}
	p.roleType = p.types["aritma_role"]
	providerType := schemas.Provider.ValueType().(tftypes.Object)
	config := objectOf(providerType, map[string]tftypes.Value{
		"address": tftypes.NewValue(tftypes.String, vault.URL),
		"token":   tftypes.NewValue(tftypes.String, "test-token"),
	})
	resp, err := server.ConfigureProvider(ctx, &tfprotov6.ConfigureProviderRequest{Config: dynamic(t, providerType, config)})
	if err != nil || len(resp.Diagnostics) > 0 {
		t.Fatalf("configure: %v %v", err, resp.Diagnostics)
	}
	return p
}

// objectOf fills the attributes not given with nulls.
func objectOf(typ tftypes.Object, given map[string]tftypes.Value) tftypes.Value {
	values := map[string]tftypes.Value{}
	for name, attrType := range typ.AttributeTypes {
		values[name] = tftypes.NewValue(attrType, nil)
		if v, ok := given[name]; ok {
			values[name] = v
		}
	}
	return tftypes.NewValue(typ, values)
}

func dynamic(t *testing.T, typ tftypes.Type, v tftypes.Value) *tfprotov6.DynamicValue {
	t.Helper()
	dv, err := tfprotov6.NewDynamicValue(typ, v)
	if err != nil {
		t.Fatal(err)
	}
	return &dv
}

// apply plans and applies config over prior (nil to create), the way the
// CLI does: write-only values are in the configuration only, null in the
// proposed state.
func (p *protocolTest) apply(prior *tfprotov6.DynamicValue, config map[string]tftypes.Value) map[string]tftypes.Value {
	p.t.Helper()
	return p.applyTo("aritma_role", prior, config)
}

func (p *protocolTest) applyTo(typeName string, prior *tfprotov6.DynamicValue, config map[string]tftypes.Value) map[string]tftypes.Value {
	p.t.Helper()
	typ := p.types[typeName]
	if prior == nil {
		prior = dynamic(p.t, typ, tftypes.NewValue(typ, nil))
	}
	plan := p.plan(typeName, prior, config)
	applied, err := p.server.ApplyResourceChange(context.Background(), &tfprotov6.ApplyResourceChangeRequest{
		TypeName: typeName, PriorState: prior, PlannedState: plan.PlannedState,
		Config: dynamic(p.t, typ, objectOf(typ, config)), PlannedPrivate: plan.PlannedPrivate,
	})
	if err != nil || len(applied.Diagnostics) > 0 {
		p.t.Fatalf("apply: %v %v", err, applied.Diagnostics)
	}
	p.last = applied.NewState
	return p.decodeAs(typ, applied.NewState)
}

// plan plans config over prior (a null object to create).
func (p *protocolTest) plan(typeName string, prior *tfprotov6.DynamicValue, config map[string]tftypes.Value) *tfprotov6.PlanResourceChangeResponse {
	p.t.Helper()
	typ := p.types[typeName]
	proposed := map[string]tftypes.Value{}
	for k, v := range config {
		if !strings.HasSuffix(k, "_wo") {
			proposed[k] = v
		}
	}
	if old := p.decodeAs(typ, prior); old != nil {
		for _, computed := range p.computed[typeName] {
			if _, set := config[computed]; !set {
				proposed[computed] = old[computed] // as the CLI proposes it
			}
		}
	}
	plan, err := p.server.PlanResourceChange(context.Background(), &tfprotov6.PlanResourceChangeRequest{
		TypeName: typeName, PriorState: prior,
		ProposedNewState: dynamic(p.t, typ, objectOf(typ, proposed)),
		Config:           dynamic(p.t, typ, objectOf(typ, config)),
	})
	if err != nil || len(plan.Diagnostics) > 0 {
		p.t.Fatalf("plan: %v %v", err, plan.Diagnostics)
	}
	return plan
}

func (p *protocolTest) decode(dv *tfprotov6.DynamicValue) map[string]tftypes.Value {
	p.t.Helper()
	return p.decodeAs(p.roleType, dv)
}

func (p *protocolTest) decodeAs(typ tftypes.Object, dv *tfprotov6.DynamicValue) map[string]tftypes.Value {
	p.t.Helper()
	v, err := dv.Unmarshal(typ)
	if err != nil {
		p.t.Fatal(err)
	}
	if v.IsNull() {
		return nil
	}
	out := map[string]tftypes.Value{}
	if err := v.As(&out); err != nil {
		p.t.Fatal(err)
	}
	return out
}

func s(v string) tftypes.Value { return tftypes.NewValue(tftypes.String, v) }

func n(v int64) tftypes.Value { return tftypes.NewValue(tftypes.Number, v) }

// A client secret is written on create and when its version changes, never
// otherwise, and the state never holds it.
func TestRole_WriteOnlySecretSentOnCreateAndVersionBumpOnly(t *testing.T) {
	vault := newFakeVault(t)
	p := newProtocolTest(t, vault)
	config := map[string]tftypes.Value{
		"name": s("payments"), "environment": s("development"), "client_id": s("my-client"),
		"client_secret_wo": s("s3cret-v1"), "client_secret_wo_version": n(1),
		"scopes": tftypes.NewValue(tftypes.List{ElementType: tftypes.String}, []tftypes.Value{s("bankservice")}),
	}
	state := p.apply(nil, config)
	if got := vault.write(0)["client_secret"]; got != "s3cret-v1" {
		t.Errorf("create sent client_secret %v, want the secret", got)
	}
	if !state["client_secret_wo"].IsNull() {
		t.Error("the state holds client_secret_wo")
	}
	if v := state["client_secret_set"]; !v.Equal(tftypes.NewValue(tftypes.Bool, true)) {
		t.Errorf("client_secret_set = %v, want true", v)
	}

	// Another field changes, the version does not: no secret is sent.
	config["scopes"] = tftypes.NewValue(tftypes.List{ElementType: tftypes.String}, []tftypes.Value{s("api")})
	p.apply(p.last, config)
	if _, sent := vault.write(1)["client_secret"]; sent {
		t.Error("an update without a version bump sent the client secret")
	}

	// The version changes: the new secret is sent.
	config["client_secret_wo"], config["client_secret_wo_version"] = s("s3cret-v2"), n(2)
	state = p.apply(p.last, config)
	if got := vault.write(2)["client_secret"]; got != "s3cret-v2" {
		t.Errorf("a version bump sent client_secret %v, want the new secret", got)
	}
	for name, v := range state {
		if strings.Contains(v.String(), "s3cret") {
			t.Errorf("the state's %s holds a secret", name)
		}
	}
}

// A client that does not announce write-only support is refused.
func TestRole_WriteOnlyRefusedWithoutTheCapability(t *testing.T) {
	p := newProtocolTest(t, newFakeVault(t))
	config := objectOf(p.roleType, map[string]tftypes.Value{
		"name": s("r"), "environment": s("e"), "client_id": s("c"), "client_secret_wo": s("x"),
	})
	for allowed, wantError := range map[bool]bool{false: true, true: false} {
		resp, err := p.server.ValidateResourceConfig(context.Background(), &tfprotov6.ValidateResourceConfigRequest{
			TypeName: "aritma_role", Config: dynamic(t, p.roleType, config),
			ClientCapabilities: &tfprotov6.ValidateResourceConfigClientCapabilities{WriteOnlyAttributesAllowed: allowed},
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := len(resp.Diagnostics) > 0; got != wantError {
			t.Errorf("write-only allowed %v: diagnostics %v, want an error: %v", allowed, resp.Diagnostics, wantError)
		}
	}
}

// Every field the engine's roles/<name> path takes is an attribute of
// aritma_role (a secret as <field>_wo), unless listed here with the reason
// it is left out: a field the engine gains must be mapped or listed.
func TestRole_CoversEveryEngineField(t *testing.T) {
	assertCoversEngineFields(t, "aritma_role", "roles/x", map[string]string{"name": "the resource's name attribute"})
}

// assertCoversEngineFields fails for each field of the engine's path that
// is neither an attribute of the resource (a secret as <field>_wo) nor in
// leftOut.
func assertCoversEngineFields(t *testing.T, typeName, enginePath string, leftOut map[string]string) {
	t.Helper()
	typ := newProtocolTest(t, newFakeVault(t)).types[typeName]
	for _, field := range engineFields(t, enginePath) {
		_, plain := typ.AttributeTypes[field]
		_, secret := typ.AttributeTypes[field+"_wo"]
		if _, left := leftOut[field]; !plain && !secret && !left {
			t.Errorf("the engine's field %q of %s is neither an attribute of %s nor listed as left out", field, enginePath, typeName)
		}
	}
}

// engineFields are the fields of the engine's path that matches path.
func engineFields(t *testing.T, path string) []string {
	t.Helper()
	b, err := aritma.Factory(context.Background(), &logical.BackendConfig{
		Logger: hclog.NewNullLogger(), System: logical.TestSystemView(), StorageView: &logical.InmemStorage{},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := b.(interface{ Route(string) *framework.Path }).Route(path)
	if p == nil {
		t.Fatalf("no engine path matches %s", path)
	}
	var fields []string
	for name := range p.Fields {
		fields = append(fields, name)
	}
	return fields
}

// A role written by vault_generic_endpoint moves into aritma_role without
// its secret, which the move reads past and never copies.
func TestRole_MovesFromGenericEndpointWithoutItsSecret(t *testing.T) {
	p := newProtocolTest(t, newFakeVault(t))
	source, _ := json.Marshal(map[string]interface{}{
		"path":      "banks/aritma/roles/payments",
		"data_json": `{"environment":"development","client_id":"my-client","client_secret":"s3cret-moved","scopes":"bankservice"}`,
	})
	resp, err := p.server.MoveResourceState(context.Background(), &tfprotov6.MoveResourceStateRequest{
		SourceProviderAddress: "registry.opentofu.org/hashicorp/vault", SourceTypeName: "vault_generic_endpoint",
		SourceState: &tfprotov6.RawState{JSON: source}, TargetTypeName: "aritma_role",
	})
	if err != nil || len(resp.Diagnostics) > 0 {
		t.Fatalf("move: %v %v", err, resp.Diagnostics)
	}
	state := p.decode(resp.TargetState)
	for attr, want := range map[string]string{"mount": "banks/aritma", "name": "payments", "environment": "development", "client_id": "my-client"} {
		if !state[attr].Equal(s(want)) {
			t.Errorf("%s = %v, want %q", attr, state[attr], want)
		}
	}
	for name, v := range state {
		if strings.Contains(v.String(), "s3cret-moved") {
			t.Errorf("the moved state's %s holds the secret", name)
		}
	}

	// Another resource type's state is not taken.
	other, _ := json.Marshal(map[string]interface{}{"path": "aritma/roles/payments"})
	resp, err = p.server.MoveResourceState(context.Background(), &tfprotov6.MoveResourceStateRequest{
		SourceTypeName: "vault_kv_secret", SourceState: &tfprotov6.RawState{JSON: other}, TargetTypeName: "aritma_role",
	})
	if err != nil || len(resp.Diagnostics) == 0 {
		t.Errorf("a vault_kv_secret was moved into aritma_role: %v %v", err, resp.Diagnostics)
	}
}

// A role goes to its own mount when it names one, and to the provider's
// otherwise; either is kept in state, and import takes <mount>/<name>.
func TestRole_MountAndImportID(t *testing.T) {
	vault := newFakeVault(t)
	p := newProtocolTest(t, vault)
	base := map[string]tftypes.Value{"name": s("payments"), "environment": s("development"), "client_id": s("c")}
	state := p.apply(nil, base)
	if !state["mount"].Equal(s("aritma")) {
		t.Errorf("mount = %v, want the provider's, aritma", state["mount"])
	}
	base["mount"] = s("banks/aritma")
	p.apply(nil, base)
	vault.mu.Lock()
	paths := vault.writePaths
	vault.mu.Unlock()
	if want := []string{"aritma/roles/payments", "banks/aritma/roles/payments"}; strings.Join(paths, " ") != strings.Join(want, " ") {
		t.Errorf("writes went to %v, want %v", paths, want)
	}

	for id, want := range map[string][2]string{
		"payments":              {"aritma", "payments"},
		"banks/aritma/payments": {"banks/aritma", "payments"},
	} {
		resp, err := p.server.ImportResourceState(context.Background(), &tfprotov6.ImportResourceStateRequest{TypeName: "aritma_role", ID: id})
		if err != nil || len(resp.Diagnostics) > 0 || len(resp.ImportedResources) != 1 {
			t.Fatalf("import %q: %v %v", id, err, resp.Diagnostics)
		}
		got := p.decode(resp.ImportedResources[0].State)
		if !got["mount"].Equal(s(want[0])) || !got["name"].Equal(s(want[1])) {
			t.Errorf("import %q: mount %v, name %v, want %q and %q", id, got["mount"], got["name"], want[0], want[1])
		}
	}
	resp, err := p.server.ImportResourceState(context.Background(), &tfprotov6.ImportResourceStateRequest{TypeName: "aritma_role", ID: "aritma/"})
	if err != nil || len(resp.Diagnostics) == 0 || !strings.Contains(resp.Diagnostics[0].Detail, "<mount>/<name>") {
		t.Errorf("import of \"aritma/\": want an error naming the ID's form, got %v %v", err, resp.Diagnostics)
	}
}

// signing_algorithm is sent when set, sent empty once to reset it when it
// leaves the configuration, and otherwise not at all: an engine before 0.2
// refuses an empty one.
func TestRole_SigningAlgorithmSentOnlyToSetOrReset(t *testing.T) {
	vault := newFakeVault(t)
	p := newProtocolTest(t, vault)
	config := map[string]tftypes.Value{"name": s("r"), "environment": s("e"), "client_id": s("c"), "signing_algorithm": s("ES256")}
	p.apply(nil, config)
	delete(config, "signing_algorithm")
	p.apply(p.last, config)
	config["audience"] = s("aud")
	p.apply(p.last, config)
	for i, want := range []interface{}{"ES256", "", nil} {
		got, sent := vault.write(i)["signing_algorithm"]
		if want == nil && sent || want != nil && got != want {
			t.Errorf("write %d sent signing_algorithm %v (sent %v), want %v", i, got, sent, want)
		}
	}
}

// When the engine no longer holds a role's client secret, a refresh clears
// client_secret_wo_version, so the next plan differs from the configuration
// and its apply sends the secret again.
func TestRole_LostSecretPlansARewrite(t *testing.T) {
	vault := newFakeVault(t)
	p := newProtocolTest(t, vault)
	config := map[string]tftypes.Value{
		"name": s("payments"), "environment": s("development"), "client_id": s("c"),
		"client_secret_wo": s("s3cret-v1"), "client_secret_wo_version": n(1),
	}
	p.apply(nil, config)
	vault.mu.Lock()
	vault.roles["aritma/roles/payments"]["client_secret_set"] = false
	vault.mu.Unlock()

	read, err := p.server.ReadResource(context.Background(), &tfprotov6.ReadResourceRequest{TypeName: "aritma_role", CurrentState: p.last})
	if err != nil || len(read.Diagnostics) > 0 {
		t.Fatalf("read: %v %v", err, read.Diagnostics)
	}
	refreshed := p.decode(read.NewState)
	if !refreshed["client_secret_wo_version"].IsNull() || !refreshed["client_secret_set"].Equal(tftypes.NewValue(tftypes.Bool, false)) {
		t.Fatalf("after the secret was lost: version %v, client_secret_set %v; want null and false",
			refreshed["client_secret_wo_version"], refreshed["client_secret_set"])
	}
	p.apply(read.NewState, config)
	if got := vault.write(1)["client_secret"]; got != "s3cret-v1" {
		t.Errorf("the apply after the loss sent client_secret %v, want the secret", got)
	}
}

// A next client secret is sent when its version moves and never otherwise
// (nothing at all on a create without one), and dropped with an empty value
// when its version moves without it; the state never holds it.
func TestRole_NextSecretSentOnVersionBumpAndDroppedWhenLeftOut(t *testing.T) {
	vault := newFakeVault(t)
	p := newProtocolTest(t, vault)
	config := map[string]tftypes.Value{
		"name": s("payments"), "environment": s("development"), "client_id": s("c"),
		"client_secret_wo": s("s3cret-v1"), "client_secret_wo_version": n(1),
	}
	state := p.apply(nil, config)
	if got, sent := vault.write(0)["next_client_secret"]; sent {
		t.Errorf("a create without a next secret sent next_client_secret %q, want nothing", got)
	}
	if v := state["next_client_secret_set"]; !v.Equal(tftypes.NewValue(tftypes.Bool, false)) {
		t.Errorf("next_client_secret_set = %v after a create without one, want false", v)
	}
	if v := state["client_secret_switched_at"]; !v.Equal(s("")) {
		t.Errorf("client_secret_switched_at = %v before any switch, want \"\"", v)
	}

	config["next_client_secret_wo"], config["next_client_secret_wo_version"] = s("n3xt-v2"), n(1)
	state = p.apply(p.last, config)
	if got := vault.write(1)["next_client_secret"]; got != "n3xt-v2" {
		t.Errorf("a version bump sent next_client_secret %v, want the next secret", got)
	}
	if _, sent := vault.write(1)["client_secret"]; sent {
		t.Error("a bump of next_client_secret_wo_version alone sent the client secret too")
	}
	if v := state["next_client_secret_set"]; !v.Equal(tftypes.NewValue(tftypes.Bool, true)) {
		t.Errorf("next_client_secret_set = %v, want true", v)
	}
	for name, v := range state {
		if strings.Contains(v.String(), "n3xt") || strings.Contains(v.String(), "s3cret") {
			t.Errorf("the state's %s holds a secret", name)
		}
	}

	config["scopes"] = tftypes.NewValue(tftypes.List{ElementType: tftypes.String}, []tftypes.Value{s("api")})
	p.apply(p.last, config)
	if got, sent := vault.write(2)["next_client_secret"]; sent {
		t.Errorf("an update without a version bump sent next_client_secret %q", got)
	}

	delete(config, "next_client_secret_wo")
	config["next_client_secret_wo_version"] = n(2)
	state = p.apply(p.last, config)
	if got, sent := vault.write(3)["next_client_secret"]; !sent || got != "" {
		t.Errorf("a version bump without a next secret sent next_client_secret %q (sent %v), want \"\" to drop it", got, sent)
	}
	if v := state["next_client_secret_set"]; !v.Equal(tftypes.NewValue(tftypes.Bool, false)) {
		t.Errorf("next_client_secret_set = %v after the drop, want false", v)
	}
}

// When the engine switches to the next secret outside OpenTofu (the bank
// took it, or someone promoted it), a refresh shows the switch and keeps
// next_client_secret_wo_version: the next plan changes nothing. Clearing
// the version, as for a lost client secret, would resend the next secret at
// every apply, which the engine refuses as equal to client_secret.
func TestRole_SwitchOutsidePlansNoChange(t *testing.T) {
	vault := newFakeVault(t)
	p := newProtocolTest(t, vault)
	config := map[string]tftypes.Value{
		"name": s("payments"), "environment": s("development"), "client_id": s("c"),
		"client_secret_wo": s("s3cret-v1"), "client_secret_wo_version": n(1),
		"next_client_secret_wo": s("n3xt-v2"), "next_client_secret_wo_version": n(1),
	}
	p.apply(nil, config)
	vault.mu.Lock()
	role := vault.roles["aritma/roles/payments"]
	role["next_client_secret_set"] = false
	role["client_secret_switched_at"] = "2026-05-04T10:00:00Z"
	role["client_secret_switch_reason"] = "promoted"
	vault.mu.Unlock()

	read, err := p.server.ReadResource(context.Background(), &tfprotov6.ReadResourceRequest{TypeName: "aritma_role", CurrentState: p.last})
	if err != nil || len(read.Diagnostics) > 0 {
		t.Fatalf("read: %v %v", err, read.Diagnostics)
	}
	refreshed := p.decode(read.NewState)
	for attr, want := range map[string]tftypes.Value{
		"next_client_secret_set":        tftypes.NewValue(tftypes.Bool, false),
		"client_secret_switched_at":     s("2026-05-04T10:00:00Z"),
		"next_client_secret_wo_version": n(1),
		"client_secret_wo_version":      n(1),
	} {
		if !refreshed[attr].Equal(want) {
			t.Errorf("after the switch, %s = %v, want %v", attr, refreshed[attr], want)
		}
	}

	planned := p.decode(p.plan("aritma_role", read.NewState, config).PlannedState)
	for attr, v := range refreshed {
		if !planned[attr].Equal(v) {
			t.Errorf("the plan after the switch changes %s from %v to %v, want no change", attr, v, planned[attr])
		}
	}
}
