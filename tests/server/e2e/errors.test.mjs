// Bad requests get OpenAI-shaped errors with fitting status codes, and the
// server keeps serving everyone else.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import OpenAI from 'openai';
import { startServer, SLOW } from './server.mjs';

const T = SLOW ? 180000 : 60000;
let srv;
let client;

before(async () => {
  srv = await startServer(['--read-timeout', '1', '--max-body-bytes', '100000']);
  client = new OpenAI({ baseURL: srv.baseURL, apiKey: 'unused', maxRetries: 0, timeout: T });
});

after(async () => {
  const { code } = await srv.stop();
  assert.equal(code, 0, `server exit status\n${srv.log()}`);
});

const chat = (extra = {}) => ({ model: 'demo', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, ...extra });

function assertShape(body) {
  assert.equal(typeof body.error, 'object');
  assert.equal(typeof body.error.message, 'string');
  assert.equal(typeof body.error.type, 'string');
  assert.ok('param' in body.error && 'code' in body.error);
}

async function post(path, body, headers = {}) {
  const r = await fetch(`${srv.url}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
  const json = await r.json();
  assertShape(json);
  return { status: r.status, error: json.error };
}

// Raw HTTP over a socket, for what fetch will not send.
function raw(bytes, { waitClose = false } = {}) {
  return new Promise((resolve, reject) => {
    const s = net.connect(srv.port, '127.0.0.1');
    let data = '';
    s.on('data', (d) => {
      data += d.toString();
      if (!waitClose && /\r\n\r\n/.test(data) && /\}\s*$/.test(data)) s.end();
    });
    s.on('close', () => resolve(data));
    s.on('error', reject);
    s.write(bytes);
  });
}

async function expectError(promise, status, param) {
  await assert.rejects(promise, (e) => {
    assert.equal(e.status, status, e.message);
    assert.equal(typeof e.error?.message, 'string');
    if (param !== undefined) assert.equal(e.param, param);
    return true;
  });
}

test('unknown model is 404', async () => {
  await expectError(client.chat.completions.create(chat({ model: 'nope' })), 404, 'model');
  await expectError(client.embeddings.create({ model: 'nope', input: 'x' }), 404, 'model');
  await expectError(client.models.retrieve('nope'), 404);
});

test('wrong types, empty messages and absurd values are 400', async () => {
  await expectError(client.chat.completions.create(chat({ temperature: 'hot' })), 400, 'temperature');
  await expectError(client.chat.completions.create(chat({ messages: [] })), 400, 'messages');
  await expectError(client.chat.completions.create(chat({ messages: [{ role: 'user' , content: 5 }] })), 400, 'messages[0].content');
  await expectError(client.chat.completions.create(chat({ max_tokens: 1e12 })), 400, 'max_tokens');
  await expectError(client.chat.completions.create(chat({ max_tokens: 5000 })), 400, 'max_tokens');
  await expectError(client.chat.completions.create(chat({ n: 0 })), 400, 'n');
  await expectError(client.completions.create({ model: 'demo', prompt: '' }), 400, 'prompt');
  await expectError(client.completions.create({ model: 'demo', prompt: [99999] }), 400);
});

test('unknown fields are ignored', async () => {
  const r = await client.chat.completions.create(chat({ frobnicate: { deeply: [1, 2] }, user: 'u', metadata: null }));
  assert.equal(r.choices.length, 1);
});

test('a prompt over the context length names both numbers', async () => {
  const long = 'Return the value '.repeat(400);
  await assert.rejects(client.completions.create({ model: 'demo', prompt: long, max_tokens: 4 }), (e) => {
    assert.equal(e.status, 400);
    assert.equal(e.code, 'context_length_exceeded');
    assert.match(e.message, /1024/);
    const n = Number(e.message.match(/prompt has (\d+) tokens/)[1]);
    assert.ok(n > 1024);
    return true;
  });
});

test('malformed JSON and invalid UTF-8 are 400', async () => {
  let r = await post('/v1/chat/completions', '{"model": "demo", "messages": [');
  assert.equal(r.status, 400);
  assert.match(r.error.message, /not valid JSON/);
  r = await post('/v1/chat/completions', Buffer.from('{"model":"demo","messages":[{"role":"user","content":"\xff\xfe"}]}', 'latin1'));
  assert.equal(r.status, 400);
  r = await post('/v1/completions', 'null');
  assert.equal(r.status, 400);
  r = await post('/v1/embeddings', '{"model":"demo","input":[[]]}');
  assert.equal(r.status, 400);
});

test('a body over the limit is 413', async () => {
  const resp = await raw(
    'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000000\r\n\r\n{"model":',
  );
  assert.match(resp, /^HTTP\/1\.1 413/);
  const body = JSON.parse(resp.slice(resp.indexOf('\r\n\r\n') + 4));
  assertShape(body);
  const r = await post('/v1/chat/completions', JSON.stringify(chat({ pad: 'x'.repeat(200000) })));
  assert.equal(r.status, 413);
});

test('a slow client is dropped and does not block others', async () => {
  const slow = raw('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"mo', { waitClose: true });
  const r = await client.chat.completions.create(chat());
  assert.equal(r.choices.length, 1);
  const started = Date.now();
  await slow;  // closed by the server's read timeout
  assert.ok(Date.now() - started < 30000);
});

test('unknown route is a 404 in the error shape', async () => {
  const r = await fetch(`${srv.url}/v1/nothing`);
  assert.equal(r.status, 404);
  assertShape(await r.json());
});
