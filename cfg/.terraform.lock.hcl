# This file is maintained automatically by "tofu init".
# Manual edits may be lost in future updates.

provider "registry.opentofu.org/aritma/aritma" {
  version = "0.1.0"
  hashes = [
    "h1:PwkBXl9ybX5SSMnu/PEHeHgxKDKgffKQdCh08FV02RI=",
  ]
}
