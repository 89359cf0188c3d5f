# This file is maintained automatically by "tofu init".
# Manual edits may be lost in future updates.

provider "registry.opentofu.org/hashicorp/vault" {
  version = "5.9.0"
  hashes = [
    "h1:NXqNlncseR20l9xP7uHAMv3onPIRlicZOTrZ9v4IKpM=",
  ]
}
