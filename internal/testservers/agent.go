package testservers

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// AgentExample is the Vault Agent configuration the README documents, in
// the repository; AgentConfig makes every agent a test or benchmark starts
// from it, so that the documented configuration is the one that runs.
const AgentExample = "terraform/examples/agent/payments.hcl"

// AgentConfig is the documented agent configuration (AgentExample, under
// the repository at root) pointed at vaultAddr, logging in with the token
// in tokenFile and rendering secretPath's access token into destination.
func AgentConfig(root, vaultAddr, tokenFile, secretPath, destination string) (string, error) {
	raw, err := os.ReadFile(filepath.Join(root, AgentExample))
	if err != nil {
		return "", err
	}
	config := string(raw)
	for _, r := range [][2]string{
		{`"https://vault.example.com:8200"`, fmt.Sprintf("%q", "http://"+vaultAddr)},
		{`"/run/payments/vault-token"`, fmt.Sprintf("%q", tokenFile)},
		{`aritma/token/payments`, secretPath},
		{`"/run/payments/access_token"`, fmt.Sprintf("%q", destination)},
	} {
		if !strings.Contains(config, r[0]) {
			return "", fmt.Errorf("%s no longer holds %s", AgentExample, r[0])
		}
		config = strings.ReplaceAll(config, r[0], r[1])
	}
	return config, nil
}
