# The Aritma secrets engine: the plugin registered by checksum and version,
# mounted, its environments and roles, and one policy per application.

locals {
  # Policy names may not contain slashes.
  policy_prefix = replace(var.path, "/", "-")
}

resource "vault_plugin" "aritma" {
  type    = "secret"
  name    = var.plugin_name
  command = coalesce(var.plugin_command, var.plugin_name)
  version = var.plugin_version
  sha256  = var.plugin_sha256
}

resource "vault_mount" "aritma" {
  path           = var.path
  type           = vault_plugin.aritma.name
  plugin_version = vault_plugin.aritma.version
  description    = "OAuth2 client credentials for bank APIs; read <path>/token/<role> for an access token"
}

# vault_generic_endpoint keeps data_json in state and compares it with what
# Vault reads back. Environments read back every field, in the form written
# here (durations in seconds), so plain reads detect drift.
# ignore_absent_fields leaves out what reads add (builtin).
resource "vault_generic_endpoint" "environment" {
  for_each = var.environments

  path                 = "${vault_mount.aritma.path}/environments/${each.key}"
  ignore_absent_fields = true
  data_json = jsonencode({
    token_url              = each.value.token_url
    auth_method            = each.value.auth_method
    ca_cert                = each.value.ca_cert
    request_timeout        = each.value.request_timeout
    assumed_token_lifetime = each.value.assumed_token_lifetime
  })
}

# Roles read back every field except client_secret (write-only: reads show
# client_secret_set). ignore_absent_fields makes the provider compare only
# the fields written, and keep client_secret as written (in state) instead
# of seeing it vanish on every read; client_secret_set is ignored. The other
# fields are still read, so changes made outside Terraform show as drift.
# A change of client_secret alone is therefore not detectable from Vault;
# changing the variable is what rotates it (see the README).
resource "vault_generic_endpoint" "role" {
  for_each = var.roles

  path                 = "${vault_mount.aritma.path}/roles/${each.key}"
  ignore_absent_fields = true
  data_json = jsonencode({
    environment   = each.value.environment
    client_id     = each.value.client_id
    client_secret = lookup(var.client_secrets, each.key, null) # the precondition requires it
    scopes        = each.value.scopes
    audience      = each.value.audience
    resource      = each.value.resource
    token_params  = each.value.token_params
    min_remaining = each.value.min_remaining
  })

  # A role's environment must exist before it, and a custom environment
  # cannot be deleted while a role uses it.
  depends_on = [vault_generic_endpoint.environment]

  lifecycle {
    precondition {
      condition     = contains(nonsensitive(keys(var.client_secrets)), each.key)
      error_message = "client_secrets has no secret for role \"${each.key}\"."
    }
  }
}

resource "vault_policy" "application" {
  for_each = var.applications

  name = "${local.policy_prefix}-${each.key}"
  policy = join("", [for role in each.value : <<-EOT
    path "${vault_mount.aritma.path}/token/${role}" {
      capabilities = ["read"]
    }
    EOT
  ])

  lifecycle {
    precondition {
      condition     = alltrue([for role in each.value : contains(keys(var.roles), role)])
      error_message = "application \"${each.key}\" names roles that are not in roles: ${join(", ", setsubtract(each.value, keys(var.roles)))}."
    }
  }
}
