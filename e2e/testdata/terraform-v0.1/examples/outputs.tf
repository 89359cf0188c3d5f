output "policies" {
  description = "Policy of each application, for its Vault token or auth role."
  value       = module.aritma.policies
}

output "token_paths" {
  description = "Where each role's access token is read."
  value       = module.aritma.token_paths
}

# The provider shows role and environment resources as "(sensitive value)" in
# plans, since they hold the client secrets; these outputs make their other
# settings visible under "Changes to Outputs".
output "roles" {
  value = module.aritma.roles
}

output "environments" {
  value = module.aritma.environments
}
