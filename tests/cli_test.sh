#!/usr/bin/env bash
# The `blockcast` binary: --help for every subcommand, exit codes (0 ok, 1 file/format/shape
# error, 2 usage error) and one-line messages that say what was wrong.
# Usage: cli_test.sh BLOCKCAST MODEL.safetensors
set -uo pipefail
bin=$1 model=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
failures=0

# expect CODE REGEX -- ARGS...: runs the tool, checks its exit code and that stderr+stdout match
expect() {
  local code=$1 pattern=$2
  shift 3
  local out status
  out=$("$bin" "$@" 2>&1)
  status=$?
  if [ "$status" -ne "$code" ] || ! grep -Eq -- "$pattern" <<<"$out"; then
    echo "FAIL: blockcast $* -> exit $status (expected $code), output:"
    echo "$out" | sed 's/^/    /'
    echo "    (expected to match: $pattern)"
    failures=$((failures + 1))
  fi
}
# errors are one line on stderr
one_line_error() {
  local lines
  lines=$("$bin" "$@" 2>&1 >/dev/null | wc -l)
  if [ "$lines" -ne 1 ]; then
    echo "FAIL: blockcast $* printed $lines lines on stderr, expected one"
    failures=$((failures + 1))
  fi
}

expect 0 'formats'                     -- --help
for sub in formats quantize inspect dequantize; do
  expect 0 "Usage|usage"               -- "$sub" --help
done
expect 0 'mxfp4 +fp4_e2m1 +e8m0 +32 +4.25'   -- formats
expect 2 'A subcommand is required'     --
expect 2 'not expected: --bogus'        -- quantize "$model" -o "$dir/o.safetensors" --bogus
expect 2 'mxfp3 not in'                 -- quantize "$model" -o "$dir/o.safetensors" --format mxfp3
expect 2 'hadamard not in'              -- quantize "$model" -o "$dir/o.safetensors" --method hadamard
expect 2 'Path does not exist: /no/such.safetensors' -- quantize /no/such.safetensors -o "$dir/o.safetensors"
expect 2 'output is required'           -- quantize "$model"
expect 2 'threads'                      -- quantize "$model" -o "$dir/o.safetensors" --threads 0
expect 1 'needs --calibration'          -- quantize "$model" -o "$dir/o.safetensors" --method ed
expect 1 'no tensor .conv1.weight.inputs.' -- quantize "$model" -o "$dir/o.safetensors" --method gptq --calibration "$model"
one_line_error quantize "$model" -o "$dir/o.safetensors" --bogus
one_line_error quantize "$model" -o "$dir/o.safetensors" --method ed
one_line_error quantize $'--\nhplp'   # regression (fuzz_cli_args): an argument with a newline

printf 'not a safetensors file' >"$dir/junk.safetensors"
expect 1 "junk.safetensors: .*header"   -- inspect "$dir/junk.safetensors"

# a round trip through every format
for fmt in mxfp8_e4m3 mxfp8_e5m2 mxfp6_e3m2 mxfp6_e2m3 mxfp4 mxint8 nvfp4; do
  expect 0 "5 of 10 tensors quantized"  -- quantize "$model" -o "$dir/$fmt.safetensors" --format "$fmt" --threads 2
  expect 0 "fc1.weight +$fmt rtn +128x576" -- inspect "$dir/$fmt.safetensors"
  expect 0 "wrote"                      -- dequantize "$dir/$fmt.safetensors" -o "$dir/$fmt.bf16.safetensors"
  expect 0 "fc1.weight +BF16 +128x576"  -- inspect "$dir/$fmt.bf16.safetensors"
done
# nothing half-written is left behind by the failures above
leftovers=$(find "$dir" -name '*.tmp.*' -o -name '*.partial' -o -name 'o.safetensors')
if [ -n "$leftovers" ]; then echo "FAIL: left behind: $leftovers"; failures=$((failures + 1)); fi

[ "$failures" -eq 0 ] && echo "cli_test: all checks passed"
exit $((failures > 0))
