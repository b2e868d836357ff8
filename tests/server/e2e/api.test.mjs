// The OpenAI API of `tandem serve` through the official openai client.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer, metric, waitFor, SLOW } from './server.mjs';

let srv;
let client;
const T = SLOW ? 180000 : 60000;

before(async () => {
  srv = await startServer();
  client = new OpenAI({ baseURL: srv.baseURL, apiKey: 'unused', maxRetries: 0, timeout: T });
});

after(async () => {
  const { code } = await srv.stop();
  assert.equal(code, 0, `server exit status\n${srv.log()}`);
});

test('models lists the served model', async () => {
  const page = await client.models.list();
  const ids = page.data.map((m) => m.id);
  assert.deepEqual(ids, ['demo']);
  const m = await client.models.retrieve('demo');
  assert.equal(m.id, 'demo');
});

test('chat completion, non-streaming', async () => {
  const r = await client.chat.completions.create({
    model: 'demo',
    messages: [{ role: 'user', content: 'Return the sum of two numbers.' }],
    temperature: 0,
    max_tokens: 16,
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 0);
  assert.ok(r.usage.completion_tokens > 0 && r.usage.completion_tokens <= 16);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

test('chat completion, streaming, equals the non-streaming text', async () => {
  const req = {
    model: 'demo',
    messages: [{ role: 'system', content: 'You write docstrings.' }, { role: 'user', content: 'Parameters' }],
    temperature: 0,
    max_tokens: 24,
  };
  const whole = await client.chat.completions.create(req);
  const stream = await client.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let finish = null;
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.ok(chunks > 2);
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.deepEqual(usage, whole.usage);
});

test('completions reproduce the demo model reference', async () => {
  // models/demo/reference.json: greedy continuation of "Return the" (ids 1104, 269).
  const want =
    ' current value of the current value.\n\nArgs:\n    value: The tensor to be mapped.\n\nReturns:\n' +
    '    A tuple of two tensors:\n    * The transformed array (if ``name';
  const r = await client.completions.create({ model: 'demo', prompt: [1104, 269], max_tokens: 40, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0].text, want);
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.prompt_tokens, 2);
  assert.equal(r.usage.completion_tokens, 40);
  const s = await client.completions.create({ model: 'demo', prompt: [1104, 269], max_tokens: 40, temperature: 0, stream: true });
  let text = '';
  for await (const chunk of s) text += chunk.choices[0]?.text ?? '';
  assert.equal(text, want);
});

test('stop strings, n, seed and logprobs', async () => {
  const r = await client.completions.create({ model: 'demo', prompt: [1104, 269], max_tokens: 40, temperature: 0, stop: ['Args'] });
  assert.equal(r.choices[0].text, ' current value of the current value.\n\n');
  assert.equal(r.choices[0].finish_reason, 'stop');

  const req = { model: 'demo', messages: [{ role: 'user', content: 'Returns' }], temperature: 0.9, seed: 42, n: 3, max_tokens: 12 };
  const a = await client.chat.completions.create(req);
  const b = await client.chat.completions.create(req);
  assert.equal(a.choices.length, 3);
  assert.deepEqual(a.choices.map((c) => c.index), [0, 1, 2]);
  assert.deepEqual(a.choices.map((c) => c.message.content), b.choices.map((c) => c.message.content));

  const l = await client.chat.completions.create({
    model: 'demo', messages: [{ role: 'user', content: 'x' }], temperature: 0, max_tokens: 4, logprobs: true, top_logprobs: 3,
  });
  const content = l.choices[0].logprobs.content;
  assert.equal(content.length, l.usage.completion_tokens);
  for (const t of content) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 3);
    assert.equal(t.top_logprobs[0].logprob, t.logprob);
  }
});

test('embeddings are unit vectors, equal for equal inputs', async () => {
  const r = await client.embeddings.create({ model: 'demo', input: ['Return the value.', 'Parameters', 'Return the value.'] });
  assert.equal(r.data.length, 3);
  const v = r.data.map((d) => d.embedding);
  assert.equal(v[0].length, 288);
  for (const e of v) {
    const norm = Math.sqrt(e.reduce((s, x) => s + x * x, 0));
    assert.ok(Math.abs(norm - 1) < 1e-4, `norm ${norm}`);
  }
  assert.deepEqual(v[0], v[2]);
  assert.notDeepEqual(v[0], v[1]);
  assert.ok(r.usage.prompt_tokens > 0);
});

test('tokenize, detokenize and health', async () => {
  const t = await (await fetch(`${srv.url}/tokenize`, { method: 'POST', body: JSON.stringify({ model: 'demo', prompt: 'Return the' }) })).json();
  assert.deepEqual(t.tokens, [1104, 269]);
  const d = await (await fetch(`${srv.url}/detokenize`, { method: 'POST', body: JSON.stringify({ model: 'demo', tokens: t.tokens }) })).json();
  assert.equal(d.prompt, 'Return the');
  const h = await fetch(`${srv.url}/health`);
  assert.equal(h.status, 200);
});

test('32 concurrent greedy requests equal the same requests one at a time', async () => {
  const prompts = Array.from({ length: 32 }, (_, i) => `Return the ${['value', 'index', 'list', 'sum'][i % 4]} of ${i} items`);
  const one = (p) => client.completions.create({ model: 'demo', prompt: p, max_tokens: 24, temperature: 0 });
  const sequential = [];
  for (const p of prompts) sequential.push((await one(p)).choices[0].text);
  const concurrent = (await Promise.all(prompts.map(one))).map((r) => r.choices[0].text);
  assert.deepEqual(concurrent, sequential);
  const m = await (await fetch(`${srv.url}/metrics`)).text();
  assert.ok(metric(m, 'tandem_generation_tokens_total') >= 64);
});

test('a client that leaves mid-stream frees its sequence and blocks', async () => {
  const metrics = async () => (await fetch(`${srv.url}/metrics`)).text();
  await waitFor(async () => metric(await metrics(), 'tandem_requests_running') === 0, T, 'an idle engine');
  const stream = await client.chat.completions.create({
    model: 'demo',
    messages: [{ role: 'user', content: 'Write a very long docstring.' }],
    max_tokens: 900,
    ignore_eos: true,
    stream: true,
  });
  // Read a few chunks without leaving the loop (leaving it would abort the stream).
  const it = stream[Symbol.asyncIterator]();
  for (let n = 0; n < 3; ) {
    const { value } = await it.next();
    if (value.choices[0]?.delta?.content) n++;
  }
  const during = await metrics();
  assert.equal(metric(during, 'tandem_requests_running'), 1);
  assert.ok(metric(during, 'tandem_kv_blocks_used') > 0);
  stream.controller.abort();
  const after = await waitFor(async () => {
    const m = await metrics();
    return metric(m, 'tandem_requests_running') === 0 && metric(m, 'tandem_kv_blocks_used') === 0 ? m : null;
  }, 10000, 'the sequence to be freed');
  assert.ok(metric(after, 'tandem_generation_tokens_total') > 0);
  assert.match(after, /tandem_time_to_first_token_seconds_bucket\{model="demo",le="\+Inf"\} \d+/);
  assert.match(after, /tandem_requests_total\{model="demo",status="200"\} \d+/);
});

test('embeddings as floats and as base64 agree', async () => {
  const body = (fmt) => JSON.stringify({ model: 'demo', input: 'Return the value.', encoding_format: fmt });
  const post = async (fmt) => (await fetch(`${srv.url}/v1/embeddings`, { method: 'POST', body: body(fmt) })).json();
  const f = (await post('float')).data[0].embedding;
  const b = Buffer.from((await post('base64')).data[0].embedding, 'base64');
  const decoded = Array.from(new Float32Array(b.buffer, b.byteOffset, b.length / 4));
  assert.deepEqual(decoded, f);
});
