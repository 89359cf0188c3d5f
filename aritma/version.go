package aritma

// Version is the plugin's semantic version, reported to Vault as the running
// version so that `vault secrets list -detailed` shows it. Release builds set it
// with -ldflags "-X github.com/aritma/vault-plugin-secrets-aritma/aritma.Version=vX.Y.Z".
var Version = "v0.1.0-dev"
