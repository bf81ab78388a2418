// Runs the v8-configure program (wasm32-wasip1) in V8 the way Envoy runs the filter: node must be
// started with --no-liftoff (proxy-wasm-cpp-host turns Liftoff off, src/v8/v8.cc), and the module is
// compiled once and instantiated twice: the first instance configures ROUNDS times (its first
// round also has V8 compile the functions it calls), the second once, in fresh linear memory with
// code already compiled, which is what each Envoy VM (canary, main thread, worker) does.
//
// usage: node --no-liftoff --single-threaded-gc v8_configure.mjs MODULE DATA_DIR ROUNDS
// (--single-threaded-gc: node 20 sometimes crashed after the last instance without it, see
// `node_run` in v8_configure.rs)
// Prints the program's lines, each instance's introduced by `instance N` (written synchronously
// to the same descriptor as the program's own output, so the two cannot interleave).
import { WASI } from 'node:wasi';
import { readFileSync, writeSync } from 'node:fs';

const [modulePath, dataDir, rounds] = process.argv.slice(2);
const compiled = await WebAssembly.compile(readFileSync(modulePath));
for (const [instance, count] of [[1, rounds], [2, '1']]) {
  writeSync(1, `instance ${instance}\n`);
  const wasi = new WASI({
    version: 'preview1',
    args: ['v8-configure', '/data/config.json', count],
    env: {},
    preopens: { '/data': dataDir },
    returnOnExit: true,
  });
  const code = wasi.start(await WebAssembly.instantiate(compiled, wasi.getImportObject()));
  if (code !== 0) {
    process.exit(code);
  }
}
