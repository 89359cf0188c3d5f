# The two commands a newcomer needs:
#   make demo   builds everything and shows the engine working in a real Vault
#   make test   runs the unit tests and the end-to-end tests against a real
#               Vault server, a real OAuth server and Vault Agent
SHELL := bash
.SHELLFLAGS := -euo pipefail -c

VERSION    ?= v0.1.0
PLUGIN     := vault-plugin-secrets-aritma
PLUGIN_DIR := bin/plugins
LDFLAGS    := -X github.com/aritma/vault-plugin-secrets-aritma/aritma.Version=$(VERSION)
OAUTH_DIR  := e2e/oauthserver
OAUTH_DEPS := $(OAUTH_DIR)/node_modules/.package-lock.json

.PHONY: build vault oauth-server demo test check unit e2e fmt clean

build:
	go build -trimpath -ldflags '$(LDFLAGS)' -o $(PLUGIN_DIR)/$(PLUGIN) .

# The pinned Vault server, built once into a per-user cache (about 20 minutes
# the first time).
vault:
	@scripts/build-vault.sh >/dev/null

oauth-server: $(OAUTH_DEPS)

$(OAUTH_DEPS): $(OAUTH_DIR)/package-lock.json
	npm ci --prefix $(OAUTH_DIR) --no-audit --no-fund --loglevel=error

demo: build vault oauth-server
	VAULT_BIN="$$(scripts/build-vault.sh)" scripts/demo.sh

test: check unit e2e

check:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; \
	if [[ -n "$$unformatted" ]]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	go vet ./...
	go vet -tags e2e ./e2e/...

unit:
	go test -race -count=1 ./...

# End-to-end tests: they build the plugin themselves (two versions, for the
# upgrade test) and start every server they use on 127.0.0.1.
e2e: vault oauth-server
	ARITMA_VAULT_BIN="$$(scripts/build-vault.sh)" go test -tags e2e -count=1 -timeout 15m -v ./e2e/

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
