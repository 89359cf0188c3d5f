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
  description = <<-EOF
    Environments (authorization servers) to create, or to override field by
    field for the built-in "production" and "development" (destroying one
    of those restores its defaults). Each sets token_url or issuer (whose
    metadata names the endpoints). Every field is written, so a field left
    out is reset to its default rather than kept. Durations are whole
    seconds, as the engine reads them back.
  EOF
  type = map(object({
    token_url              = optional(string)
    issuer                 = optional(string)
    auth_method            = optional(string, "client_secret_post")
    ca_cert                = optional(string)
    request_timeout        = optional(number, 0)   # seconds; 0: the mount config's (10s)
    assumed_token_lifetime = optional(number, 300) # seconds
  }))
  default = {}

  validation {
    condition     = alltrue([for e in values(var.environments) : (e.token_url == null) != (e.issuer == null)])
    error_message = "Each environment sets exactly one of token_url and issuer."
  }
  validation {
    # The engine keeps URLs as given; a space would read back as drift.
    condition     = alltrue([for e in values(var.environments) : alltrue([for u in compact([e.token_url, e.issuer]) : u == trimspace(u)])])
    error_message = "token_url and issuer must not start or end with spaces."
  }
}

variable "roles" {
  description = <<-EOF
    Roles, by name: one client of one environment each. The client secret is
    not here but in client_secrets, so that this map stays visible in plans.
    Every field is written, so a field left out is reset to its default
    rather than kept. min_remaining and key_activation_delay are in whole
    seconds.
  EOF
  type = map(object({
    environment          = string
    client_id            = string
    scopes               = optional(list(string))
    audience             = optional(string)
    resource             = optional(list(string))
    token_params         = optional(map(string))
    min_remaining        = optional(number, 60)
    auth_method          = optional(string) # the environment's unless set
    token_per_lease      = optional(bool, false)
    key_activation_delay = optional(number, 86400)
  }))
  default = {}

  validation {
    # The engine splits scopes on spaces and commas and drops repeats; given
    # in that form already, they read back as written and plans stay clean.
    condition = alltrue([for scopes in [for r in values(var.roles) : r.scopes == null ? [] : r.scopes] :
      alltrue([for s in scopes : can(regex("^[^\\s,]+$", s))]) && length(distinct(scopes)) == length(scopes)
    ])
    error_message = "scopes must be a list of single scopes, each once, such as [\"api\", \"bankservice\"]."
  }
}

variable "client_secrets" {
  description = <<-EOF
    Client secret of each role that authenticates with one, by role name.
    Ephemeral: OpenTofu and Terraform 1.11+ send it to Vault as a write-only
    argument and keep it in no plan, state or output. A secret is written
    when its role is created and again when the role's entry in
    client_secret_versions changes.
  EOF
  type        = map(string)
  ephemeral   = true
  sensitive   = true
  default     = {}
}

variable "client_secret_versions" {
  description = "Version of each role's client secret, by role name (default 1). Not secret: raise a role's version together with a new secret in client_secrets to send it to Vault."
  type        = map(number)
  default     = {}
}

variable "next_client_secrets" {
  description = <<-EOF
    The client secret the bank will take next, for roles in the middle of a
    rotation, by role name. Ephemeral, like client_secrets. Reads keep using
    the client secret; when the bank refuses it (invalid_client) and takes
    this one, the engine switches to it, and no read fails. A secret is
    written when the role's entry in next_client_secret_versions changes; a
    role left out of this map when its version changes has its next secret
    dropped.
  EOF
  type        = map(string)
  ephemeral   = true
  sensitive   = true
  default     = {}
}

variable "next_client_secret_versions" {
  description = "Version of each role's next client secret, by role name (default: none). Not secret: set or change a role's version together with next_client_secrets to send the next secret to Vault, or with the role left out of next_client_secrets to drop it."
  type        = map(number)
  default     = {}
}

variable "applications" {
  description = "Applications, by name, and the roles whose tokens each may read. Each gets a policy named <path>-<application> (slashes in path become dashes)."
  type        = map(list(string))
  default     = {}
}
