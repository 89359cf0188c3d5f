terraform {
  # Ephemeral variables and write-only arguments: OpenTofu 1.11+, Terraform 1.11+.
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
