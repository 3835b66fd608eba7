#!/usr/bin/env bash
# Installs what building, testing and the local stack need, and only what is missing: Debian
# packages (one apt-get update, one apt-get install) and dynalite from npm into a cache directory
# outside the checkout. Idempotent: a second run installs nothing and takes well under a second.
#
#   deploy/local/install-deps.sh            everything
#   MAILSYNC_CACHE_DIR=/path ...            where npm packages go (default /var/cache/mailsync,
#                                           or ~/.cache/mailsync when not root)
set -euo pipefail

packages=(
  # build
  cmake ninja-build g++ pkg-config clang-format clang-tidy git
  libpqxx-dev libpq-dev libcurl4-openssl-dev libssl-dev nlohmann-json3-dev libspdlog-dev
  libfmt-dev libboost-program-options-dev prometheus-cpp-dev libcivetweb-dev libgtest-dev
  libgmock-dev libbenchmark-dev
  # local stack
  postgresql postgresql-contrib pgbouncer dovecot-imapd openssl python3 nodejs npm procps
  # peers for bench/
  isync
  # checks of deploy/ (tests/deploy_check.sh); prometheus for promtool (its daemon is not needed)
  yamllint systemd docker-compose prometheus
  # the status page's browser test (headless, driven over --remote-debugging-pipe) and the demo's
  # screenshot
  chromium
)

missing=()
for package in "${packages[@]}"; do
  # npm is skipped when node and npm already work (e.g. a NodeSource install)
  if [[ $package == npm || $package == nodejs ]] && command -v node >/dev/null && command -v npm >/dev/null; then
    continue
  fi
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$package")
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  sudo=""
  [[ $(id -u) == 0 ]] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ $(id -u) == 0 ]]; then
  cache=${MAILSYNC_CACHE_DIR:-/var/cache/mailsync}
else
  cache=${MAILSYNC_CACHE_DIR:-$HOME/.cache/mailsync}
fi
if [[ ! -x $cache/npm/node_modules/.bin/dynalite ]]; then
  echo "install-deps: installing dynalite@4.0.0 into $cache/npm" >&2
  mkdir -p "$cache/npm"
  npm install --silent --no-audit --no-fund --prefix "$cache/npm" dynalite@4.0.0 >/dev/null
fi
