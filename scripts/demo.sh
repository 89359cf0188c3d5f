#!/usr/bin/env bash
# make demo: the engine working in a real Vault, step by step.
#
# Starts a local OAuth server standing in for id.dev.aritma.io (the real one
# is not reachable from here) and a Vault dev server, registers the plugin by
# SHA-256 with its version, writes a role, reads a token, and has Vault Agent
# render the token into a file. With a terminal it then waits for Ctrl-C so
# you can try commands by hand; without one it stops. It stops everything it
# started, by PID.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
vault_bin="${VAULT_BIN:?set VAULT_BIN, or run make demo}"
plugin_dir="$root/bin/plugins"
plugin="vault-plugin-secrets-aritma"
version="${VERSION:-v0.1.0}"

work="$(mktemp -d)"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

# free_port prints a loopback port nobody listens on.
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
}

# wait_for runs a command until it succeeds, for up to 30 seconds.
wait_for() {
  local i
  for i in $(seq 150); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "timed out waiting for: $*" >&2
  return 1
}

client_secret="$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"

step "Starting a local OAuth server standing in for id.dev.aritma.io (oidc-provider)"
cat >"$work/oauth.json" <<JSON
{"port": 0, "token_ttl": 3600, "clients": [
  {"client_id": "demo-client", "client_secret": "$client_secret",
   "token_endpoint_auth_method": "client_secret_post", "scope": "api bankservice IDENTITY",
   "access_token_format": "jwt"}]}
JSON
mkfifo "$work/oauth.out"
node "$root/e2e/oauthserver/server.mjs" "$work/oauth.json" >"$work/oauth.out" 2>"$work/oauth.log" &
pids+=($!)
read -r oauth_ready <"$work/oauth.out"
token_url="$(sed -E 's/.*"token_endpoint":"([^"]+)".*/\1/' <<<"$oauth_ready")"
echo "token endpoint: $token_url"

step "Starting a Vault dev server on 127.0.0.1 with the plugin directory"
port="$(free_port)"
root_token="demo-root-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export VAULT_ADDR="http://127.0.0.1:$port" VAULT_TOKEN="$root_token"
echo "plugin_directory = \"$plugin_dir\"" >"$work/vault.hcl"
"$vault_bin" server -dev -dev-root-token-id="$root_token" -dev-listen-address="127.0.0.1:$port" \
  -config="$work/vault.hcl" >"$work/vault.log" 2>&1 &
pids+=($!)
wait_for "$vault_bin" status
echo "VAULT_ADDR=$VAULT_ADDR"

vault() { "$vault_bin" "$@"; }

step "Registering the plugin by SHA-256 with its version, and enabling it at aritma/"
sha256="$(sha256sum "$plugin_dir/$plugin" | cut -d' ' -f1)"
show vault plugin register -sha256="$sha256" -version="$version" secret "$plugin"
show vault secrets enable -path=aritma "$plugin"
echo "running version: $(vault read -field=running_plugin_version sys/mounts/aritma)"

step "Pointing the development environment at the local stand-in"
echo "(against the real id.dev.aritma.io, skip this: the built-in default is https://id.dev.aritma.io/connect/token)"
show vault write aritma/environments/development token_url="$token_url"

step "Writing a role with the client's credentials"
printf '$ vault write aritma/roles/demo environment=development client_id=demo-client client_secret=<secret> scopes=api\n'
vault write aritma/roles/demo environment=development client_id=demo-client \
  client_secret="$client_secret" scopes=api
show vault read aritma/roles/demo

step "Reading a token"
show vault read aritma/token/demo

step "A policy that lets one app read only its role's token"
policy='path "aritma/token/demo" {
  capabilities = ["read"]
}'
printf '$ vault policy write demo-app - <<EOF\n%s\nEOF\n' "$policy"
vault policy write demo-app - <<<"$policy"
vault token create -policy=demo-app -field=token >"$work/app-token"
echo "created an app token with policy demo-app"

step "Vault Agent renders the token into a file for the app"
# The configuration the README documents, pointed at this Vault and files.
sed -e "s|https://vault.example.com:8200|$VAULT_ADDR|" \
  -e "s|/run/payments/vault-token|$work/app-token|" \
  -e "s|aritma/token/payments|aritma/token/demo|" \
  -e "s|/run/payments/access_token|$work/access_token|" \
  "$root/terraform/examples/agent/payments.hcl" >"$work/agent.hcl"
cat "$work/agent.hcl"
VAULT_TOKEN= "$vault_bin" agent -config="$work/agent.hcl" >"$work/agent.log" 2>&1 &
pids+=($!)
wait_for test -s "$work/access_token"
rendered="$(cat "$work/access_token")"
echo "rendered $work/access_token: ${rendered:0:40}... (${#rendered} characters)"

grants="$(curl -fsS "$(sed -E 's/.*"stats_endpoint":"([^"]+)".*/\1/' <<<"$oauth_ready")" | sed -E 's/.*"grants":([0-9]+).*/\1/')"
echo "grants at the authorization server so far: $grants (the CLI read and the agent's read share one cached token)"

step "What the role did on this node, and the same as Prometheus metrics"
show vault read aritma/roles/demo/status
printf '$ vault policy write metrics - <<EOF\npath "aritma/metrics" { capabilities = ["read"] }\nEOF\n'
vault policy write metrics - <<<'path "aritma/metrics" { capabilities = ["read"] }'
metrics_token="$(vault token create -policy=metrics -field=token)"
printf '$ curl -H "X-Vault-Token: <metrics token>" %s/v1/aritma/metrics | grep role=\"demo\"\n' "$VAULT_ADDR"
curl -fsS -H "X-Vault-Token: $metrics_token" "$VAULT_ADDR/v1/aritma/metrics" | grep 'role="demo"'

if [[ -t 0 && -t 1 ]]; then
  step "Ready. In another terminal:"
  cat <<TXT
  export VAULT_ADDR=$VAULT_ADDR VAULT_TOKEN=$VAULT_TOKEN
  $vault_bin read aritma/token/demo
  $vault_bin path-help aritma/roles/demo
  cat $work/access_token

Press Ctrl-C to stop Vault, the agent and the OAuth server.
TXT
  while :; do sleep 3600; done
fi
step "Done; stopping everything this demo started"
