# The two commands a newcomer needs:
#   make demo   builds everything and shows the engine working in a real Vault
#   make test   runs the unit tests, short fuzzing, and the end-to-end tests
#               against a real Vault server, a real OAuth server, Vault Agent
#               and OpenTofu
SHELL := bash
.SHELLFLAGS := -euo pipefail -c

VERSION    ?= v0.1.0
PLUGIN     := vault-plugin-secrets-aritma
PLUGIN_DIR := bin/plugins
LDFLAGS    := -X github.com/aritma/vault-plugin-secrets-aritma/aritma.Version=$(VERSION)
OAUTH_DIR  := e2e/oauthserver
OAUTH_DEPS := $(OAUTH_DIR)/node_modules/.package-lock.json

.PHONY: build vault oauth-server demo test check unit fuzz e2e reliability fmt clean

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

test: check unit fuzz e2e test-terraform

check:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; \
	if [[ -n "$$unformatted" ]]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	go vet ./...
	go vet -tags 'e2e reliability' ./e2e/...
	cd bench && go vet -mod=mod ./...

unit:
	go test -race -count=1 ./...

# Each fuzz target for a short fixed time (longer in make reliability).
FUZZTIME ?= 5s
fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

# End-to-end tests: they build the plugin themselves (two versions, for the
# upgrade test) and start every server they use on 127.0.0.1.
e2e: vault oauth-server
	ARITMA_VAULT_BIN="$$(scripts/build-vault.sh)" scripts/e2e.sh -count=1 -timeout 15m -v -skip '^TestTerraform' ./e2e/

# The long runs (fault tests, longer fuzzing, failover on a raft cluster, a
# load run, secret scans); rewrites the README's reliability figures.
reliability: vault oauth-server
	scripts/reliability.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin

# OpenTofu and the Vault provider, built once into the same per-user cache as
# Vault (about 6 and 2 minutes on two cores the first time).
tofu:
	@scripts/build-tofu.sh >/dev/null
	@scripts/build-terraform-provider-vault.sh >/dev/null

# The Terraform/OpenTofu module and example (terraform/) applied with the real
# OpenTofu and Vault provider to a Vault dev server and the OAuth server.
test-terraform: vault oauth-server tofu
	ARITMA_VAULT_BIN="$$(scripts/build-vault.sh)" \
	ARITMA_TOFU_BIN="$$(scripts/build-tofu.sh)" \
	ARITMA_TF_PROVIDER_MIRROR="$$(scripts/build-terraform-provider-vault.sh)" \
	scripts/e2e.sh -count=1 -timeout 15m -v -run '^TestTerraform' ./e2e/

.PHONY: tofu test-terraform

# Benchmarks (never part of make test): in-process Go benchmarks, load through
# a real Vault against KV, the SSH engine and a ceiling probe, grants per
# rotation, growth with the number of roles and lease growth, in under 10
# minutes; rewrites docs/benchmarks.md. Raw results: bench/out/.
bench: vault oauth-server
	scripts/bench.sh

.PHONY: bench
