#!/usr/bin/env bash
# The `blockcast` binary under real signals and hostile files (the fault table's shell half;
# tests/test_faults.cpp has the rest): SIGINT/SIGTERM/SIGHUP mid-run leave the output as it
# was and no temporary behind; SIGKILL's leftovers are cleaned by the next run on the same
# output and nothing else is; an input truncated under the run, a FIFO, a 30,000-byte tensor
# name and escape sequences in names end in a one-line error or a clean run, never a crash.
# Usage: fault_test.sh BLOCKCAST
set -uo pipefail
bin=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# st_file PATH DTYPE ROWS COLS NAME... : a safetensors file of ROWS x COLS zero tensors
# (DTYPE BF16 or F32), one per NAME
st_file() {
  local path=$1 dtype=$2 rows=$3 cols=$4 header="" offset=0 name size
  shift 4
  case $dtype in BF16) size=$((rows * cols * 2)) ;; F32) size=$((rows * cols * 4)) ;; esac
  for name in "$@"; do
    header+="${header:+,}\"$name\":{\"dtype\":\"$dtype\",\"shape\":[$rows,$cols],\"data_offsets\":[$offset,$((offset + size))]}"
    offset=$((offset + size))
  done
  header="{$header}"
  while [ $(( ${#header} % 8 )) -ne 0 ]; do header+=" "; done
  local n=${#header} i
  { for i in 0 1 2 3 4 5 6 7; do printf "\\$(printf '%03o' $(( (n >> (8 * i)) & 255 )))"; done
    printf '%s' "$header"
    head -c "$offset" /dev/zero; } >"$path"
}
# a sharded model of 4 shards (one tensor each) and calibration inputs for GPTQ (slow enough
# to be interrupted: a 2048 x 2048 GPTQ per shard)
mkdir -p "$dir/in"
for s in 1 2 3 4; do st_file "$dir/in/s$s.safetensors" BF16 2048 2048 "w$s"; done
printf '{"weight_map": {"w1": "s1.safetensors", "w2": "s2.safetensors", "w3": "s3.safetensors", "w4": "s4.safetensors"}}' \
  >"$dir/in/model.safetensors.index.json"
st_file "$dir/calib.safetensors" F32 16 2048 w1.inputs w2.inputs w3.inputs w4.inputs

snapshot() { (cd "$1" && find . -mindepth 1 | sort | while read -r f; do
  if [ -d "$f" ]; then echo "dir $f"; else echo "$(md5sum <"$f" | cut -c1-32) $f"; fi; done); }

# starts a slow run into $dir/out (its pid in $pid) and waits until its first shard is staged
start_slow_run() {
  "$bin" quantize "$dir/in/model.safetensors.index.json" -o "$dir/out/model.safetensors.index.json" \
    --method gptq --calibration "$dir/calib.safetensors" --threads 1 >/dev/null 2>"$dir/stderr" &
  pid=$!
  local waited=0
  until compgen -G "$dir/out/.blockcast-staging.*/new.0" >/dev/null; do
    sleep 0.05
    waited=$((waited + 1))
    if [ $waited -gt 1200 ] || ! kill -0 $pid 2>/dev/null; then break; fi
  done
}

mkdir -p "$dir/out"
"$bin" quantize "$dir/in/model.safetensors.index.json" -o "$dir/out/model.safetensors.index.json" --format mxfp8_e4m3 >/dev/null ||
  fail "the first (RTN) run failed"
echo "someone else's" >"$dir/out/model.safetensors.index.json.partial"
before=$(snapshot "$dir/out")

for sig in INT TERM HUP; do
  start_slow_run
  kill -s $sig "$pid"
  wait "$pid"
  status=$?
  expected=$((128 + $(kill -l $sig)))
  [ $status -eq $expected ] || fail "SIG$sig: exit status $status, expected $expected (killed by the signal)"
  [ "$(snapshot "$dir/out")" = "$before" ] || fail "SIG$sig left the output changed:"$'\n'"$(snapshot "$dir/out")"
done

# SIGKILL: no handler runs; the next run on the same output recovers, and touches nothing else
mkdir -p "$dir/out/.blockcast-staging.model.safetensors.index.json.1.2"
echo "not blockcast's" >"$dir/out/.blockcast-staging.model.safetensors.index.json.1.2/owner"
start_slow_run
kill -s KILL "$pid"
wait "$pid" 2>/dev/null
[ "$(find "$dir/out" -maxdepth 1 -name '.blockcast-staging.*' | wc -l)" -eq 2 ] || fail "SIGKILL: expected its staging directory to stay"
"$bin" quantize "$dir/in/model.safetensors.index.json" -o "$dir/out/model.safetensors.index.json" --format mxfp4 >/dev/null ||
  fail "the run after SIGKILL failed"
left=$(cd "$dir/out" && ls -A | sort | tr '\n' ' ')
[ "$left" = ".blockcast-staging.model.safetensors.index.json.1.2 model.safetensors.index.json model.safetensors.index.json.partial s1.safetensors s2.safetensors s3.safetensors s4.safetensors " ] ||
  fail "after SIGKILL and a new run the output directory holds: $left"

# an input truncated by another process during the run: a one-line error naming it, exit 1,
# no output (GPTQ on tensor a takes long enough that b is read after the truncation)
st_file "$dir/big.safetensors" BF16 2048 2048 a b
st_file "$dir/calib2.safetensors" F32 16 2048 a.inputs b.inputs
"$bin" quantize "$dir/big.safetensors" -o "$dir/big-q.safetensors" --method gptq --calibration "$dir/calib2.safetensors" \
  --threads 1 >/dev/null 2>"$dir/stderr" &
pid=$!
until compgen -G "$dir/.blockcast-staging.big-q.safetensors.*/new.0.tmp.*" >/dev/null || ! kill -0 $pid 2>/dev/null; do sleep 0.02; done
truncate -s 100 "$dir/big.safetensors"
wait $pid
status=$?
[ $status -eq 1 ] || fail "truncated input: exit status $status, expected 1: $(cat "$dir/stderr")"
[ "$(wc -l <"$dir/stderr")" -eq 1 ] || fail "truncated input: expected one line on stderr: $(cat "$dir/stderr")"
grep -Eq 'big.safetensors: .*(truncated|changed)' "$dir/stderr" || fail "truncated input: $(cat "$dir/stderr")"
[ -z "$(ls -A "$dir" | grep -E 'big-q|blockcast-staging')" ] || fail "truncated input: left $(ls -A "$dir")"

# a FIFO as the input: refused at once, not waited on
mkfifo "$dir/fifo.safetensors"
timeout 10 "$bin" quantize "$dir/fifo.safetensors" -o "$dir/f.safetensors" >/dev/null 2>"$dir/stderr"
status=$?
[ $status -eq 1 ] && grep -q 'not a regular file' "$dir/stderr" || fail "FIFO input: exit $status: $(cat "$dir/stderr")"

# a tensor name of 30,000 bytes (std::regex recursion crashed here), and escape sequences
long=$(head -c 30000 /dev/zero | tr '\0' a)
esc=$'evil\e[2J\nline'
for name in "$long" "$esc"; do
  json="{\"$(printf '%s' "$name" | sed 's/\x1b/\\u001b/g; s/$/\\n/' | tr -d '\n' | sed 's/\\n$//')\":{\"dtype\":\"F32\",\"shape\":[2,32],\"data_offsets\":[0,256]}}"
  while [ $(( ${#json} % 8 )) -ne 0 ]; do json+=" "; done
  { n=${#json}; for i in 0 1 2 3 4 5 6 7; do printf "\\$(printf '%03o' $(( (n >> (8 * i)) & 255 )))"; done
    printf '%s' "$json"; head -c 256 /dev/zero; } >"$dir/name.safetensors"
  "$bin" quantize "$dir/name.safetensors" -o "$dir/name-q.safetensors" >"$dir/stdout" 2>&1
  status=$?
  [ $status -eq 0 ] || fail "tensor name of ${#name} bytes: exit $status: $(head -c 300 "$dir/stdout")"
  "$bin" quantize "$dir/name.safetensors" -o "$dir/name-q.safetensors" --include 'a+' --exclude 'x' >"$dir/stdout" 2>"$dir/stderr"
  status=$?
  { [ $status -eq 0 ] || [ $status -eq 1 ]; } || fail "tensor name of ${#name} bytes with --include: exit $status"
  "$bin" inspect "$dir/name-q.safetensors" >>"$dir/stdout" 2>&1
  if grep -q $'\e' "$dir/stdout" "$dir/stderr"; then fail "an escape sequence from a tensor name reached the terminal"; fi
  [ "$(wc -l <"$dir/stderr")" -le 1 ] || fail "an error about a tensor name took more than one line"
done

[ "$failures" -eq 0 ] && echo "fault_test: all checks passed"
exit $((failures > 0))
