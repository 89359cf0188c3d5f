//go:build e2e

package provider

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/config"
	"github.com/hashicorp/terraform-plugin-testing/echoprovider"
	acc "github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/vault/api"

	"github.com/aritma/vault-plugin-secrets-aritma/internal/testservers"
)

const repoRoot = "../.."

// randomHex is a distinctive value; secrets made with it are noted for the
// scan of the test output.
func randomHex(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	v := prefix + "-" + hex.EncodeToString(b)
	testservers.NoteSecret(v)
	return v
}

// accServers are the real servers an acceptance test runs against: Vault
// with the engine mounted at aritma/, and the OAuth server.
type accServers struct {
	vault *testservers.Vault
	oauth *testservers.OAuthServer
}

// startAccServers starts Vault and the OAuth server, and points the real
// OpenTofu (never a downloaded CLI) and the provider at them.
func startAccServers(t *testing.T, clients ...testservers.OAuthClient) *accServers {
	t.Helper()
	vaultBin, tofuBin := os.Getenv("ARITMA_VAULT_BIN"), os.Getenv("ARITMA_TOFU_BIN")
	if vaultBin == "" || tofuBin == "" {
		t.Skip("ARITMA_VAULT_BIN and ARITMA_TOFU_BIN are not set: run make test-terraform, which builds both")
	}
	dir := t.TempDir()
	plugin := filepath.Join(dir, testservers.PluginName)
	if err := testservers.BuildPlugin(repoRoot, "v0.1.0", plugin); err != nil {
		t.Fatal(err)
	}
	v, err := testservers.StartVaultDev(vaultBin, dir, randomHex("root"))
	if v != nil {
		t.Cleanup(v.Stop)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := v.RegisterPlugin(testservers.Plugin{Name: testservers.PluginName, Version: "v0.1.0", Binary: plugin}); err != nil {
		t.Fatal(err)
	}
	if err := v.Client.Sys().Mount("aritma", &api.MountInput{Type: testservers.PluginName}); err != nil {
		t.Fatal(err)
	}
	oauth, err := testservers.StartOAuthServer(filepath.Join(repoRoot, "e2e", "oauthserver", "server.mjs"), dir,
		testservers.OAuthConfig{TokenTTL: 3600, Clients: clients})
	if oauth != nil {
		t.Cleanup(oauth.Stop)
	}
	if err != nil {
		t.Fatal(err)
	}
	// An empty CLI configuration: without one OpenTofu warns on every
	// command, which the test framework cannot read past.
	cliConfig := filepath.Join(dir, "tofurc")
	if err := os.WriteFile(cliConfig, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TF_CLI_CONFIG_FILE", cliConfig)
	t.Setenv("TF_ACC", "1")
	t.Setenv("TF_ACC_TERRAFORM_PATH", tofuBin)
	t.Setenv("TF_ACC_PROVIDER_HOST", "registry.opentofu.org")
	t.Setenv("TF_ACC_PROVIDER_NAMESPACE", "aritma")
	t.Setenv("VAULT_ADDR", "http://"+v.Addr)
	t.Setenv("VAULT_TOKEN", v.Token)
	return &accServers{vault: v, oauth: oauth}
}

var providers = map[string]func() (tfprotov6.ProviderServer, error){
	"aritma": providerserver.NewProtocol6WithError(New("test")()),
}

// noSecretInState fails if any attribute of any resource in the state holds
// one of the secrets, in any of its forms.
func noSecretInState(secrets ...string) func(*terraform.State) error {
	return func(s *terraform.State) error {
		for _, m := range s.Modules {
			for name, r := range m.Resources {
				for attr, value := range r.Primary.Attributes {
					for _, secret := range secrets {
						for _, form := range testservers.SecretForms(secret) {
							if strings.Contains(value, form) {
								return fmt.Errorf("the state's %s.%s holds a secret", name, attr)
							}
						}
					}
				}
			}
		}
		return nil
	}
}

// noSecretInPlan is a plan check: the saved plan, as tofu show -json
// gives it (prior state, planned values, changes, configuration), holds
// none of the secrets in any of their forms.
type noSecretInPlan []string

func (secrets noSecretInPlan) CheckPlan(_ context.Context, req plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
	raw, err := json.Marshal(req.Plan)
	if err != nil {
		resp.Error = err
		return
	}
	for _, secret := range secrets {
		for _, form := range testservers.SecretForms(secret) {
			if strings.Contains(string(raw), form) {
				resp.Error = fmt.Errorf("the saved plan holds a secret")
				return
			}
		}
	}
}

// noSecretInPlans checks the plan before each apply and the one after it.
func noSecretInPlans(secrets ...string) acc.ConfigPlanChecks {
	check := noSecretInPlan(secrets)
	return acc.ConfigPlanChecks{
		PreApply:             []plancheck.PlanCheck{check},
		PostApplyPostRefresh: []plancheck.PlanCheck{check},
	}
}

// tokenWorks reads a token for the role through Vault and checks that the
// OAuth server issued it to client.
func (a *accServers) tokenWorks(role, client string) func(*terraform.State) error {
	return func(*terraform.State) error {
		secret, err := a.vault.Client.Logical().Read("aritma/token/" + role)
		if err != nil {
			return fmt.Errorf("reading a token: %w", err)
		}
		if secret == nil || secret.Data["access_token"] == nil {
			return fmt.Errorf("no token for role %s", role)
		}
		st, err := a.oauth.Stats()
		if err != nil {
			return err
		}
		if st.ByClient[client] == 0 {
			return fmt.Errorf("the OAuth server issued no token to %s: %+v", client, st)
		}
		return nil
	}
}

// roleConfig is a role whose client secret comes, as in real use, from an
// ephemeral variable (secretVariable sets it): a literal would be in the
// saved plan's copy of the configuration.
func roleConfig(tokenURL, clientID string, version int, scopes string) string {
	return fmt.Sprintf(`
variable "client_secret" {
  type      = string
  ephemeral = true
}

resource "aritma_environment" "bank" {
  name      = "bank"
  token_url = %q
}

resource "aritma_role" "payments" {
  name                     = "payments"
  environment              = aritma_environment.bank.name
  client_id                = %q
  client_secret_wo         = var.client_secret
  client_secret_wo_version = %d
  scopes                   = [%s]
}
`, tokenURL, clientID, version, scopes)
}

func secretVariable(secret string) config.Variables {
	return config.Variables{"client_secret": config.StringVariable(secret)}
}

// With the real OpenTofu, Vault and OAuth server: create, a clean re-plan,
// a secret rotation the bank accepts, drift put back, import and destroy;
// no secret in the state after any step.
func TestAcc_RoleLifecycle(t *testing.T) {
	first := testservers.OAuthClient{ID: "acc-first", Secret: randomHex("acc-first-secret"), AuthMethod: "client_secret_post", Scope: "api bankservice", Format: "jwt"}
	second := testservers.OAuthClient{ID: "acc-second", Secret: randomHex("acc-second-secret"), AuthMethod: "client_secret_post", Scope: "api bankservice", Format: "jwt"}
	a := startAccServers(t, first, second)
	noSecret := noSecretInState(first.Secret, second.Secret)
	noSecretInPlan := noSecretInPlans(first.Secret, second.Secret)

	acc.Test(t, acc.TestCase{
		ProtoV6ProviderFactories: providers,
		Steps: []acc.TestStep{
			{
				Config:           roleConfig(a.oauth.TokenEndpoint, first.ID, 1, `"bankservice"`),
				ConfigVariables:  secretVariable(first.Secret),
				ConfigPlanChecks: noSecretInPlan,
				Check:            acc.ComposeTestCheckFunc(noSecret, a.tokenWorks("payments", first.ID)),
			},
			{
				// Rotation: the new client's secret, sent because its version moved.
				Config:           roleConfig(a.oauth.TokenEndpoint, second.ID, 2, `"bankservice"`),
				ConfigVariables:  secretVariable(second.Secret),
				ConfigPlanChecks: noSecretInPlan,
				Check:            acc.ComposeTestCheckFunc(noSecret, a.tokenWorks("payments", second.ID)),
			},
			{
				// Drift: a change made outside OpenTofu is put back.
				PreConfig: func() {
					if _, err := a.vault.Client.Logical().Write("aritma/roles/payments", map[string]interface{}{"scopes": "api"}); err != nil {
						t.Fatal(err)
					}
				},
				Config:           roleConfig(a.oauth.TokenEndpoint, second.ID, 2, `"bankservice"`),
				ConfigVariables:  secretVariable(second.Secret),
				ConfigPlanChecks: noSecretInPlan,
				Check: acc.ComposeTestCheckFunc(noSecret, func(*terraform.State) error {
					role, err := a.vault.Client.Logical().Read("aritma/roles/payments")
					if err != nil || role == nil {
						return fmt.Errorf("reading the role: %v", err)
					}
					if got := fmt.Sprint(role.Data["scopes"]); got != "[bankservice]" {
						return fmt.Errorf("scopes = %s after the apply, want the drift put back to [bankservice]", got)
					}
					return nil
				}),
			},
			{
				ResourceName:                         "aritma_role.payments",
				ImportState:                          true,
				ConfigVariables:                      secretVariable(second.Secret),
				ImportStateId:                        "payments",
				ImportStateVerify:                    true,
				ImportStateVerifyIdentifierAttribute: "name",
				// Nothing reads a secret's version back: it lives in the configuration.
				ImportStateVerifyIgnore: []string{"client_secret_wo_version"},
			},
		},
		CheckDestroy: func(*terraform.State) error {
			role, err := a.vault.Client.Logical().Read("aritma/roles/payments")
			if err == nil && role != nil {
				return fmt.Errorf("the role is still there after destroy")
			}
			return nil
		},
	})
}

// The ephemeral aritma_token feeds a second provider's configuration (the
// test's echo provider) with a live token, which the OAuth server accepts;
// the lease it read is revoked when OpenTofu closes it.
func TestAcc_EphemeralTokenForAnotherProvider(t *testing.T) {
	client := testservers.OAuthClient{ID: "acc-eph", Secret: randomHex("acc-eph-secret"), AuthMethod: "client_secret_post", Scope: "api", Format: "jwt"}
	a := startAccServers(t, client)
	cfg := roleConfig(a.oauth.TokenEndpoint, client.ID, 1, `"api"`) + `
ephemeral "aritma_token" "payments" {
  role = aritma_role.payments.name
}

provider "echo" {
  data = ephemeral.aritma_token.payments
}

resource "echo" "token" {}
`
	acc.Test(t, acc.TestCase{
		ProtoV6ProviderFactories: map[string]func() (tfprotov6.ProviderServer, error){
			"aritma": providers["aritma"],
			"echo":   echoprovider.NewProviderServer(),
		},
		Steps: []acc.TestStep{{
			Config:          cfg,
			ConfigVariables: secretVariable(client.Secret),
			Check: acc.ComposeTestCheckFunc(
				acc.TestCheckResourceAttr("echo.token", "data.token_type", "Bearer"),
				acc.TestCheckResourceAttr("echo.token", "data.role", "payments"),
				func(s *terraform.State) error {
					token := s.RootModule().Resources["echo.token"].Primary.Attributes["data.access_token"]
					testservers.NoteSecret(token)
					if strings.Count(token, ".") != 2 {
						return fmt.Errorf("echo received no JWT access token")
					}
					// The aritma resources' state holds neither the secret nor the token.
					for name, r := range s.RootModule().Resources {
						if !strings.HasPrefix(name, "aritma_") {
							continue
						}
						for attr, value := range r.Primary.Attributes {
							if strings.Contains(value, token) || strings.Contains(value, client.Secret) {
								return fmt.Errorf("%s.%s holds a secret", name, attr)
							}
						}
					}
					// Every lease the ephemeral resource read was revoked on close.
					leases, err := a.vault.Client.Logical().List("sys/leases/lookup/aritma/token/payments/")
					if err != nil {
						return err
					}
					if leases != nil && len(leases.Data["keys"].([]interface{})) > 0 {
						return fmt.Errorf("leases left after OpenTofu closed the token: %v", leases.Data["keys"])
					}
					return nil
				},
			),
		}},
	})
}

// nextSecretConfig is a role with a client secret and, when nextVersion is
// not "null", a next client secret (both ephemeral variables), with a token
// of its own for every read so that each read reaches the bank.
func nextSecretConfig(tokenURL, clientID string, version int, nextVersion string) string {
	return fmt.Sprintf(`
variable "client_secret" {
  type      = string
  ephemeral = true
}

variable "next_client_secret" {
  type      = string
  ephemeral = true
  default   = null
}

resource "aritma_environment" "bank" {
  name      = "bank"
  token_url = %q
}

resource "aritma_role" "payments" {
  name                          = "payments"
  environment                   = aritma_environment.bank.name
  client_id                     = %q
  client_secret_wo              = var.client_secret
  client_secret_wo_version      = %d
  next_client_secret_wo         = var.next_client_secret
  next_client_secret_wo_version = %s
  scopes                        = ["api"]
  token_per_lease               = true
}
`, tokenURL, clientID, version, nextVersion)
}

func nextSecretVariables(secret, next string) config.Variables {
	vars := config.Variables{"client_secret": config.StringVariable(secret)}
	if next != "" {
		vars["next_client_secret"] = config.StringVariable(next)
	}
	return vars
}

// The README's rotation without failed reads, with the real OpenTofu, Vault
// and OAuth server: a next client secret is set and dropped by its version;
// set again, the bank switches to it and the engine follows on
// invalid_client, which the next refresh shows without planning a change;
// then the secret moves to client_secret_wo. The next rotation is promoted
// by hand instead, with the same clean plan. No secret in state or saved
// plans after any step.
func TestAcc_RoleNextClientSecret(t *testing.T) {
	client := testservers.OAuthClient{ID: "acc-next", Secret: randomHex("acc-next-secret"), AuthMethod: "client_secret_post", Scope: "api", Format: "jwt"}
	dropped, next, promoted := randomHex("acc-dropped-secret"), randomHex("acc-rotated-secret"), randomHex("acc-promoted-secret")
	a := startAccServers(t, client)
	noSecret := noSecretInState(client.Secret, dropped, next, promoted)
	plans := noSecretInPlans(client.Secret, dropped, next, promoted)
	url := a.oauth.TokenEndpoint
	const role = "aritma_role.payments"

	acc.Test(t, acc.TestCase{
		ProtoV6ProviderFactories: providers,
		Steps: []acc.TestStep{
			{
				Config:           nextSecretConfig(url, client.ID, 1, "null"),
				ConfigVariables:  nextSecretVariables(client.Secret, ""),
				ConfigPlanChecks: plans,
				Check: acc.ComposeTestCheckFunc(noSecret, a.tokenWorks("payments", client.ID),
					acc.TestCheckResourceAttr(role, "next_client_secret_set", "false"),
					acc.TestCheckResourceAttr(role, "client_secret_switched_at", "")),
			},
			{
				// A next secret, sent because its version moved.
				Config:           nextSecretConfig(url, client.ID, 1, "1"),
				ConfigVariables:  nextSecretVariables(client.Secret, dropped),
				ConfigPlanChecks: plans,
				Check: acc.ComposeTestCheckFunc(noSecret, a.tokenWorks("payments", client.ID),
					acc.TestCheckResourceAttr(role, "next_client_secret_set", "true")),
			},
			{
				// Left out with its version moved: dropped.
				Config:           nextSecretConfig(url, client.ID, 1, "2"),
				ConfigVariables:  nextSecretVariables(client.Secret, ""),
				ConfigPlanChecks: plans,
				Check: acc.ComposeTestCheckFunc(noSecret,
					acc.TestCheckResourceAttr(role, "next_client_secret_set", "false"),
					acc.TestCheckResourceAttr(role, "client_secret_set", "true")),
			},
			{
				// 1. The secret the bank will take next.
				Config:           nextSecretConfig(url, client.ID, 1, "3"),
				ConfigVariables:  nextSecretVariables(client.Secret, next),
				ConfigPlanChecks: plans,
				Check: acc.ComposeTestCheckFunc(noSecret,
					acc.TestCheckResourceAttr(role, "next_client_secret_set", "true")),
			},
			{
				// 2. The bank switches; the next read's grant is refused with
				// the old secret and the engine switches. The refresh shows
				// it, and the same configuration plans no change (the test
				// framework fails on a non-empty plan after the apply too).
				PreConfig: func() {
					if err := a.oauth.SetClientSecret(client.ID, next); err != nil {
						t.Fatal(err)
					}
					if err := a.tokenWorks("payments", client.ID)(nil); err != nil {
						t.Fatalf("a read after the bank switched: %v", err)
					}
				},
				Config:          nextSecretConfig(url, client.ID, 1, "3"),
				ConfigVariables: nextSecretVariables(client.Secret, next),
				ConfigPlanChecks: acc.ConfigPlanChecks{
					PreApply:             append(plans.PreApply, plancheck.ExpectEmptyPlan()),
					PostApplyPostRefresh: plans.PostApplyPostRefresh,
				},
				Check: acc.ComposeTestCheckFunc(noSecret, a.tokenWorks("payments", client.ID),
					acc.TestCheckResourceAttr(role, "next_client_secret_set", "false"),
					switchedBecause(a, "invalid_client")),
			},
			{
				// 3. The new secret becomes client_secret_wo, and leaves
				// next_client_secret_wo, each with its version moved.
				Config:           nextSecretConfig(url, client.ID, 2, "4"),
				ConfigVariables:  nextSecretVariables(next, ""),
				ConfigPlanChecks: plans,
				Check: acc.ComposeTestCheckFunc(noSecret, a.tokenWorks("payments", client.ID),
					acc.TestCheckResourceAttr(role, "client_secret_set", "true"),
					acc.TestCheckResourceAttr(role, "next_client_secret_set", "false")),
			},
			{
				// The next rotation, switched by hand: vault write -f
				// aritma/roles/payments/next-secret/promote.
				Config:           nextSecretConfig(url, client.ID, 2, "5"),
				ConfigVariables:  nextSecretVariables(next, promoted),
				ConfigPlanChecks: plans,
				Check:            acc.TestCheckResourceAttr(role, "next_client_secret_set", "true"),
			},
			{
				PreConfig: func() {
					if err := a.oauth.SetClientSecret(client.ID, promoted); err != nil {
						t.Fatal(err)
					}
					if _, err := a.vault.Client.Logical().Write("aritma/roles/payments/next-secret/promote", nil); err != nil {
						t.Fatalf("promoting the next secret: %v", err)
					}
				},
				Config:          nextSecretConfig(url, client.ID, 2, "5"),
				ConfigVariables: nextSecretVariables(next, promoted),
				ConfigPlanChecks: acc.ConfigPlanChecks{
					PreApply:             append(plans.PreApply, plancheck.ExpectEmptyPlan()),
					PostApplyPostRefresh: plans.PostApplyPostRefresh,
				},
				Check: acc.ComposeTestCheckFunc(noSecret, a.tokenWorks("payments", client.ID), switchedBecause(a, "promoted"),
					acc.TestCheckResourceAttr(role, "next_client_secret_set", "false")),
			},
		},
	})
}

// switchedBecause checks that the state shows a switch of client secret, and
// that the engine's client_secret_switch_reason mentions reason.
func switchedBecause(a *accServers, reason string) func(*terraform.State) error {
	return func(s *terraform.State) error {
		if at := s.RootModule().Resources["aritma_role.payments"].Primary.Attributes["client_secret_switched_at"]; at == "" {
			return fmt.Errorf("client_secret_switched_at is empty after the switch")
		}
		r, err := a.vault.Client.Logical().Read("aritma/roles/payments")
		if err != nil || r == nil {
			return fmt.Errorf("reading the role: %v", err)
		}
		if got := fmt.Sprint(r.Data["client_secret_switch_reason"]); !strings.Contains(got, reason) {
			return fmt.Errorf("client_secret_switch_reason = %q, want one with %q", got, reason)
		}
		return nil
	}
}

// metrics_role_limit with the real OpenTofu and Vault: set, refused out of
// range with the engine's message, and back to its default when left out.
func TestAcc_ConfigMetricsRoleLimit(t *testing.T) {
	// The OAuth server, which the harness starts too, wants a client.
	a := startAccServers(t, testservers.OAuthClient{ID: "acc-config", Secret: randomHex("acc-config-secret"),
		AuthMethod: "client_secret_post", Scope: "api", Format: "jwt"})
	limit := func(want string) func(*terraform.State) error {
		return func(*terraform.State) error {
			cfg, err := a.vault.Client.Logical().Read("aritma/config")
			if err != nil || cfg == nil {
				return fmt.Errorf("reading the config: %v", err)
			}
			if got := fmt.Sprint(cfg.Data["metrics_role_limit"]); got != want {
				return fmt.Errorf("the engine's metrics_role_limit = %s, want %s", got, want)
			}
			return nil
		}
	}
	configWith := func(attrs string) string { return "resource \"aritma_config\" \"this\" {\n" + attrs + "\n}\n" }
	acc.Test(t, acc.TestCase{
		ProtoV6ProviderFactories: providers,
		Steps: []acc.TestStep{
			{
				Config: configWith(`metrics_role_limit = 50`),
				Check:  acc.ComposeTestCheckFunc(acc.TestCheckResourceAttr("aritma_config.this", "metrics_role_limit", "50"), limit("50")),
			},
			{
				Config:      configWith(`metrics_role_limit = 100001`),
				ExpectError: regexp.MustCompile(`metrics_role_limit must be between 0 and 100000, got 100001`),
			},
			{
				Config: configWith(``),
				Check:  acc.ComposeTestCheckFunc(acc.TestCheckResourceAttr("aritma_config.this", "metrics_role_limit", "1000"), limit("1000")),
			},
		},
	})
}
