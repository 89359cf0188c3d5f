// Package provider is the OpenTofu/Terraform provider for the Aritma secrets
// engine: environments and roles as resources, their secrets as write-only
// arguments that never reach plan or state. It talks to Vault with Vault's
// API client; the engine itself is never linked in.
package provider

import (
	"context"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/ephemeral"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/vault/api"
)

// Address is where OpenTofu finds the provider; Terraform's is
// registry.terraform.io/aritma/aritma.
const Address = "registry.opentofu.org/aritma/aritma"

// New returns the provider for version.
func New(version string) func() provider.Provider {
	return func() provider.Provider { return &aritmaProvider{version: version} }
}

type aritmaProvider struct{ version string }

type providerModel struct {
	Address    types.String `tfsdk:"address"`
	Token      types.String `tfsdk:"token"`
	Namespace  types.String `tfsdk:"namespace"`
	CACertFile types.String `tfsdk:"ca_cert_file"`
	Mount      types.String `tfsdk:"mount"`
}

func (p *aritmaProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "aritma"
	resp.Version = p.version
}

func (p *aritmaProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "Manages the environments and roles of a mount of the Aritma secrets engine in Vault.",
		Attributes: map[string]schema.Attribute{
			"address":      schema.StringAttribute{Optional: true, Description: "Vault's address. Default: $VAULT_ADDR."},
			"token":        schema.StringAttribute{Optional: true, Sensitive: true, Description: "Vault token. Default: $VAULT_TOKEN."},
			"namespace":    schema.StringAttribute{Optional: true, Description: "Vault Enterprise namespace. Default: $VAULT_NAMESPACE."},
			"ca_cert_file": schema.StringAttribute{Optional: true, Description: "PEM file of the CA that signed Vault's certificate. Default: $VAULT_CACERT."},
			"mount":        schema.StringAttribute{Optional: true, Description: "Path the engine is mounted at. Default: aritma."},
		},
	}
}

// client is what the resources get: Vault's API client and the mount.
type client struct {
	vault *api.Client
	mount string
}

// at is path p under mount, or under the provider's mount if that is unset.
func (c *client) at(mount types.String, p string) string {
	if m := strings.Trim(mount.ValueString(), "/"); m != "" {
		return m + "/" + p
	}
	return c.mount + "/" + p
}

func (p *aritmaProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var m providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	cfg := api.DefaultConfig() // reads VAULT_ADDR, VAULT_CACERT and the other variables
	if cfg.Error != nil {
		resp.Diagnostics.AddError("Vault client", cfg.Error.Error())
		return
	}
	if v := m.Address.ValueString(); v != "" {
		cfg.Address = v
	}
	if v := m.CACertFile.ValueString(); v != "" {
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: v}); err != nil {
			resp.Diagnostics.AddAttributeError(pathOf("ca_cert_file"), "ca_cert_file", err.Error())
			return
		}
	}
	vc, err := api.NewClient(cfg)
	if err != nil {
		resp.Diagnostics.AddError("Vault client", err.Error())
		return
	}
	if v := m.Token.ValueString(); v != "" { // api.NewClient took $VAULT_TOKEN already
		vc.SetToken(v)
	}
	if v := m.Namespace.ValueString(); v != "" {
		vc.SetNamespace(v)
	}
	mount := m.Mount.ValueString()
	if mount == "" {
		mount = "aritma"
	}
	c := &client{vault: vc, mount: mount}
	resp.ResourceData = c
	resp.DataSourceData = c
	resp.EphemeralResourceData = c
}

func (p *aritmaProvider) EphemeralResources(context.Context) []func() ephemeral.EphemeralResource {
	return []func() ephemeral.EphemeralResource{newTokenEphemeral}
}

func (p *aritmaProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{newConfigResource, newEnvironmentResource, newRoleResource}
}

func (p *aritmaProvider) DataSources(context.Context) []func() datasource.DataSource { return nil }

var _ provider.ProviderWithEphemeralResources = (*aritmaProvider)(nil)
