// Runs a Rust test binary built for wasm32-wasip1 under Node's WASI (V8, the engine the
// filter runs in inside Envoy): the cargo runner of `make test-wasm`.
// Usage (as CARGO_TARGET_WASM32_WASIP1_RUNNER): node tools/wasi-test.mjs TEST.wasm [ARGS…]
// The host's file system is visible at the same paths (tests read fixtures by path).
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import process from "node:process";

const [file, ...args] = process.argv.slice(2);
const wasi = new WASI({
  version: "preview1",
  args: [file, ...args],
  env: process.env,
  preopens: { "/": "/" },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(file));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
