// --api-key, a full queue (429) and draining on SIGTERM (503, then exit 0).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer, SLOW } from './server.mjs';

const T = SLOW ? 180000 : 60000;
const chat = (extra = {}) => ({ model: 'demo', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, ...extra });

test('an API key is required when set', async () => {
  const srv = await startServer(['--api-key', 's3cret']);
  try {
    const anon = new OpenAI({ baseURL: srv.baseURL, apiKey: 'wrong', maxRetries: 0, timeout: T });
    await assert.rejects(anon.chat.completions.create(chat()), (e) => {
      assert.equal(e.status, 401);
      assert.equal(e.code, 'invalid_api_key');
      return true;
    });
    const none = await fetch(`${srv.baseURL}/models`);
    assert.equal(none.status, 401);
    assert.equal(typeof (await none.json()).error.message, 'string');
    const good = new OpenAI({ baseURL: srv.baseURL, apiKey: 's3cret', maxRetries: 0, timeout: T });
    const r = await good.chat.completions.create(chat());
    assert.equal(r.choices.length, 1);
    assert.equal((await fetch(`${srv.url}/health`)).status, 200);
  } finally {
    const { code } = await srv.stop();
    assert.equal(code, 0, srv.log());
  }
});

test('a full queue answers 429', async () => {
  const srv = await startServer(['--max-queue', '1', '--max-running', '1']);
  try {
    const c = new OpenAI({ baseURL: srv.baseURL, apiKey: 'x', maxRetries: 0, timeout: T });
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, () => c.chat.completions.create(chat({ max_tokens: 64, ignore_eos: true }))),
    );
    const statuses = results.map((r) => (r.status === 'fulfilled' ? 200 : r.reason.status));
    assert.ok(statuses.includes(429), `statuses ${statuses}`);
    assert.ok(statuses.includes(200), `statuses ${statuses}`);
    for (const r of results) if (r.status === 'rejected') assert.equal(r.reason.error?.type, 'rate_limit_error');
  } finally {
    const { code } = await srv.stop();
    assert.equal(code, 0, srv.log());
  }
});

test('SIGTERM drains: in-flight work finishes, new work gets 503, exit 0', async () => {
  const srv = await startServer(['--drain-timeout', SLOW ? '120' : '30']);
  const c = new OpenAI({ baseURL: srv.baseURL, apiKey: 'x', maxRetries: 0, timeout: T });
  const stream = await c.chat.completions.create(chat({ max_tokens: 200, ignore_eos: true, stream: true }));
  const it = stream[Symbol.asyncIterator]();
  await it.next();
  srv.proc.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 200));
  await assert.rejects(c.chat.completions.create(chat()), (e) => {
    assert.equal(e.status, 503);
    return true;
  });
  let n = 0;
  let finish = null;
  for (;;) {
    const { value, done } = await it.next();
    if (done) break;
    if (value.choices[0]?.delta?.content !== undefined) n++;
    if (value.choices[0]?.finish_reason) finish = value.choices[0].finish_reason;
  }
  assert.equal(finish, 'length');
  assert.ok(n > 10);
  const { code } = await srv.exited;
  assert.equal(code, 0, srv.log());
});

test('several models are served side by side, each with its own engine', async () => {
  const { MODEL } = await import('./server.mjs');
  const srv = await startServer(['--model', `second=${MODEL}`]);
  try {
    const c = new OpenAI({ baseURL: srv.baseURL, apiKey: 'x', maxRetries: 0, timeout: T });
    const ids = (await c.models.list()).data.map((m) => m.id).sort();
    assert.deepEqual(ids, ['demo', 'second']);
    const ask = (model) => c.completions.create({ model, prompt: [1104, 269], max_tokens: 12, temperature: 0 });
    const [a, b] = await Promise.all([ask('demo'), ask('second')]);
    assert.equal(a.choices[0].text, b.choices[0].text);
    assert.equal(a.model, 'demo');
    assert.equal(b.model, 'second');
    const m = await (await fetch(`${srv.url}/metrics`)).text();
    assert.match(m, /tandem_kv_blocks_total\{model="second"\} \d+/);
  } finally {
    const { code } = await srv.stop();
    assert.equal(code, 0, srv.log());
  }
});
