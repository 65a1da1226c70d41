// @keyward/sdk against the real server (started by crates/server/tests/api/sdks.rs).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { randomUUID } from "node:crypto";
import { Keyward, KeywardError } from "../index.js";
import { requireKey, requireKeyHook } from "../middleware.js";

const URL_ = process.env.KEYWARD_URL;
const ADMIN = [process.env.KEYWARD_ADMIN_EMAIL, process.env.KEYWARD_ADMIN_PASSWORD];
const unique = () => randomUUID().slice(0, 8);

async function admin() {
  const client = new Keyward({ baseUrl: URL_ });
  await client.login(...ADMIN);
  return client;
}

async function refusal(promise) {
  try { await promise; } catch (error) { assert.ok(error instanceof KeywardError); return error; }
  assert.fail("expected a refusal");
}

test("a key lives its whole life", async () => {
  const k = await admin();
  const u = unique();
  const made = await k.createKey({ name: `ts-${u}`, permissions: ["invoices.read"], ratelimits: [{ name: "default", limit: 100, duration_seconds: 60 }], credits: { remaining: 10 } });
  assert.match(made.api_key, /^kw_/);
  const ok = await k.verifyKey(made.api_key, { permissions: "invoices.read" });
  assert.equal(ok.code, "VALID");
  assert.deepEqual(ok.credits, { remaining: 9 });
  assert.equal((await k.verifyKey(made.api_key, { permissions: ["invoices.write"] })).code, "INSUFFICIENT_PERMISSIONS");
  assert.equal(await k.changeCredits(made.id, "set", 3), 3);
  assert.equal((await k.updateKey(made.id, { name: `ts-${u}-2` })).name, `ts-${u}-2`);
  const rotated = await k.rotateKey(made.id);
  assert.equal((await k.verifyKey(made.api_key)).code, "NOT_FOUND");
  assert.equal((await k.revokeKey(made.id)).state, "revoked");
  assert.equal((await k.verifyKey(rotated.api_key)).code, "REVOKED");
});

test("listing pages through every key", async () => {
  const k = await admin();
  const u = unique();
  for (let i = 0; i < 5; i++) await k.createKey({ name: `tspage-${u}-${i}` });
  const page = await k.listKeys({ limit: 2, search: `tspage-${u}` });
  assert.equal(page.total, 5);
  const names = [];
  for await (const key of k.iterKeys({ pageSize: 2, search: `tspage-${u}` })) names.push(key.name);
  assert.equal(new Set(names).size, 5);
});

test("refusals are errors with their code", async () => {
  const k = await admin();
  const u = unique();
  const bad = await refusal(new Keyward({ baseUrl: URL_, token: "kw_nope" }).me());
  assert.equal(bad.status, 401);
  await k.createUser({ email: `tsm-${u}@example.com`, password: "member-password-1", permissions: ["keyward.keys.*"] });
  const member = new Keyward({ baseUrl: URL_ });
  await member.login(`tsm-${u}@example.com`, "member-password-1");
  assert.equal((await refusal(member.listUsers())).status, 403);
  assert.equal((await refusal(k.getKey(randomUUID()))).errorCode, "NotFound");
  await k.createKey({ name: `tsdup-${u}` });
  assert.equal((await refusal(k.createKey({ name: `tsdup-${u}` }))).status, 409);
  const invalid = await refusal(k.createKey({ name: `tsbad-${u}`, ip_allowlist: ["nope"] }));
  assert.equal(invalid.status, 422);
  assert.deepEqual(invalid.details, { field: "ip_allowlist" });
});

test("429 is retried after what Retry-After says", async () => {
  const k = await admin();
  const made = await k.createKey({ name: `tslimit-${unique()}`, permissions: ["keyward.keys.read"], ratelimits: [{ name: "default", limit: 1, duration_seconds: 1 }] });
  const impatient = new Keyward({ baseUrl: URL_, token: made.api_key, maxRetries: 0 });
  await impatient.me();
  const limited = await refusal(impatient.me());
  assert.equal(limited.status, 429);
  assert.ok(limited.retryAfter >= 1);
  const patient = new Keyward({ baseUrl: URL_, token: made.api_key, maxRetries: 3 });
  await patient.me();
  assert.equal((await patient.me()).via, "api_key");
});

// Express and Fastify come from the test tools' node_modules, not the SDK's (it has none).
const requireTool = createRequire(`${process.env.KEYWARD_TEST_NODE_PATH}/`);

async function serviceKeys(k) {
  const u = unique();
  const reader = await k.createKey({ name: `r-${u}`, permissions: ["invoices.read"] });
  const writer = await k.createKey({ name: `w-${u}`, permissions: ["invoices.read", "invoices.write"] });
  const gone = await k.createKey({ name: `g-${u}`, permissions: ["invoices.write"] });
  await k.revokeKey(gone.id);
  return { reader: reader.api_key, writer: writer.api_key, gone: gone.api_key };
}

async function expectStatuses(base, keys) {
  const post = (headers) => fetch(`${base}/invoices`, { method: "POST", headers }).then((r) => r.status);
  assert.equal(await post({}), 401);
  assert.equal(await post({ authorization: `Bearer ${keys.gone}` }), 401);
  assert.equal(await post({ "x-api-key": keys.reader }), 403);
  assert.equal(await post({ authorization: `Bearer ${keys.writer}` }), 200);
}

test("the Express middleware refuses missing, revoked and under-privileged keys", async () => {
  const express = requireTool("express");
  const k = await admin();
  const app = express();
  app.post("/invoices", requireKey(k, { permissions: "invoices.write" }), (req, res) => res.json({ by: req.keyward.key_id }));
  const server = await new Promise((resolve) => { const s = app.listen(0, "127.0.0.1", () => resolve(s)); });
  try {
    await expectStatuses(`http://127.0.0.1:${server.address().port}`, await serviceKeys(k));
  } finally { server.close(); }
});

test("the Fastify hook refuses missing, revoked and under-privileged keys", async () => {
  const fastify = requireTool("fastify")();
  const k = await admin();
  fastify.post("/invoices", { preHandler: requireKeyHook(k, { permissions: "invoices.write" }) }, async (request) => ({ by: request.keyward.key_id }));
  const address = await fastify.listen({ port: 0, host: "127.0.0.1" });
  try {
    await expectStatuses(address, await serviceKeys(k));
  } finally { await fastify.close(); }
});
