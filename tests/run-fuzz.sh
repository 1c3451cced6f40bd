#!/bin/sh
# Builds the libFuzzer targets with clang (build-fuzz/, CODEJAIL_FUZZ=ON) and
# fuzzes each one, starting from its seed corpus.
#
#   tests/run-fuzz.sh                      every target for 60 s
#   tests/run-fuzz.sh fuzz_payload -runs=100000
#   FUZZ_SECONDS=600 tests/run-fuzz.sh     longer
#
# Arguments that start with '-' go to libFuzzer (they replace the time limit);
# others pick targets. New inputs that add coverage go to build-fuzz/corpus/
# <target>, not into the seed corpus: copy the interesting ones to tests/corpus
# by hand. A crash leaves crash-* (or leak-*, timeout-*) in the current
# directory; replay it with ./build-fuzz/tests/<target> FILE.
set -eu

# One line per target: name and seed corpus.
TARGETS='
fuzz_payload tests/corpus/payload
fuzz_http tests/corpus/http
'

cd "$(dirname "$0")/.."
BUILD=${FUZZ_BUILD:-build-fuzz}
want='' flags=''
for arg in "$@"; do
    case $arg in
    -*) flags="$flags $arg" ;;
    *) want="$want $arg" ;;
    esac
done
[ -n "$flags" ] || flags="-max_total_time=${FUZZ_SECONDS:-60}"

CC=clang cmake -S . -B "$BUILD" -DCODEJAIL_FUZZ=ON >/dev/null
echo "$TARGETS" | while read -r name corpus; do
    [ -n "$name" ] || continue
    case " $want " in
    "  " | *" $name "*) ;;
    *) continue ;;
    esac
    cmake --build "$BUILD" --target "$name" -j "$(nproc)"
    mkdir -p "$BUILD/corpus/$name"
    echo "== $name$flags"
    # shellcheck disable=SC2086 # flags are separate words on purpose
    "$BUILD/tests/$name" $flags "$BUILD/corpus/$name" "$corpus"
done
