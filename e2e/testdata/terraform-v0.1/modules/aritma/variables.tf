variable "path" {
  description = "Path to mount the engine at: tokens are read at <path>/token/<role>."
  type        = string
  default     = "aritma"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$", var.path))
    error_message = "path must be a mount path without leading or trailing slashes, such as \"aritma\"."
  }
}

variable "plugin_name" {
  description = "Name to register the plugin under in Vault's plugin catalog."
  type        = string
  default     = "vault-plugin-secrets-aritma"
}

variable "plugin_version" {
  description = "Version of the plugin binary, as it reports it (make build stamps VERSION, e.g. v0.1.0). The mount is pinned to it."
  type        = string

  validation {
    condition     = can(regex("^v[0-9]+\\.[0-9]+\\.[0-9]+([-+][0-9A-Za-z.+-]+)?$", var.plugin_version))
    error_message = "plugin_version must be a semantic version with a leading v, such as v0.1.0."
  }
}

variable "plugin_sha256" {
  description = "SHA-256 of the plugin binary in Vault's plugin_directory, in hex (sha256sum's first column). Vault refuses to run a binary that does not match."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.plugin_sha256))
    error_message = "plugin_sha256 must be 64 lowercase hex digits, as sha256sum prints them."
  }
}

variable "plugin_command" {
  description = "File name of the plugin binary in Vault's plugin_directory. Default: plugin_name."
  type        = string
  default     = null
}

variable "environments" {
  description = <<-EOT
    Environments (authorization servers) to create, or to override field by
    field for the built-in "production" and "development". Every field is
    written, so a field left out is reset to its default rather than kept.
    Durations are whole seconds, as the engine reads them back.
  EOT
  type = map(object({
    token_url              = string
    auth_method            = optional(string, "client_secret_post")
    ca_cert                = optional(string, "")
    request_timeout        = optional(number, 0)   # seconds; 0: the mount config's (10s)
    assumed_token_lifetime = optional(number, 300) # seconds
  }))
  default = {}

  validation {
    condition     = alltrue([for e in values(var.environments) : contains(["client_secret_post", "client_secret_basic"], e.auth_method)])
    error_message = "auth_method must be client_secret_post or client_secret_basic."
  }
  validation {
    condition     = alltrue([for e in values(var.environments) : e.token_url == trimspace(e.token_url)])
    error_message = "token_url must not start or end with spaces."
  }
}

variable "roles" {
  description = <<-EOT
    Roles, by name: one client of one environment each. The client secret is
    not here but in client_secrets, so that this map stays visible in plans.
    Every field is written, so a field left out is reset to its default
    rather than kept. min_remaining is in whole seconds.
  EOT
  type = map(object({
    environment   = string
    client_id     = string
    scopes        = optional(list(string), [])
    audience      = optional(string, "")
    resource      = optional(list(string), [])
    token_params  = optional(map(string), {})
    min_remaining = optional(number, 60)
  }))
  default = {}

  validation {
    # The engine splits scopes on spaces and commas and drops repeats; given
    # in that form already, they read back as written and plans stay clean.
    condition = alltrue([for r in values(var.roles) : alltrue([
      for s in r.scopes : can(regex("^[^\\s,]+$", s))
    ]) && length(distinct(r.scopes)) == length(r.scopes)])
    error_message = "scopes must be a list of single scopes, each once, such as [\"api\", \"bankservice\"]."
  }
}

variable "client_secrets" {
  description = "Client secret of each role, by role name. Never shown in plans or outputs; see the README for what is kept in state."
  type        = map(string)
  sensitive   = true
  default     = {}
}

variable "applications" {
  description = "Applications, by name, and the roles whose tokens each may read. Each gets a policy named <path>-<application> (slashes in path become dashes)."
  type        = map(list(string))
  default     = {}
}
