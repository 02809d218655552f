#!/usr/bin/env bash
# Installs the Debian packages Directrix needs and nothing else:
#   postgresql  - initdb/pg_ctl/postgres for the embedded cluster (and the `postgres` user
#                 the cluster runs as when Directrix runs as root), plus psql for the tests.
#   gcc         - a C compiler: cargo links with `cc`, and mimalloc (the server's allocator)
#                 is compiled from C; a Rust toolchain normally has it already.
#   nodejs, npm - only with --tests: the @directus/sdk compatibility test runs in Node.
# Idempotent: when everything is present it only checks and exits.
set -euo pipefail

have_server() {
  command -v pg_ctl >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null
}

missing=()
have_server || missing+=(postgresql)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
if [ "${1:-}" = "--tests" ]; then
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
fi

if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install as root: apt-get install ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# PostgreSQL refuses to run as root; as root, Directrix runs it as `postgres`.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi
