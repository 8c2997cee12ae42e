// Imported first by the CLI entry (and the SQLite checkpointer worker). Node 24 still marks
// node:sqlite experimental and prints an ExperimentalWarning on every start, which operators
// read as something wrong with their install. Only that warning is dropped; every other one is
// printed as Node would. node:sqlite is loaded lazily (src/store/sqlite-module.ts) so that the
// warning is emitted after this filter is in place.
process.removeAllListeners("warning");
process.on("warning", (w: Error) => {
  if (w.name === "ExperimentalWarning" && /sqlite/i.test(w.message)) return;
  process.stderr.write(`(node:${process.pid}) ${w.name}: ${w.message}\n`);
});
