// The checked-in generated types equal what the served OpenAPI document generates.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { generate, OUTPUT } from "../scripts/generate.mjs";
import { skipReason, startOfferHub } from "./helpers.mjs";

test("src/generated/openapi.ts matches GET /api/v1/openapi.json", { skip: skipReason() }, async () => {
  const d = await startOfferHub();
  try {
    const doc = await (await fetch(`${d.apiUrl}/openapi.json`)).json();
    const fresh = await generate(doc);
    assert.ok(
      fresh === readFileSync(OUTPUT, "utf8"),
      "the generated types drifted from the served document: run `npm run generate -- <url>/api/v1/openapi.json` in sdk/typescript and commit",
    );
  } finally {
    await d.stop();
  }
});
