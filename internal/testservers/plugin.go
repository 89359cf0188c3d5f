package testservers

import (
	"os"
	"os/exec"
)

// PluginName is the engine's name in Vault's plugin catalog.
const PluginName = "vault-plugin-secrets-aritma"

// BuildPlugin builds the engine from the repository at root into out,
// stamped with version, with the given build tags (profiling, say).
func BuildPlugin(root, version, out string, tags ...string) error {
	args := []string{"build", "-trimpath", "-o", out,
		"-ldflags", "-X github.com/aritma/vault-plugin-secrets-aritma/aritma.Version=" + version}
	for _, tag := range tags {
		args = append(args, "-tags", tag)
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}
