// The official `openai` npm client against a layerpipe HTTP API that asks for API tokens: a
// wrong key is the client's own AuthenticationError (401), the right one lists the model.
// Usage: node auth.mjs BASE_URL MODEL TOKEN   Prints one JSON line; exits non-zero on failure.
import OpenAI from "openai";
import assert from "node:assert/strict";

const [baseURL, model, token] = process.argv.slice(2);
const options = { baseURL, maxRetries: 0, timeout: 60000 };
try {
  await new OpenAI({ ...options, apiKey: "not-" + token }).models.list();
  assert.fail("a wrong API key was accepted");
} catch (e) {
  assert.ok(e instanceof OpenAI.AuthenticationError, String(e));
  assert.equal(e.status, 401);
  assert.equal(e.code, "invalid_api_key");
}
const models = await new OpenAI({ ...options, apiKey: token }).models.list();
assert.deepEqual(models.data.map((m) => m.id), [model]);
console.log(JSON.stringify({ ok: true }));
