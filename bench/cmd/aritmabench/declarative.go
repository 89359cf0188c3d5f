package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/aritma/vault-plugin-secrets-aritma/internal/testservers"
)

// declarativeResults is the declarative stage: tofu plan and apply of the
// module with Roles roles, on the aritma provider and on 0.1's
// vault_generic_endpoint, in alternating rounds; and the same with
// FewRoles, so that the cost of each added role can be told from the cost
// of a command.
type declarativeResults struct {
	Roles    int       `json:"roles"`
	FewRoles int       `json:"few_roles"`
	Rounds   int       `json:"rounds"`
	Runs     []tofuRun `json:"runs"`
}

// tofuRun is one timed tofu command.
type tofuRun struct {
	Config  string  `json:"config"` // "provider" or "generic"
	Roles   int     `json:"roles"`
	Op      string  `json:"op"` // see tofuOps
	Round   int     `json:"round"`
	Seconds float64 `json:"seconds"`
	// RoleRequests is how many requests Vault's audit log saw on the
	// config's roles/ paths during the command.
	RoleRequests int `json:"role_requests"`
}

// tofuOps are the timed commands of a round, in order: create every role,
// plan with nothing to change, and change one field of every role.
var tofuOps = []struct{ name, what string }{
	{"create", "`tofu apply`, creating the roles"},
	{"plan", "`tofu plan`, nothing to change"},
	{"update", "`tofu apply`, one field of every role changed"},
}

var declarativeConfigs = []struct{ name, what, module string }{
	{"provider", "the aritma provider (`terraform/modules/aritma`)", "terraform/modules/aritma"},
	{"generic", "0.1's `vault_generic_endpoint` (`e2e/testdata/terraform-v0.1`)", "e2e/testdata/terraform-v0.1/modules/aritma"},
}

// rootModule is each configuration's root: the module with n roles of one
// environment, a secret for each, and one application reading them all.
var rootModule = template.Must(template.New("root").Parse(`terraform {
  required_providers {
    vault = { source = "hashicorp/vault" }
{{- if .Provider }}
    aritma = { source = "aritma/aritma" }
{{- end }}
  }
}

provider "vault" {}
{{- if .Provider }}
provider "aritma" {}
{{- end }}

variable "client_secret" {
  type      = string
  sensitive = true
{{- if .Provider }}
  ephemeral = true
{{- end }}
}

variable "min_remaining" {
  type    = number
  default = 60
}

variable "roles" {
  type = number
}

locals {
  roles = { for i in range(var.roles) : format("r%04d", i) => {
    environment   = "bank"
    client_id     = "bench"
    scopes        = ["api"]
    min_remaining = var.min_remaining
  } }
}

module "aritma" {
  source         = "./module"
  path           = "tf-{{ .Name }}"
  plugin_name    = "aritma-tf-{{ .Name }}"
  plugin_command = "{{ .Command }}"
  plugin_version = "v0.0.0-bench"
  plugin_sha256  = "{{ .SHA256 }}"
  environments   = { bank = { token_url = "{{ .TokenURL }}" } }
  roles          = local.roles
  client_secrets = { for name in keys(local.roles) : name => var.client_secret }
  applications   = { app = keys(local.roles) }
}
`))

func stageDeclarative(c config, e *env) *declarativeResults {
	r := &declarativeResults{Roles: 100, FewRoles: 20, Rounds: 4}
	if c.quick {
		r.Roles, r.FewRoles, r.Rounds = 20, 5, 1
	}
	dir := filepath.Join(c.outDir, "run", "tofu")
	check(os.MkdirAll(dir, 0o755), "declarative")
	logf("declarative: building the provider into a mirror")
	mirror := filepath.Join(dir, "providers")
	check(testservers.BuildProviderMirror(c.repo, "0.1.0", mirror), "building the provider")
	cliConfig := filepath.Join(dir, "tofurc")
	check(testservers.WriteTofuCLIConfig(cliConfig, map[string]string{
		"registry.opentofu.org/hashicorp/vault": c.tfMirror,
		testservers.ProviderSource:              mirror,
	}), "declarative")

	// The module registers the plugin itself, from Vault's plugin directory.
	raw, err := os.ReadFile(filepath.Join(c.binDir, "aritma"))
	check(err, "declarative")
	command := "aritma-tf"
	check(os.WriteFile(filepath.Join(e.v.PluginDir, command), raw, 0o755), "declarative")
	sum := sha256.Sum256(raw)
	// The audit log counts the requests each command makes on roles/.
	check(e.v.EnableFileAudit(), "declarative")
	defer func() { check(e.v.Client.Sys().DisableAudit("file"), "disabling the audit device") }()

	env := append(os.Environ(), "TF_CLI_CONFIG_FILE="+cliConfig, "TF_IN_AUTOMATION=1", "TF_INPUT=0",
		"CHECKPOINT_DISABLE=1", "TF_CLI_ARGS=-no-color", "VAULT_ADDR=http://"+e.v.Addr, "VAULT_TOKEN="+e.v.Token,
		"TF_VAR_client_secret="+e.long.Clients[0].Secret)
	tofu := func(cfg, op string, roles, round int, args ...string) tofuRun {
		args = append(args, fmt.Sprintf("-var=roles=%d", roles))
		cmd := exec.Command(c.tofuBin, args...)
		cmd.Dir, cmd.Env = filepath.Join(dir, cfg), env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		offset := fileSize(e.v.AuditPath)
		began := time.Now()
		if err := cmd.Run(); err != nil {
			fatalf("declarative: tofu %s in %s: %v\n%s", strings.Join(args, " "), cfg, err, out.String())
		}
		return tofuRun{Config: cfg, Roles: roles, Op: op, Round: round, Seconds: time.Since(began).Seconds(),
			RoleRequests: auditRequests(e.v.AuditPath, offset, "tf-"+cfg+"/roles/")}
	}
	for _, d := range declarativeConfigs {
		root := filepath.Join(dir, d.name)
		copyDir(filepath.Join(c.repo, d.module), filepath.Join(root, "module"))
		var main bytes.Buffer
		check(rootModule.Execute(&main, map[string]interface{}{
			"Provider": d.name == "provider", "Name": d.name, "Command": command,
			"SHA256": hex.EncodeToString(sum[:]), "TokenURL": e.long.TokenEndpoint,
		}), "declarative")
		check(os.WriteFile(filepath.Join(root, "main.tf"), main.Bytes(), 0o644), "declarative")
		cmd := exec.Command(c.tofuBin, "init")
		cmd.Dir, cmd.Env = root, env
		if out, err := cmd.CombinedOutput(); err != nil {
			fatalf("declarative: tofu init in %s: %v\n%s", d.name, err, out)
		}
	}

	logf("declarative: %d rounds of create, plan and update of %d and of %d roles per configuration", r.Rounds, r.FewRoles, r.Roles)
	for round := range r.Rounds {
		for _, roles := range []int{r.FewRoles, r.Roles} {
			for i := range declarativeConfigs {
				cfg := declarativeConfigs[(i+round)%len(declarativeConfigs)].name // a different one first each round
				r.Runs = append(r.Runs,
					tofu(cfg, "create", roles, round, "apply", "-auto-approve", "-var=min_remaining=60"),
					tofu(cfg, "plan", roles, round, "plan", "-detailed-exitcode", "-var=min_remaining=60"),
					tofu(cfg, "update", roles, round, "apply", "-auto-approve", "-var=min_remaining=90"))
				tofu(cfg, "destroy", roles, round, "destroy", "-auto-approve")
			}
		}
		logf("  round %d, %d roles: plan ×%.2f, update ×%.2f (provider ÷ generic)", round, r.Roles,
			opRatios(r.Runs, r.Roles, "plan")[round], opRatios(r.Runs, r.Roles, "update")[round])
	}
	return r
}

// opRatios are the provider's seconds over the generic endpoint's for op
// with roles roles, round by round.
func opRatios(runs []tofuRun, roles int, op string) []float64 {
	return roundRatiosOf(runs, op, func(r tofuRun) (float64, bool) { return r.Seconds, r.Roles == roles })
}

// marginalRatios are the provider's seconds per role added, from few roles
// to many, over the generic endpoint's, round by round.
func marginalRatios(d *declarativeResults, op string) []float64 {
	return roundRatiosOf(d.Runs, op, func(r tofuRun) (float64, bool) {
		return marginal(d, r.Config, op, r.Round), r.Roles == d.Roles
	})
}

// marginal is config's seconds per role added from FewRoles to Roles in
// one round.
func marginal(d *declarativeResults, config, op string, round int) float64 {
	var few, many float64
	for _, r := range d.Runs {
		if r.Config == config && r.Op == op && r.Round == round {
			switch r.Roles {
			case d.FewRoles:
				few = r.Seconds
			case d.Roles:
				many = r.Seconds
			}
		}
	}
	return (many - few) / float64(d.Roles-d.FewRoles)
}

// roundRatiosOf are the provider's figures over the generic endpoint's for
// op, round by round, over the runs that figure keeps.
func roundRatiosOf(runs []tofuRun, op string, figure func(tofuRun) (float64, bool)) []float64 {
	secs := map[string]map[int]float64{}
	rounds := 0
	for _, r := range runs {
		if x, keep := figure(r); keep && r.Op == op {
			if secs[r.Config] == nil {
				secs[r.Config] = map[int]float64{}
			}
			secs[r.Config][r.Round] = x
			rounds = max(rounds, r.Round+1)
		}
	}
	var xs []float64
	for round := range rounds {
		if g := secs["generic"][round]; g > 0 {
			xs = append(xs, secs["provider"][round]/g)
		}
	}
	return xs
}

// opSeconds are config's seconds for op with roles roles, one per round.
func opSeconds(runs []tofuRun, roles int, config, op string) []float64 {
	var xs []float64
	for _, r := range runs {
		if r.Config == config && r.Op == op && r.Roles == roles {
			xs = append(xs, r.Seconds)
		}
	}
	return xs
}

// opRequests is the most requests on roles/ that config's op made with
// roles roles in a round.
func opRequests(runs []tofuRun, roles int, config, op string) int {
	n := 0
	for _, r := range runs {
		if r.Config == config && r.Op == op && r.Roles == roles {
			n = max(n, r.RoleRequests)
		}
	}
	return n
}

func fileSize(path string) int64 {
	info, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return info.Size()
}

// auditRequests counts the request entries of the audit log after offset
// whose path starts with prefix.
func auditRequests(path string, offset int64, prefix string) int {
	f, err := os.Open(path)
	check(err, "reading the audit log")
	defer f.Close()
	_, err = f.Seek(offset, io.SeekStart)
	check(err, "reading the audit log")
	n := 0
	lines := bufio.NewScanner(f)
	lines.Buffer(make([]byte, 1<<20), 1<<24)
	for lines.Scan() {
		var entry struct {
			Type    string `json:"type"`
			Request struct {
				Path string `json:"path"`
			} `json:"request"`
		}
		if json.Unmarshal(lines.Bytes(), &entry) == nil && entry.Type == "request" && strings.HasPrefix(entry.Request.Path, prefix) {
			n++
		}
	}
	check(lines.Err(), "reading the audit log")
	return n
}

// copyDir copies the .tf files of src into dst.
func copyDir(src, dst string) {
	check(os.MkdirAll(dst, 0o755), "declarative")
	files, err := filepath.Glob(filepath.Join(src, "*.tf"))
	check(err, "declarative")
	for _, f := range files {
		raw, err := os.ReadFile(f)
		check(err, "declarative")
		check(os.WriteFile(filepath.Join(dst, filepath.Base(f)), raw, 0o644), "declarative")
	}
}

func declarativeBlock(d *declarativeResults) string {
	if d == nil {
		return notMeasured
	}
	var b strings.Builder
	fmt.Fprintf(&b, "One environment, one policy, and %d or %d roles; %d rounds, the configurations in alternating order.\n\n", d.FewRoles, d.Roles, d.Rounds)
	fmt.Fprintf(&b, "| command | roles | provider s | vault_generic_endpoint s | provider ÷ generic (95%% CI) | requests on roles/, provider | generic |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, op := range tofuOps {
		for _, roles := range []int{d.FewRoles, d.Roles} {
			fmt.Fprintf(&b, "| %s | %d | %.2f | %.2f | %s | %d | %d |\n", op.what, roles,
				summarize(opSeconds(d.Runs, roles, "provider", op.name)).Center, summarize(opSeconds(d.Runs, roles, "generic", op.name)).Center,
				fmtCI(opRatios(d.Runs, roles, op.name), fmtRatio), opRequests(d.Runs, roles, "provider", op.name), opRequests(d.Runs, roles, "generic", op.name))
		}
	}
	fmt.Fprintf(&b, "\nEach role added, from %d to %d roles (the command's own cost taken out):\n\n", d.FewRoles, d.Roles)
	b.WriteString("| command | provider ms per role | vault_generic_endpoint ms per role | provider ÷ generic (95% CI) |\n|---|---:|---:|---:|\n")
	for _, op := range tofuOps {
		var prov, gen []float64
		for round := range d.Rounds {
			prov = append(prov, 1000*marginal(d, "provider", op.name, round))
			gen = append(gen, 1000*marginal(d, "generic", op.name, round))
		}
		fmt.Fprintf(&b, "| %s | %.1f | %.1f | %s |\n", op.what, summarize(prov).Center, summarize(gen).Center, fmtCI(marginalRatios(d, op.name), fmtRatio))
	}
	return b.String()
}
