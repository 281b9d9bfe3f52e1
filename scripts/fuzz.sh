#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/) for a bounded time on its committed corpus; fails on
# any crash, leaving the input in fuzz/artifacts/TARGET/. Usage: scripts/fuzz.sh [SECONDS]
# (per target, default 20). Needs the nightly toolchain; installs cargo-fuzz when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
secs="${1:-20}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
  echo "==> cargo-fuzz installed in ${SECONDS}s"
fi
targets=(agent_frames proxy_request gateway_request gateway_connection berth_toml git_checks)
# No sanitizer: the code is safe Rust, a panic is what is looked for, and the build is
# minutes shorter (ASan would instrument every dependency).
echo "==> building the fuzz targets"
built=$SECONDS
(cd fuzz && cargo +nightly fuzz build -s none)
echo "==> fuzz targets built in $((SECONDS - built))s"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t"
  echo "==> fuzzing $t for ${secs}s"
  # New inputs go to the scratch directory; the committed corpus is only read.
  status=0
  (cd fuzz && cargo +nightly fuzz run -s none "$t" "$scratch/$t" "corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1) \
    > "$scratch/$t.log" 2>&1 || status=$?
  grep -E "^stat::number_of_executed_runs|^Done|panicked|SUMMARY|ERROR" "$scratch/$t.log" || true
  if [ "$status" != 0 ] || [ -n "$(ls -A "fuzz/artifacts/$t" 2>/dev/null)" ]; then
    tail -40 "$scratch/$t.log" >&2
    echo "fuzz target $t failed (exit $status): see fuzz/artifacts/$t/" >&2
    exit 1
  fi
done
echo "==> fuzzing: no crash in ${#targets[@]} targets"
