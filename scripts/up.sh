#!/usr/bin/env bash
# `make up`: create (or reuse) a kind cluster and deploy the blueprint on it. Idempotent: every step
# checks before it acts, so running it again updates the deployment in place.
#
# Needs: docker, kind (KIND_VERSION in scripts/tools.sh), kubectl, helm (./bin/helm from `make tools` works), node (Node 24 from
# node_modules/.bin, which the Makefile puts on PATH).
set -euo pipefail

CLUSTER_NAME="${CLUSTER_NAME:-realtime-gateway}"
IMG="${IMG:-realtime-gateway:dev}"
PROFILE="${PROFILE:-kind}"
WITH_KEDA="${WITH_KEDA:-false}"
NAMESPACE="realtime-gateway"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Pinned versions, each once, in scripts/tools.sh (docs/infrastructure.md says why each one): kind and its node
# image (by digest), Envoy Gateway (bundles Gateway API v1.6.1, experimental channel CRDs) and the
# metrics-server chart, with the versions the tests use (Envoy Gateway's CRDs validate the entry's policies).
pin() { sed -n "s/^$1=\([^[:space:]]*\).*/\1/p" "$ROOT/scripts/tools.sh"; }
KIND_VERSION="$(pin KIND_VERSION)"
KIND_NODE_IMAGE="$(pin KIND_NODE_IMAGE)"
ENVOY_GATEWAY_VERSION="$(pin ENVOY_GATEWAY_VERSION)"
METRICS_SERVER_CHART_VERSION="$(pin METRICS_SERVER_CHART_VERSION)"
for pinned in KIND_VERSION KIND_NODE_IMAGE ENVOY_GATEWAY_VERSION METRICS_SERVER_CHART_VERSION; do
  if [ -z "${!pinned}" ]; then
    printf 'error: scripts/tools.sh pins no %s\n' "$pinned" >&2
    exit 1
  fi
done
# KEDA: one pinned version for the CRDs the tests validate against and the chart deployed here; it is set
# once, in scripts/tools.sh (KEDA's chart versions are its release versions without the "v").
KEDA_VERSION="$(sed -n 's/^KEDA_VERSION=v\([0-9][^[:space:]]*\).*/\1/p' "$ROOT/scripts/tools.sh")"
[ -n "$KEDA_VERSION" ] || { printf 'error: scripts/tools.sh pins no KEDA_VERSION=v...\n' >&2; exit 1; }
DIST="$ROOT/dist/$PROFILE"
KUBECTL=(kubectl --context "kind-$CLUSTER_NAME")

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed. $2"
}
need docker "Install Docker (or a compatible engine); kind runs Kubernetes nodes as containers."
need kind "Install kind $KIND_VERSION: https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
need kubectl "Install kubectl: https://kubernetes.io/docs/tasks/tools/"
need helm "Run 'make tools' (builds helm into ./bin) or install helm 3."
need node "Run 'npm ci' (Node 24 comes from node_modules/.bin)."
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable (is it running?)"
[ "$PROFILE" = kind ] || die "make up deploys the kind profile; PROFILE=$PROFILE is for real clusters (kubectl apply -f dist/$PROFILE/)"
# Commands' output is captured before it is searched: under pipefail, `cmd | grep -q` fails whenever grep
# exits at its first match while cmd is still writing (SIGPIPE), so a check would fail on success.
kind_version="$(kind version)"
if [[ "$kind_version" != *"$KIND_VERSION"* ]]; then
  echo "warning: kind $KIND_VERSION is the tested version; you have: $kind_version" >&2
fi

say "Cluster: kind '$CLUSTER_NAME' (control plane + 2 workers, kind-config.yaml, node image $KIND_NODE_IMAGE)"
clusters="$(kind get clusters 2>/dev/null)" || die "kind get clusters failed; is the Docker engine running? (kind get clusters)"
if grep -qx "$CLUSTER_NAME" <<<"$clusters"; then
  echo "already exists; reusing it"
else
  kind create cluster --name "$CLUSTER_NAME" --config "$ROOT/kind-config.yaml" --image "$KIND_NODE_IMAGE" --wait 120s
fi

say "Envoy Gateway $ENVOY_GATEWAY_VERSION (its chart installs the Gateway API experimental-channel CRDs: sessionPersistence lives there)"
# EnvoyPatchPolicy is off by default; the entry's policy keeps sessions on draining pods (docs/infrastructure.md).
helm upgrade --install eg oci://docker.io/envoyproxy/gateway-helm --version "$ENVOY_GATEWAY_VERSION" \
  --kube-context "kind-$CLUSTER_NAME" --namespace envoy-gateway-system --create-namespace \
  --set config.envoyGateway.extensionApis.enableEnvoyPatchPolicy=true --wait --timeout 5m
echo "waiting for deployment/envoy-gateway in envoy-gateway-system to be Available"
"${KUBECTL[@]}" -n envoy-gateway-system wait --for=condition=Available deployment/envoy-gateway --timeout=5m
httproute_crd="$("${KUBECTL[@]}" get crd httproutes.gateway.networking.k8s.io -o yaml)" ||
  die "the HTTPRoute CRD is not installed: Envoy Gateway's chart did not install the Gateway API CRDs (kubectl get crd httproutes.gateway.networking.k8s.io)"
if [[ "$httproute_crd" != *sessionPersistence* ]]; then
  die "the installed HTTPRoute CRD has no sessionPersistence: standard-channel Gateway API CRDs are installed (Helm skips existing CRDs). Delete them and re-run."
fi

say "metrics-server (for the HPA; kind's kubelets have self-signed certificates, hence --kubelet-insecure-tls)"
helm upgrade --install metrics-server metrics-server --repo https://kubernetes-sigs.github.io/metrics-server/ \
  --version "$METRICS_SERVER_CHART_VERSION" --kube-context "kind-$CLUSTER_NAME" --namespace kube-system \
  --set 'args={--kubelet-insecure-tls}' --wait --timeout 5m

if [ "$WITH_KEDA" = true ]; then
  say "KEDA $KEDA_VERSION (WITH_KEDA=true; the version scripts/tools.sh pins for the CRDs the tests use)"
  helm upgrade --install keda keda --repo https://kedacore.github.io/charts --version "$KEDA_VERSION" \
    --kube-context "kind-$CLUSTER_NAME" --namespace keda --create-namespace --wait --timeout 5m
fi

say "Image $IMG: build and load it into the kind nodes"
docker build -t "$IMG" "$ROOT"
kind load docker-image "$IMG" --name "$CLUSTER_NAME"

say "Platform plumbing for kind: the GatewayClass (the proxy's NodePort is the entry's EnvoyProxy)"
(cd "$ROOT" && IMG="$IMG" PROFILE_ONLY="$PROFILE" node infra/main.ts)
"${KUBECTL[@]}" apply -f "$DIST/platform.yaml"

# The blueprint itself: the same steps deploy it on any cluster (the real node's tests run them too).
KUBE_CONTEXT="kind-$CLUSTER_NAME" IMG="$IMG" PROFILE="$PROFILE" RESTART=true bash "$ROOT/scripts/deploy-profile.sh"

say "Waiting for Gateway realtime-gateway to be Programmed by Envoy Gateway (the proxy that serves localhost:8080)"
"${KUBECTL[@]}" -n "$NAMESPACE" wait --for=condition=Programmed gateway/realtime-gateway --timeout=3m ||
  echo "warning: the Gateway is not Programmed yet; kubectl -n $NAMESPACE describe gateway/realtime-gateway" >&2
echo "waiting for the Envoy proxy pods of that Gateway to be ready"
"${KUBECTL[@]}" -n envoy-gateway-system wait --for=condition=Ready pod \
  -l "gateway.envoyproxy.io/owning-gateway-name=realtime-gateway,gateway.envoyproxy.io/owning-gateway-namespace=$NAMESPACE" --timeout=3m
echo "checking that Envoy Gateway applied the EnvoyPatchPolicy (sessions stay on draining pods)"
# A policy's conditions are per ancestor (status.ancestors[].conditions), out of reach of wait --for=condition.
patch_programmed=""
for _ in $(seq 1 30); do
  patch_programmed="$("${KUBECTL[@]}" -n "$NAMESPACE" get envoypatchpolicy/realtime-gateway \
    -o jsonpath='{.status.ancestors[*].conditions[?(@.type=="Programmed")].status}' 2>/dev/null || true)"
  [[ "$patch_programmed" == *True* ]] && break
  sleep 2
done
[[ "$patch_programmed" == *True* ]] ||
  echo "warning: EnvoyPatchPolicy realtime-gateway is not Programmed (is extensionApis.enableEnvoyPatchPolicy on?); kubectl -n $NAMESPACE get envoypatchpolicy/realtime-gateway -o yaml" >&2

say "Checking the entry: GET http://localhost:8080/readyz through Envoy"
for attempt in $(seq 1 30); do
  if curl -fsS -o /dev/null http://localhost:8080/readyz; then break; fi
  [ "$attempt" -eq 30 ] && die "http://localhost:8080/readyz did not answer; kubectl -n envoy-gateway-system get pods,svc"
  sleep 2
done

say "Minting a one-hour demo token (the kind profile runs with AUTH_MODE=jwt)"
jwt_secret=$("${KUBECTL[@]}" -n "$NAMESPACE" get secret realtime-gateway-auth -o jsonpath='{.data.jwt-secret}' | base64 -d)
demo_token=$(cd "$ROOT" && JWT_SECRET="$jwt_secret" node scripts/mint-token.ts --sub demo-user --ttl 3600)

cat <<DONE

Realtime gateway is up on kind cluster '$CLUSTER_NAME'.

  Demo page:  http://localhost:8080/#token=$demo_token
  Fleet view: kubectl --context kind-$CLUSTER_NAME -n $NAMESPACE port-forward svc/realtime-gateway 9090:internal, then http://localhost:9090/
              (metrics, fleet stats and admin are on the internal port only: no route reaches them)
  Pods:       kubectl --context kind-$CLUSTER_NAME -n $NAMESPACE get pods -o wide
  JWT secret: kubectl --context kind-$CLUSTER_NAME -n $NAMESPACE get secret realtime-gateway-auth -o jsonpath='{.data.jwt-secret}' | base64 -d

Chaos on the cluster: make chaos-kind.  Remove everything: make down.
DONE
