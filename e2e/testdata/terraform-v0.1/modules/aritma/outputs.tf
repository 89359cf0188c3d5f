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
  value       = { for name, role in vault_generic_endpoint.role : name => "${vault_mount.aritma.path}/token/${name}" }
}

output "policies" {
  description = "Name of each application's policy, by application: give its Vault token this policy."
  value       = { for app, policy in vault_policy.application : app => policy.name }
}

output "roles" {
  description = "The roles' settings without their secrets. The provider hides data_json in plans (it holds the secret), so a root module that outputs this shows role changes in its plans."
  value       = var.roles
}

output "environments" {
  description = "The environments' settings, for the same reason as roles."
  value       = var.environments
}
