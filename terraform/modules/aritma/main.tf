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

# Environments and roles are the engine's own resources (the aritma
# provider): every field the engine reads back is compared, so a change made
# outside OpenTofu shows as drift, and client secrets are write-only
# arguments, sent to Vault and never kept in plan or state.
resource "aritma_environment" "this" {
  for_each = var.environments

  mount                  = vault_mount.aritma.path
  name                   = each.key
  token_url              = each.value.token_url
  issuer                 = each.value.issuer
  auth_method            = each.value.auth_method
  ca_cert                = each.value.ca_cert
  request_timeout        = each.value.request_timeout
  assumed_token_lifetime = each.value.assumed_token_lifetime
}

resource "aritma_role" "this" {
  for_each = var.roles

  mount                = vault_mount.aritma.path
  name                 = each.key
  environment          = each.value.environment
  client_id            = each.value.client_id
  scopes               = each.value.scopes
  audience             = each.value.audience
  resource             = each.value.resource
  token_params         = each.value.token_params
  min_remaining        = each.value.min_remaining
  auth_method          = each.value.auth_method
  token_per_lease      = each.value.token_per_lease
  key_activation_delay = each.value.key_activation_delay

  # Sent on create and whenever the role's version in
  # client_secret_versions changes: that is how a secret is rotated.
  client_secret_wo         = lookup(var.client_secrets, each.key, null)
  client_secret_wo_version = lookup(var.client_secret_versions, each.key, 1)

  # The secret the bank takes next (a rotation without failed reads): sent
  # whenever the role's version in next_client_secret_versions changes, and
  # dropped if the role is then not in next_client_secrets. No version by
  # default, so that the first one given is a change.
  next_client_secret_wo         = lookup(var.next_client_secrets, each.key, null)
  next_client_secret_wo_version = lookup(var.next_client_secret_versions, each.key, null)

  # A role's environment must exist before it, and a custom environment
  # cannot be deleted while a role uses it.
  depends_on = [aritma_environment.this]
}

# Before version 0.2 of this module, environments and roles were
# vault_generic_endpoint resources, which kept client secrets in state.
# These blocks move them to the resources above in place: no role is
# replaced, so cached tokens and keys stay.
moved {
  from = vault_generic_endpoint.environment
  to   = aritma_environment.this
}

moved {
  from = vault_generic_endpoint.role
  to   = aritma_role.this
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
