terraform {
  # optional() object attributes with defaults: OpenTofu 1.6+, Terraform 1.3+.
  required_version = ">= 1.6"

  required_providers {
    vault = {
      source  = "hashicorp/vault"
      version = ">= 5.0"
    }
  }
}
