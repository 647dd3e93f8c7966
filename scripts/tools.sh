#!/usr/bin/env bash
# Installs the pinned tools the control-plane tests need into LOCALBIN (default ./bin), kubebuilder-style:
# everything comes from the Go module proxy, nothing from release downloads.
#
#   helm                      go install helm.sh/helm/v3/cmd/helm@HELM_VERSION
#   kube-apiserver,
#   kube-controller-manager,
#   kubectl                   go build from k8s.io/kubernetes@KUBERNETES_VERSION via tools/kubernetes/go.mod
#   etcd                      go build from go.etcd.io/etcd/server/v3@ETCD_VERSION via tools/etcd/go.mod
#   crds/                     Gateway API experimental-channel CRDs and KEDA CRDs, copied from their Go modules
#   crds-optional/            Envoy Gateway and Prometheus Operator CRDs, for the tests that install them
#   coredns, metrics-server   go install ...@COREDNS_VERSION / @METRICS_SERVER_VERSION with CGO_ENABLED=0: the static
#                             binaries of the real node's cluster add-on images (scripts/node/images.ts)
#
# Each tool leaves a stamp (LOCALBIN/.stamps/<tool>@<version>); a tool whose stamp and binary exist is skipped,
# so a second run is instant. Rebuilds after a version bump reuse Go's module and build caches.
set -euo pipefail

HELM_VERSION=v3.22.0
HELM_STAMP=$HELM_VERSION-ldflags   # -ldflags: the build sets its version and default Kubernetes version (older stamps rebuild)
KUBERNETES_VERSION=v1.37.2
ETCD_VERSION=v3.7.3          # Kubernetes 1.37 is tested against etcd 3.7.0 and needs >= 3.5.24; Debian ships 3.4.
GATEWAY_API_VERSION=v1.6.1   # the version Envoy Gateway 1.9 bundles (experimental channel: sessionPersistence)
KEDA_VERSION=v2.21.0         # the CRDs the tests use and the KEDA chart `WITH_KEDA=true make up` installs (scripts/up.sh reads it here)
ENVOY_GATEWAY_VERSION=v1.9.1 # the entry's controller (`make up`); its CRDs validate the Envoy policies (crds-optional/)
PROMETHEUS_OPERATOR_VERSION=v0.85.0  # ServiceMonitor and PrometheusRule CRDs (crds-optional/)
COREDNS_VERSION=v1.14.7      # newest v1.14.x; v1.13.1 builds too (docs/real-node.md)
METRICS_SERVER_VERSION=v0.9.0
# shellcheck disable=SC2034  # read by scripts/up.sh
METRICS_SERVER_CHART_VERSION=3.13.0  # the metrics-server chart `make up` installs
# kind and its node image for `make up` (scripts/up.sh reads both; the kind workflow installs this kind). The image
# is pinned by digest as the kind release notes publish it: a bare tag can point at an image built for another kind.
# shellcheck disable=SC2034  # read by scripts/up.sh
KIND_VERSION=v0.33.0
# shellcheck disable=SC2034  # read by scripts/up.sh
KIND_NODE_IMAGE=kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOCALBIN=${1:-$ROOT/bin}
mkdir -p "$LOCALBIN"
LOCALBIN=$(cd "$LOCALBIN" && pwd)
STAMPS=$LOCALBIN/.stamps
mkdir -p "$STAMPS"

if ! command -v go >/dev/null 2>&1; then
  echo "tools.sh: 'go' is not on PATH. Install Go >= 1.26 (https://go.dev/dl/) and run 'make tools' again." >&2
  exit 1
fi

# "installed NAME VERSION FILE..." is true when the stamp and every file exist.
installed() {
  local name=$1 version=$2
  shift 2
  [[ -f "$STAMPS/$name@$version" ]] || return 1
  local file
  for file in "$@"; do [[ -e "$file" ]] || return 1; done
}

stamp() {
  local name=$1 version=$2
  rm -f "$STAMPS/$name@"*
  touch "$STAMPS/$name@$version"
}

elapsed() { echo "$(( $(date +%s) - $1 ))s"; }

# --- helm --------------------------------------------------------------------------------------------
if installed helm "$HELM_STAMP" "$LOCALBIN/helm"; then
  echo "helm $HELM_VERSION: up to date"
else
  echo "installing helm $HELM_VERSION (first build takes ~2 min)..."
  start=$(date +%s)
  # The ldflags helm's own Makefile sets: its version, and the Kubernetes version it assumes without a
  # cluster (`helm template`, `helm lint`) from its client-go minor, so charts with a kubeVersion render plainly.
  # Built into a temp dir and moved over the old binary, so a concurrent user never runs a half-written one.
  helm_gomod=$(cd "${TMPDIR:-/tmp}" && go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  k8s_minor=$(sed -n 's/^[[:space:]]*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$helm_gomod")
  [[ -n "$k8s_minor" ]] || { echo "tools.sh: cannot read helm's client-go version from $helm_gomod" >&2; exit 1; }
  helm_ldflags="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  for pkg in pkg/chartutil pkg/lint/rules; do
    helm_ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$k8s_minor"
  done
  helm_tmp=$(mktemp -d "$LOCALBIN/.helm-build.XXXXXX")
  GOBIN=$helm_tmp go install -ldflags "$helm_ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv -f "$helm_tmp/helm" "$LOCALBIN/helm"
  rmdir "$helm_tmp"
  stamp helm "$HELM_STAMP"
  echo "helm $HELM_VERSION: installed in $(elapsed "$start")"
fi

# --- CRDs from their Go modules ----------------------------------------------------------------------
# `go mod download -json` fetches one module zip through the proxy and reports where it was unpacked.
module_dir() {
  local dir
  dir=$(cd "${TMPDIR:-/tmp}" && go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  if [[ -z "$dir" || ! -d "$dir" ]]; then
    echo "tools.sh: could not download Go module $1 (is the Go module proxy reachable?)" >&2
    exit 1
  fi
  echo "$dir"
}

# copy_crds SOURCE_DIR DEST_DIR copies only CustomResourceDefinition documents (not kustomizations or policies).
copy_crds() {
  local src=$1 dest=$2 file copied=0
  rm -rf "$dest"
  mkdir -p "$dest"
  for file in "$src"/*.yaml; do
    if grep -q '^kind: CustomResourceDefinition' "$file"; then
      cp "$file" "$dest/"
      chmod u+w "$dest/$(basename "$file")"
      copied=$((copied + 1))
    fi
  done
  if (( copied == 0 )); then
    echo "tools.sh: no CRDs found in $src" >&2
    exit 1
  fi
  echo "  $copied CRDs -> ${dest#"$ROOT/"}"
}

if installed crds-gateway-api "$GATEWAY_API_VERSION" "$LOCALBIN/crds/gateway-api"; then
  echo "Gateway API $GATEWAY_API_VERSION experimental CRDs: up to date"
else
  echo "fetching Gateway API $GATEWAY_API_VERSION experimental-channel CRDs..."
  dir=$(module_dir "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION")
  copy_crds "$dir/config/crd/experimental" "$LOCALBIN/crds/gateway-api"
  stamp crds-gateway-api "$GATEWAY_API_VERSION"
fi

if installed crds-keda "$KEDA_VERSION" "$LOCALBIN/crds/keda"; then
  echo "KEDA $KEDA_VERSION CRDs: up to date"
else
  echo "fetching KEDA $KEDA_VERSION CRDs..."
  dir=$(module_dir "github.com/kedacore/keda/v2@$KEDA_VERSION")
  copy_crds "$dir/config/crd/bases" "$LOCALBIN/crds/keda"
  stamp crds-keda "$KEDA_VERSION"
fi

# CRDs some tests install on their own plane (not every control plane: the Envoy Gateway ones are large).
# LOCALBIN/crds-optional/<name>; test/cluster/platform-crds.test.ts applies them.
if installed crds-envoy-gateway "$ENVOY_GATEWAY_VERSION" "$LOCALBIN/crds-optional/envoy-gateway"; then
  echo "Envoy Gateway $ENVOY_GATEWAY_VERSION CRDs: up to date"
else
  echo "fetching Envoy Gateway $ENVOY_GATEWAY_VERSION CRDs..."
  dir=$(module_dir "github.com/envoyproxy/gateway@$ENVOY_GATEWAY_VERSION")
  copy_crds "$dir/charts/gateway-helm/charts/crds/crds/generated" "$LOCALBIN/crds-optional/envoy-gateway"
  stamp crds-envoy-gateway "$ENVOY_GATEWAY_VERSION"
fi

if installed crds-prometheus-operator "$PROMETHEUS_OPERATOR_VERSION" "$LOCALBIN/crds-optional/prometheus-operator"; then
  echo "Prometheus Operator $PROMETHEUS_OPERATOR_VERSION CRDs: up to date"
else
  echo "fetching Prometheus Operator $PROMETHEUS_OPERATOR_VERSION CRDs (ServiceMonitor, PrometheusRule)..."
  dir=$(module_dir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")
  mkdir -p "$LOCALBIN/crds-optional/.prometheus-operator"
  rm -f "$LOCALBIN/crds-optional/.prometheus-operator/"*
  cp "$dir/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" \
     "$dir/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml" "$LOCALBIN/crds-optional/.prometheus-operator/"
  chmod u+w "$LOCALBIN/crds-optional/.prometheus-operator/"*
  copy_crds "$LOCALBIN/crds-optional/.prometheus-operator" "$LOCALBIN/crds-optional/prometheus-operator"
  rm -rf "$LOCALBIN/crds-optional/.prometheus-operator"
  stamp crds-prometheus-operator "$PROMETHEUS_OPERATOR_VERSION"
fi

# --- etcd ----------------------------------------------------------------------------------------------
# etcd's own go.mod replaces its sibling modules with relative paths, so `go install ...@version` refuses
# it; tools/etcd/go.mod requires the published modules instead.
if installed etcd "$ETCD_VERSION" "$LOCALBIN/etcd"; then
  echo "etcd $ETCD_VERSION: up to date"
else
  echo "building etcd $ETCD_VERSION (first build takes ~1 min)..."
  start=$(date +%s)
  (
    cd "$ROOT/tools/etcd"
    if ! grep -qE "^(require |[[:space:]]+)go.etcd.io/etcd/server/v3 $ETCD_VERSION( |\$)" go.mod; then
      go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
      go mod tidy
    fi
    go build -o "$LOCALBIN/etcd" go.etcd.io/etcd/server/v3
  )
  stamp etcd "$ETCD_VERSION"
  echo "etcd $ETCD_VERSION: built in $(elapsed "$start")"
fi

# --- Kubernetes ----------------------------------------------------------------------------------------
# k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/client-go, ...) at v0.0.0 and replaces
# them with ./staging paths. tools/kubernetes/go.mod replaces each with the published v0.<minor>.<patch>;
# the list is generated from the kubernetes go.mod so a version bump picks up new staging modules.
write_kubernetes_gomod() {
  local gomod staging_version=${KUBERNETES_VERSION/#v1./v0.}
  gomod=$(cd "${TMPDIR:-/tmp}" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" \
    | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  {
    echo "// Generated by scripts/tools.sh from the go.mod of k8s.io/kubernetes $KUBERNETES_VERSION. Do not edit."
    echo "module realtime-gateway-blueprint/tools/kubernetes"
    echo
    echo "go 1.26.0"
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo
    echo "replace ("
    sed -n '/^replace (/,/^)/p' "$gomod" | awk -v v="$staging_version" '$2 == "=>" && $3 ~ /^\.\/staging\// { printf "\t%s => %s %s\n", $1, $1, v }'
    echo ")"
  } > go.mod
  go get -tool "${KUBE_BINARIES[@]/#/k8s.io/kubernetes/cmd/}"
  go mod tidy
}

# kubelet, kube-scheduler and kube-proxy run the real node (`make node-up`, REAL-NODE in docs/real-node.md).
KUBE_BINARIES=(kube-apiserver kube-controller-manager kubectl kubelet kube-scheduler kube-proxy)
if installed kubernetes "$KUBERNETES_VERSION" "${KUBE_BINARIES[@]/#/$LOCALBIN/}"; then
  echo "${KUBE_BINARIES[*]} $KUBERNETES_VERSION: up to date"
else
  echo "building ${KUBE_BINARIES[*]} $KUBERNETES_VERSION (first build takes ~10 min on 2 cores; later builds reuse the Go cache)..."
  start=$(date +%s)
  (
    cd "$ROOT/tools/kubernetes"
    if ! grep -qE "^(require |[[:space:]]+)k8s.io/kubernetes $KUBERNETES_VERSION( |\$)" go.mod; then
      write_kubernetes_gomod
    fi
    minor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)
    # The version the binaries report (kubectl version, /version); Kubernetes' own build sets the same.
    ldflags=""
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
    done
    go build -ldflags "$ldflags" -o "$LOCALBIN/" "${KUBE_BINARIES[@]/#/k8s.io/kubernetes/cmd/}"
  )
  stamp kubernetes "$KUBERNETES_VERSION"
  echo "${KUBE_BINARIES[*]} $KUBERNETES_VERSION: built in $(elapsed "$start")"
fi

# --- cluster add-ons of the real node -----------------------------------------------------------------
# Static binaries (CGO_ENABLED=0) for FROM-scratch images: scripts/node/images.ts packs them with a passwd
# entry and CA certificates. -s -w as upstream's release builds; metrics-server's version as its Makefile sets it.
if installed coredns "$COREDNS_VERSION" "$LOCALBIN/coredns"; then
  echo "coredns $COREDNS_VERSION: up to date"
else
  echo "building coredns $COREDNS_VERSION (first build takes 2-8 min)..."
  start=$(date +%s)
  if ! CGO_ENABLED=0 GOBIN=$LOCALBIN go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"; then
    echo "tools.sh: building coredns $COREDNS_VERSION (go install github.com/coredns/coredns@$COREDNS_VERSION) failed; see above" >&2
    exit 1
  fi
  stamp coredns "$COREDNS_VERSION"
  echo "coredns $COREDNS_VERSION: built in $(elapsed "$start")"
fi

if installed metrics-server "$METRICS_SERVER_VERSION" "$LOCALBIN/metrics-server"; then
  echo "metrics-server $METRICS_SERVER_VERSION: up to date"
else
  echo "building metrics-server $METRICS_SERVER_VERSION (first build takes ~2 min)..."
  start=$(date +%s)
  if ! CGO_ENABLED=0 GOBIN=$LOCALBIN go install -trimpath \
    -ldflags "-s -w -X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION" \
    "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION"; then
    echo "tools.sh: building metrics-server $METRICS_SERVER_VERSION (go install sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION) failed; see above" >&2
    exit 1
  fi
  stamp metrics-server "$METRICS_SERVER_VERSION"
  echo "metrics-server $METRICS_SERVER_VERSION: built in $(elapsed "$start")"
fi
