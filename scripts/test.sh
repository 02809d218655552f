#!/usr/bin/env bash
# The one command that runs every check and test (the README's test command; .ci/run runs it).
# Each test binary starts its own private PostgreSQL cluster; nothing else must be running.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --tests
# The @directus/sdk the compatibility tests drive (tests/sdk.rs) and `ws`
# (Node 20 has no global WebSocket), pinned by package-lock.json.
npm ci --prefix clients/sdk-check --no-audit --no-fund --loglevel=error
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
