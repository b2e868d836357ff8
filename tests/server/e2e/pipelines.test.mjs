// Pipelines over HTTP: the pipeline API, pipelines as `model` of the OpenAI
// routes, GET /v1/pipelines and its /metrics twins, and bad input: unknown
// pipeline (404), missing or wrongly typed fields (400 naming the field),
// inputs over the limit (413 with the numbers), a full queue (429 with
// Retry-After), and a config with an error (start-up fails naming line and field).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { startServer, SLOW, BINARY } from './server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const CONFIG = path.join(here, 'pipelines.yaml');
const T = SLOW ? 300000 : 60000;
let srv;
let client;

before(async () => {
  srv = await startServer(['--config', CONFIG], { model: false });
  client = new OpenAI({ baseURL: srv.baseURL, apiKey: 'unused', maxRetries: 0, timeout: T });
});

after(async () => {
  const { code } = await srv.stop();
  assert.equal(code, 0, `server exit status\n${srv.log()}`);
});

async function run(name, body) {
  const r = await fetch(`${srv.url}/v1/pipelines/${name}`, {
    method: 'POST',
    body: typeof body === 'string' ? body : JSON.stringify(body),
    headers: { 'content-type': 'application/json' },
  });
  return { status: r.status, headers: r.headers, body: await r.json() };
}

test('a generate pipeline answers with text and usage', { timeout: T }, async () => {
  const r = await run('complete', { input: 'def add(a, b):' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.object, 'pipeline.result');
  assert.equal(r.body.pipeline, 'complete');
  assert.equal(typeof r.body.output.text, 'string');
  assert.ok(r.body.usage.prompt_tokens > 0);
  assert.ok(r.body.usage.completion_tokens > 0 && r.body.usage.completion_tokens <= 8);
});

test('a pipeline is a model for the OpenAI client, streaming included', { timeout: T }, async () => {
  const c = await client.completions.create({ model: 'complete', prompt: 'def add(a, b):', max_tokens: 5 });
  assert.equal(c.model, 'complete');
  assert.equal(c.usage.completion_tokens, 5);
  const stream = await client.completions.create({ model: 'complete', prompt: 'import os', max_tokens: 4, stream: true });
  let text = '';
  let finish = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.text ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.ok(finish === 'length' || finish === 'stop');
  // A classify pipeline through chat: the label is the answer.
  const chat = await client.chat.completions.create({ model: 'label', messages: [{ role: 'user', content: 'Read a file.' }] });
  assert.ok(['io', 'math', 'text'].includes(chat.choices[0].message.content));
});

test('classify returns one of the labels with probabilities that sum to 1', { timeout: T }, async () => {
  const r = await run('label', { input: 'Open the file and return its lines.' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const { label, probabilities } = r.body.output;
  assert.ok(['io', 'math', 'text'].includes(label));
  const sum = Object.values(probabilities).reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(sum - 1) < 1e-4, `sum ${sum}`);
  assert.equal(probabilities[label], Math.max(...Object.values(probabilities)));
});

test('extract always returns JSON of the schema', { timeout: T }, async () => {
  const inputs = ['name = "x"', 'count items in the list', 'def ok(): return True', '{"a": 1}'];
  const results = await Promise.all(inputs.map((input) => run('fields', { input })));
  for (const r of results) {
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const v = r.body.output.json;
    assert.deepEqual(Object.keys(v).sort(), ['count', 'name', 'ok']);
    assert.equal(typeof v.name, 'string');
    assert.ok(v.name.length <= 12);
    assert.ok(Number.isInteger(v.count));
    assert.equal(typeof v.ok, 'boolean');
  }
});

test('map_reduce digests a document longer than the context', { timeout: T }, async () => {
  const document = Array.from({ length: 700 }, (_, i) => `def f${i}(x):\n    return x + ${i}\n`).join('');
  const r = await run('digest', { document });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(typeof r.body.output.text, 'string');
  assert.ok(r.body.usage.prompt_tokens > 1024, `prompt tokens ${r.body.usage.prompt_tokens}`);
});

test('GET /v1/pipelines and /metrics show each pipeline', { timeout: T }, async () => {
  // Latency percentiles cover the last window (10 s): have one request in it.
  assert.equal((await run('complete', { input: 'def f():' })).status, 200);
  const r = await fetch(`${srv.url}/v1/pipelines`);
  assert.equal(r.status, 200);
  const body = await r.json();
  assert.equal(body.mode, 'adaptive');
  const names = body.data.map((p) => p.name);
  assert.deepEqual(names, ['complete', 'label', 'fields', 'digest']);
  const complete = body.data[0];
  assert.equal(complete.class, 'interactive');
  assert.equal(complete.weight, 3);
  assert.deepEqual(complete.slo, { ttft_ms: 2000, tpot_ms: 500 });
  for (const key of ['queue_depth', 'running', 'kv_quota_blocks', 'kv_used_blocks', 'slo_attainment', 'tokens_per_s']) {
    assert.equal(typeof complete[key], 'number', key);
  }
  assert.equal(typeof complete.share.cpu, 'number');
  assert.ok(complete.requests_finished > 0);
  assert.ok(complete.ttft_ms.p95 > 0);
  assert.equal(body.data[2].class, 'batch');
  const m = await (await fetch(`${srv.url}/metrics`)).text();
  assert.match(m, /^tandem_pipeline_share\{pipeline="complete",class="interactive",device="cpu"\} [0-9.e+-]+$/m);
  assert.match(m, /^tandem_pipeline_slo_attainment\{pipeline="fields",class="batch",device="cpu"\} /m);
  assert.match(m, /^tandem_pipeline_kv_quota_blocks\{pipeline="digest"/m);
});

test('bad input: 404, 400 naming the field, 413 with the numbers', { timeout: T }, async () => {
  const unknown = await run('nope', { input: 'x' });
  assert.equal(unknown.status, 404);
  assert.match(unknown.body.error.message, /nope/);
  const missing = await run('complete', { text: 'x' });
  assert.equal(missing.status, 400);
  assert.equal(missing.body.error.param, 'input');
  const typed = await run('complete', { input: 42 });
  assert.equal(typed.status, 400);
  assert.equal(typed.body.error.param, 'input');
  const notObject = await run('complete', '[1, 2]');
  assert.equal(notObject.status, 400);
  const long = await run('complete', { input: 'x = 1\n'.repeat(300) });
  assert.equal(long.status, 413);
  assert.match(long.body.error.message, /200/);
  assert.match(long.body.error.message, /\d{3,}/);
  // The server still serves.
  assert.equal((await run('complete', { input: 'x' })).status, 200);
});

test('a full pipeline queue answers 429 with Retry-After, and nothing else is lost', { timeout: T }, async () => {
  const results = await Promise.all(
    Array.from({ length: 24 }, (_, i) =>
      fetch(`${srv.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'complete', prompt: `def f${i}(x):`, max_tokens: 8, ignore_eos: true }),
      }).then(async (r) => ({ status: r.status, retry: r.headers.get('retry-after'), body: await r.json() })),
    ),
  );
  const limited = results.filter((r) => r.status === 429);
  const ok = results.filter((r) => r.status === 200);
  assert.ok(limited.length > 0, 'no request was refused');
  assert.equal(ok.length + limited.length, results.length);
  for (const r of limited) {
    assert.ok(Number(r.retry) >= 1);
    assert.equal(r.body.error.type, 'rate_limit_error');
  }
  for (const r of ok) assert.equal(r.body.usage.completion_tokens, 8);
});

test('a config error stops start-up naming the line and the field', { timeout: T }, () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tandem-config-'));
  const bad = path.join(dir, 'bad.yaml');
  writeFileSync(
    bad,
    `models:\n  - name: m\n    path: ${path.resolve(here, '../../../models/demo')}\npipelines:\n  - name: p\n    model: m\n    weight: -2\n    steps:\n      - {name: s, type: generate, prompt: "{{ input }}"}\n`,
  );
  const r = spawnSync(BINARY, ['serve', '--config', bad, '--port', '0'], { encoding: 'utf8', timeout: T });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /bad\.yaml:7/);
  assert.match(r.stderr, /pipelines\[0\]\.weight/);
});

test('static mode serves every pipeline from its fixed partition, long prompts included', { timeout: T }, async () => {
  const s = await startServer(['--config', CONFIG, '--share-mode', 'static'], { model: false });
  try {
    const list = await (await fetch(`${s.url}/v1/pipelines`)).json();
    assert.equal(list.mode, 'static');
    const post = (name, body) =>
      fetch(`${s.url}/v1/pipelines/${name}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })
        .then(async (r) => ({ status: r.status, body: await r.json() }));
    const [long, label] = await Promise.all([
      post('complete', { input: 'x = 1\n'.repeat(40) }),
      post('label', { input: 'Add two numbers.' }),
    ]);
    assert.equal(long.status, 200, JSON.stringify(long.body));
    assert.equal(label.status, 200, JSON.stringify(label.body));
  } finally {
    const { code } = await s.stop();
    assert.equal(code, 0, s.log());
  }
});
