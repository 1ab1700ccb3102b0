#!/usr/bin/env bash
# The conversion benchmark: `blockcast quantize` (RTN) on a generated BF16 model of LLaMA-7B
# layer shapes (2.4 GB, 1.2 G values, 3 shards), to MXFP4, NVFP4 and MXFP8, with 1 and 2
# threads, next to the roof of the same run: copying the model's files (cp, then fsync, since
# the quantizer syncs its output too) and reading them (cat > /dev/null). The input is in the
# page cache for every run (read once before). Each figure is the best of 3 runs.
#
#   scripts/bench_convert.sh [RESULT.md]      (default: print the table only)
#
# Environment: BLOCKCAST_BENCH_DIR (default /tmp/blockcast-convert-bench) holds the model and
# the outputs; BLOCKCAST_BENCH_OUT_IN (default $BLOCKCAST_BENCH_DIR) is the directory in which
# a fresh directory of the script's own receives the copies and conversions (removed at the
# end), e.g. /dev/shm to take the disk out of the measurement;
# BLOCKCAST_BENCH_LAYERS (default 6) sets the model's size.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
install_deps

build=${BLOCKCAST_BUILD_DIR:-build-bench}
work=${BLOCKCAST_BENCH_DIR:-/tmp/blockcast-convert-bench}
layers=${BLOCKCAST_BENCH_LAYERS:-6}
result=${1:-}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBLOCKCAST_BUILD_TESTS=OFF \
  -DBLOCKCAST_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target blockcast blockcast_make_model >/dev/null

model="$work/model-$layers"
mkdir -p "$work"
out=$(mktemp -d "${BLOCKCAST_BENCH_OUT_IN:-$work}/blockcast-convert-out.XXXXXX")  # ours alone: emptied per run
trap 'rm -rf "$out"' EXIT
if [ ! -f "$model/model.safetensors.index.json" ]; then
  echo "generating the BF16 model in $model"
  rm -rf "$model"
  "$build/bench/blockcast_make_model" "$model" --layers "$layers" >/dev/null
fi
shards=("$model"/model-*.safetensors)
bytes=$(cat "${shards[@]}" | wc -c)  # also brings the model into the page cache

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
best() { sort -g | head -1; }
fresh_output() {  # an empty output directory per run: deleting a previous output costs time too
  rm -rf "$out"
  mkdir -p "$out"
}

copy_seconds=$(for _ in 1 2 3; do
  fresh_output
  t0=$(now)
  cp "${shards[@]}" "$out/"
  sync "$out"/*.safetensors
  calc "$(now) - $t0"; echo
done | best)
copy_nosync_seconds=$(for _ in 1 2 3; do  # the copy left in the page cache, not on disk
  fresh_output
  t0=$(now)
  cp "${shards[@]}" "$out/"
  calc "$(now) - $t0"; echo
done | best)
read_seconds=$(for _ in 1 2 3; do
  t0=$(now)
  cat "${shards[@]}" >/dev/null
  calc "$(now) - $t0"; echo
done | best)

values=$((bytes / 2))
table=$(mktemp)
trap 'rm -f "$table"; rm -rf "$out"' EXIT
{
  echo "| format | threads | seconds | G values/s | GB/s read | vs copy | peak memory |"
  echo "|---|---|---|---|---|---|---|"
  printf "| (copy: cp + fsync) | 1 | %.2f | %.2f | %.2f | 1.00x | |\n" "$copy_seconds" \
    "$(calc "$values / $copy_seconds / 1e9")" "$(calc "$bytes / $copy_seconds / 1e9")"
  printf "| (copy without fsync: cp) | 1 | %.2f | %.2f | %.2f | %.2fx | |\n" "$copy_nosync_seconds" \
    "$(calc "$values / $copy_nosync_seconds / 1e9")" "$(calc "$bytes / $copy_nosync_seconds / 1e9")" \
    "$(calc "$copy_seconds / $copy_nosync_seconds")"
  printf "| (read: cat > /dev/null) | 1 | %.2f | %.2f | %.2f | | |\n" "$read_seconds" \
    "$(calc "$values / $read_seconds / 1e9")" "$(calc "$bytes / $read_seconds / 1e9")"
} >"$table"
for format in mxfp4 nvfp4 mxfp8_e4m3; do
  for threads in 1 2; do
    runs=$(for _ in 1 2 3; do
      fresh_output
      t0=$(now)
      line=$("$build/tools/blockcast" quantize "$model/model.safetensors.index.json" \
        -o "$out/model.safetensors.index.json" --format "$format" --threads "$threads" | grep "peak memory")
      seconds=$(calc "$(now) - $t0")
      echo "$seconds $(echo "$line" | sed -E 's/.*peak memory ([0-9.]+) MiB.*/\1/')"
    done | sort -g | head -1)
    seconds=${runs% *}
    memory=${runs#* }
    printf "| %s | %d | %.2f | %.2f | %.2f | %.2fx | %s MiB |\n" "$format" "$threads" "$seconds" \
      "$(calc "$values / $seconds / 1e9")" "$(calc "$bytes / $seconds / 1e9")" \
      "$(calc "$copy_seconds / $seconds")" "$memory" >>"$table"
    echo "$format, $threads thread(s): $seconds s" >&2
  done
done

cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
header="RTN conversion of a $((bytes / 1000000)) MB BF16 model ($((values / 1000000)) M values, ${#shards[@]} shards, in the page cache; output to $(df --output=fstype "$(dirname "$out")" | tail -1) at $out) on $cpu, $(nproc) CPUs; best of 3 runs; 'vs copy' is the copy's time over the conversion's."
echo "$header"
echo
cat "$table"
if [ -n "$result" ]; then
  { echo "# Conversion benchmark ($(date -u +%Y-%m-%d))"; echo; echo "$header"; echo; cat "$table"; } >"$result"
  echo "wrote $result"
fi
