#!/usr/bin/env bash
# Compile the plain-JVM part of the Android bridge (tokenizer, Unicode tables, JSON, bundle reader, post-processing,
# search index) and its tests with
# javac, and run them with java: no Gradle, no Maven, no download. The Android-only classes (android/, sample/) are
# not compiled here.
#
# Usage: examples/android_bridge/run_jvm_tests.sh [--parity FILE] [--postprocess FILE] [--vocab FILE] [--bundle DIR]
#            [--unicode-tables FILE] [--sweep FILE] [--report FILE]
#   --parity          a tokenizer parity file (tinybert_edge.runtime.tokenizer_corpus.write_parity_file)
#   --postprocess     post-processing goldens (tinybert_edge.runtime.postprocess_parity.write_postprocess_parity):
#                     token offsets, NER entities, QA windows and answers, index search; the index files beside it
#   --vocab           the vocab.txt the parity files were written with (default: the bundle's)
#   --bundle          a bundle folder from `tinybert-edge package` (checksums, golden token ids, tamper checks)
#   --index           with an embedding --bundle: an index file (build_index(...).save) to check against its models
#   --unicode-tables  unicode_tables.txt to tokenize with (default: the bundle's); the JDK's data is always tried too
#   --sweep           a per-code-point sweep file (tests/integration/test_android_bridge_jvm.py writes one)
#   --report          also write the JSON summary line to this file
# Prints one JSON summary line; exit 0 when everything passed, 1 on any failure or mismatch, 2 on bad usage.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for tool in javac java; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: '$tool' not found; install a JDK 17 or newer (e.g. apt-get install openjdk-17-jdk-headless)" >&2
        exit 2
    fi
done

build=$(mktemp -d "${TMPDIR:-/tmp}/tinybert-edge-jvm.XXXXXX")
trap 'rm -rf "$build"' EXIT

find "$here/src/main/java" "$here/src/test/java" -name '*.java' -not -path '*/android/*' | sort > "$build/sources"
javac --release 17 -Xlint:all -encoding UTF-8 -d "$build/classes" @"$build/sources" >&2
mkdir -p "$build/work"
java -cp "$build/classes" dev.tinybertedge.RunJvmTests --work "$build/work" "$@"
