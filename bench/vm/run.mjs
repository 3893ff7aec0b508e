// Runs bench/vm's wasm32-wasip1 build under Node's WASI (V8): `make bench-vm`.
// Usage: node bench/vm/run.mjs target/wasm32-wasip1/release/scopegate-bench-vm.wasm SPEC.json
// where SPEC.json is `bench/run.py --dump`.
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import process from "node:process";

// The spec is passed as the program's argument (no file system inside the VM).
const spec = await readFile(process.argv[3], "utf8");
const wasi = new WASI({ version: "preview1", args: ["bench-vm", spec], env: process.env, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(process.argv[2]));
// The filter's library brings proxy-wasm's imports along; the harness never calls them.
const env = Object.fromEntries(WebAssembly.Module.imports(module).filter((i) => i.module === "env")
  .map((i) => [i.name, () => { throw new Error(`host call ${i.name} outside Envoy`); }]));
const instance = await WebAssembly.instantiate(module, { ...wasi.getImportObject(), env });
// proxy-wasm's `_initialize` comes along too; WASI's start() wants a command's exports only.
const { _start, memory } = instance.exports;
process.exitCode = wasi.start({ exports: { _start, memory } });
