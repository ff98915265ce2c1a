#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs the Debian packages the tests talk to (the
# reference age CLI, pg_dump, swaks as the SMTP client, dnsmasq as the DNS server, Postfix for the
# deployment behind Postfix, Chromium and chromedriver for the web app, Kannel with its fake SMSC,
# Kamailio and SIPp for the self-hosted phone path), dkimpy (in a virtual environment under target/)
# and axe-core (npm, under target/), starts a throwaway
# PostgreSQL cluster from the installed binaries, runs
# `cargo test` (every integration test on SQLite and on PostgreSQL), and stops the cluster again.
# Extra arguments go to `cargo test` (e.g. scripts/test.sh partner_api).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
# Debian installs dnsmasq in /usr/sbin, which is not on every account's PATH.
export PATH="$PATH:/usr/sbin:/sbin"

missing=()
command -v age >/dev/null || missing+=(age)
command -v pg_dump >/dev/null || missing+=(postgresql-client)
command -v swaks >/dev/null || missing+=(swaks)
command -v dnsmasq >/dev/null || missing+=(dnsmasq-base)
# The tests run their own Postfix instances; the package must not set up a system one.
command -v postfix >/dev/null || missing+=(postfix)
# The web app tests drive a headless Chromium through chromedriver; npm installs axe-core.
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v npm >/dev/null || missing+=(npm)
# The self-hosted phone path: Kannel (bearerbox, smsbox; the fake SMSC is in kannel-extras), Kamailio
# with the modules its configuration loads, SIPp (sip-tester). The tests start their own instances.
command -v bearerbox >/dev/null || missing+=(kannel)
[ -x /usr/lib/kannel/test/fakesmsc ] || missing+=(kannel-extras)
command -v kamailio >/dev/null || missing+=(kamailio)
for module in utils json extra; do
  dpkg -s "kamailio-$module-modules" >/dev/null 2>&1 || missing+=("kamailio-$module-modules")
done
command -v sipp >/dev/null || missing+=(sip-tester)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}"
  echo "postfix postfix/main_mailer_type select No configuration" | as_root debconf-set-selections
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# dkimpy, the independent DKIM verifier of tests/relay/dkim.rs, in a virtual environment of its own
# (PyNaCl for Ed25519 signatures, dnspython to ask the test DNS server).
dkimpy_env=target/test-python
if ! "$dkimpy_env/bin/python" -c 'import dkim, dns.resolver, nacl' >/dev/null 2>&1; then
  echo "test.sh: installing dkimpy into $dkimpy_env"
  rm -rf "$dkimpy_env"
  if ! python3 -m venv "$dkimpy_env" >/dev/null 2>&1; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$dkimpy_env"
    python3 -m venv "$dkimpy_env"
  fi
  "$dkimpy_env/bin/pip" install -q --disable-pip-version-check \
    dkimpy==1.1.8 dnspython==2.9.2 PyNaCl==1.6.2
fi
export SCHUILNAAM_TEST_DKIMPY="$PWD/$dkimpy_env/bin/python"

# axe-core, the accessibility checker the web app tests run in Chromium, pinned.
axe_dir=target/test-node
axe_version=4.11.0
if [ "$(node -p "require('./$axe_dir/node_modules/axe-core/package.json').version" 2>/dev/null)" != "$axe_version" ]; then
  echo "test.sh: installing axe-core $axe_version into $axe_dir"
  mkdir -p "$axe_dir"
  npm install --prefix "$axe_dir" --no-audit --no-fund --ignore-scripts --loglevel=error \
    "axe-core@$axe_version" >/dev/null
fi
export SCHUILNAAM_TEST_AXE="$PWD/$axe_dir/node_modules/axe-core/axe.min.js"

# The vendored age-encryption bundle must be the reproducible build of its pinned packages.
scripts/vendor-age.sh

# PostgreSQL refuses to run as root: when root, the cluster belongs to the postgres account.
initdb_path=$(command -v initdb || ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1)
if [ -z "$initdb_path" ]; then
  echo "test.sh: the PostgreSQL server binaries (initdb, pg_ctl) are needed: apt-get install postgresql" >&2
  exit 1
fi
pg_bin=$(dirname "$(readlink -f "$initdb_path")")
pg_root=$(mktemp -d /tmp/schuilnaam-pg.XXXXXX)
if [ "$(id -u)" = 0 ]; then
  chown postgres "$pg_root"
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

stop_cluster() {
  as_pg "$pg_bin/pg_ctl" -D "$pg_root/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$pg_root"
}
trap stop_cluster EXIT

as_pg "$pg_bin/initdb" -D "$pg_root/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
as_pg "$pg_bin/pg_ctl" -D "$pg_root/data" -l "$pg_root/postgres.log" -w \
  -o "-p $port -k $pg_root -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" \
  start >/dev/null
export SCHUILNAAM_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
echo "test.sh: PostgreSQL on 127.0.0.1:$port"

cargo test "$@"
