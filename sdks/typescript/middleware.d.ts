import type { Keyward, Verification, VerifyOptions } from "./index.js";

/** Express middleware: 401, 403 or 429 for a refused key; `req.keyward` holds a verified one. */
export function requireKey(client: Keyward, options?: VerifyOptions):
  (req: any, res: any, next: (error?: unknown) => void) => void;
/** A Fastify preHandler hook: 401, 403 or 429 for a refused key; `request.keyward` holds a verified one. */
export function requireKeyHook(client: Keyward, options?: VerifyOptions):
  (request: any, reply: any) => Promise<unknown>;
export type { Verification };
