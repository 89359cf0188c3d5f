terraform {
  required_providers {
    aritma = { source = "aritma/aritma" }
  }
}
variable "s" {
  type = string
  ephemeral = true
  default = "s3cr3t-xyz"
}
resource "aritma_role" "r" {
  for_each = toset([for i in range(100) : format("p%03d", i)])
  name = each.key
  environment = "bank"
  client_id = "c1"
  client_secret_wo = var.s
  client_secret_wo_version = 1
  scopes = ["api"]
}
