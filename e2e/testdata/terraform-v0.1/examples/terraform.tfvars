# Everything but the client secrets, which come from TF_VAR_client_secrets.

roles = {
  payments-dev = {
    environment = "development"
    client_id   = "payments-dev-client"
    scopes      = ["api", "bankservice"]
  }
  payments = {
    environment = "production"
    client_id   = "payments-client"
    scopes      = ["api", "bankservice"]
  }
}

applications = {
  payments-staging = ["payments-dev"]
  payments         = ["payments"]
}
