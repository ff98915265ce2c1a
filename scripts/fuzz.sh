#!/usr/bin/env bash
# Fuzzes the parsers of untrusted input with cargo-fuzz (libFuzzer) on the stable toolchain, without a
# sanitizer (-s none: the sanitizers need a nightly compiler; see docs/fuzzing.md).
#
#   scripts/fuzz.sh --ci                 every target for FUZZ_SECONDS (9) on a scratch copy of the
#                                        committed seeds; what CI runs after the tests
#   scripts/fuzz.sh [--seconds N] [TARGET...]
#                                        the long run: each target (all by default) for N seconds
#                                        (default 3600), growing fuzz/corpus/TARGET (not to be
#                                        committed whole: see docs/fuzzing.md)
#   scripts/fuzz.sh --build              only build the targets
#
# A crash, panic, timeout or out-of-memory input fails the run; its reproducer is kept in
# fuzz/artifacts/TARGET/ and printed in base64, and `cargo fuzz run TARGET FILE` replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
mode=long
seconds=3600
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --ci) mode=ci ;;
    --build) mode=build ;;
    --seconds) seconds="$2"; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1") ;;
  esac
  shift
done
[ "$mode" = ci ] && seconds="${FUZZ_SECONDS:-9}"

if ! command -v c++ >/dev/null; then
  # libfuzzer-sys compiles libFuzzer (C++) from source.
  echo "fuzz.sh: installing g++"
  as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null
fi
if ! cargo fuzz --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION\$"; then
  echo "fuzz.sh: installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi

start=$(date +%s)
cargo fuzz build -s none
echo "fuzz.sh: built ${#targets[@]} targets in $(($(date +%s) - start)) s"
bin="fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release"
[ "$mode" = build ] && exit 0

dict_for() {
  case "$1" in
    inspect|bounce_classify) echo fuzz/dict/mime.dict ;;
    sanitise_pdf) echo fuzz/dict/pdf.dict ;;
    sanitise_office) echo fuzz/dict/office.dict ;;
  esac
}

passed=0
failed=()
for target in "${targets[@]}"; do
  artifacts="fuzz/artifacts/$target/"
  mkdir -p "$artifacts"
  corpus=(fuzz/corpus/"$target")
  if [ "$mode" = ci ]; then
    # New inputs go to a scratch folder; the committed seeds are only read.
    scratch=$(mktemp -d)
    corpus=("$scratch" fuzz/corpus/"$target")
  fi
  options=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
           -artifact_prefix="$artifacts")
  dict=$(dict_for "$target")
  [ -n "$dict" ] && options+=(-dict="$dict")
  echo "fuzz.sh: $target for $seconds s"
  log=$(mktemp)
  stamp=$(mktemp)
  # The binary itself (built above): `cargo fuzz run` would check the build again for every target.
  if "$bin/$target" "${options[@]}" "${corpus[@]}" >"$log" 2>&1; then
    passed=$((passed + 1))
    grep -E '^stat::number_of_executed_units|^#[0-9]+ *DONE' "$log" | sed "s/^/fuzz.sh: $target: /" || true
  else
    failed+=("$target")
    tail -60 "$log"
    find "$artifacts" -type f -newer "$stamp" | while read -r crash; do
      echo "fuzz.sh: $target: reproducer $crash (base64):"
      base64 -w0 "$crash"; echo
    done
  fi
  rm -f "$log" "$stamp"
  [ "$mode" = ci ] && rm -rf "$scratch"
done

echo "fuzz.sh: ${#targets[@]} targets in $(($(date +%s) - start)) s"
echo "fuzz: $passed passed, ${#failed[@]} failed"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: failed: ${failed[*]} (reproducers in fuzz/artifacts/; see docs/fuzzing.md)" >&2
  exit 1
fi
