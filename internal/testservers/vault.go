package testservers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/hashicorp/vault/api"
)

// Vault is a Vault server on 127.0.0.1 with a plugin directory.
type Vault struct {
	Bin       string
	Addr      string
	Token     string
	PluginDir string
	LogPath   string
	// AuditPath is where EnableFileAudit puts the file audit device's log.
	AuditPath string
	Client    *api.Client
	proc      *Process
	args      []string
}

// StartVaultDev starts `vault server -dev` (in-memory storage) with its
// files in dir and root token token.
func StartVaultDev(bin, dir, token string) (*Vault, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	v := &Vault{
		Bin: bin, Addr: addr, Token: token,
		PluginDir: filepath.Join(dir, "plugins"),
		LogPath:   filepath.Join(dir, "vault.log"),
		AuditPath: filepath.Join(dir, "audit.log"),
	}
	if err := os.MkdirAll(v.PluginDir, 0o755); err != nil {
		return nil, err
	}
	configPath := filepath.Join(dir, "vault.hcl")
	if err := os.WriteFile(configPath, fmt.Appendf(nil, "plugin_directory = %q\n", v.PluginDir), 0o600); err != nil {
		return nil, err
	}
	v.args = []string{"server", "-dev", "-dev-root-token-id=" + token,
		"-dev-listen-address=" + addr, "-config=" + configPath, "-log-level=debug"}
	return v, v.Start()
}

// StartVaultFile starts a Vault server with file storage in dir (what a
// small production server keeps its leases in), initialises it on its first
// start (the root token and unseal key go to dir/init.json), and unseals it.
// Started again on the same dir, it keeps what it stored.
func StartVaultFile(bin, dir string) (*Vault, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	v := &Vault{
		Bin: bin, Addr: addr,
		PluginDir: filepath.Join(dir, "plugins"),
		LogPath:   filepath.Join(dir, fmt.Sprintf("vault-%d.log", time.Now().UnixNano())),
		AuditPath: filepath.Join(dir, "audit.log"),
	}
	if err := os.MkdirAll(v.PluginDir, 0o755); err != nil {
		return nil, err
	}
	configPath := filepath.Join(dir, "vault.hcl")
	config := fmt.Sprintf(`
storage "file" {
  path = %q
}
listener "tcp" {
  address     = %q
  tls_disable = true
}
api_addr         = "http://%s"
plugin_directory = %q
disable_mlock    = true
log_level        = "debug"
`, filepath.Join(dir, "data"), addr, addr, v.PluginDir)
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		return nil, err
	}
	v.args = []string{"server", "-config=" + configPath}
	if err := v.Start(); err != nil {
		return nil, err
	}

	keysPath := filepath.Join(dir, "init.json")
	var init api.InitResponse
	if raw, err := os.ReadFile(keysPath); err == nil {
		if err := json.Unmarshal(raw, &init); err != nil {
			return v, err
		}
	} else {
		resp, err := v.Client.Sys().Init(&api.InitRequest{SecretShares: 1, SecretThreshold: 1})
		if err != nil {
			return v, fmt.Errorf("vault operator init: %w", err)
		}
		init = *resp
		raw, _ := json.Marshal(init)
		if err := os.WriteFile(keysPath, raw, 0o600); err != nil {
			return v, err
		}
	}
	if _, err := v.Client.Sys().Unseal(init.Keys[0]); err != nil {
		return v, fmt.Errorf("unseal: %w", err)
	}
	v.Token = init.RootToken
	v.Client.SetToken(v.Token)
	return v, v.WaitActive()
}

// Start starts the server process and waits until its API answers, and,
// when it has a token, until it is active.
func (v *Vault) Start() error {
	proc, err := Start(v.LogPath, nil, nil, v.Bin, v.args...)
	if err != nil {
		return err
	}
	v.proc = proc
	cfg := api.DefaultConfig()
	cfg.Address = "http://" + v.Addr
	client, err := api.NewClient(cfg)
	if err != nil {
		return err
	}
	client.SetToken(v.Token)
	v.Client = client
	if err := WaitFor(60*time.Second, "Vault's API", func() bool {
		_, err := client.Sys().SealStatus()
		return err == nil
	}); err != nil {
		return fmt.Errorf("%w\n%s", err, Tail(v.LogPath, 30))
	}
	if v.Token == "" {
		return nil
	}
	return v.WaitActive()
}

// WaitActive waits until the server answers authenticated requests.
func (v *Vault) WaitActive() error {
	var last error
	if err := WaitFor(60*time.Second, "Vault to be active", func() bool {
		_, last = v.Client.Auth().Token().LookupSelf()
		return last == nil
	}); err != nil {
		return fmt.Errorf("%w: %v\n%s", err, last, Tail(v.LogPath, 30))
	}
	return nil
}

// Stop stops the server and the plugins it started.
func (v *Vault) Stop() {
	if v.proc != nil {
		v.proc.Stop()
	}
}

// Kill crashes the server (SIGKILL to its process group).
func (v *Vault) Kill() {
	if v.proc != nil {
		v.proc.Kill()
	}
}

// Pid is the server process's ID.
func (v *Vault) Pid() int { return v.proc.Pid() }

// EnableFileAudit turns on a file audit device writing to v.AuditPath.
func (v *Vault) EnableFileAudit() error {
	err := v.Client.Sys().EnableAuditWithOptions("file", &api.EnableAuditOptions{
		Type:    "file",
		Options: map[string]string{"file_path": v.AuditPath},
	})
	if err != nil {
		return fmt.Errorf("enabling the file audit device: %w", err)
	}
	return nil
}

// LogFiles are the files a secret scan reads: the server's log (plugins log
// into it) and its audit log.
func (v *Vault) LogFiles() []string { return []string{v.LogPath, v.AuditPath} }

// CLI runs the vault CLI against the server with token, and returns what
// it printed.
func (v *Vault) CLI(token string, args ...string) (string, error) {
	cmd := exec.Command(v.Bin, args...)
	cmd.Env = append(os.Environ(), "VAULT_ADDR=http://"+v.Addr, "VAULT_TOKEN="+token, "VAULT_FORMAT=")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}

// Plugin is a plugin binary to register.
type Plugin struct {
	Name    string // the catalog name, e.g. vault-plugin-secrets-aritma
	Version string // empty: unversioned
	Binary  string
	Env     []string // for the plugin's process
}

// RegisterPlugin copies the binary into the plugin directory (as Name, or
// Name-Version) and registers it as a secrets plugin by SHA-256.
func (v *Vault) RegisterPlugin(p Plugin) error {
	raw, err := os.ReadFile(p.Binary)
	if err != nil {
		return err
	}
	command := p.Name
	if p.Version != "" {
		command += "-" + p.Version
	}
	if err := os.WriteFile(filepath.Join(v.PluginDir, command), raw, 0o755); err != nil {
		return err
	}
	sum := sha256.Sum256(raw)
	err = v.Client.Sys().RegisterPluginWithContext(context.Background(), &api.RegisterPluginInput{
		Name:    p.Name,
		Type:    api.PluginTypeSecrets,
		Command: command,
		SHA256:  hex.EncodeToString(sum[:]),
		Version: p.Version,
		Env:     p.Env,
	})
	if err != nil {
		return fmt.Errorf("registering plugin %s %s: %w", p.Name, p.Version, err)
	}
	return nil
}
