// Starts the real `offerhub serve` (embedded sandbox, SQLite in a temporary directory)
// on a free port and creates an API key with `offerhub keys create`.
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = resolve(fileURLToPath(new URL("../../..", import.meta.url)));

/** `OFFERHUB_BIN`, else `$CARGO_TARGET_DIR/debug/offerhub`, else `<repo>/target/debug/offerhub`. */
export function binary() {
  if (process.env.OFFERHUB_BIN) return process.env.OFFERHUB_BIN;
  const target = process.env.CARGO_TARGET_DIR ?? join(REPO, "target");
  return join(target, "debug", "offerhub");
}

/** A reason to skip the server tests, or undefined. */
export function skipReason() {
  return existsSync(binary()) ? undefined : `no offerhub binary at ${binary()} (cargo build -p offerhub-cli, or set OFFERHUB_BIN)`;
}

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
    s.on("error", rej);
  });
}

/**
 * A running daemon: `{ origin, apiUrl, key, offerhub(args), stop() }`. `env` adds
 * variables (e.g. OFFERHUB_WEBHOOK_ALLOW_PRIVATE_NETWORKS).
 */
export async function startOfferHub(env = {}) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "offerhub-sdk-"));
  const fullEnv = { PATH: process.env.PATH ?? "", HOME: dir, PORT: String(port), RUST_LOG: "warn", ...env };
  if (process.env.TMPDIR) fullEnv.TMPDIR = process.env.TMPDIR;
  const child = spawn(binary(), ["serve"], { cwd: dir, env: fullEnv, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stdout.on("data", (d) => (log += d));
  child.stderr.on("data", (d) => (log += d));
  const origin = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`offerhub serve exited ${child.exitCode}:\n${log}`);
    try {
      const r = await fetch(`${origin}/api/v1/health`);
      if (r.status === 200) break;
    } catch {}
    if (Date.now() > deadline) throw new Error(`offerhub serve not healthy:\n${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const offerhub = (args) => execFileSync(binary(), args, { cwd: dir, env: fullEnv, encoding: "utf8" });
  const created = JSON.parse(offerhub(["keys", "create", "--name", "sdk-tests", "--scopes", "read,write,support", "--output", "json"]));
  return {
    origin,
    apiUrl: `${origin}/api/v1`,
    key: created.key,
    dir,
    env: fullEnv,
    offerhub,
    log: () => log,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r() : child.once("exit", r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const readJson = (p) => JSON.parse(readFileSync(p, "utf8"));
