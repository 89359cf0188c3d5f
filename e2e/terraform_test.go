//go:build e2e

package e2e

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aritma/vault-plugin-secrets-aritma/internal/testservers"
)

// make test-terraform builds these (scripts/build-tofu.sh and
// scripts/build-terraform-provider-vault.sh) and sets them; TestMain builds
// this repository's provider into providerMirror.
var (
	tofuBin          = os.Getenv("ARITMA_TOFU_BIN")
	tfProviderMirror = os.Getenv("ARITMA_TF_PROVIDER_MIRROR")
	terraformSources = filepath.Join("..", "terraform")
	// The module and example as 0.1 shipped them, on vault_generic_endpoint.
	legacyTerraformSources = filepath.Join("testdata", "terraform-v0.1")
	providerMirror         string
)

const providerVersion = "0.1.0"

// The shipped example (terraform/examples, using terraform/modules/aritma)
// applied with the real OpenTofu and Vault provider to a Vault dev server,
// with both environments pointed at the real OAuth server; the README
// section's commands in the order an operator runs them: apply, read a
// token, give an app its policy, see a clean plan, change scopes, rotate a
// client secret, run Vault Agent with the example's config, destroy.
// writeOnlySecret is how a plan shows the role's client secret.
var writeOnlySecret = regexp.MustCompile(`client_secret_wo += \(write-only attribute\)`)

func TestTerraform_ExampleAppliesAndDestroys(t *testing.T) {
	if tofuBin == "" || tfProviderMirror == "" {
		t.Skip("ARITMA_TOFU_BIN or ARITMA_TF_PROVIDER_MIRROR is not set; run make test-terraform")
	}
	t.Parallel()
	start := time.Now()
	devSecret, prodSecret := randomSecret("dev-secret"), randomSecret("prod-secret")
	rotatedSecret, nextProdSecret := randomSecret("rotated-secret"), randomSecret("next-prod-secret")
	secrets := map[string]string{
		"development client secret": devSecret,
		"production client secret":  prodSecret,
		"rotated client secret":     rotatedSecret,
		"next production secret":    nextProdSecret,
	}
	// The bank: one OAuth server for both environments, on a fixed port so
	// that it keeps its token URL when it restarts with a rotated secret.
	bankPort := freePort(t)
	startBank := func(t *testing.T, devSecret string) *oauthServer {
		return startExampleBank(t, devSecret, prodSecret, bankPort)
	}
	v := startVaultDev(t)
	tokenURL := fmt.Sprintf("http://127.0.0.1:%d/connect/token", bankPort)
	tf := newExampleTofu(t, v, terraformSources, tokenURL)
	tf.setClientSecrets(t, map[string]string{"payments-dev": devSecret, "payments": prodSecret})

	var appTokens map[string]string
	ok := t.Run("apply, policies, clean plan, drift, scope change, Vault Agent", func(t *testing.T) {
		bank := startBank(t, devSecret)
		if bank.TokenEndpoint != tokenURL {
			t.Fatalf("the bank's token endpoint is %s, want %s", bank.TokenEndpoint, tokenURL)
		}
		tf.run(t, 0, "fmt", "-check", "-recursive", "..")
		tf.run(t, 0, "init")
		out := tf.run(t, 0, "plan", "-out=aritma.tfplan")
		// OpenTofu pads attribute names to the longest shown.
		if !writeOnlySecret.MatchString(out) {
			t.Errorf("the plan does not show the client secret as a write-only attribute:\n%s", out)
		}
		tf.assertNoSecretsInStateOrPlan(t, secrets, "aritma.tfplan")
		tf.run(t, 0, "apply", "aritma.tfplan")
		tf.assertNoSecretsInStateOrPlan(t, secrets)

		// The engine answers with tokens the bank accepts, for both environments.
		for role, clientID := range map[string]string{"payments": "payments-client", "payments-dev": "payments-dev-client"} {
			secret := v.readTokenCLI(t, v.Token, role)
			in := bank.verify(t, secret.Data["access_token"].(string))
			if !in.Active || in.ClientID != clientID || in.Scope != "api bankservice" {
				t.Errorf("token of %s: the bank saw %+v, want an active token of %s with scope \"api bankservice\"", role, in, clientID)
			}
		}
		if out := v.mustCLI(t, "secrets", "list", "-detailed"); !strings.Contains(out, "v0.1.0") {
			t.Errorf("vault secrets list -detailed does not show the mount running v0.1.0:\n%s", out)
		}

		// Each application's policy reads its own role and nothing else.
		var policies map[string]string
		tf.outputJSON(t, "policies", &policies)
		if policies["payments"] != "aritma-payments" || policies["payments-staging"] != "aritma-payments-staging" {
			t.Fatalf("policies output = %v, want payments: aritma-payments, payments-staging: aritma-payments-staging", policies)
		}
		appTokens = map[string]string{}
		for app, own := range map[string]string{"payments": "payments", "payments-staging": "payments-dev"} {
			appToken := strings.TrimSpace(v.mustCLI(t, "token", "create", "-policy="+policies[app], "-field=token"))
			appTokens[app] = appToken
			secret := v.readTokenCLI(t, appToken, own)
			if !bank.verify(t, secret.Data["access_token"].(string)).Active {
				t.Errorf("%s read a token of %s that the bank does not accept", app, own)
			}
			for _, path := range []string{"aritma/token/payments", "aritma/token/payments-dev", "aritma/roles/" + own} {
				if path == "aritma/token/"+own {
					continue
				}
				if out, err := v.cli(appToken, "read", path); err == nil || !strings.Contains(out, "Code: 403") {
					t.Errorf("vault read %s as %s: want 403, got err=%v\n%s", path, app, err, out)
				}
			}
		}

		// A second plan finds nothing to change.
		tf.run(t, 0, "plan", "-detailed-exitcode")

		// A change made outside OpenTofu shows as drift; apply undoes it.
		v.mustCLI(t, "write", "aritma/roles/payments", "scopes=api")
		out = tf.run(t, 2, "plan", "-detailed-exitcode", "-out=aritma.tfplan")
		assertPlannedChanges(t, out, `module.aritma.aritma_role.this["payments"]`)
		tf.run(t, 0, "apply", "aritma.tfplan")
		if scopes := v.mustCLI(t, "read", "-field=scopes", "aritma/roles/payments"); strings.TrimSpace(scopes) != "[api bankservice]" {
			t.Errorf("after apply, payments has scopes %s, want [api bankservice]", scopes)
		}

		// Changing a role's scopes in terraform.tfvars plans exactly that
		// update, shown in the plan: roles hold no secret to hide.
		tf.editFile(t, "examples/terraform.tfvars",
			"client_id   = \"payments-dev-client\"\n    scopes      = [\"api\", \"bankservice\"]",
			"client_id   = \"payments-dev-client\"\n    scopes      = [\"bankservice\"]")
		out = tf.run(t, 2, "plan", "-detailed-exitcode", "-out=aritma.tfplan")
		assertPlannedChanges(t, out, `module.aritma.aritma_role.this["payments-dev"]`)
		if !strings.Contains(out, `- "api",`) {
			t.Errorf("the plan does not show the scope change:\n%s", out)
		}
		tf.assertNoSecretsInStateOrPlan(t, secrets, "aritma.tfplan")
		tf.run(t, 0, "apply", "aritma.tfplan")
		if scope := v.readTokenCLI(t, v.Token, "payments-dev").Data["scope"]; scope != "bankservice" {
			t.Errorf("after the scope change, payments-dev's token has scope %v, want bankservice", scope)
		}
		tf.run(t, 0, "plan", "-detailed-exitcode")

		// The example's Vault Agent config renders the payments app's token.
		agentLog := runExampleAgent(t, v, bank, appTokens["payments"])
		// (The logs are in the subtest's directories, removed when it ends.)
		assertNoSecrets(t, secrets, []string{bank.LogPath, agentLog})
	})
	if !ok {
		return
	}

	t.Run("rotate a secret, destroy", func(t *testing.T) {
		// The bank issues a new secret: it restarts knowing only that one.
		bank := startBank(t, rotatedSecret)
		// A new secret alone changes nothing: it is not in state to compare.
		tf.setClientSecrets(t, map[string]string{"payments-dev": rotatedSecret, "payments": prodSecret})
		tf.run(t, 0, "plan", "-detailed-exitcode")
		// Raising its version plans one update, which sends it.
		tf.setEnv("TF_VAR_client_secret_versions", `{"payments-dev": 2}`)
		out := tf.run(t, 2, "plan", "-detailed-exitcode", "-out=aritma.tfplan")
		assertPlannedChanges(t, out, `module.aritma.aritma_role.this["payments-dev"]`)
		tf.assertNoSecretsInStateOrPlan(t, secrets, "aritma.tfplan")
		tf.run(t, 0, "apply", "aritma.tfplan")
		tf.assertNoSecretsInStateOrPlan(t, secrets)
		secret := v.readTokenCLI(t, v.Token, "payments-dev")
		if in := bank.verify(t, secret.Data["access_token"].(string)); !in.Active || in.ClientID != "payments-dev-client" {
			t.Errorf("after rotation the bank saw %+v, want an active token of payments-dev-client", in)
		}
		tf.run(t, 0, "plan", "-detailed-exitcode")

		// Without failed reads: the next secret first, the switch, then the
		// new secret moved to client_secrets and the next one dropped.
		tf.setEnv("TF_VAR_next_client_secrets", fmt.Sprintf(`{"payments": %q}`, nextProdSecret))
		tf.setEnv("TF_VAR_next_client_secret_versions", `{"payments": 1}`)
		out = tf.run(t, 2, "plan", "-detailed-exitcode", "-out=aritma.tfplan")
		assertPlannedChanges(t, out, `module.aritma.aritma_role.this["payments"]`)
		tf.assertNoSecretsInStateOrPlan(t, secrets, "aritma.tfplan")
		tf.run(t, 0, "apply", "aritma.tfplan")
		if set := v.mustCLI(t, "read", "-field=next_client_secret_set", "aritma/roles/payments"); strings.TrimSpace(set) != "true" {
			t.Errorf("after the apply, next_client_secret_set = %s", set)
		}
		if err := bank.SetClientSecret("payments-client", nextProdSecret); err != nil {
			t.Fatal(err)
		}
		v.mustCLI(t, "write", "-f", "aritma/roles/payments/next-secret/promote")
		tf.run(t, 0, "plan", "-detailed-exitcode") // the switch is no change to plan
		if in := bank.verify(t, v.readTokenCLI(t, v.Token, "payments").Data["access_token"].(string)); !in.Active {
			t.Errorf("after the switch the bank does not take the role's token: %+v", in)
		}
		tf.setClientSecrets(t, map[string]string{"payments-dev": rotatedSecret, "payments": nextProdSecret})
		tf.setEnv("TF_VAR_client_secret_versions", `{"payments-dev": 2, "payments": 2}`)
		tf.setEnv("TF_VAR_next_client_secrets", `{}`)
		tf.setEnv("TF_VAR_next_client_secret_versions", `{"payments": 2}`)
		out = tf.run(t, 2, "plan", "-detailed-exitcode", "-out=aritma.tfplan")
		assertPlannedChanges(t, out, `module.aritma.aritma_role.this["payments"]`)
		tf.assertNoSecretsInStateOrPlan(t, secrets, "aritma.tfplan")
		tf.run(t, 0, "apply", "aritma.tfplan")
		tf.run(t, 0, "plan", "-detailed-exitcode")
		role := v.mustCLI(t, "read", "-format=json", "aritma/roles/payments")
		if !strings.Contains(role, `"next_client_secret_set": false`) || !strings.Contains(role, `"client_secret_switch_reason": "promoted"`) {
			t.Errorf("after the rotation the role reads:\n%s", role)
		}
		if in := bank.verify(t, v.readTokenCLI(t, v.Token, "payments").Data["access_token"].(string)); !in.Active {
			t.Errorf("after the rotation the bank does not take the role's token: %+v", in)
		}
		tf.assertNoSecretsInStateOrPlan(t, secrets)

		// Destroy, planned and applied, leaves nothing behind.
		tf.run(t, 0, "plan", "-destroy", "-out=aritma.tfplan")
		tf.run(t, 0, "apply", "aritma.tfplan")
		if out := v.mustCLI(t, "secrets", "list"); strings.Contains(out, "aritma/") {
			t.Errorf("the mount survived tofu destroy:\n%s", out)
		}
		if out := v.mustCLI(t, "policy", "list"); strings.Contains(out, "aritma-") {
			t.Errorf("policies survived tofu destroy:\n%s", out)
		}
		if out := v.mustCLI(t, "plugin", "list", "secret"); strings.Contains(out, pluginName) {
			t.Errorf("the plugin is still registered after tofu destroy:\n%s", out)
		}
		if out, err := v.cli(v.Token, "read", "aritma/roles/payments"); err == nil {
			t.Errorf("aritma/roles/payments is readable after tofu destroy:\n%s", out)
		}
		tf.assertNoSecretsInStateOrPlan(t, secrets)
		assertNoSecrets(t, secrets, []string{bank.LogPath})
	})

	// Vault's log and every tofu output.
	assertNoSecrets(t, secrets, v.logFiles(), tf.outputs...)
	t.Logf("OpenTofu scenario took %s", time.Since(start).Round(time.Second))
}

// The module as 0.1 shipped it (roles and environments as
// vault_generic_endpoint, secrets in state) is applied, then the current
// module: its moved {} blocks take every role and environment over in place
// (nothing is replaced, the cached token stays), and the new state holds no
// secret.
func TestTerraform_ModuleMigratesFromGenericEndpoint(t *testing.T) {
	if tofuBin == "" || tfProviderMirror == "" {
		t.Skip("ARITMA_TOFU_BIN or ARITMA_TF_PROVIDER_MIRROR is not set; run make test-terraform")
	}
	t.Parallel()
	devSecret, prodSecret := randomSecret("dev-secret"), randomSecret("prod-secret")
	secrets := map[string]string{"development client secret": devSecret, "production client secret": prodSecret}
	bank := startExampleBank(t, devSecret, prodSecret, 0)
	v := startVaultDev(t)
	tf := newExampleTofu(t, v, legacyTerraformSources, bank.TokenEndpoint)
	tf.setClientSecrets(t, map[string]string{"payments-dev": devSecret, "payments": prodSecret})
	tf.run(t, 0, "init")
	tf.run(t, 0, "apply", "-auto-approve")
	if state, _ := os.ReadFile(tf.path("examples/terraform.tfstate")); !strings.Contains(string(state), devSecret) {
		t.Fatal("the 0.1 module's state does not hold the client secret: the migration would prove nothing")
	}
	before := v.readTokenCLI(t, v.Token, "payments").Data["access_token"]

	// The operator takes the new module and example, and runs init (for the
	// aritma provider) and plan.
	tf.replaceSources(t, terraformSources)
	tf.run(t, 0, "init")
	out := tf.run(t, 2, "plan", "-detailed-exitcode", "-out=aritma.tfplan")
	for _, moved := range []string{
		`module.aritma.aritma_environment.this["development"]`, `module.aritma.aritma_environment.this["production"]`,
		`module.aritma.aritma_role.this["payments"]`, `module.aritma.aritma_role.this["payments-dev"]`,
	} {
		if !strings.Contains(out, "# "+moved+" will be updated in-place") && !strings.Contains(out, " has moved to "+moved+"\n") {
			t.Errorf("the plan does not move %s in place:\n%s", moved, out)
		}
	}
	if strings.Contains(out, "must be replaced") || strings.Contains(out, "will be destroyed") ||
		!strings.Contains(out, "0 to add") || !strings.Contains(out, "0 to destroy") {
		t.Errorf("the migration plan adds, replaces or destroys something:\n%s", out)
	}
	// This plan's prior state is the 0.1 state, secrets included (see the
	// README): the state it leaves behind is what must hold none.
	tf.run(t, 0, "apply", "aritma.tfplan")
	tf.assertNoSecretsInStateOrPlan(t, secrets)
	tf.run(t, 0, "plan", "-detailed-exitcode", "-out=aritma.tfplan")
	tf.assertNoSecretsInStateOrPlan(t, secrets, "aritma.tfplan")

	// The role was updated, not replaced: its cached token is still served.
	if after := v.readTokenCLI(t, v.Token, "payments").Data["access_token"]; after != before {
		t.Error("after the migration payments serves a new token: the role was replaced or its cache dropped")
	}
	assertNoSecrets(t, secrets, []string{bank.LogPath}, tf.outputs...)
}

// startExampleBank is the OAuth server with the example's two clients, on
// port (0: any free one).
func startExampleBank(t *testing.T, devSecret, prodSecret string, port int) *oauthServer {
	t.Helper()
	return startOAuthServerConfig(t, oauthConfig{
		TokenTTL: 3600,
		Clients: []oauthClient{
			{ID: "payments-dev-client", Secret: devSecret, AuthMethod: "client_secret_post", Scope: "api bankservice", Format: "jwt"},
			{ID: "payments-client", Secret: prodSecret, AuthMethod: "client_secret_post", Scope: "api bankservice", Format: "jwt"},
		},
		Extra: map[string]interface{}{"port": port},
	})
}

// newExampleTofu installs the plugin in v's plugin_directory, as an
// operator does, and runs the example in sources against v, with both
// environments at tokenURL.
func newExampleTofu(t *testing.T, v *vaultServer, sources, tokenURL string) *tofu {
	t.Helper()
	raw, err := os.ReadFile(pluginBuilds["v0.1.0"])
	if err != nil {
		t.Fatal(err)
	}
	writeExecutable(t, filepath.Join(v.PluginDir, pluginName), raw)
	sum := sha256.Sum256(raw)
	tf := newTofu(t, v, sources)
	tf.env = append(tf.env,
		"TF_VAR_plugin_sha256="+hex.EncodeToString(sum[:]),
		"TF_VAR_development_token_url="+tokenURL,
		"TF_VAR_production_token_url="+tokenURL,
	)
	return tf
}

// tofu runs OpenTofu in a copy of terraform/ (module and example) in a
// temporary directory, so state and .terraform never land in the checkout.
type tofu struct {
	dir     string // the copy of terraform/
	env     []string
	outputs []string // every output, for the secret scan
}

func newTofu(t *testing.T, v *vaultServer, sources string) *tofu {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "terraform")
	copyTree(t, sources, dir)
	// tofu init installs the providers from local builds' mirrors instead
	// of the registry, which tests cannot reach.
	cliConfig := filepath.Join(filepath.Dir(dir), "tofurc")
	if err := testservers.WriteTofuCLIConfig(cliConfig, map[string]string{
		"registry.opentofu.org/hashicorp/vault": tfProviderMirror,
		testservers.ProviderSource:              providerMirror,
	}); err != nil {
		t.Fatal(err)
	}
	return &tofu{dir: dir, env: []string{
		"TF_CLI_CONFIG_FILE=" + cliConfig,
		"TF_IN_AUTOMATION=1",
		"TF_INPUT=0",
		"CHECKPOINT_DISABLE=1",
		"TF_CLI_ARGS=-no-color",
		"VAULT_ADDR=http://" + v.Addr,
		"VAULT_TOKEN=" + v.Token,
	}}
}

// setClientSecrets passes the secrets as TF_VAR_client_secrets, as the
// README says to.
func (tf *tofu) setClientSecrets(t *testing.T, secrets map[string]string) {
	t.Helper()
	raw, _ := json.Marshal(secrets)
	tf.setEnv("TF_VAR_client_secrets", string(raw))
}

func (tf *tofu) setEnv(name, value string) {
	for i, kv := range tf.env {
		if strings.HasPrefix(kv, name+"=") {
			tf.env[i] = name + "=" + value
			return
		}
	}
	tf.env = append(tf.env, name+"="+value)
}

// environ is the test's environment without the caller's TF_ and VAULT_
// settings, plus the tofu ones.
func (tf *tofu) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TF_") && !strings.HasPrefix(kv, "VAULT_") {
			env = append(env, kv)
		}
	}
	return append(env, tf.env...)
}

// run runs tofu in examples/ and fails unless it exits with wantCode
// (plan -detailed-exitcode: 0 no changes, 2 changes).
func (tf *tofu) run(t *testing.T, wantCode int, args ...string) string {
	t.Helper()
	out, code := tf.exec(t, args...)
	tf.outputs = append(tf.outputs, out)
	if code != wantCode {
		t.Fatalf("tofu %s exited %d, want %d:\n%s", strings.Join(args, " "), code, wantCode, out)
	}
	return out
}

func (tf *tofu) exec(t *testing.T, args ...string) (string, int) {
	t.Helper()
	began := time.Now()
	cmd := exec.Command(tofuBin, args...)
	cmd.Dir = filepath.Join(tf.dir, "examples")
	cmd.Env = tf.environ()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	t.Logf("tofu %s (%s)", strings.Join(args, " "), time.Since(began).Round(100*time.Millisecond))
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &exit):
		return out.String(), exit.ExitCode()
	default:
		t.Fatalf("tofu %s: %v", strings.Join(args, " "), err)
		return "", -1
	}
}

// outputJSON decodes `tofu output -json <name>`.
func (tf *tofu) outputJSON(t *testing.T, name string, v interface{}) {
	t.Helper()
	out := tf.run(t, 0, "output", "-json", name)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("tofu output -json %s: %v\n%s", name, err, out)
	}
}

// assertPlannedChanges checks that a plan's output changes exactly the
// given resource, in place.
func assertPlannedChanges(t *testing.T, planOutput, wantUpdated string) {
	t.Helper()
	var changes []string
	for _, line := range strings.Split(planOutput, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "# ") && (strings.Contains(line, " will be ") || strings.Contains(line, " must be ")) {
			changes = append(changes, strings.TrimPrefix(line, "# "))
		}
	}
	want := wantUpdated + " will be updated in-place"
	if len(changes) != 1 || changes[0] != want || !strings.Contains(planOutput, "Plan: 0 to add, 1 to change, 0 to destroy.") {
		t.Errorf("planned changes = %q, want exactly [%q]:\n%s", changes, want, planOutput)
	}
}

// editFile replaces old (which must occur once) with new in a file of the copy.
func (tf *tofu) editFile(t *testing.T, name, old, new string) {
	t.Helper()
	path := filepath.Join(tf.dir, name)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(raw), old); n != 1 {
		t.Fatalf("%s holds %q %d times, want once", name, old, n)
	}
	writeFile(t, path, strings.Replace(string(raw), old, new, 1))
}

func (tf *tofu) path(name string) string { return filepath.Join(tf.dir, name) }

// replaceSources swaps the configuration for the one in sources, keeping
// the state and .terraform of examples/, as an operator upgrading the
// module does.
func (tf *tofu) replaceSources(t *testing.T, sources string) {
	t.Helper()
	for _, dir := range []string{"modules"} {
		if err := os.RemoveAll(tf.path(dir)); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(tf.path("examples"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tf") || strings.HasSuffix(e.Name(), ".tfvars") {
			if err := os.Remove(tf.path("examples/" + e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	copyTree(t, sources, tf.dir)
}

// assertNoSecretsInStateOrPlan searches the whole state (tofu state pull
// and the state file) and each saved plan (every file in its archive, and
// tofu show -json of it) for every secret. Checked after each apply, the
// state covers every later backup too.
func (tf *tofu) assertNoSecretsInStateOrPlan(t *testing.T, secrets map[string]string, plans ...string) {
	t.Helper()
	dir := t.TempDir()
	var files []string
	keep := func(name, content string) {
		path := filepath.Join(dir, fmt.Sprintf("%02d-%s", len(files), filepath.Base(name)))
		writeFile(t, path, content)
		files = append(files, path)
	}
	state, code := tf.exec(t, "state", "pull")
	if code != 0 {
		t.Fatalf("tofu state pull exited %d:\n%s", code, state)
	}
	if strings.TrimSpace(state) != "" { // empty before the first apply
		keep("state-pull", state)
	}
	if raw, err := os.ReadFile(tf.path("examples/terraform.tfstate")); err == nil {
		keep("terraform.tfstate", string(raw))
	}
	for _, plan := range plans {
		archive, err := zip.OpenReader(tf.path("examples/" + plan))
		if err != nil {
			t.Fatalf("saved plan %s: %v", plan, err)
		}
		for _, f := range archive.File {
			r, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			raw, err := io.ReadAll(r)
			r.Close()
			if err != nil {
				t.Fatal(err)
			}
			keep(plan+"-"+strings.ReplaceAll(f.Name, "/", "_"), string(raw))
		}
		archive.Close()
		shown, code := tf.exec(t, "show", "-json", plan)
		if code != 0 {
			t.Fatalf("tofu show -json %s exited %d:\n%s", plan, code, shown)
		}
		keep(plan+".json", shown)
	}
	assertNoSecrets(t, secrets, files)
}

// runExampleAgent runs Vault Agent with terraform/examples/agent/payments.hcl,
// its /run/payments paths moved to a temporary directory and its address
// pointing at the test's Vault, and checks the token it renders.
func runExampleAgent(t *testing.T, v *vaultServer, bank *oauthServer, appToken string) string {
	t.Helper()
	dir := t.TempDir()
	rendered := filepath.Join(dir, "access_token")
	config := filepath.Join(dir, "payments.hcl")
	writeFile(t, config, agentConfigFor(t, v, filepath.Join(dir, "vault-token"), "aritma/token/payments", rendered))
	writeFile(t, filepath.Join(dir, "vault-token"), appToken)
	agentLog := filepath.Join(dir, "agent.log")
	agent := startProcess(t, agentLog, nil, []string{"VAULT_TOKEN="}, vaultBin, "agent", "-config="+config)
	defer agent.Stop()

	if err := testservers.WaitFor(30*time.Second, "Vault Agent to render a token", func() bool {
		token, _ := os.ReadFile(rendered)
		return len(token) > 0
	}); err != nil {
		t.Fatalf("%v\n%s", err, tail(agentLog))
	}
	token, _ := os.ReadFile(rendered)
	if in := bank.verify(t, string(token)); !in.Active || in.ClientID != "payments-client" {
		t.Errorf("Vault Agent rendered a token the bank sees as %+v, want an active token of payments-client", in)
	}
	if info, err := os.Stat(rendered); err == nil && info.Mode().Perm() != 0o600 {
		t.Errorf("the rendered token file has mode %v, want 0600", info.Mode().Perm())
	}
	return agentLog
}

func writeExecutable(t *testing.T, path string, raw []byte) {
	t.Helper()
	if err := os.WriteFile(path, raw, 0o755); err != nil {
		t.Fatal(err)
	}
}

// copyTree copies the regular files under src to dst, leaving out what
// OpenTofu may have left in src if someone ran it there.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		name := d.Name()
		if d.IsDir() {
			if name == ".terraform" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if strings.HasPrefix(name, "terraform.tfstate") || strings.HasSuffix(name, ".tfplan") ||
			name == ".terraform.lock.hcl" || !d.Type().IsRegular() {
			return nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), raw, 0o644)
	})
	if err != nil {
		t.Fatalf("copying %s: %v", src, err)
	}
}
