package provider

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// genericEndpoint is the part of a vault_generic_endpoint's state a move
// needs: the path it wrote, and what it wrote there. The data may hold a
// client secret: it is read for the other fields and never copied.
type genericEndpoint struct {
	Path     string `json:"path"`
	DataJSON string `json:"data_json"`
}

// movedFrom reads a vault_generic_endpoint state that wrote <mount>/<kind>/<name>.
func movedFrom(req resource.MoveStateRequest, kind string) (mount, name string, data map[string]interface{}, ok bool) {
	if req.SourceTypeName != "vault_generic_endpoint" || req.SourceRawState == nil || req.SourceRawState.JSON == nil {
		return "", "", nil, false
	}
	var src genericEndpoint
	if err := json.Unmarshal(req.SourceRawState.JSON, &src); err != nil {
		return "", "", nil, false
	}
	i := strings.LastIndex(src.Path, "/"+kind+"/")
	if i <= 0 {
		return "", "", nil, false
	}
	mount, name = strings.Trim(src.Path[:i], "/"), src.Path[i+len(kind)+2:]
	if name == "" || strings.Contains(name, "/") {
		return "", "", nil, false
	}
	_ = json.Unmarshal([]byte(src.DataJSON), &data)
	return mount, name, data, true
}

// MoveState takes over a role that the module wrote with the Vault
// provider's vault_generic_endpoint (a moved {} block), so that switching
// to aritma_role replaces nothing: the role, its keys and its cached token
// stay. The next read fills in every field; a secret is sent again on the
// first apply, since its version is not known.
func (r *roleResource) MoveState(context.Context) []resource.StateMover {
	return []resource.StateMover{{StateMover: func(ctx context.Context, req resource.MoveStateRequest, resp *resource.MoveStateResponse) {
		mount, name, data, ok := movedFrom(req, "roles")
		if !ok {
			return
		}
		m := roleModel{
			Mount: types.StringValue(mount), Name: types.StringValue(name), Environment: types.StringValue(str(data["environment"])),
			ClientID: types.StringValue(str(data["client_id"])), ClientSecretSet: types.BoolNull(),
			Scopes: types.ListNull(types.StringType), Resource: types.ListNull(types.StringType),
			TokenParams: types.MapNull(types.StringType), MinRemaining: types.Int64Value(60),
			TokenPerLease: types.BoolValue(false), KeyActivationDelay: types.Int64Value(86400),
			AllowedGrantTypes: types.ListNull(types.StringType), RedirectURIs: types.ListNull(types.StringType),
			ConsentScopes: types.ListNull(types.StringType), AuthorizationParams: types.MapNull(types.StringType),
			PKCE: types.BoolValue(true), KeepPassword: types.BoolValue(false), RefreshKeepAlive: types.Int64Value(0),
		}
		resp.Diagnostics.Append(resp.TargetState.Set(ctx, &m)...)
	}}}
}

// MoveState takes over an environment written with vault_generic_endpoint.
func (r *environmentResource) MoveState(context.Context) []resource.StateMover {
	return []resource.StateMover{{StateMover: func(ctx context.Context, req resource.MoveStateRequest, resp *resource.MoveStateResponse) {
		mount, name, data, ok := movedFrom(req, "environments")
		if !ok {
			return
		}
		m := environmentModel{
			Mount: types.StringValue(mount), Name: types.StringValue(name), TokenURL: stringOrNull(data["token_url"]),
			AuthMethod: types.StringValue("client_secret_post"), RequestTimeout: types.Int64Value(0),
			AssumedTokenLifetime: types.Int64Value(300),
		}
		if v := str(data["auth_method"]); v != "" {
			m.AuthMethod = types.StringValue(v)
		}
		resp.Diagnostics.Append(resp.TargetState.Set(ctx, &m)...)
	}}}
}

var (
	_ resource.ResourceWithMoveState = (*roleResource)(nil)
	_ resource.ResourceWithMoveState = (*environmentResource)(nil)
)
