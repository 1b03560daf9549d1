#!/usr/bin/env bash
# Installs the Debian packages layerwire builds with, only when one is missing.
# Sourced by test.sh, demo.sh and build-portable.sh; safe to run twice.
set -euo pipefail

LW_APT_PACKAGES=(build-essential cmake pkg-config capnproto libcapnp-dev libzstd-dev
  libxxhash-dev libcpp-httplib-dev nlohmann-json3-dev libspdlog-dev libgtest-dev libcli11-dev)

lw_install_deps() {
  local missing=()
  for pkg in "${LW_APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$pkg")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  echo "layerwire: installing missing packages: ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  lw_install_deps
fi
