# The two commands a newcomer needs:
#   make demo   builds everything and shows the engine working in a real Vault
#   make test   runs the unit tests, short fuzzing, and the end-to-end tests
#               against a real Vault server, a real OAuth server, Vault Agent
#               and OpenTofu
# make help lists every target. A comment "## ..." after a target is its line
# in that list.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c

VERSION    ?= v0.1.0
PLUGIN     := vault-plugin-secrets-aritma
PLUGIN_DIR := bin/plugins
LDFLAGS    := -X github.com/aritma/vault-plugin-secrets-aritma/aritma.Version=$(VERSION)
OAUTH_DIR  := e2e/oauthserver
OAUTH_DEPS := $(OAUTH_DIR)/node_modules/.package-lock.json

.PHONY: help build vault prometheus oauth-server demo test check unit fuzz e2e reliability fmt clean

help: ## list the targets
	@awk -F':.*## ' '/^[a-z0-9-]+:.*## / { printf "  make %-16s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

build: ## the plugin, into bin/plugins/ (VERSION=v0.1.0)
	go build -trimpath -ldflags '$(LDFLAGS)' -o $(PLUGIN_DIR)/$(PLUGIN) .

# The pinned Vault server, built once into a per-user cache (about 20 minutes
# the first time).
vault: ## the pinned Vault server, built once into the per-user cache
	@scripts/build-vault.sh >/dev/null

# Debian's prometheus binary, downloaded and unpacked (not installed: no
# service runs) once into the same per-user cache; the tests start it.
prometheus: ## Debian's prometheus, unpacked once into the per-user cache
	@scripts/install-prometheus.sh >/dev/null

oauth-server: $(OAUTH_DEPS) ## the OAuth test server's npm packages

$(OAUTH_DEPS): $(OAUTH_DIR)/package-lock.json
	npm ci --prefix $(OAUTH_DIR) --no-audit --no-fund --loglevel=error

demo: build vault oauth-server ## watch the engine work in a real Vault, with Vault Agent
	VAULT_BIN="$$(scripts/build-vault.sh)" scripts/demo.sh

test: check unit fuzz e2e test-terraform ## everything CI runs first: check, unit, fuzz, e2e, test-terraform

check: ## gofmt and go vet, changing no file
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; \
	if [[ -n "$$unformatted" ]]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	go vet ./...
	go vet -tags 'e2e reliability' ./e2e/... ./internal/provider/...
	cd bench && go vet -mod=readonly ./...

# ARITMA_PROMETHEUS lets the Prometheus harness's test run against the real
# server (without it that test skips).
unit: prometheus ## the unit tests, with the race detector (one test: go test -run NAME ./aritma)
	ARITMA_PROMETHEUS="$$(scripts/install-prometheus.sh)" go test -race -count=1 ./...
	cd bench && go test -mod=readonly -count=1 ./...

# Each fuzz target for a short fixed time (longer in make reliability).
FUZZTIME ?= 5s
fuzz: ## each fuzz target for FUZZTIME (5s)
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

# End-to-end tests: they build the plugin themselves (two versions, for the
# upgrade test) and start every server they use on 127.0.0.1; the browser
# test drives Debian's chromium-headless-shell (scripts/install-chromium.sh installs it once)
# and leaves its screenshot in e2e/out/; the metrics tests scrape through
# Vault's API with Debian's prometheus (scripts/install-prometheus.sh
# unpacks it once).
# RUN=<regexp> runs only the matching tests.
e2e: vault prometheus oauth-server ## the end-to-end tests against a real Vault and OAuth server, and a real browser (RUN=regexp for some)
	ARITMA_VAULT_BIN="$$(scripts/build-vault.sh)" ARITMA_CHROMIUM="$$(scripts/install-chromium.sh)" ARITMA_PROMETHEUS="$$(scripts/install-prometheus.sh)" scripts/e2e.sh -count=1 -timeout 15m -v -skip '^TestTerraform' $(if $(RUN),-run '$(RUN)') ./e2e/

# The long runs (fault tests, longer fuzzing, failover on a raft cluster, a
# load run, secret scans); writes docs/reliability.md (in CI, a temporary
# copy).
reliability: vault oauth-server ## the long runs; writes docs/reliability.md
	scripts/reliability.sh

fmt: ## gofmt every Go file
	gofmt -w $$(git ls-files '*.go')

clean: ## remove bin/
	rm -rf bin

# OpenTofu and the Vault provider, built once into the same per-user cache as
# Vault (about 6 and 2 minutes on two cores the first time).
tofu: ## OpenTofu and the Vault provider, built once into the per-user cache
	@scripts/build-tofu.sh >/dev/null
	@scripts/build-terraform-provider-vault.sh >/dev/null

# The Terraform/OpenTofu module and example (terraform/) applied with the real
# OpenTofu, the Vault provider and this repository's provider (which the tests
# build) to a Vault dev server and the OAuth server; the migration from the
# 0.1 module; then the provider's acceptance tests.
test-terraform: vault oauth-server tofu ## the OpenTofu module, and the provider's acceptance tests, with the real OpenTofu
	ARITMA_VAULT_BIN="$$(scripts/build-vault.sh)" \
	ARITMA_TOFU_BIN="$$(scripts/build-tofu.sh)" \
	ARITMA_TF_PROVIDER_MIRROR="$$(scripts/build-terraform-provider-vault.sh)" \
	scripts/e2e.sh -count=1 -timeout 15m -v -run '^TestTerraform' ./e2e/
	ARITMA_VAULT_BIN="$$(scripts/build-vault.sh)" \
	ARITMA_TOFU_BIN="$$(scripts/build-tofu.sh)" \
	scripts/e2e.sh -count=1 -timeout 10m -v -run '^TestAcc' ./internal/provider/

.PHONY: tofu test-terraform

# Benchmarks (never part of make test): in-process Go benchmarks, load through
# a real Vault against KV and a ceiling probe, grants per rotation, and growth
# with the number of roles; rewrites docs/benchmarks.md's tables. Raw
# results: bench/out/.
bench: vault oauth-server tofu ## benchmarks against the targets of docs/benchmarks.md (never in make test)
	scripts/bench.sh

.PHONY: bench
