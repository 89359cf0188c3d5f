terraform {
  required_providers {
    vault = { source = "hashicorp/vault" }
  }
}
resource "vault_generic_endpoint" "r" {
  for_each = toset([for i in range(100) : format("g%03d", i)])
  path = "aritma/roles/${each.key}"
  ignore_absent_fields = true
  data_json = jsonencode({ environment = "bank", client_id = "c1", client_secret = "s3cr3t-xyz", scopes = ["api"] })
}
