# Realtime Gateway blueprint. `make help` lists every target.
#
# Node 24 comes from the `node` npm package (node_modules/.bin/node); pinned Go-built tools live in
# ./bin (LOCALBIN). Both go first on PATH so every recipe uses them, whatever the machine has.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

LOCALBIN ?= $(CURDIR)/bin
export PATH := $(CURDIR)/node_modules/.bin:$(LOCALBIN):$(PATH)

## Gateway settings for `make start` (see the configuration table in README.md).
PORT ?= 3000
## Number of gateway processes in the local fleet (`make dev`).
REPLICAS ?= 3
## HAProxy port of the local fleet.
DEV_PORT ?= 8080
## Port of the `make tour-limits` gateway.
TOUR_PORT ?= 3000
## Backplane of the local fleet: redis (shared redis-server) or none (each gateway on its own memory backplane; docs/tour.md step 4).
BACKPLANE ?= redis
## Profile for `make synth` / `make up`: kind or production.
PROFILE ?= kind
## kind cluster name and the image tag loaded into it.
CLUSTER_NAME ?= realtime-gateway
IMG ?= realtime-gateway:dev

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

node_modules: package.json package-lock.json
	npm ci
	@touch node_modules

##@ Development

.PHONY: start
start: node_modules ## Run one gateway on its embedded default (in-memory adapter, no auth) and print the demo URL.
	AUTH_MODE=none PORT=$(PORT) npm start

.PHONY: build
build: node_modules ## Type-check everything and bundle the demo page.
	npm run build

.PHONY: lint
lint: node_modules ## Type-check and lint.
	npm run lint

.PHONY: test
test: system-deps node_modules tools lint ## Type-check, lint, then run every test suite (unit, integration, hardening, drain, browser, control plane, controller, real node, chaos at CI size). Needs root.
	npm test

.PHONY: dev
dev: node_modules ## Run a local fleet: redis-server, REPLICAS gateways and HAProxy on DEV_PORT (BACKPLANE=none: no shared backplane). Ctrl-C cleans up.
	node scripts/build-web.ts
	node scripts/dev-fleet.ts --replicas $(REPLICAS) --port $(DEV_PORT) --backplane $(BACKPLANE)

.PHONY: tour-limits
tour-limits: node_modules ## One gateway with small limits (JWT, 2 s heartbeats, 64 KiB outbound) for docs/tour.md step 5; mints tokens, floods the chat.
	node scripts/build-web.ts
	node scripts/tour-limits.ts --port $(TOUR_PORT)

.PHONY: chaos
chaos: node_modules ## Delete gateway processes under load on the local fleet and report what clients felt.
	node scripts/chaos/run.ts --size full

.PHONY: bench
bench: node_modules ## Benchmark the gateway against plain Socket.IO, raw ws and raw Redis: memory/socket, handshakes, fan-out per CPU-second, latency, Redis cost, drain, chaos beside a vanilla Socket.IO fleet; and what an idempotency key costs a publish (bench/results/).
	node bench/run.ts
	node bench/idempotency.ts

.PHONY: bench-rungs
bench-rungs: node_modules ## What each rung of the transport ladder costs: requests, bytes and latency per client-minute (docs/tour.md step 2).
	node bench/rungs.ts

##@ Manifests

.PHONY: synth
synth: node_modules ## Synthesize every profile's manifests into dist/<profile>/.
	node infra/main.ts

.PHONY: charts
charts: node_modules ## Generate infra/generated/ from app/ (settings, SocketGateway CRD), then the Helm chart in charts/ from the constructs.
	node scripts/generate-infra-contracts.ts
	node infra/chart/generate.ts

##@ Tools

.PHONY: system-deps
system-deps: ## Install the Debian packages tests run for real (redis-server, haproxy, chromium, containerd, runc, CNI plugins, nftables, python3-socketio) if missing.
	bash scripts/system-deps.sh

.PHONY: tools
tools: ## Build pinned helm, etcd, the Kubernetes binaries (API server to kubelet), CoreDNS and metrics-server into ./bin; fetch CRDs.
	bash scripts/tools.sh "$(LOCALBIN)"

.PHONY: cluster-local
cluster-local: node_modules tools ## Run a real kube-apiserver + etcd + kube-controller-manager on loopback until Ctrl-C.
	node scripts/cluster/cli.ts

##@ Scale-down controller (drain before delete, fleet reconnect budget: docs/controller.md)

.PHONY: controller-local
controller-local: node_modules tools ## Run it (2 replicas) on a real API server with gateway pods as processes until Ctrl-C; try `kubectl scale sgw gw --replicas 2`.
	node scripts/pod-runner/cli.ts

.PHONY: chaos-scale-down
chaos-scale-down: node_modules tools ## The chaos scale-down scenario: controller-driven vs plain Deployment scale-down under load, same client metrics.
	node scripts/chaos/scale-down-run.ts --size full

.PHONY: test-controller
test-controller: system-deps node_modules tools ## Its tests: the planner, and the suite on a real API server with running gateway pods and SDK clients.
	npx vitest run test/controller

##@ Real node (no Docker: kubelet, containerd and runc on this machine, see docs/real-node.md)

.PHONY: node-up
node-up: node_modules tools ## Start a real single-node Kubernetes here (root), with CoreDNS and metrics-server; prints KUBECONFIG.
	node scripts/node/cli.ts up

.PHONY: node-down
node-down: node_modules ## Stop the real node and undo every host change it made (processes, links, rules, cgroups, sysctls).
	node scripts/node/cli.ts down

.PHONY: chaos-node
chaos-node: node_modules tools ## Run the chaos suite (full size) on a real node of its own: kubectl delete pod under load.
	node scripts/chaos/run.ts --size full --target node

.PHONY: node-status
node-status: node_modules ## Say whether a real node is running and where its kubeconfig is.
	node scripts/node/cli.ts status

##@ Deployment (kind — needs Docker)

.PHONY: image
image: ## Build the container image $(IMG).
	docker build -t $(IMG) .

.PHONY: up
up: node_modules ## Create (or reuse) the kind cluster and deploy everything; prints the demo URL.
	CLUSTER_NAME=$(CLUSTER_NAME) IMG=$(IMG) PROFILE=$(PROFILE) bash scripts/up.sh

.PHONY: down
down: ## Delete the kind cluster.
	kind delete cluster --name $(CLUSTER_NAME)

.PHONY: chaos-kind
chaos-kind: node_modules ## Run the chaos suite against the kind cluster with `kubectl delete pod`.
	node scripts/chaos/run.ts --size full --target kind
