package provider

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/ephemeral"
	"github.com/hashicorp/terraform-plugin-framework/ephemeral/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// tokenEphemeral is the ephemeral aritma_token: a bank access token read
// from token/<role>, for another provider's configuration (an API
// provider's Authorization header), never in plan or state. Its lease is
// revoked when OpenTofu is done with it; a shared token itself stays valid
// for its other readers.
type tokenEphemeral struct{ client *client }

func newTokenEphemeral() ephemeral.EphemeralResource { return &tokenEphemeral{} }

type tokenModel struct {
	Mount        types.String `tfsdk:"mount"`
	Role         types.String `tfsdk:"role"`
	MinRemaining types.Int64  `tfsdk:"min_remaining"`
	AccessToken  types.String `tfsdk:"access_token"`
	TokenType    types.String `tfsdk:"token_type"`
	ExpiresAt    types.String `tfsdk:"expires_at"`
	Scope        types.String `tfsdk:"scope"`
}

const leaseKey = "lease_id"

func (e *tokenEphemeral) Metadata(_ context.Context, req ephemeral.MetadataRequest, resp *ephemeral.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_token"
}

func (e *tokenEphemeral) Schema(_ context.Context, _ ephemeral.SchemaRequest, resp *ephemeral.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "A bank access token of a role, read from token/<role>; never stored in plan or state.",
		Attributes: map[string]schema.Attribute{
			"mount":         schema.StringAttribute{Optional: true, Description: "Path the engine is mounted at. Default: the provider's mount."},
			"role":          schema.StringAttribute{Required: true, Description: "Name of the role."},
			"min_remaining": schema.Int64Attribute{Optional: true, Description: "Seconds of life the token must have left."},
			"access_token":  schema.StringAttribute{Computed: true, Sensitive: true, Description: "The Bearer token."},
			"token_type":    schema.StringAttribute{Computed: true, Description: "Bearer."},
			"expires_at":    schema.StringAttribute{Computed: true, Description: "When the token expires, RFC 3339."},
			"scope":         schema.StringAttribute{Computed: true, Description: "Scopes granted, space-delimited."},
		},
	}
}

func (e *tokenEphemeral) Configure(_ context.Context, req ephemeral.ConfigureRequest, _ *ephemeral.ConfigureResponse) {
	if c, ok := req.ProviderData.(*client); ok {
		e.client = c
	}
}

func (e *tokenEphemeral) Open(ctx context.Context, req ephemeral.OpenRequest, resp *ephemeral.OpenResponse) {
	var m tokenModel
	if resp.Diagnostics.Append(req.Config.Get(ctx, &m)...); resp.Diagnostics.HasError() {
		return
	}
	var query map[string][]string
	if !m.MinRemaining.IsNull() {
		query = map[string][]string{"min_remaining": {fmt.Sprint(m.MinRemaining.ValueInt64())}}
	}
	secret, err := e.client.vault.Logical().ReadWithDataWithContext(ctx, e.client.at(m.Mount, "token/"+m.Role.ValueString()), query)
	if err != nil || secret == nil {
		resp.Diagnostics.AddError("Reading a token of role "+m.Role.ValueString(), errorText(err, "no answer"))
		return
	}
	m.AccessToken = types.StringValue(str(secret.Data["access_token"]))
	m.TokenType = types.StringValue(str(secret.Data["token_type"]))
	m.ExpiresAt = types.StringValue(str(secret.Data["expires_at"]))
	m.Scope = types.StringValue(str(secret.Data["scope"]))
	resp.Diagnostics.Append(resp.Result.Set(ctx, &m)...)
	lease, _ := json.Marshal(secret.LeaseID)
	resp.Diagnostics.Append(resp.Private.SetKey(ctx, leaseKey, lease)...)
}

func (e *tokenEphemeral) Close(ctx context.Context, req ephemeral.CloseRequest, resp *ephemeral.CloseResponse) {
	raw, diags := req.Private.GetKey(ctx, leaseKey)
	if resp.Diagnostics.Append(diags...); resp.Diagnostics.HasError() || raw == nil {
		return
	}
	var lease string
	if err := json.Unmarshal(raw, &lease); err != nil || lease == "" {
		return
	}
	if err := e.client.vault.Sys().RevokeWithContext(ctx, lease); err != nil {
		resp.Diagnostics.AddWarning("Revoking the token's lease", err.Error())
	}
}

var (
	_ ephemeral.EphemeralResourceWithConfigure = (*tokenEphemeral)(nil)
	_ ephemeral.EphemeralResourceWithClose     = (*tokenEphemeral)(nil)
)
