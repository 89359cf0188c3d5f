output "policies" {
  description = "Policy of each application, for its Vault token or auth role."
  value       = module.aritma.policies
}

output "token_paths" {
  description = "Where each role's access token is read."
  value       = module.aritma.token_paths
}
