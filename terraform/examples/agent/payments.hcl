# Vault Agent for the payments application: it logs in with the token in
# /run/payments/vault-token (one issued with the aritma-payments policy, e.g.
# `vault token create -policy=aritma-payments`; in production use the auth
# method your platform has, with that policy) and keeps a live bank access
# token in /run/payments/access_token, renewing it before it expires.
#
# VAULT_ADDR overrides the address below.

vault {
  address = "https://vault.example.com:8200"
}

auto_auth {
  method "token_file" {
    config = {
      token_file_path = "/run/payments/vault-token"
    }
  }
}

template {
  contents    = "{{ with secret \"aritma/token/payments\" }}{{ .Data.access_token }}{{ end }}"
  destination = "/run/payments/access_token"
  perms       = "0600"
}
