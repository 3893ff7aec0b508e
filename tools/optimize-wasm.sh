#!/usr/bin/env bash
# Optimises a built module in place with binaryen's wasm-opt, so the file the tests and the
# benchmark load is the file that ships: -Oz (13% smaller than cargo's output, no slower
# through Envoy) without inlining functions into their only caller (`-ocimfs 0`): binaryen's
# default inlines them at any size, and V8 compiling the giant functions that makes left
# Envoy 50 MiB larger (233 vs 181 MiB resident; docs/performance.md). Cargo puts its own output back on
# every build (a hard link to deps/), so the optimised module is kept beside it
# (`.optimized.wasm`, with the hashes of its input and output in `.optimized`) and put back
# when cargo's output has not changed, instead of optimising again (~20 s).
set -euo pipefail
wasm="$1"
stamp="$wasm.optimized"
cache="${wasm%.wasm}.optimized.wasm"
command -v wasm-opt >/dev/null || {
  echo "make wasm ships the module optimised by wasm-opt (binaryen): tools/setup.sh installs it" >&2
  exit 1
}
sum() { sha256sum "$1" | cut -d' ' -f1; }
now=$(sum "$wasm")
if [ -f "$stamp" ] && [ -f "$cache" ]; then
  read -r input output <"$stamp"
  [ "$now" = "$output" ] && exit 0
  if [ "$now" = "$input" ] && [ "$(sum "$cache")" = "$output" ]; then
    cp "$cache" "$wasm.tmp" && mv -f "$wasm.tmp" "$wasm"
    exit 0
  fi
fi
before=$(stat -c %s "$wasm")
# The features rustc enables for wasm32-wasip1 (a module stripped of its target_features
# section does not say them); nothing beyond what the input uses is introduced.
wasm-opt -Oz --one-caller-inline-max-function-size 0 --strip-debug --strip-producers \
  --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
  --enable-nontrapping-float-to-int --enable-multivalue --enable-reference-types \
  "$wasm" -o "$cache" >"$wasm.opt.log" 2>&1 || {
  tail -n 20 "$wasm.opt.log" >&2
  rm -f "$cache" "$stamp"
  exit 1
}
rm -f "$wasm.opt.log"
echo "$now $(sum "$cache")" >"$stamp"
# A new file, not a rewrite: cargo's deps/ copy is a hard link to the same inode.
cp "$cache" "$wasm.tmp" && mv -f "$wasm.tmp" "$wasm"
echo "wasm-opt -Oz -ocimfs 0: $wasm $before -> $(stat -c %s "$wasm") bytes"
