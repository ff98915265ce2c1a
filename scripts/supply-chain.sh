#!/usr/bin/env bash
# Checks the dependency tree against the policy in deny.toml with cargo-deny (docs/supply-chain.md).
#
#   scripts/supply-chain.sh                licences, bans (duplicates, wildcards) and sources: needs
#                                          no network beyond the crates already fetched; what CI runs
#   scripts/supply-chain.sh --advisories   also known vulnerabilities, unmaintained and yanked crates:
#                                          fetches the RustSec advisory database (a git repository on a
#                                          code-hosting site) and the crates.io index, so it needs a
#                                          network that reaches both; CI's does not
#
# Installs the pinned cargo-deny when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DENY_VERSION=0.20.2
checks=(licenses bans sources)
case "${1:-}" in
  --advisories) checks+=(advisories) ;;
  "") ;;
  *) echo "usage: scripts/supply-chain.sh [--advisories]" >&2; exit 2 ;;
esac

if ! cargo deny --version 2>/dev/null | grep -q " $CARGO_DENY_VERSION\$"; then
  echo "supply-chain.sh: installing cargo-deny $CARGO_DENY_VERSION"
  cargo install --locked cargo-deny --version "$CARGO_DENY_VERSION"
fi

cargo deny --locked --all-features check --show-stats --hide-inclusion-graph "${checks[@]}"
echo "supply-chain: ${#checks[@]} passed, 0 failed"
