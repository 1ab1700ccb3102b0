#!/usr/bin/env bash
# The command-line path end to end on the demo's CNN: the demo writes the float network's
# layer inputs, `blockcast quantize` (RTN, and ED/GPTQ with --calibration) writes MXFP4
# files, `blockcast dequantize` decodes them to BF16, and the demo evaluates the decoded
# models on the 10k test images.
#  * RTN through files must give exactly the demo's in-process RTN accuracy (same bits).
#  * ED and GPTQ, calibrated from the file, must not be less accurate than RTN.
# Usage: cli_end_to_end.sh BLOCKCAST DEMO MODEL.safetensors
set -euo pipefail
bin=$1 demo=$2 model=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$demo" --float-only --calibration-out "$dir/calib.safetensors" >/dev/null 2>&1

# correct predictions of a (decoded) model, from the demo's "(9168 / 10000 test images" line
correct() { { "$demo" --model "$1" --float-only 2>/dev/null || true; } | sed -n 's/.*(\([0-9]*\) \/ 10000 test images.*/\1/p'; }

"$bin" quantize "$model" -o "$dir/rtn.safetensors" --format mxfp4 >/dev/null
"$bin" dequantize "$dir/rtn.safetensors" -o "$dir/rtn.bf16.safetensors" >/dev/null
rtn=$(correct "$dir/rtn.bf16.safetensors")
in_process=$("$demo" --formats mxfp4 --methods rtn 2>/dev/null | awk '$1 == "mxfp4" && $3 == "rtn" {sub("%", "", $4); print $4 * 100}')
echo "mxfp4 rtn: $rtn correct through the CLI's files, $in_process in the demo"
[ "$rtn" = "$in_process" ]

for method in ed gptq; do
  "$bin" quantize "$model" -o "$dir/$method.safetensors" --format mxfp4 --method "$method" \
    --calibration "$dir/calib.safetensors" >/dev/null
  "$bin" inspect "$dir/$method.safetensors" | grep -q "10 tensors (5 quantized)"
  "$bin" dequantize "$dir/$method.safetensors" -o "$dir/$method.bf16.safetensors" >/dev/null
  n=$(correct "$dir/$method.bf16.safetensors")
  echo "mxfp4 $method: $n correct through the CLI's files (rtn: $rtn)"
  [ "$n" -ge "$rtn" ]
done
