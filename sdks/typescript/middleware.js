// Express middleware and a Fastify hook that verify the caller's key with Keyward.
import { presentedKey, refusalStatus } from "./index.js";

async function check(client, headers, options) {
  const key = presentedKey(headers);
  if (!key) return { status: 401, body: { error: "an API key is required", code: "MISSING" } };
  const verdict = await client.verifyKey(key, options);
  if (!verdict.valid) return { status: refusalStatus(verdict), body: { error: "the API key was refused", code: verdict.code } };
  return { verdict };
}

/** Express: `app.post("/invoices", requireKey(keyward, { permissions: "invoices.write" }), handler)`; the verdict is in `req.keyward`. */
export function requireKey(client, options = {}) {
  return (req, res, next) => {
    check(client, req.headers, options).then(({ status, body, verdict }) => {
      if (verdict) { req.keyward = verdict; next(); return; }
      if (status === 401) res.set("WWW-Authenticate", 'Bearer realm="api"');
      res.status(status).json(body);
    }, next);
  };
}

/** Fastify: `{ preHandler: requireKeyHook(keyward, { permissions: "invoices.write" }) }`; the verdict is in `request.keyward`. */
export function requireKeyHook(client, options = {}) {
  return async (request, reply) => {
    const { status, body, verdict } = await check(client, request.headers, options);
    if (verdict) { request.keyward = verdict; return; }
    if (status === 401) reply.header("WWW-Authenticate", 'Bearer realm="api"');
    reply.code(status).send(body);
    return reply;
  };
}
