output "path" {
  description = "Where the engine is mounted."
  value       = vault_mount.aritma.path
}

output "plugin_version" {
  description = "The plugin version the mount runs."
  value       = vault_mount.aritma.plugin_version
}

output "token_paths" {
  description = "Path to read each role's access token at, by role."
  value       = { for name, role in aritma_role.this : name => "${vault_mount.aritma.path}/token/${name}" }
}

output "policies" {
  description = "Name of each application's policy, by application: give its Vault token this policy."
  value       = { for app, policy in vault_policy.application : app => policy.name }
}

