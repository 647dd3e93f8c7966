#!/usr/bin/env bash
# Installs the Debian packages the tests and `make dev` run for real: redis-server (+ redis-tools for the
# cluster), haproxy, chromium, openssl; for the real node's images (scripts/node/images.ts) gcc with the
# static libc (the pause binary) and containerd + runc to import and run them; for the real node itself
# (scripts/node/node.ts) the CNI plugins, iptables and nftables (kube-proxy, pod isolation), iproute2 and
# conntrack; for the non-JavaScript stock-client example (examples/python) Debian's python-socketio and what
# its client needs (python3-engineio, python3-websocket, python3-requests). Idempotent: installs only what is missing.
set -euo pipefail

declare -A wanted=([redis-server]=redis-server [redis-cli]=redis-tools [haproxy]=haproxy [chromium]=chromium [openssl]=openssl [shellcheck]=shellcheck
  [gcc]=gcc [containerd]=containerd [runc]=runc
  [iptables]=iptables [nft]=nftables [ip]=iproute2 [conntrack]=conntrack [ss]=iproute2)
missing=()
for bin in "${!wanted[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || missing+=("${wanted[$bin]}")
done
# gcc -static needs libc.a, which is in libc6-dev (gcc only recommends it).
[[ "$(gcc -print-file-name=libc.a 2>/dev/null)" == /* ]] || missing+=(libc6-dev)
# Python modules, not commands: examples/python/stock_client.py runs on Debian's /usr/bin/python3.
for module in socketio:python3-socketio engineio:python3-engineio websocket:python3-websocket requests:python3-requests; do
  /usr/bin/python3 -c "import ${module%%:*}" >/dev/null 2>&1 || missing+=("${module#*:}")
done
# The node's CNI plugins are files, not commands on PATH.
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
[ ${#missing[@]} -eq 0 ] && { echo "system packages: all present"; exit 0; }

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "system packages: installing ${missing[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "system packages: installed ${missing[*]}"
