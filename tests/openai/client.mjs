// The official `openai` npm client against layerpipe's OpenAI-compatible HTTP API: models,
// chat and text completions with and without streaming (the streamed text must equal the
// whole), usage, log-probabilities, and errors as the client's own error classes.
// Usage: node client.mjs BASE_URL MODEL   (BASE_URL like http://127.0.0.1:7311/v1)
// Prints one JSON line of what it saw; exits non-zero on the first check that fails.
import OpenAI from "openai";
import assert from "node:assert/strict";

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 60000 });
const seen = {};

const models = await client.models.list();
assert.deepEqual(models.data.map((m) => m.id), [model]);

// Chat, greedy, whole and streamed: the same text, 6 tokens, finish "length".
const chatBody = {
  model,
  messages: [{ role: "user", content: "Hello, who are you?" }],
  max_tokens: 6,
  temperature: 0,
  ignore_eos: true,
  chat_template_kwargs: { enable_thinking: false },
};
const chat = await client.chat.completions.create(chatBody);
assert.equal(chat.object, "chat.completion");
assert.equal(chat.choices.length, 1);
assert.equal(chat.choices[0].message.role, "assistant");
assert.equal(chat.choices[0].finish_reason, "length");
assert.equal(chat.usage.completion_tokens, 6);
assert.equal(chat.usage.total_tokens, chat.usage.prompt_tokens + 6);
let streamed = "";
let usage = null;
let finish = null;
const stream = await client.chat.completions.create({
  ...chatBody,
  stream: true,
  stream_options: { include_usage: true },
});
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    streamed += c.delta?.content ?? "";
    if (c.finish_reason) finish = c.finish_reason;
  }
}
assert.equal(streamed, chat.choices[0].message.content);
assert.equal(finish, "length");
assert.deepEqual(usage, chat.usage);
seen.chat = chat.choices[0].message.content;

// Chat log-probabilities: one entry per token, top alternatives as asked.
const withLogprobs = await client.chat.completions.create({
  ...chatBody,
  logprobs: true,
  top_logprobs: 3,
});
const content = withLogprobs.choices[0].logprobs.content;
assert.equal(content.length, 6);
for (const t of content) {
  assert.equal(typeof t.token, "string");
  assert.ok(t.logprob <= 0);
  assert.equal(t.top_logprobs.length, 3);
}

// Text completion from token ids, whole and streamed, and a stop string.
const completionBody = { model, prompt: [9707, 11, 1879, 0], max_tokens: 5, temperature: 0, ignore_eos: true };
const completion = await client.completions.create(completionBody);
assert.equal(completion.object, "text_completion");
assert.equal(completion.usage.prompt_tokens, 4);
assert.equal(completion.usage.completion_tokens, 5);
let text = "";
for await (const chunk of await client.completions.create({ ...completionBody, stream: true })) {
  for (const c of chunk.choices) text += c.text;
}
assert.equal(text, completion.choices[0].text);
seen.completion = completion.choices[0].text;

// Seeded sampling is reproducible.
const seeded = { model, prompt: "Once upon a time", max_tokens: 8, temperature: 0.9, seed: 7, ignore_eos: true };
const a = await client.completions.create(seeded);
const b = await client.completions.create(seeded);
assert.equal(a.choices[0].text, b.choices[0].text);

// Errors arrive as the client's classes, with the reference API's fields.
await assert.rejects(client.chat.completions.create({ ...chatBody, temperature: -1 }), (e) => {
  assert.ok(e instanceof OpenAI.BadRequestError, String(e));
  assert.equal(e.status, 400);
  assert.equal(e.param, "temperature");
  assert.match(e.message, /temperature/);
  return true;
});
await assert.rejects(client.chat.completions.create({ ...chatBody, model: "gpt-nothing" }), (e) => {
  assert.ok(e instanceof OpenAI.NotFoundError, String(e));
  assert.equal(e.code, "model_not_found");
  return true;
});
await assert.rejects(client.chat.completions.create({ ...chatBody, n: 2 }), (e) => {
  assert.ok(e instanceof OpenAI.BadRequestError, String(e));
  assert.equal(e.param, "n");
  return true;
});
console.log(JSON.stringify({ ok: true, ...seen }));
