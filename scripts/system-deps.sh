#!/usr/bin/env bash
# Installs the Debian packages the tests and `make dev` run for real: redis-server (+ redis-tools for the
# cluster), haproxy, chromium, openssl. Idempotent: installs only what is missing.
set -euo pipefail

declare -A wanted=([redis-server]=redis-server [redis-cli]=redis-tools [haproxy]=haproxy [chromium]=chromium [openssl]=openssl [shellcheck]=shellcheck)
missing=()
for bin in "${!wanted[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || missing+=("${wanted[$bin]}")
done
[ ${#missing[@]} -eq 0 ] && { echo "system packages: all present"; exit 0; }

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "system packages: installing ${missing[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "system packages: installed ${missing[*]}"
