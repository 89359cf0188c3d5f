package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

func pathOf(name string) path.Path { return path.Root(name) }

// roleResource is aritma_role: roles/<name> of the engine.
type roleResource struct{ engineObject }

func newRoleResource() resource.Resource {
	return &roleResource{engineObject{kind: "roles", noun: "role"}}
}

type roleModel struct {
	Mount                     types.String `tfsdk:"mount"`
	Name                      types.String `tfsdk:"name"`
	Environment               types.String `tfsdk:"environment"`
	ClientID                  types.String `tfsdk:"client_id"`
	ClientSecretWO            types.String `tfsdk:"client_secret_wo"`
	ClientSecretWOVersion     types.Int64  `tfsdk:"client_secret_wo_version"`
	ClientSecretSet           types.Bool   `tfsdk:"client_secret_set"`
	NextClientSecretWO        types.String `tfsdk:"next_client_secret_wo"`
	NextClientSecretWOVersion types.Int64  `tfsdk:"next_client_secret_wo_version"`
	NextClientSecretSet       types.Bool   `tfsdk:"next_client_secret_set"`
	ClientSecretSwitchedAt    types.String `tfsdk:"client_secret_switched_at"`
	Scopes                    types.List   `tfsdk:"scopes"`
	Audience                  types.String `tfsdk:"audience"`
	Resource                  types.List   `tfsdk:"resource"`
	TokenParams               types.Map    `tfsdk:"token_params"`
	MinRemaining              types.Int64  `tfsdk:"min_remaining"`
	AuthMethod                types.String `tfsdk:"auth_method"`
	SigningAlgorithm          types.String `tfsdk:"signing_algorithm"`
	PrivateKeyWO              types.String `tfsdk:"private_key_wo"`
	PrivateKeyWOVersion       types.Int64  `tfsdk:"private_key_wo_version"`
	TLSClientCert             types.String `tfsdk:"tls_client_cert"`
	TLSClientKeyWO            types.String `tfsdk:"tls_client_key_wo"`
	TLSClientKeyWOVersion     types.Int64  `tfsdk:"tls_client_key_wo_version"`
	TokenPerLease             types.Bool   `tfsdk:"token_per_lease"`
	KeyActivationDelay        types.Int64  `tfsdk:"key_activation_delay"`
	AllowedGrantTypes         types.List   `tfsdk:"allowed_grant_types"`
	RedirectURIs              types.List   `tfsdk:"redirect_uris"`
	ConsentScopes             types.List   `tfsdk:"consent_scopes"`
	AuthorizationParams       types.Map    `tfsdk:"authorization_params"`
	PKCE                      types.Bool   `tfsdk:"pkce"`
	KeepPassword              types.Bool   `tfsdk:"keep_password"`
	RefreshKeepAlive          types.Int64  `tfsdk:"refresh_keep_alive"`
}

func (r *roleResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_role"
}

func writeOnly(description string) schema.StringAttribute {
	return schema.StringAttribute{Optional: true, WriteOnly: true, Sensitive: true, Description: description +
		" Write-only: never stored in plan or state; sent on create and whenever its _wo_version changes."}
}

func woVersion(secret string) schema.Int64Attribute {
	return schema.Int64Attribute{Optional: true, Description: "Change this to send " + secret + " again (a rotation)."}
}

func (r *roleResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "A role of the Aritma engine: one client's credentials and scopes for one environment. Applications read token/<name>.",
		Attributes: map[string]schema.Attribute{
			"mount": mountAttribute(),
			"name": schema.StringAttribute{Required: true, Description: "Name of the role.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()}},
			"environment":              schema.StringAttribute{Required: true, Description: "Environment (authorization server) to get tokens from."},
			"client_id":                schema.StringAttribute{Required: true, Description: "Client ID issued by the bank."},
			"client_secret_wo":         writeOnly("Client secret issued by the bank, for client_secret_post and client_secret_basic."),
			"client_secret_wo_version": woVersion("client_secret_wo"),
			"client_secret_set":        schema.BoolAttribute{Computed: true, Description: "Whether the engine holds a client secret for the role."},
			"next_client_secret_wo": writeOnly("The client secret the bank will take after a rotation, for client_secret_post and client_secret_basic: " +
				"when the bank refuses client_secret (invalid_client) and takes this one, the engine makes it the client secret. " +
				"Left out when its version changes, it is dropped."),
			"next_client_secret_wo_version": schema.Int64Attribute{Optional: true,
				Description: "Change this to send next_client_secret_wo, or, with next_client_secret_wo left out, to drop the engine's next secret."},
			// Computed, and unknown in every update's plan (no
			// UseStateForUnknown): the engine may switch between plan and apply.
			"next_client_secret_set": schema.BoolAttribute{Computed: true,
				Description: "Whether the engine holds a next client secret for the role. It turns false when the engine switches to it."},
			"client_secret_switched_at": schema.StringAttribute{Computed: true,
				Description: "When the engine last made the next client secret the client secret (RFC 3339), because the bank took it or it was promoted; empty if never."},
			"scopes":       schema.ListAttribute{ElementType: types.StringType, Optional: true, Description: "Scopes to request (api, bankservice, IDENTITY, ...)."},
			"audience":     schema.StringAttribute{Optional: true, Description: "audience parameter, for servers that require one."},
			"resource":     schema.ListAttribute{ElementType: types.StringType, Optional: true, Description: "Resource indicators (RFC 8707)."},
			"token_params": schema.MapAttribute{ElementType: types.StringType, Optional: true, Description: "Extra form parameters of the token request; not secret."},
			"min_remaining": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(60),
				Description: "Seconds of life a cached token must have left to be handed out again."},
			"auth_method":               schema.StringAttribute{Optional: true, Description: "Client authentication, overriding the environment's."},
			"signing_algorithm":         schema.StringAttribute{Optional: true, Description: "Algorithm of keys generated for private_key_jwt: RS256, PS256 or ES256."},
			"private_key_wo":            writeOnly("PEM private key to import for private_key_jwt."),
			"private_key_wo_version":    woVersion("private_key_wo"),
			"tls_client_cert":           schema.StringAttribute{Optional: true, Description: "PEM client certificate for mutual TLS."},
			"tls_client_key_wo":         writeOnly("PEM private key of tls_client_cert."),
			"tls_client_key_wo_version": woVersion("tls_client_key_wo"),
			"token_per_lease": schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(false),
				Description: "A token of its own for every read, revoked with its lease."},
			"key_activation_delay": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(86400),
				Description: "Seconds a rotated or imported key is published before it signs."},
			"allowed_grant_types": schema.ListAttribute{ElementType: types.StringType, Optional: true,
				Description: "Grants the role may run: client_credentials (the default), authorization_code, password."},
			"redirect_uris": schema.ListAttribute{ElementType: types.StringType, Optional: true,
				Description: "Redirect URIs registered at the bank, for authorization_code; matched exactly."},
			"consent_scopes": schema.ListAttribute{ElementType: types.StringType, Optional: true,
				Description: "Scopes a bank customer is asked to consent to, e.g. bankservice offline_access."},
			"authorization_params": schema.MapAttribute{ElementType: types.StringType, Optional: true,
				Description: "Extra parameters of the authorization request; not secret."},
			"pkce": schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(true),
				Description: "Send a PKCE S256 challenge with every authorization request."},
			"keep_password": schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(false),
				Description: "Keep a password grant's password, for banks that issue no refresh token (against RFC 9700 section 2.4)."},
			"refresh_keep_alive": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(0),
				Description: "Seconds after which a customer credential nobody read is refreshed; 0: only reads refresh."},
		},
	}
}

// roleData is what a write sends: every field the model sets (so that one
// removed from the configuration returns to its default), and the secrets
// in send.
func roleData(ctx context.Context, m, config, prior *roleModel, send map[string]bool) (map[string]interface{}, diag.Diagnostics) {
	var diags diag.Diagnostics
	strs := func(l types.List) []string {
		var out []string
		diags.Append(l.ElementsAs(ctx, &out, false)...)
		return out
	}
	params, authParams := map[string]string{}, map[string]string{}
	diags.Append(m.TokenParams.ElementsAs(ctx, &params, false)...)
	diags.Append(m.AuthorizationParams.ElementsAs(ctx, &authParams, false)...)
	data := map[string]interface{}{
		"environment":          m.Environment.ValueString(),
		"client_id":            m.ClientID.ValueString(),
		"scopes":               strs(m.Scopes),
		"audience":             m.Audience.ValueString(),
		"resource":             strs(m.Resource),
		"token_params":         params,
		"min_remaining":        m.MinRemaining.ValueInt64(),
		"auth_method":          m.AuthMethod.ValueString(),
		"tls_client_cert":      m.TLSClientCert.ValueString(),
		"token_per_lease":      m.TokenPerLease.ValueBool(),
		"key_activation_delay": m.KeyActivationDelay.ValueInt64(),
		"redirect_uris":        strs(m.RedirectURIs),
		"consent_scopes":       strs(m.ConsentScopes),
		"authorization_params": authParams,
		"pkce":                 m.PKCE.ValueBool(),
		"keep_password":        m.KeepPassword.ValueBool(),
		"refresh_keep_alive":   m.RefreshKeepAlive.ValueInt64(),
	}
	// Unset means client_credentials alone, which an empty list would refuse.
	if grants := strs(m.AllowedGrantTypes); len(grants) > 0 {
		data["allowed_grant_types"] = grants
	} else {
		data["allowed_grant_types"] = []string{"client_credentials"}
	}
	// Sent when set, and empty (RS256) only to reset one that was set: an
	// engine before 0.2 refuses an empty signing_algorithm.
	if !m.SigningAlgorithm.IsNull() {
		data["signing_algorithm"] = m.SigningAlgorithm.ValueString()
	} else if prior != nil && !prior.SigningAlgorithm.IsNull() {
		data["signing_algorithm"] = ""
	}
	// The secrets, each sent on create and again only when its version moves.
	for field, v := range map[string]types.String{
		"client_secret": config.ClientSecretWO, "private_key": config.PrivateKeyWO, "tls_client_key": config.TLSClientKeyWO,
		"next_client_secret": config.NextClientSecretWO,
	} {
		if send[field] && !v.IsNull() {
			data[field] = v.ValueString()
		}
	}
	// A next secret left out when its version moves is dropped: it is the
	// last step of a rotation, once the secret is in client_secret_wo.
	if send["next_client_secret"] && config.NextClientSecretWO.IsNull() && prior != nil {
		data["next_client_secret"] = ""
	}
	return data, diags
}

// apply writes plan (prior is nil on create) and reads the role back into it.
func (r *roleResource) apply(ctx context.Context, plan, config, prior *roleModel) diag.Diagnostics {
	r.resolveMount(&plan.Mount)
	moved := func(version func(*roleModel) types.Int64) bool {
		return prior == nil || !version(plan).Equal(version(prior))
	}
	send := map[string]bool{
		"client_secret":      moved(func(m *roleModel) types.Int64 { return m.ClientSecretWOVersion }),
		"private_key":        moved(func(m *roleModel) types.Int64 { return m.PrivateKeyWOVersion }),
		"tls_client_key":     moved(func(m *roleModel) types.Int64 { return m.TLSClientKeyWOVersion }),
		"next_client_secret": moved(func(m *roleModel) types.Int64 { return m.NextClientSecretWOVersion }),
	}
	data, diags := roleData(ctx, plan, config, prior, send)
	if diags.HasError() {
		return diags
	}
	if diags.Append(r.write(ctx, plan.Mount, plan.Name, data)...); diags.HasError() {
		return diags
	}
	read, d := r.readWritten(ctx, plan.Mount, plan.Name)
	if diags.Append(d...); read != nil {
		diags.Append(setRole(plan, read)...)
	}
	return diags
}

func (r *roleResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	applyPlan(ctx, req.Plan, req.Config, nil, &resp.State, &resp.Diagnostics, func(plan, config, prior *roleModel) diag.Diagnostics {
		return r.apply(ctx, plan, config, prior)
	})
}

func (r *roleResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	applyPlan(ctx, req.Plan, req.Config, &req.State, &resp.State, &resp.Diagnostics, func(plan, config, prior *roleModel) diag.Diagnostics {
		return r.apply(ctx, plan, config, prior)
	})
}

func (r *roleResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	refreshState(ctx, req, resp, func(m *roleModel) (bool, diag.Diagnostics) {
		r.resolveMount(&m.Mount)
		read, diags := r.read(ctx, m.Mount, m.Name)
		if read == nil {
			return false, diags
		}
		diags.Append(setRole(m, read)...)
		return true, diags
	})
}

// setRole sets every field the engine reads back. Empty strings, lists and
// maps read as null, as an unset attribute is; a secret the engine no
// longer holds clears its _wo_version, so that the next plan sends it again.
// The next client secret is the exception: the engine lets go of it when it
// switches to it (it is then the client secret), and sending it again
// would be refused as equal to client_secret, at every apply. Its version
// stays; next_client_secret_set and client_secret_switched_at, computed
// only, show the switch without a diff.
func setRole(m *roleModel, d map[string]interface{}) diag.Diagnostics {
	var diags diag.Diagnostics
	m.Environment = types.StringValue(str(d["environment"]))
	m.ClientID = types.StringValue(str(d["client_id"]))
	m.ClientSecretSet = types.BoolValue(d["client_secret_set"] == true)
	if !m.ClientSecretSet.ValueBool() {
		m.ClientSecretWOVersion = types.Int64Null()
	}
	if d["tls_client_key_set"] != true {
		m.TLSClientKeyWOVersion = types.Int64Null()
	}
	m.NextClientSecretSet = types.BoolValue(d["next_client_secret_set"] == true)
	m.ClientSecretSwitchedAt = types.StringValue(str(d["client_secret_switched_at"]))
	m.Scopes = listOrNull(d["scopes"], &diags)
	m.Audience = stringOrNull(d["audience"])
	m.Resource = listOrNull(d["resource"], &diags)
	m.TokenParams = mapOrNull(d["token_params"], &diags)
	m.MinRemaining = types.Int64Value(num(d["min_remaining"]))
	m.AuthMethod = stringOrNull(d["auth_method"])
	m.SigningAlgorithm = stringOrNull(d["signing_algorithm"])
	m.TLSClientCert = stringOrNull(d["tls_client_cert"])
	m.TokenPerLease = types.BoolValue(d["token_per_lease"] == true)
	m.KeyActivationDelay = types.Int64Value(num(d["key_activation_delay"]))
	m.AllowedGrantTypes = listOrNull(d["allowed_grant_types"], &diags)
	if grants, _ := d["allowed_grant_types"].([]interface{}); len(grants) == 1 && grants[0] == "client_credentials" {
		m.AllowedGrantTypes = types.ListNull(types.StringType) // the default, as unset
	}
	m.RedirectURIs = listOrNull(d["redirect_uris"], &diags)
	m.ConsentScopes = listOrNull(d["consent_scopes"], &diags)
	m.AuthorizationParams = mapOrNull(d["authorization_params"], &diags)
	m.PKCE = types.BoolValue(d["pkce"] != false)
	m.KeepPassword = types.BoolValue(d["keep_password"] == true)
	m.RefreshKeepAlive = types.Int64Value(num(d["refresh_keep_alive"]))
	return diags
}

func (r *roleResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state roleModel
	if resp.Diagnostics.Append(req.State.Get(ctx, &state)...); resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(r.delete(ctx, state.Mount, state.Name)...)
}

func (r *roleResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	r.importState(ctx, req, resp)
}

func str(v interface{}) string {
	s, _ := v.(string)
	return s
}

func num(v interface{}) int64 {
	switch n := v.(type) {
	case json.Number:
		i, _ := n.Int64()
		return i
	case float64:
		return int64(n)
	case string:
		i, _ := strconv.ParseInt(n, 10, 64)
		return i
	}
	return 0
}

func stringOrNull(v interface{}) types.String {
	if s := str(v); s != "" {
		return types.StringValue(s)
	}
	return types.StringNull()
}

func listOrNull(v interface{}, diags *diag.Diagnostics) types.List {
	items, _ := v.([]interface{})
	if len(items) == 0 {
		return types.ListNull(types.StringType)
	}
	values := make([]attr.Value, len(items))
	for i, item := range items {
		values[i] = types.StringValue(fmt.Sprint(item))
	}
	l, d := types.ListValue(types.StringType, values)
	diags.Append(d...)
	return l
}

func mapOrNull(v interface{}, diags *diag.Diagnostics) types.Map {
	items, _ := v.(map[string]interface{})
	if len(items) == 0 {
		return types.MapNull(types.StringType)
	}
	values := make(map[string]attr.Value, len(items))
	for k, item := range items {
		values[k] = types.StringValue(fmt.Sprint(item))
	}
	m, d := types.MapValue(types.StringType, values)
	diags.Append(d...)
	return m
}

var (
	_ resource.ResourceWithConfigure   = (*roleResource)(nil)
	_ resource.ResourceWithImportState = (*roleResource)(nil)
)
