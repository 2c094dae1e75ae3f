#!/usr/bin/env node
'use strict';

// The stand-in business app of the demo (conf-examples/demo.conf): only
// what the demo pages need.  Node built-in modules only.
//
//   node app.js --port 8081 --nginx http://127.0.0.1:8080
//
//   GET  /session        nginx's auth_request: 200 with X-User-Id, or 401
//   POST /app/login      {"name"}: a session for that name, no password
//   POST /app/logout
//   GET  /app/me         {"user","openid"}: the binding, from wechat_binding
//   POST /app/unbind     drops the binding, so the demo can run again
//   POST /app/redeem     {"scene","code"}: trades a login or verification code at
//                        wechat_redeem, with the browser's cookies, for a session;
//                        a WeChat user with no account is offered to register
//   GET  /register       a signed link's landing (wechat_link_verify): the
//                        openid the edge checked is offered to register
//   GET  /app/register   {"openid"}: the registration this browser was offered
//   POST /app/register   {"name"}: registers it, binds the openid (PUT at
//                        wechat_binding), and starts a session
//   POST /wechat         pushes the module passes on (wechat_pass): printed
//   GET  /m/             the mobile page behind wechat_oauth: who the edge
//                        says the WeChat user is (X-WeChat-OpenID, -User)
//   GET  /pc/            the PC page behind website login: the same, and
//                        the unionid that links it to the official account
//
// The pages' bodies are JSON, and a body of another type is refused with
// 415: a form on another site can post only form or text types without
// the browser asking first (CORS), so it cannot log a visitor in to the
// attacker's account with the attacker's code (login CSRF).

const http = require('http');
const crypto = require('crypto');

const SESSION_COOKIE = 'demo_session';
// a registration offered to this browser: a WeChat user with no account
const REGISTER_COOKIE = 'demo_register';
const REGISTER_SECONDS = 600;
// ASCII, so the name is the same in a header, a query and a Redis key
const NAME = /^[A-Za-z0-9_.-]{1,32}$/;

function parseArgs(argv) {
  const opts = { port: 8081, nginx: 'http://127.0.0.1:8080' };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '');
    if (!(name in opts) || argv[i + 1] === undefined) {
      throw new Error(`usage: app.js [--port N] [--nginx URL]`);
    }
    opts[name] = argv[i + 1];
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const sessions = new Map();   // session id -> site user
// registration id -> { openid, expires }: only openids the edge vouched for
// (a signed link, a redeemed code)
const registrations = new Map();
// names being registered: the look-up and the bind of one registration
// are not interleaved with another's of the same name, which PUT would
// let replace the binding the first made
const registering = new Set();

function log(line) {
  process.stderr.write(`${new Date().toISOString()} app: ${line}\n`);
}

function cookies(req) {
  const jar = {};
  for (const part of (req.headers.cookie || '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) jar[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return jar;
}

function sessionUser(req) {
  return sessions.get(cookies(req)[SESSION_COOKIE]);
}

function send(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store',
    ...headers });
  res.end(text);
}

function startSession(res, user, body) {
  const id = crypto.randomBytes(16).toString('hex');
  sessions.set(id, user);
  log(`session for ${user}`);
  send(res, 200, { user, ...body }, {
    'Set-Cookie': `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Lax` });
}

// The openid, trusted, may register here: the browser gets a cookie naming
// the offer (never the openid itself, which it could change).
function offerRegistration(openid) {
  const id = crypto.randomBytes(16).toString('hex');
  registrations.set(id, { openid, expires: Date.now() + REGISTER_SECONDS * 1000 });
  log(`registration offered to ${openid}`);
  return `${REGISTER_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${REGISTER_SECONDS}`;
}

function registration(req) {
  const id = cookies(req)[REGISTER_COOKIE];
  const offer = registrations.get(id);
  if (!offer) return null;
  if (offer.expires < Date.now()) {
    registrations.delete(id);
    return null;
  }
  return { id, ...offer };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// The request's JSON object; null (after answering 415) for a body that is
// not application/json.
async function readJson(req, res) {
  const type = (req.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json') {
    send(res, 415, { error: 'the body must be application/json' });
    return null;
  }
  try {
    const body = JSON.parse(await readBody(req));
    return body && typeof body === 'object' ? body : {};
  } catch (e) {
    return {};
  }
}

// A call to one of the module's internal locations on nginx: the answer's
// status and decoded JSON.
function nginx(method, path, { body, cookie } = {}) {
  return new Promise((resolve, reject) => {
    const headers = {};
    if (body !== undefined) {
      headers['Content-Type'] = 'application/x-www-form-urlencoded';
      headers['Content-Length'] = Buffer.byteLength(body);
    }
    if (cookie) headers.Cookie = cookie;
    const req = http.request(`${opts.nginx}${path}`, { method, headers, timeout: 5000 },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          let json = null;
          try { json = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch (e) { /* none */ }
          resolve({ status: res.statusCode, json });
        });
      });
    req.on('timeout', () => req.destroy(new Error('nginx did not answer')));
    req.on('error', reject);
    req.end(body);
  });
}

const ROUTES = {
  'GET /session': async (req, res) => {
    const user = sessionUser(req);
    res.writeHead(user ? 200 : 401, user ? { 'X-User-Id': user } : {});
    res.end();
  },

  'POST /app/login': async (req, res) => {
    const body = await readJson(req, res);
    if (!body) return undefined;
    const { name } = body;
    if (typeof name !== 'string' || !NAME.test(name)) {
      return send(res, 400, { error: 'name: 1 to 32 letters, digits, _ . -' });
    }
    return startSession(res, name);
  },

  'POST /app/logout': async (req, res) => {
    sessions.delete(cookies(req)[SESSION_COOKIE]);
    send(res, 200, { ok: true }, {
      'Set-Cookie': `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0` });
  },

  'GET /app/me': async (req, res) => {
    const user = sessionUser(req);
    if (!user) return send(res, 401, { error: 'not logged in' });
    const binding = await nginx('GET', `/internal/binding?user=${encodeURIComponent(user)}`);
    return send(res, 200, { user, openid: binding.status === 200 ? binding.json.openid : null });
  },

  'POST /app/unbind': async (req, res) => {
    const user = sessionUser(req);
    if (!user) return send(res, 401, { error: 'not logged in' });
    const answer = await nginx('DELETE', `/internal/binding?user=${encodeURIComponent(user)}`);
    return send(res, answer.status === 200 ? 200 : 502, answer.json || { error: 'unbind failed' });
  },

  // The code comes from the page: the login poll's "code" or what the user
  // typed from WeChat.  wechat_redeem takes it once and names the WeChat
  // user and the site user bound to it; the browser's Cookie header goes
  // along, as wechat_redeem_poll_token wants: the poll token wechat_qrcode set
  // in this browser, so a code redeems only where its scene was shown.
  'POST /app/redeem': async (req, res) => {
    const body = await readJson(req, res);
    if (!body) return undefined;
    const { scene, code } = body;
    if (typeof code !== 'string' || !/^[A-Za-z0-9]{1,64}$/.test(code)
        || typeof scene !== 'string' || !/^[A-Za-z0-9_]{1,64}$/.test(scene)) {
      return send(res, 400, { error: 'bad scene or code' });
    }
    const answer = await nginx('POST', '/internal/redeem',
      { body: `scene=${encodeURIComponent(scene)}&code=${encodeURIComponent(code)}`,
        cookie: req.headers.cookie });
    const redeemed = answer.json || {};
    if (answer.status !== 200) {
      return send(res, answer.status === 404 ? 404 : 502,
        { error: answer.status === 404 ? 'code unknown or used' : 'redeem failed' });
    }
    if (!redeemed.user) {
      // a WeChat user with no site account: offered to register
      return send(res, 200, { status: 'unbound', openid: redeemed.openid },
        { 'Set-Cookie': offerRegistration(redeemed.openid) });
    }
    return startSession(res, redeemed.user, { status: 'redeemed', openid: redeemed.openid });
  },

  // behind wechat_link_verify: the link was signed for this openid and is
  // spent; the registration page takes over
  'GET /register': async (req, res) => {
    const openid = req.headers['x-wechat-openid'];
    if (!openid) return send(res, 403, { error: 'only through a signed link' });
    res.writeHead(302, { Location: '/register.html', 'Cache-Control': 'no-store',
      'Set-Cookie': offerRegistration(openid) });
    return res.end();
  },

  'GET /app/register': async (req, res) => {
    const offer = registration(req);
    if (!offer) return send(res, 404, { error: 'no registration offered' });
    return send(res, 200, { openid: offer.openid });
  },

  'POST /app/register': async (req, res) => {
    const body = await readJson(req, res);
    if (!body) return undefined;
    const offer = registration(req);
    if (!offer) return send(res, 404, { error: 'no registration offered' });
    const { name } = body;
    if (typeof name !== 'string' || !NAME.test(name)) {
      return send(res, 400, { error: 'name: 1 to 32 letters, digits, _ . -' });
    }
    if (registering.has(name)) return send(res, 409, { error: 'name taken' });
    registering.add(name);
    let bound;
    try {
      const taken = await nginx('GET', `/internal/binding?user=${encodeURIComponent(name)}`);
      if (taken.status === 200) return send(res, 409, { error: 'name taken' });
      bound = await nginx('PUT', `/internal/binding?user=${encodeURIComponent(name)}`
        + `&openid=${encodeURIComponent(offer.openid)}`);
    } finally {
      registering.delete(name);
    }
    if (bound.status !== 200) {
      return send(res, bound.status === 409 ? 409 : 502,
        { error: bound.status === 409 ? 'this WeChat is bound already' : 'register failed' });
    }
    registrations.delete(offer.id);
    return startSession(res, name, { openid: offer.openid, registered: true });
  },

  // behind wechat_oauth: the headers come from the edge, never the client
  'GET /m/': async (req, res) => {
    const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
    const openid = req.headers['x-wechat-openid'] || '';
    const user = req.headers['x-wechat-user'] || '';
    const html = `<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width"><link rel="icon" href="data:,"><title>手机页面 Mobile page</title>
<link rel="stylesheet" href="/demo.css"></head><body><main>
<h1>手机页面 <span class="en">Mobile page</span></h1>
<p>nginx 已通过网页授权确认你的身份 · the edge knows who you are (wechat_oauth):</p>
<p>openid <code id="m-openid">${esc(openid)}</code></p>
<p>站内账号 site user <code id="m-user">${esc(user || '(未绑定 not bound)')}</code></p>
</main></body></html>`;
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8',
      'Content-Length': Buffer.byteLength(html), 'Cache-Control': 'no-store' });
    res.end(html);
  },

  // behind wechat_oauth login (the Open Platform's Website App)
  'GET /pc/': async (req, res) => {
    const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
    const [openid, unionid, user] = ['x-wechat-openid', 'x-wechat-unionid', 'x-wechat-user']
      .map((h) => req.headers[h] || '');
    const html = `<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">
<link rel="icon" href="data:,"><title>微信登录 PC login</title>
<link rel="stylesheet" href="/demo.css"></head><body><main>
<h1>微信登录 <span class="en">Logged in with WeChat</span></h1>
<p>nginx 已通过开放平台网站应用确认你的身份 · the edge logged you in (wechat_oauth login):</p>
<p>站内账号 site user <code id="pc-user">${esc(user || '(未绑定 not bound)')}</code></p>
<p>unionid <code id="pc-unionid">${esc(unionid)}</code></p>
<p>网站应用 openid · the Website App's openid <code id="pc-openid">${esc(openid)}</code></p>
</main></body></html>`;
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8',
      'Content-Length': Buffer.byteLength(html), 'Cache-Control': 'no-store' });
    res.end(html);
  },

  'POST /wechat': async (req, res) => {
    const body = await readBody(req);
    const who = ['x-wechat-openid', 'x-wechat-user', 'x-wechat-resolution']
      .map((h) => `${h.slice(9)}=${req.headers[h] || '-'}`).join(' ');
    log(`push passed by nginx: ${who}\n${body}`);
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('success');
  },
};

const server = http.createServer((req, res) => {
  const route = ROUTES[`${req.method} ${req.url.split('?')[0]}`];
  if (!route) return send(res, 404, { error: 'not found' });
  return route(req, res).catch((e) => {
    log(`${req.method} ${req.url}: ${e.message}`);
    if (!res.headersSent) send(res, 502, { error: e.message });
  });
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}

server.listen(Number(opts.port), '127.0.0.1', () => {
  log(`listening on http://127.0.0.1:${server.address().port}`);
});
