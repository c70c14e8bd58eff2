// examples/marketplace-flow.ts, type-checked against the SDK's declarations and run
// (release, refund, split, cancel) against the real `offerhub serve`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { REPO, skipReason, startOfferHub } from "./helpers.mjs";

const PKG = resolve(fileURLToPath(new URL("..", import.meta.url)));

test("examples/marketplace-flow.ts runs every flow with the SDK only", { skip: skipReason(), timeout: 600_000 }, async () => {
  // A scratch project that depends on @offerhub/sdk (this package) like an integrator's would.
  const dir = mkdtempSync(join(tmpdir(), "offerhub-example-"));
  mkdirSync(join(dir, "node_modules/@offerhub"), { recursive: true });
  mkdirSync(join(dir, "node_modules/@types"), { recursive: true });
  symlinkSync(PKG, join(dir, "node_modules/@offerhub/sdk"));
  symlinkSync(join(PKG, "node_modules/@types/node"), join(dir, "node_modules/@types/node"));
  copyFileSync(join(REPO, "examples/marketplace-flow.ts"), join(dir, "marketplace-flow.ts"));
  writeFileSync(join(dir, "package.json"), '{ "type": "module" }\n');
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  execFileSync(process.execPath, [tsc, "--strict", "--target", "ES2022", "--module", "NodeNext", "--moduleResolution", "NodeNext",
    "--types", "node", "--skipLibCheck", "marketplace-flow.ts"], { cwd: dir, stdio: "inherit" });
  const d = await startOfferHub();
  try {
    const out = execFileSync(process.execPath, ["marketplace-flow.js", "all"], {
      cwd: dir,
      env: { ...process.env, OFFERHUB_API_URL: d.origin, OFFERHUB_API_KEY: d.key },
      encoding: "utf8",
      timeout: 540_000,
    });
    assert.match(out, /holds 99\.7000000 USDC/, out);
    assert.match(out, /holds 59\.8200000 USDC/, out);
    assert.match(out, /order ord_\w+: CLOSED/, out);
    assert.match(out, /== Done \(all\)/, out);
    // Scope check before any money moves: a read,write key stops at once.
    const rw = JSON.parse(d.offerhub(["keys", "create", "--name", "rw", "--scopes", "read,write", "--output", "json"])).key;
    let failed;
    try {
      execFileSync(process.execPath, ["marketplace-flow.js", "split"], {
        cwd: dir, env: { ...process.env, OFFERHUB_API_URL: d.origin, OFFERHUB_API_KEY: rw }, encoding: "utf8", stdio: "pipe",
      });
    } catch (e) {
      failed = e;
    }
    assert.equal(failed?.status, 2);
    assert.match(failed.stderr, /lacks the scope\(s\) support/);
    assert.doesNotMatch(failed.stdout, /Create the buyer/);
  } finally {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
