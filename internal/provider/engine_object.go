package provider

import (
	"context"
	"net/http"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/vault/api"
)

// engineObject is what the resources share: an object at
// <mount>/<kind>/<name> (the config: <mount>/config) that a write sets
// whole and a read returns, or answers 404 for when it is gone.
type engineObject struct {
	client *client
	kind   string // the path segment: roles, environments; none for the config
	noun   string // for messages: role, environment, config
}

func (o *engineObject) Configure(_ context.Context, req resource.ConfigureRequest, _ *resource.ConfigureResponse) {
	if c, ok := req.ProviderData.(*client); ok {
		o.client = c
	}
}

// mountAttribute is the mount of a resource: the provider's unless set,
// kept in state, and a move to another mount is a replacement.
func mountAttribute() schema.StringAttribute {
	return schema.StringAttribute{Optional: true, Computed: true,
		Description: "Path the engine is mounted at. Default: the provider's mount.",
		PlanModifiers: []planmodifier.String{
			stringplanmodifier.UseStateForUnknown(), stringplanmodifier.RequiresReplace(),
		}}
}

// resolveMount sets an unknown or unset mount to the provider's.
func (o *engineObject) resolveMount(mount *types.String) {
	if mount.IsNull() || mount.IsUnknown() || mount.ValueString() == "" {
		*mount = types.StringValue(o.client.mount)
	}
}

func (o *engineObject) path(mount, name types.String) string {
	if o.kind == "" {
		return o.client.at(mount, o.noun)
	}
	return o.client.at(mount, o.kind+"/"+name.ValueString())
}

// what names the object in messages: role payments, config.
func (o *engineObject) what(name types.String) string {
	if o.kind == "" {
		return o.noun
	}
	return o.noun + " " + name.ValueString()
}

func (o *engineObject) write(ctx context.Context, mount, name types.String, data map[string]interface{}) diag.Diagnostics {
	var diags diag.Diagnostics
	if _, err := o.client.vault.Logical().WriteWithContext(ctx, o.path(mount, name), data); err != nil {
		// The engine's own message names the field and what it allows.
		diags.AddError("Writing "+o.what(name), err.Error())
	}
	return diags
}

// read returns what the engine reads back, or nil if the object is gone.
func (o *engineObject) read(ctx context.Context, mount, name types.String) (map[string]interface{}, diag.Diagnostics) {
	var diags diag.Diagnostics
	secret, err := o.client.vault.Logical().ReadWithContext(ctx, o.path(mount, name))
	if re, ok := err.(*api.ResponseError); ok && re.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		diags.AddError("Reading "+o.what(name), err.Error())
		return nil, diags
	}
	if secret == nil {
		return nil, nil
	}
	return secret.Data, nil
}

// readWritten is read after a write, where a missing object is an error.
func (o *engineObject) readWritten(ctx context.Context, mount, name types.String) (map[string]interface{}, diag.Diagnostics) {
	data, diags := o.read(ctx, mount, name)
	if data == nil && !diags.HasError() {
		diags.AddError("Reading "+o.what(name), o.what(name)+" does not exist after it was written")
	}
	return data, diags
}

func (o *engineObject) delete(ctx context.Context, mount, name types.String) diag.Diagnostics {
	var diags diag.Diagnostics
	if _, err := o.client.vault.Logical().DeleteWithContext(ctx, o.path(mount, name)); err != nil {
		diags.AddError("Deleting "+o.what(name), err.Error())
	}
	return diags
}

// importState takes an ID of the form <name> (at the provider's mount) or
// <mount>/<name>: names have no slashes, mounts may.
func (o *engineObject) importState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	mount, name := o.client.mount, req.ID
	if i := strings.LastIndex(req.ID, "/"); i >= 0 {
		mount, name = req.ID[:i], req.ID[i+1:]
	}
	if name == "" || mount == "" {
		resp.Diagnostics.AddError("Importing a "+o.noun, "the ID must be <name> or <mount>/<name>, got "+req.ID)
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("mount"), mount)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("name"), name)...)
}

// applyPlan is Create (prior nil) and Update of a resource with model M:
// apply writes the plan, with the write-only values from config, and fills
// the plan in from what the engine reads back; that becomes the state.
func applyPlan[M any](ctx context.Context, plan tfsdk.Plan, config tfsdk.Config, prior *tfsdk.State, state *tfsdk.State,
	diags *diag.Diagnostics, apply func(plan, config, prior *M) diag.Diagnostics) {
	var p, c M
	diags.Append(plan.Get(ctx, &p)...)
	diags.Append(config.Get(ctx, &c)...)
	var old *M
	if prior != nil {
		old = new(M)
		diags.Append(prior.Get(ctx, old)...)
	}
	if diags.HasError() {
		return
	}
	if diags.Append(apply(&p, &c, old)...); diags.HasError() {
		return
	}
	diags.Append(state.Set(ctx, &p)...)
}

// refreshState is Read: read fills the model in, or reports it gone, and
// a gone object leaves the state so that the next plan creates it.
func refreshState[M any](ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse,
	read func(m *M) (found bool, diags diag.Diagnostics)) {
	var m M
	if resp.Diagnostics.Append(req.State.Get(ctx, &m)...); resp.Diagnostics.HasError() {
		return
	}
	found, diags := read(&m)
	if resp.Diagnostics.Append(diags...); resp.Diagnostics.HasError() {
		return
	}
	if !found {
		resp.State.RemoveResource(ctx)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
