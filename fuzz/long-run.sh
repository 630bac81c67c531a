#!/usr/bin/env bash
# The long, coverage-guided run (fuzz/README.md): builds the libFuzzer binary, then runs every
# target (or those named as arguments) for SECS seconds each (default 240), two at a time at
# nice 10, with the seeds of fuzz/corpus/<target> and a working corpus in OUT/<target>
# (default /tmp/mpic-fuzz). Each target's libFuzzer log is OUT/<target>.log; a crash leaves
# OUT/<target>-crash-<sha1>. Prints one summary line per target.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECS:-240}
out=${OUT:-/tmp/mpic-fuzz}
bin=$(bash fuzz/build-libfuzzer.sh)
mkdir -p "$out"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(request_json target_name caa_value caa_policy dns_persistent dns_answer redirect tls_alpn config_yaml)
fi

run() {
  local t=$1
  mkdir -p "$out/$t"
  MPIC_FUZZ_TARGET=$t nice -n 10 "$bin" "$out/$t" "fuzz/corpus/$t" \
    -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$out/$t-" -print_final_stats=1 2> "$out/$t.log" || true
}

summary() {
  local t=$1 log=$out/$1.log
  local runs rate last crashes
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+' || true)
  crashes=$(find "$out" -maxdepth 1 -name "$t-crash-*" -o -maxdepth 1 -name "$t-timeout-*" -o -maxdepth 1 -name "$t-oom-*" | wc -l)
  echo "$t runs=${runs:-?} exec/s=${rate:-?} ${last:-cov: ?} artifacts=$crashes"
}

i=0
while [ $i -lt ${#targets[@]} ]; do
  run "${targets[$i]}" &
  first=$!
  if [ $((i + 1)) -lt ${#targets[@]} ]; then
    run "${targets[$((i + 1))]}"
  fi
  wait "$first"
  i=$((i + 2))
done
for t in "${targets[@]}"; do summary "$t"; done
