# Shared by tests/fuzz/run and tests/fuzz/check: the targets, and their build (clang's
# libFuzzer with AddressSanitizer and UndefinedBehaviorSanitizer, every library instrumented,
# in build-fuzz/). Sourced, not run.
source "$(dirname "${BASH_SOURCE[0]}")/../../ops/lib.sh"

OMNIROUTE_FUZZ_BUILD="$OMNIROUTE_ROOT/build-fuzz"

# A target for each directory of kept inputs (ctest's fuzz_corpus checks they match checks.cpp's).
mapfile -t OMNIROUTE_FUZZ_TARGETS < <(cd "$OMNIROUTE_ROOT/tests/fuzz/corpus" && ls -d -- */ | tr -d /)

# Installs clang when missing, configures the fuzzing build once, builds the CMake targets named.
omniroute_fuzz_build() {
  OMNIROUTE_PACKAGES+=(clang)
  omniroute_install
  if [ ! -f "$OMNIROUTE_FUZZ_BUILD/build.ninja" ]; then
    omniroute_log "configuring a fuzzing build (clang, ASan, UBSan) in $OMNIROUTE_FUZZ_BUILD"
    CC=clang CXX=clang++ cmake -S "$OMNIROUTE_ROOT" -B "$OMNIROUTE_FUZZ_BUILD" -G Ninja \
      -DCMAKE_BUILD_TYPE=Debug -DOMNIROUTE_FUZZ=ON \
      -DCMAKE_CXX_FLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined" >&2
  fi
  cmake --build "$OMNIROUTE_FUZZ_BUILD" --target "$@" >&2
}
