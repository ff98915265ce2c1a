#!/usr/bin/env bash
# SMTP ingest benchmark. Postfix's smtp-source (SESSIONS sessions, MESSAGES messages of SIZE bytes,
# connections kept open with -d) against:
#   1. the relay: authenticates each sender (SPF and DMARC against a DNS server on loopback), seals
#      each message with age to the worker's key and commits it (SQLite, fsync) before its 250;
#   2. a local Postfix whose delivery is discard: (its smtpd writes and fsyncs a queue file before 250).
# Prints both rates and the ratio relay / Postfix. Traffic stays on loopback; everything it starts is
# stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

SESSIONS=${SESSIONS:-20}
MESSAGES=${MESSAGES:-5000}
SIZE=${SIZE:-4096}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
# smtp-source, postfix and dnsmasq live in /usr/sbin, which is not on every account's PATH.
export PATH="$PATH:/usr/sbin:/sbin"
missing=()
command -v smtp-source >/dev/null || missing+=(postfix)
command -v dnsmasq >/dev/null || missing+=(dnsmasq-base)
command -v sqlite3 >/dev/null || missing+=(sqlite3)
if [ ${#missing[@]} -gt 0 ]; then
  echo "postfix postfix/main_mailer_type select No configuration" | as_root debconf-set-selections
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cargo build --release --quiet
relay_bin=$PWD/target/release/schuilnaam

work=$(mktemp -d /tmp/schuilnaam-bench.XXXXXX)
# Postfix's own account must reach its directories under here; the relay's stay owner-only.
chmod 755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$work/postfix/etc/main.cf" ] && as_root postfix -c "$work/postfix/etc" stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 did not open" >&2; return 1; }
now() { date +%s.%N; }

# --- DNS: the sender's domain allows 127.0.0.1 (SPF) and publishes DMARC p=reject ---------------
dns_port=$(free_port)
dnsmasq --keep-in-foreground --no-resolv --no-hosts --no-poll --bind-interfaces \
  --listen-address=127.0.0.1 --port="$dns_port" --local=/test/ --local-ttl=300 --pid-file= \
  --user=root --log-facility=- \
  "--txt-record=bench.test,v=spf1 ip4:127.0.0.1 -all" \
  "--txt-record=_dmarc.bench.test,v=DMARC1; p=reject" >/dev/null 2>&1 &
pids+=($!)

# --- the relay -------------------------------------------------------------------------------------
mkdir -m 700 -p "$work/relay"
smtp_port=$(free_port)
cat >"$work/relay/schuilnaam.toml" <<EOF
[relay]
domain = "relay.test"
data_dir = "$work/relay"
[database]
url = "sqlite:$work/relay/schuilnaam.db"
[crypto]
server_key = "$work/relay/server-key.txt"
scrypt_work_factor = 10
[worker_api]
listen = "127.0.0.1:0"
[partner_api]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[smtp]
listen = "127.0.0.1:$smtp_port"
hostname = "relay.test"
# smtp-source speaks plain SMTP (as a Postfix in front would after doing TLS itself).
require_tls = false
max_messages_per_minute_per_address = 1000000000
max_messages_per_minute_per_domain = 1000000000
[dns]
resolver = "127.0.0.1:$dns_port"
EOF
relay() { "$relay_bin" --config "$work/relay/schuilnaam.toml" "$@"; }
relay org add --name "Bench GI" --kind gi --domain bench.test >/dev/null
alias=$(relay --json worker add --handle bench --pseudonym Bench --phone 0612345678 \
  --email bench@example.nl | python3 -c 'import json,sys; print(json.load(sys.stdin)["alias"])')
# Started directly (not through the shell function) so that $! is the relay itself.
RUST_LOG=warn "$relay_bin" --config "$work/relay/schuilnaam.toml" serve >/dev/null 2>"$work/relay/relay.log" &
pids+=($!)
wait_port "$smtp_port"

echo "smtp-source: $SESSIONS sessions, $MESSAGES messages of $SIZE bytes"
start=$(now)
smtp-source -d -s "$SESSIONS" -m "$MESSAGES" -l "$SIZE" -f sender@bench.test -t "$alias" \
  "127.0.0.1:$smtp_port"
end=$(now)
relay_seconds=$(python3 -c "print($end - $start)")
stored=$(sqlite3 "$work/relay/schuilnaam.db" "SELECT COUNT(*) FROM messages")
if [ "$stored" != "$MESSAGES" ]; then
  echo "the relay stored $stored of $MESSAGES messages" >&2
  tail -20 "$work/relay/relay.log" >&2
  exit 1
fi

# --- Postfix, delivering to discard: ---------------------------------------------------------------
pf=$work/postfix
mkdir -p "$pf/etc" "$pf/queue" "$pf/data"
chown postfix "$pf/data"
pf_port=$(free_port)
cat >"$pf/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $pf/queue
data_directory = $pf/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix.bench.test
# Nothing is local: every recipient is relayed, and relaying is discard:.
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
default_transport = discard
local_transport = discard
relay_transport = discard
smtpd_recipient_restrictions = permit_mynetworks, reject
maillog_file = $pf/maillog
maillog_file_prefixes = $pf
EOF
sed -e "s/^smtp      inet  n       -       y       -       -       smtpd/127.0.0.1:$pf_port inet n - n - - smtpd/" \
  -e 's/^\([a-z]*\)\( *unix *[-n] *[-n] *\)y/\1\2n/' /etc/postfix/master.cf >"$pf/etc/master.cf"
as_root postfix -c "$pf/etc" check >/dev/null 2>&1 || true
if ! as_root postfix -c "$pf/etc" start >/dev/null 2>&1; then
  echo "postfix did not start; its log:" >&2
  cat "$pf/maillog" >&2 2>/dev/null || true
  exit 1
fi
wait_port "$pf_port"
start=$(now)
smtp-source -d -s "$SESSIONS" -m "$MESSAGES" -l "$SIZE" -f sender@bench.test -t user@bench.localhost \
  "127.0.0.1:$pf_port"
end=$(now)
postfix_seconds=$(python3 -c "print($end - $start)")
# Every message Postfix accepted is delivered (discarded) shortly after; count them from its log.
delivered=0
for _ in $(seq 1 600); do
  delivered=$(grep -c 'status=sent' "$pf/maillog" 2>/dev/null || true)
  [ "${delivered:-0}" -ge "$MESSAGES" ] && break
  sleep 0.1
done
if [ "${delivered:-0}" != "$MESSAGES" ]; then
  echo "postfix delivered ${delivered:-0} of $MESSAGES messages" >&2
  exit 1
fi

python3 - "$MESSAGES" "$relay_seconds" "$postfix_seconds" <<'EOF'
import sys
messages, relay, postfix = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
print(f"relay   (authenticate, seal, commit): {messages / relay:8.0f} messages/s  ({relay:.2f} s)")
print(f"postfix (queue file, discard:)      : {messages / postfix:8.0f} messages/s  ({postfix:.2f} s)")
print(f"ratio relay / postfix: {postfix / relay:.2f}")
EOF
