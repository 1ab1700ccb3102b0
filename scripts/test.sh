#!/usr/bin/env bash
# The whole test suite, in stages; each prints its name, its result and its time, and the run
# fails if any stage fails. It installs what it needs (Debian 12, apt-get).
#
#   main            every target (tests as C++17 and C++20, every ISA, runtime dispatch, the
#                   CLI, the demo's float accuracy, README code, consumer projects through
#                   find_package after install / add_subdirectory / -fno-exceptions / C++17)
#   sanitizers      the test suites again under AddressSanitizer + UndefinedBehaviorSanitizer
#   release-native  the test suites but the CLI one again in a Release build with -O3 -march=native
#   threads         the multi-threaded paths (tests/test_threads.cpp) under ThreadSanitizer
#   fuzz            each libFuzzer target (clang) for $BLOCKCAST_FUZZ_SECONDS (40) seconds
#
# Usage: scripts/test.sh [stage ...]     (default: every stage; `scripts/test.sh main` is the
# quick one). Build directories: build, build-asan, build-native, build-tsan, build-fuzz.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
install_deps || exit 1

jobs=$(nproc)
fuzz_seconds=${BLOCKCAST_FUZZ_SECONDS:-40}
# The suites the sanitizer and -march=native stages rebuild (a sanitizer build of every target
# would take 25 min here): the core, PTQ + I/O, threads, CLI commands, and SIMD at the widest
# ISA (VBMI). The other ISAs' SIMD suites run in main; the AVX-512BW kernels read the same
# group-bounded ranges as the VBMI ones. The CLI's argument parsing also runs under ASan+UBSan
# in the fuzz stage. The -march=native stage leaves out the CLI suite: its kernels are the
# dispatch library's, run in main, and the rest is file I/O (5 CPU-minutes of compiling for no
# new code path).
sanitizer_suites=(blockcast_tests_cxx17 blockcast_ptq_tests_cxx17 blockcast_thread_tests blockcast_cli_tests
                  blockcast_simd_tests_avx512vbmi)
native_suites=(blockcast_tests_cxx17 blockcast_ptq_tests_cxx17 blockcast_thread_tests blockcast_simd_tests_avx512vbmi)

configure() {  # configure DIR CMAKE-ARGS...
  local dir=$1
  shift
  cmake -S . -B "$dir" -G Ninja -DBLOCKCAST_BUILD_BENCHMARKS=OFF -DBLOCKCAST_BUILD_EXAMPLES=OFF "$@" >/dev/null
}

timed() {  # timed COMMAND...: runs it and prints how long it took
  local start=$SECONDS status=0
  "$@" || status=$?
  echo "   ($((SECONDS - start)) s)"
  return $status
}

# Runs test binaries of a partial build directly (one process per suite); a SIMD suite whose
# instruction set this CPU lacks is skipped (the core suite ran at the native ISA).
run_suites() {  # run_suites DIR SUITE...
  local dir=$1 t isa
  shift
  for t in "$@"; do
    isa=${t#blockcast_simd_tests_}
    if [ "$isa" != "$t" ] && ! "$dir/tests/blockcast_cpu_has" "$isa"; then
      echo "-- $t: skipped (not on this CPU)"
      continue
    fi
    echo "-- $t"
    timed "$dir/tests/$t" || return 1
  done
}

stage_main() {
  # -O2 without -g: debug information is 30% of the compile time and CI never reads it.
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" >/dev/null &&
    cmake --build build -j"$jobs" &&
    ctest --test-dir build --output-on-failure -j"$jobs"
}

stage_sanitizers() {
  # GCC 12 with sanitizers warns falsely (-Wmaybe-uninitialized) inside libstdc++'s <regex>.
  # Without use-after-scope checks: their poisoning of every inlined SIMD temporary makes GCC's
  # register allocator take 6 minutes on test_simd.cpp alone (65 s without); stack, heap and
  # global buffer overflows are still caught.
  local flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
  flags+=" -fno-sanitize-address-use-after-scope"
  # Without runtime dispatch the CLI runs the build's own kernels under the sanitizers; the
  # widest kernels run under them in the VBMI suite, and dispatch itself in main and native.
  configure build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" -DBLOCKCAST_RUNTIME_DISPATCH=OFF \
    -DCMAKE_CXX_FLAGS="$flags -Wno-maybe-uninitialized" -DCMAKE_EXE_LINKER_FLAGS="$flags" &&
    cmake --build build-asan -j"$jobs" --target "${sanitizer_suites[@]}" blockcast_cpu_has &&
    ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:handle_sigbus=0 UBSAN_OPTIONS=print_stacktrace=1 \
      run_suites build-asan "${sanitizer_suites[@]}"
}

stage_release_native() {
  # GCC 12 warns falsely (-Wmaybe-uninitialized) on _mm512_undefined_ps inside Eigen's AVX-512
  # GEMM at -O3 -march=native; blockcast's own intrinsics silence it locally (simd_arch.hpp).
  configure build-native -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_FLAGS_RELEASE="-O3 -march=native -DNDEBUG" -DCMAKE_CXX_FLAGS="-Wno-maybe-uninitialized" &&
    cmake --build build-native -j"$jobs" --target "${native_suites[@]}" blockcast_cpu_has &&
    run_suites build-native "${native_suites[@]}"
}

stage_threads() {
  local flags="-fsanitize=thread -fno-omit-frame-pointer"
  configure build-tsan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" \
    -DCMAKE_CXX_FLAGS="$flags -Wno-maybe-uninitialized -Wno-tsan" -DCMAKE_EXE_LINKER_FLAGS="$flags" &&
    cmake --build build-tsan -j"$jobs" --target blockcast_thread_tests &&
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" build-tsan/tests/blockcast_thread_tests
}

stage_fuzz() {
  install_deps clang libclang-rt-14-dev || return 1
  # the targets: every fuzz/fuzz_<name>.cpp (as fuzz/CMakeLists.txt builds them)
  local all=() source
  for source in fuzz/fuzz_*.cpp; do
    source=${source#fuzz/fuzz_}
    all+=("${source%.cpp}")
  done
  CXX=clang++ configure build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBLOCKCAST_BUILD_FUZZERS=ON \
    -DBLOCKCAST_BUILD_TESTS=OFF -DBLOCKCAST_BUILD_TOOLS=OFF -DBLOCKCAST_INSTALL=OFF &&
    cmake --build build-fuzz -j"$jobs" --target "${all[@]/#/fuzz_}" || return 1
  local work status=0 pids=() names=()
  work=$(mktemp -d)
  for name in "${all[@]}"; do
    # a copy of the seeds as the working corpus (the repository is not modified); findings go to $work
    cp -r "fuzz/corpus/$name" "$work/$name"
    (cd "$work" && "$OLDPWD/build-fuzz/fuzz/fuzz_$name" -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 \
       -print_final_stats=1 -artifact_prefix="$work/$name-" "$work/$name" >"$work/$name.log" 2>&1) &
    pids+=($!)
    names+=("$name")
    if [ ${#pids[@]} -ge "$jobs" ]; then
      wait "${pids[0]}" || { status=1; echo "fuzz_${names[0]}: FAILED"; tail -n 30 "$work/${names[0]}.log"; }
      [ $status -eq 0 ] && echo "fuzz_${names[0]}: $(grep -m1 number_of_executed_units "$work/${names[0]}.log" | awk '{print $2}') inputs, no finding"
      pids=("${pids[@]:1}")
      names=("${names[@]:1}")
    fi
  done
  for i in "${!pids[@]}"; do
    if wait "${pids[$i]}"; then
      echo "fuzz_${names[$i]}: $(grep -m1 number_of_executed_units "$work/${names[$i]}.log" | awk '{print $2}') inputs, no finding"
    else
      status=1
      echo "fuzz_${names[$i]}: FAILED"
      tail -n 30 "$work/${names[$i]}.log"
    fi
  done
  [ $status -eq 0 ] && rm -rf "$work" || echo "fuzz findings and logs kept in $work"
  return $status
}

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(main sanitizers release-native threads fuzz)
results=()
failed=0
start_all=$SECONDS
for stage in "${stages[@]}"; do
  fn="stage_${stage//-/_}"
  if ! declare -F "$fn" >/dev/null; then
    echo "scripts/test.sh: unknown stage '$stage' (stages: main sanitizers release-native threads fuzz)" >&2
    exit 2
  fi
  echo
  echo "===== stage $stage"
  start=$SECONDS
  if "$fn"; then result=passed; else result=FAILED; failed=1; fi
  line=$(printf '%-15s %-7s %4d s' "$stage" "$result" $((SECONDS - start)))
  echo "===== $line"
  results+=("$line")
done
echo
echo "===== summary ($((SECONDS - start_all)) s)"
printf '%s\n' "${results[@]}"
exit $failed
