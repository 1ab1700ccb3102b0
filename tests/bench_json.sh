#!/bin/sh
# bench_json.sh <benchmark binary> <filter>: with --benchmark_format=json the benchmark must
# print one JSON document with runs on stdout (its roof summary goes to stderr).
set -eu
out=$("$1" --benchmark_filter="$2" --benchmark_min_time=0.01 --benchmark_format=json 2>/dev/null)
printf '%s' "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
runs = d.get("benchmarks", [])
assert runs, "no benchmark runs in the JSON output"
print(len(runs), "runs, valid JSON")
'
