# The Aritma engine for one Vault: Aritma's development and production
# environments, a payments client in each, and a policy per deployment of the
# payments application. Role settings are in terraform.tfvars; client secrets
# come from TF_VAR_client_secrets and are kept in no plan or state.

terraform {
  required_version = ">= 1.11"

  required_providers {
    vault = {
      source  = "hashicorp/vault"
      version = ">= 5.0"
    }
    aritma = {
      source  = "aritma/aritma"
      version = ">= 0.1"
    }
  }
}

# Both take Vault's address and token from VAULT_ADDR and VAULT_TOKEN.
provider "vault" {}
provider "aritma" {}

module "aritma" {
  source = "../modules/aritma"

  plugin_version = var.plugin_version
  plugin_sha256  = var.plugin_sha256
  plugin_command = var.plugin_command

  environments = {
    development = { token_url = var.development_token_url }
    production  = { token_url = var.production_token_url }
  }
  roles                  = var.roles
  client_secrets         = var.client_secrets
  client_secret_versions = var.client_secret_versions
  applications           = var.applications

  # A rotation without failed reads: see the README.
  next_client_secrets         = var.next_client_secrets
  next_client_secret_versions = var.next_client_secret_versions
}
