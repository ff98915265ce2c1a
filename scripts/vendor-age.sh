#!/usr/bin/env bash
# Rebuilds static/vendor/age-encryption.js, the one third-party script the web app serves (on the
# device-key page), from the pinned npm packages, and checks it against the committed copy.
#
# `npm ci` installs exactly the versions in static/vendor/build/package-lock.json and refuses any
# tarball whose sha512 differs from the lockfile's `integrity`; esbuild (pinned there too) bundles
# age-encryption and its dependencies into one IIFE that sets the global `age`. The output is
# deterministic: the same lockfile gives the same bytes, whose SHA-256 is in static/vendor/SHA256SUMS.
#
#   scripts/vendor-age.sh          rebuild into a temporary directory and compare (exit 1 on a difference)
#   scripts/vendor-age.sh --write  rebuild and overwrite the committed file and its checksum
set -euo pipefail
cd "$(dirname "$0")/.."

build=$(mktemp -d /tmp/schuilnaam-vendor.XXXXXX)
trap 'rm -rf "$build"' EXIT
cp static/vendor/build/package.json static/vendor/build/package-lock.json static/vendor/build/entry.mjs "$build/"
(
  cd "$build"
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  # esbuild's own install script is skipped (no downloads); its JS finds the platform binary package.
  node node_modules/esbuild/bin/esbuild entry.mjs --bundle --format=iife --global-name=age \
    --minify --legal-comments=eof --target=es2022 --outfile=age-encryption.js --log-level=warning
)
built_sum=$(sha256sum "$build/age-encryption.js" | cut -d' ' -f1)
if [ "${1:-}" = "--write" ]; then
  cp "$build/age-encryption.js" static/vendor/age-encryption.js
  echo "$built_sum  age-encryption.js" > static/vendor/SHA256SUMS
  echo "vendor-age: wrote static/vendor/age-encryption.js ($built_sum)"
  exit 0
fi
committed_sum=$(cut -d' ' -f1 static/vendor/SHA256SUMS)
file_sum=$(sha256sum static/vendor/age-encryption.js | cut -d' ' -f1)
if [ "$built_sum" != "$committed_sum" ] || [ "$file_sum" != "$committed_sum" ]; then
  echo "vendor-age: MISMATCH: built $built_sum, SHA256SUMS $committed_sum, committed file $file_sum" >&2
  exit 1
fi
echo "vendor-age: static/vendor/age-encryption.js is the reproducible build of the pinned packages ($built_sum)"
