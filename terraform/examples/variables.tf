variable "plugin_version" {
  description = "Version of the plugin binary in Vault's plugin_directory (make build stamps v0.1.0)."
  type        = string
  default     = "v0.1.0"
}

variable "plugin_sha256" {
  description = "SHA-256 of the plugin binary: sha256sum bin/plugins/vault-plugin-secrets-aritma."
  type        = string
}

variable "plugin_command" {
  description = "File name of the plugin binary in Vault's plugin_directory."
  type        = string
  default     = "vault-plugin-secrets-aritma"
}

variable "development_token_url" {
  description = "Token endpoint of the development environment."
  type        = string
  default     = "https://id.dev.aritma.io/connect/token"
}

variable "production_token_url" {
  description = "Token endpoint of the production environment."
  type        = string
  default     = "https://id.aritma.io/connect/token"
}

variable "roles" {
  description = "Roles without their secrets; see the module's roles variable."
  type        = any
}

variable "applications" {
  description = "Applications and the roles each may read."
  type        = map(list(string))
}

variable "client_secrets" {
  description = "Client secret of each role, by role name. Pass it as TF_VAR_client_secrets, never in a committed file; it is kept in no plan or state."
  type        = map(string)
  ephemeral   = true
  sensitive   = true
}

variable "client_secret_versions" {
  description = "Version of each role's client secret (default 1): raise it with a new secret to rotate."
  type        = map(number)
  default     = {}
}

variable "next_client_secrets" {
  description = "The secret the bank will take next, for roles in a rotation, by role name. Pass it as TF_VAR_next_client_secrets; it is kept in no plan or state."
  type        = map(string)
  ephemeral   = true
  sensitive   = true
  default     = {}
}

variable "next_client_secret_versions" {
  description = "Version of each role's next client secret: set or change it to send one, or to drop it."
  type        = map(number)
  default     = {}
}
