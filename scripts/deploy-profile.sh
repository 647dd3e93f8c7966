#!/usr/bin/env bash
# Deploys a synthesized profile of the blueprint on the cluster kubectl points at: the steps `make up` runs
# after it has a cluster, an entry controller and the image. The real node's tests run this same script,
# so what kind users get is exercised on every test run.
#
#   KUBE_CONTEXT   kubectl context (default: kubectl's current one; KUBECONFIG is honoured)
#   PROFILE        kind (default) or production
#   IMG            gateway image (default realtime-gateway:dev)
#   REDIS_IMG      in-cluster Redis image (default: the profile's)
#   RESTART        true: roll the Deployments so a re-loaded image with the same tag is used (make up)
#   NAMESPACE      the profile's namespace (default realtime-gateway)
#
# Needs: kubectl, node (Node 24 from node_modules/.bin, which the Makefile puts on PATH).
set -euo pipefail

PROFILE="${PROFILE:-kind}"
IMG="${IMG:-realtime-gateway:dev}"
RESTART="${RESTART:-false}"
NAMESPACE="${NAMESPACE:-realtime-gateway}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIST="$ROOT/dist/$PROFILE"
KUBECTL=(kubectl)
[ -n "${KUBE_CONTEXT:-}" ] && KUBECTL+=(--context "$KUBE_CONTEXT")

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
command -v kubectl >/dev/null 2>&1 || die "kubectl is not installed; run 'make tools' (builds it into ./bin)."
command -v node >/dev/null 2>&1 || die "node is not on PATH; run 'npm ci' (Node 24 comes from node_modules/.bin)."
"${KUBECTL[@]}" version >/dev/null 2>&1 || die "kubectl cannot reach the cluster (${KUBE_CONTEXT:-current context}); kubectl ${KUBE_CONTEXT:+--context $KUBE_CONTEXT }cluster-info says why"

say "Manifests: synthesize the $PROFILE profile into dist/$PROFILE/"
(cd "$ROOT" && IMG="$IMG" REDIS_IMG="${REDIS_IMG:-}" PROFILE_ONLY="$PROFILE" node infra/main.ts)

say "CRDs: SocketGateway (what the autoscaler scales; the scale-down controller turns it into drains), before what uses it"
"${KUBECTL[@]}" apply -f "$DIST/crds/"
"${KUBECTL[@]}" wait --for=condition=Established --timeout=60s -f "$DIST/crds/"

say "Namespace $NAMESPACE (Pod Security 'restricted' enforced: the manifests must pass it)"
# The Namespace is the first object of app.yaml; apply only it now, so the generated Secrets have a home.
"${KUBECTL[@]}" apply -f "$DIST/app.yaml" --selector "kubernetes.io/metadata.name=$NAMESPACE"

say "Generated secrets: created once, never overwritten (a re-run must not rotate passwords under running pods)"
for file in "$DIST"/generated-secrets/*.yaml; do
  [ -e "$file" ] || continue
  if "${KUBECTL[@]}" get -f "$file" >/dev/null 2>&1; then
    echo "exists: $(basename "$file" .yaml)"
  else
    "${KUBECTL[@]}" create -f "$file"
  fi
done

say "Apply the app"
"${KUBECTL[@]}" apply -f "$DIST/app.yaml"
if [ "$RESTART" = true ]; then
  # A new image with the same tag does not change the pod template; restart so the loaded image is used.
  "${KUBECTL[@]}" -n "$NAMESPACE" rollout restart deployment/realtime-gateway deployment/realtime-gateway-controller >/dev/null
fi

say "Waiting for Redis: statefulset/realtime-gateway-redis to have its pod ready"
"${KUBECTL[@]}" -n "$NAMESPACE" rollout status statefulset/realtime-gateway-redis --timeout=5m
say "Waiting for the gateway: deployment/realtime-gateway to roll out (pods ready = GET /readyz passes, backplane connected)"
"${KUBECTL[@]}" -n "$NAMESPACE" rollout status deployment/realtime-gateway --timeout=5m
say "Waiting for the scale-down controller: deployment/realtime-gateway-controller (one replica leads through a Lease)"
"${KUBECTL[@]}" -n "$NAMESPACE" rollout status deployment/realtime-gateway-controller --timeout=5m
say "Deployed: kubectl ${KUBE_CONTEXT:+--context $KUBE_CONTEXT }-n $NAMESPACE get pods"
