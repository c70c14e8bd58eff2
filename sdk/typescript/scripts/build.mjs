// Builds dist/: ESM (dist/esm), CommonJS (dist/cjs, marked by its own package.json) and
// the declarations (dist/types), with the TypeScript compiler only.
import { execFileSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const tsc = require.resolve("typescript/bin/tsc");
rmSync(new URL("../dist", import.meta.url), { recursive: true, force: true });
for (const project of ["tsconfig.json", "tsconfig.cjs.json"]) {
  execFileSync(process.execPath, [tsc, "-p", project], { stdio: "inherit", cwd: new URL("..", import.meta.url) });
}
writeFileSync(new URL("../dist/cjs/package.json", import.meta.url), '{ "type": "commonjs" }\n');
writeFileSync(new URL("../dist/esm/package.json", import.meta.url), '{ "type": "module" }\n');
