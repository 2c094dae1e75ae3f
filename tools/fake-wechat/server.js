#!/usr/bin/env node
'use strict';

// A fake WeChat Official Account platform: a documented stand-in for
// api.weixin.qq.com (which these machines cannot reach), with a control API
// under /_fake/ that plays the WeChat user (scans, messages) and injects
// failures.  It is not WeChat; see README.md for what it does and does not
// model.  Node built-in modules only.
//
//   node server.js --port 9100 --appid wx1 --secret s1 --token t1 \
//        [--aes-key KEY] [--mode plain|compatible|safe] [--callback URL] \
//        [--original-id gh_x] [--open-platform NAME] [--appid wx2 ...] \
//        [--token-ttl 7200] [--token-overlap 5] [--push-timeout 5000] \
//        [--ticket-quota 100000]

const http = require('http');
const crypto = require('crypto');
const { execFile } = require('child_process');
const push = require('./push');
const wxcrypt = require('./wxcrypt');

const ERRMSG = {
  '-1': 'system error',
  40001: 'invalid credential, access_token is invalid or not latest',
  40002: 'invalid grant_type',
  40003: 'invalid openid',
  40008: 'invalid message type',
  40013: 'invalid appid',
  40029: 'invalid code',
  40030: 'invalid refresh_token',
  40037: 'invalid template_id',
  40097: 'invalid args',
  40125: 'invalid appsecret',
  40164: 'invalid ip, not in whitelist',
  41001: 'access_token missing',
  41002: 'appid missing',
  41004: 'appsecret missing',
  41009: 'missing openid',
  42001: 'access_token expired',
  43004: 'require subscribe',
  44002: 'empty post data',
  45009: 'reach max api daily quota limit',
  45015: 'response out of time limit or subscription is canceled',
  40163: 'code been used',
  48001: 'api unauthorized',
  47001: 'data format error',
};

const MAX_TEMPORARY_QR_SECONDS = 2592000;
const DEFAULT_QR_SECONDS = 30;

// --- configuration ----------------------------------------------------------

function parseArgs(argv) {
  const config = {
    host: '127.0.0.1',
    port: Number(process.env.FAKE_WECHAT_PORT || 0),
    tokenTtl: 7200,        // seconds
    tokenOverlap: 5,       // seconds an old classic token still works
    pushTimeout: 5000,     // ms WeChat waits for the callback's answer
    ticketQuota: 100000,   // jsapi_ticket fetches an account may make
    accounts: [],
  };
  const globals = {
    '--host': (v) => { config.host = v; },
    '--port': (v) => { config.port = Number(v); },
    '--token-ttl': (v) => { config.tokenTtl = Number(v); },
    '--token-overlap': (v) => { config.tokenOverlap = Number(v); },
    '--push-timeout': (v) => { config.pushTimeout = Number(v); },
    '--ticket-quota': (v) => { config.ticketQuota = Number(v); },
    '--locked': (v) => { config.locked = v === 'yes'; },
  };
  // account options apply to the account the last --appid started
  const perAccount = {
    '--secret': 'secret', '--token': 'token', '--aes-key': 'aes_key',
    '--mode': 'mode', '--callback': 'callback', '--original-id': 'original_id',
    '--open-platform': 'open_platform', '--kind': 'kind',
    '--oauth-domain': 'oauth_domain',
  };
  for (let i = 0; i < argv.length; i += 2) {
    const [name, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${name} needs a value`);
    if (name === '--appid') {
      config.accounts.push({ appid: value });
    } else if (globals[name]) {
      globals[name](value);
    } else if (perAccount[name]) {
      if (!config.accounts.length) throw new Error(`${name} before any --appid`);
      config.accounts[config.accounts.length - 1][perAccount[name]] = value;
    } else {
      throw new Error(`unknown option ${name}`);
    }
  }
  return config;
}

function makeAccount(spec, previous = {}) {
  const merged = { ...previous, ...spec };
  const aesKey = merged.aes_key !== undefined ? merged.aes_key : previous.aesKey;
  if (aesKey) wxcrypt.aesKey(aesKey);   // throws on a malformed key
  const mode = merged.mode || (aesKey ? 'safe' : 'plain');
  if (!['plain', 'compatible', 'safe'].includes(mode)) throw new Error(`bad mode ${mode}`);
  if (mode !== 'plain' && !aesKey) throw new Error(`mode ${mode} needs aes_key`);
  const kind = merged.kind || previous.kind || 'official';
  if (!['official', 'website'].includes(kind)) throw new Error(`bad kind ${kind}`);
  return {
    appid: merged.appid,
    secret: merged.secret || previous.secret || 'secret',
    token: merged.token || previous.token || 'token',
    aesKey,
    mode,
    callback: merged.callback !== undefined ? merged.callback : previous.callback,
    originalId: merged.original_id || previous.originalId
      || 'gh_' + wxcrypt.sha1Hex(merged.appid).slice(0, 12),
    // accounts tied to an Open Platform account have unionids
    openPlatform: merged.open_platform !== undefined ? merged.open_platform
      : previous.openPlatform,
    // an Open Platform Website App (网站应用) logs users in by qrconnect
    kind,
    // the host a redirect_uri must have (网页授权域名, a Website App's
    // 授权回调域); any without it
    oauthDomain: merged.oauth_domain !== undefined ? merged.oauth_domain
      : previous.oauthDomain,
  };
}

const config = parseArgs(process.argv.slice(2));
const accounts = new Map();   // appid -> account; the first is the default
for (const spec of config.accounts) accounts.set(spec.appid, makeAccount(spec));

// --- state (cleared by /_fake/reset; accounts stay) ------------------------

let state;

function resetState() {
  state = {
    tokens: new Map(),     // access_token -> { appid, kind, expiresAt, invalidAt }
    current: new Map(),    // appid + kind -> the token a fetch would replace
    tickets: new Map(),    // ticket -> { appid, actionName, scene, url, expiresAt }
    jsapiTickets: new Map(),   // jsapi_ticket -> { appid, expiresAt, invalidAt }
    currentJsapi: new Map(),   // appid -> the jsapi_ticket a fetch would replace
    jsapiFetches: new Map(),   // appid -> jsapi_tickets handed out (the quota)
    users: new Map(),      // appid \n openid -> user
    messages: [],          // what users received
    counts: {},            // endpoint -> { calls, errcodes, statuses }
    failures: new Map(),   // endpoint -> [{ errcode, errmsg, httpStatus, times }]
    delays: new Map(),     // endpoint -> [{ ms, times }]
    codes: new Map(),      // OAuth code -> { appid, openid, scope, expiresAt, used }
    userTokens: new Map(), // OAuth access_token -> { appid, openid, scope, expiresAt }
    refreshTokens: new Map(), // refresh_token -> { appid, openid, scope, expiresAt }
    nextMsgId: 24000000000000000n,
    nextTemplateMsgId: 2700000000,
  };
}
resetState();

const now = () => Date.now();
const unixNow = () => Math.floor(now() / 1000);

function defaultAccount() {
  return accounts.values().next().value;
}

function accountFor(appid) {
  return appid === undefined ? defaultAccount() : accounts.get(appid);
}

function randomOpenid() {
  return 'o' + crypto.randomBytes(21).toString('base64url').slice(0, 27);
}

function userKey(appid, openid) {
  return `${appid}\n${openid}`;
}

function getUser(appid, openid) {
  return state.users.get(userKey(appid, openid));
}

// An openid as WeChat gives them: the fake takes any of this shape.
const OPENID = /^[A-Za-z0-9_-]{1,64}$/;

// A user the API is asked about: one the fake never saw, but of an openid's
// shape, is created on first use as a follower (an openid reaches a site
// only through a push, and pushes come from followers; wxsim sends pushes
// past the fake).  undefined for what is no openid.
function userOnFirstUse(appid, openid) {
  if (typeof openid !== 'string' || !OPENID.test(openid)) return undefined;
  return getUser(appid, openid)
    || touchUser(appid, openid, { subscribed: true, subscribeTime: unixNow() });
}

// Creates the user on first contact (the user follows when they interact).
function touchUser(appid, openid, fields = {}) {
  const key = userKey(appid, openid);
  const user = state.users.get(key) || {
    openid, subscribed: false, subscribeTime: 0, subscribeScene: 'ADD_SCENE_OTHERS',
    qrScene: 0, qrSceneStr: '', nickname: '微信用户',
  };
  Object.assign(user, fields, { lastInteraction: unixNow() });
  state.users.set(key, user);
  return user;
}

// --- answers ----------------------------------------------------------------

function errorBody(errcode, errmsg) {
  const rid = crypto.randomBytes(4).toString('hex');
  return { errcode, errmsg: `${errmsg || ERRMSG[errcode] || 'error'} rid: ${rid}` };
}

function count(endpoint, errcode, status) {
  const c = state.counts[endpoint] || (state.counts[endpoint] = { calls: 0, errcodes: {}, statuses: {} });
  c.calls++;
  if (errcode !== undefined) c.errcodes[errcode] = (c.errcodes[errcode] || 0) + 1;
  c.statuses[status] = (c.statuses[status] || 0) + 1;
}

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.errcode = body && body.errcode;
  res.writeHead(status, {
    'Content-Type': 'application/json; encoding=utf-8',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

// An API answer: counted under its endpoint, with errcode 0 for a success.
function apiAnswer(res, endpoint, body, status = 200) {
  count(endpoint, body.errcode || 0, status);
  sendJson(res, status, body);
}

// A body as injected, byte for byte: how a broken or hostile WeChat answers.
// Chunked, unless a Content-Length is asked for.
function rawAnswer(res, endpoint, failure) {
  const status = failure.httpStatus || 200;
  const headers = { 'Content-Type': 'application/json' };
  if (failure.contentLength) headers['Content-Length'] = Buffer.byteLength(failure.raw);
  count(endpoint, 0, status);
  res.writeHead(status, headers);
  res.end(failure.raw);
}

function apiError(res, endpoint, errcode, errmsg) {
  apiAnswer(res, endpoint, errorBody(errcode, errmsg));
}

// Takes one use of the first injected failure or delay queued for endpoint.
function takeInjected(map, endpoint) {
  const queue = map.get(endpoint);
  if (!queue || !queue.length) return null;
  const entry = queue[0];
  if (entry.times > 0 && --entry.times === 0) queue.shift();
  return entry;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseJson(text) {
  try {
    const value = JSON.parse(text);
    return value && typeof value === 'object' ? value : null;
  } catch {
    return null;
  }
}

// --- access tokens ----------------------------------------------------------

function issueToken(account, kind) {
  const token = crypto.randomBytes(102).toString('base64url');
  const issued = now();
  const record = { appid: account.appid, kind, issuedAt: issued,
    expiresAt: issued + config.tokenTtl * 1000, invalidAt: Infinity };
  state.tokens.set(token, record);
  state.current.set(account.appid + kind, token);
  return token;
}

// The old token keeps working for the overlap, then answers 40001.
function retire(token) {
  const record = token && state.tokens.get(token);
  if (record) record.invalidAt = Math.min(record.invalidAt, now() + config.tokenOverlap * 1000);
}

function secondsLeft(record) {
  return Math.max(0, Math.round((record.expiresAt - now()) / 1000));
}

// Checks appid and secret; answers the error and returns null when wrong.
function credentials(res, endpoint, appid, secret) {
  const account = accounts.get(appid);
  const errcode = !appid ? 41002 : !secret ? 41004 : !account ? 40013
    : secret !== account.secret ? 40125 : 0;
  if (!errcode) return account;
  apiError(res, endpoint, errcode);
  return null;
}

function classicToken(req, res, url, endpoint) {
  const q = url.searchParams;
  if (q.get('grant_type') !== 'client_credential') return apiError(res, endpoint, 40002);
  const account = credentials(res, endpoint, q.get('appid'), q.get('secret'));
  if (!account) return undefined;
  retire(state.current.get(account.appid + 'classic'));
  const token = issueToken(account, 'classic');
  return apiAnswer(res, endpoint, { access_token: token, expires_in: Math.round(config.tokenTtl) });
}

async function stableToken(req, res, url, endpoint) {
  const body = parseJson(await readBody(req));
  if (!body) return apiError(res, endpoint, 47001);
  if (body.grant_type !== 'client_credential') return apiError(res, endpoint, 40002);
  const account = credentials(res, endpoint, body.appid, body.secret);
  if (!account) return undefined;
  const currentToken = state.current.get(account.appid + 'stable');
  const current = currentToken && state.tokens.get(currentToken);
  // renewed in the last 5 minutes of its life (half of it for short TTLs)
  const renewWindow = Math.min(300, config.tokenTtl / 2) * 1000;
  const usable = current && current.invalidAt > now()
    && current.expiresAt - now() > renewWindow;
  if (usable && !body.force_refresh) {
    return apiAnswer(res, endpoint, { access_token: currentToken, expires_in: secondsLeft(current) });
  }
  if (body.force_refresh) retire(currentToken);
  const token = issueToken(account, 'stable');
  return apiAnswer(res, endpoint, { access_token: token, expires_in: Math.round(config.tokenTtl) });
}

// The account an access_token belongs to; answers the error and returns
// null when the token is missing, unknown, invalidated or expired.
function authorize(res, endpoint, url) {
  const token = url.searchParams.get('access_token');
  const record = token && state.tokens.get(token);
  const errcode = !token ? 41001 : !record || record.invalidAt <= now() ? 40001
    : record.expiresAt <= now() ? 42001 : 0;
  if (!errcode) return accounts.get(record.appid);
  apiError(res, endpoint, errcode);
  return null;
}

// --- QR codes ----------------------------------------------------------------

const QR_ACTIONS = {
  QR_SCENE: { key: 'scene_id', temporary: true },
  QR_STR_SCENE: { key: 'scene_str', temporary: true },
  QR_LIMIT_SCENE: { key: 'scene_id', temporary: false },
  QR_LIMIT_STR_SCENE: { key: 'scene_str', temporary: false },
};

function validScene(actionName, scene) {
  if (QR_ACTIONS[actionName].key === 'scene_str') {
    return typeof scene === 'string' && scene.length >= 1 && scene.length <= 64;
  }
  const max = actionName === 'QR_LIMIT_SCENE' ? 100000 : 4294967295;
  return Number.isInteger(scene) && scene >= 1 && scene <= max;
}

function newTicket(account, actionName, scene, expireSeconds) {
  // real tickets are base64 text, often with + / =, so clients must URL-encode them
  const ticket = 'gQ' + crypto.randomBytes(48).toString('base64');
  const url = 'http://weixin.qq.com/q/' + crypto.randomBytes(16).toString('base64url');
  state.tickets.set(ticket, {
    appid: account.appid, actionName, scene, url, expireSeconds,
    expiresAt: expireSeconds ? now() + expireSeconds * 1000 : Infinity,
  });
  return { ticket, url };
}

async function createQrcode(req, res, url, endpoint) {
  const account = authorize(res, endpoint, url);
  if (!account) return undefined;
  const text = await readBody(req);
  if (!text) return apiError(res, endpoint, 44002);
  const body = parseJson(text);
  if (!body) return apiError(res, endpoint, 47001);
  const action = QR_ACTIONS[body.action_name];
  if (!action) return apiError(res, endpoint, 40097, 'invalid action_name');
  const scene = body.action_info && body.action_info.scene
    && body.action_info.scene[action.key];
  if (!validScene(body.action_name, scene)) return apiError(res, endpoint, 40097, `invalid ${action.key}`);
  if (!action.temporary) {
    const { ticket, url: qrUrl } = newTicket(account, body.action_name, scene, 0);
    return apiAnswer(res, endpoint, { ticket, url: qrUrl });
  }
  const expire = body.expire_seconds === undefined ? DEFAULT_QR_SECONDS : body.expire_seconds;
  if (!Number.isInteger(expire) || expire < 1 || expire > MAX_TEMPORARY_QR_SECONDS) {
    return apiError(res, endpoint, 40097, 'invalid expire_seconds');
  }
  const { ticket, url: qrUrl } = newTicket(account, body.action_name, scene, expire);
  return apiAnswer(res, endpoint, { ticket, expire_seconds: expire, url: qrUrl });
}

function liveTicket(ticket) {
  const record = state.tickets.get(ticket);
  return record && record.expiresAt > now() ? record : null;
}

function qrPng(text) {
  return new Promise((resolve, reject) => {
    execFile('qrencode', ['-t', 'PNG', '-o', '-', text], { encoding: 'buffer' },
      (err, stdout) => (err ? reject(err) : resolve(stdout)));
  });
}

// On the real platform this is https://mp.weixin.qq.com/cgi-bin/showqrcode.
async function showQrcode(req, res, url, endpoint) {
  const record = liveTicket(url.searchParams.get('ticket') || '');
  if (!record) {
    count(endpoint, undefined, 404);
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    return res.end('not found\n');
  }
  record.png = record.png || await qrPng(record.url);
  count(endpoint, undefined, 200);
  res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': record.png.length });
  return res.end(record.png);
}

// --- users and messages --------------------------------------------------------

function userInfo(req, res, url, endpoint) {
  const account = authorize(res, endpoint, url);
  if (!account) return undefined;
  const openid = url.searchParams.get('openid');
  if (!openid) return apiError(res, endpoint, 41009);
  const user = userOnFirstUse(account.appid, openid);
  if (!user) return apiError(res, endpoint, 40003);
  if (!user.subscribed) return apiAnswer(res, endpoint, { subscribe: 0, openid });
  return apiAnswer(res, endpoint, {
    subscribe: 1, openid, nickname: user.nickname, language: 'zh_CN', headimgurl: '',
    subscribe_time: user.subscribeTime, remark: '', groupid: 0, tagid_list: [],
    subscribe_scene: user.subscribeScene, qr_scene: user.qrScene, qr_scene_str: user.qrSceneStr,
    ...unionidOf(account, openid),
  });
}

function record(message) {
  state.messages.push({ time: unixNow(), ...message });
}

async function sendMessage(req, res, url, endpoint, kind) {
  const account = authorize(res, endpoint, url);
  if (!account) return undefined;
  const body = parseJson(await readBody(req));
  if (!body) return apiError(res, endpoint, 47001);
  const user = userOnFirstUse(account.appid, body.touser);
  if (!user) return apiError(res, endpoint, 40003);
  if (kind === 'custom') {
    if (!user.subscribed) return apiError(res, endpoint, 45015);
    if (typeof body.msgtype !== 'string' || !body[body.msgtype]) return apiError(res, endpoint, 40008);
    record({ kind, appid: account.appid, openid: body.touser, msgtype: body.msgtype,
      content: body.text ? body.text.content : undefined, body });
    return apiAnswer(res, endpoint, { errcode: 0, errmsg: 'ok' });
  }
  if (!user.subscribed) return apiError(res, endpoint, 43004);
  if (!body.template_id) return apiError(res, endpoint, 40037);
  const msgid = state.nextTemplateMsgId++;
  record({ kind, appid: account.appid, openid: body.touser, template_id: body.template_id,
    url: body.url, data: body.data, msgid, body });
  return apiAnswer(res, endpoint, { errcode: 0, errmsg: 'ok', msgid });
}

function callbackIp(req, res, url, endpoint) {
  if (!authorize(res, endpoint, url)) return undefined;
  return apiAnswer(res, endpoint, { ip_list: ['127.0.0.1'] });
}


// --- OAuth web authorization (网页授权) ------------------------------------------

const CODE_SECONDS = 300;             // WeChat: a code lives 5 minutes, once
const USER_TOKEN_SECONDS = 7200;
const REFRESH_TOKEN_SECONDS = 30 * 86400;

// The two authorize pages: an official account's, in WeChat's browser, and
// a Website App's, on a PC, where the phone that scans its QR code confirms.
const AUTHORIZE_PAGES = {
  '/connect/oauth2/authorize': { kind: 'official', scopes: ['snsapi_base', 'snsapi_userinfo'] },
  '/connect/qrconnect': { kind: 'website', scopes: ['snsapi_login'] },
};

// The same person's unionid across the accounts of one Open Platform
// account: derived from the openid here, since the fake's openids are
// whatever a test names.
function unionidOf(account, openid) {
  if (!account.openPlatform) return {};
  const digest = crypto.createHash('sha1').update(`${account.openPlatform}\n${openid}`).digest();
  return { unionid: 'oU' + digest.toString('base64url').slice(0, 26) };
}

// Who a consent names is a person as the official accounts know them: a
// Website App has its own openid for them, 'oW' and the first 26
// characters of the base64url SHA-1 of "appid \n person", and the same
// unionid as the official accounts of its Open Platform account.
function grantOf(account, person, scope) {
  const openid = account.kind !== 'website' ? person : 'oW' + crypto.createHash('sha1')
    .update(`${account.appid}\n${person}`).digest().toString('base64url').slice(0, 26);
  return { appid: account.appid, openid, scope, ...unionidOf(account, person) };
}

function htmlEscape(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function sendHtml(res, status, html) {
  res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': Buffer.byteLength(html) });
  res.end(html);
}

function withQuery(base, params) {
  const u = new URL(base);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.toString();
}

// open.weixin.qq.com/connect/oauth2/authorize: the page WeChat's browser
// shows.  snsapi_base is silent once the user is known (openid=); the
// userinfo scope asks, and action=allow or action=deny answers.  The fake
// plays the user: openid= names them (WeChat knows it from the phone).
// open.weixin.qq.com/connect/qrconnect: a Website App's QR code on the
// PC; openid= names the person whose phone scans it, as an official
// account knows them, and action= is what they tap on the phone.
function authorizePage(req, res, url) {
  const q = url.searchParams;
  const page = AUTHORIZE_PAGES[url.pathname];
  const candidate = accounts.get(q.get('appid') || '');
  const account = candidate && candidate.kind === page.kind ? candidate : null;
  const redirect = q.get('redirect_uri') || '';
  const scope = q.get('scope') || '';
  let target;
  try {
    target = new URL(redirect);
  } catch {
    target = null;
  }
  const problem = !account ? 'appid 参数错误 (unknown appid)'
    : q.get('response_type') !== 'code' ? 'response_type 参数错误'
      : !page.scopes.includes(scope) ? 'scope 参数错误或没有 scope 权限'
        : !target || !/^https?:$/.test(target.protocol) ? 'redirect_uri 参数错误'
          : account.oauthDomain && target.hostname !== account.oauthDomain
            ? 'redirect_uri 域名与后台配置不一致 (10003)' : null;
  if (problem) {
    count(url.pathname, undefined, 400);
    return sendHtml(res, 400, `<!DOCTYPE html><meta charset="utf-8"><p>${htmlEscape(problem)}</p>`);
  }
  const oauthState = q.get('state') || '';
  const openid = q.get('openid') || '';
  const action = q.get('action') || (scope === 'snsapi_base' && openid ? 'allow' : '');
  if (action === 'deny') {
    count(url.pathname, 'deny', 302);
    res.writeHead(302, { Location: withQuery(redirect, { state: oauthState }) });
    return res.end();
  }
  if (action === 'allow' && openid) {
    const code = crypto.randomBytes(16).toString('hex');
    const grant = grantOf(account, openid, scope);
    touchUser(account.appid, grant.openid);
    state.codes.set(code, { ...grant, expiresAt: now() + CODE_SECONDS * 1000, used: false });
    count(url.pathname, 'allow', 302);
    res.writeHead(302, { Location: withQuery(redirect, { code, state: oauthState }) });
    return res.end();
  }
  // the consent page: who the user is, allow or deny
  count(url.pathname, undefined, 200);
  const hidden = ['appid', 'redirect_uri', 'response_type', 'scope', 'state']
    .map((k) => `<input type="hidden" name="${k}" value="${htmlEscape(q.get(k) || '')}">`).join('');
  const asks = scope === 'snsapi_login'
    ? '网站申请使用微信登录：请在手机上确认 (a website logs you in: confirm on the phone)'
    : scope === 'snsapi_userinfo'
      ? '申请获取你的昵称、头像 (wants your nickname and avatar)'
      : '申请获取你的身份 (wants to know who you are)';
  // no icon to fetch: the demo serves this page through its own nginx
  return sendHtml(res, 200, `<!DOCTYPE html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width"><link rel="icon" href="data:,">
<title>微信授权 (fake)</title></head>
<body><h1>fake WeChat</h1><p>${htmlEscape(account.appid)} ${asks}</p>
<form method="get" action="${url.pathname}">${hidden}
<label>openid <input name="openid" id="openid" value="${htmlEscape(openid || randomOpenid())}"></label>
<button name="action" value="allow" id="allow">允许 Allow</button>
<button name="action" value="deny" id="deny">拒绝 Deny</button>
</form></body></html>`);
}

function userTokenAnswer(grant) {
  const accessToken = crypto.randomBytes(48).toString('base64url');
  const refreshToken = crypto.randomBytes(48).toString('base64url');
  state.userTokens.set(accessToken, { ...grant, expiresAt: now() + USER_TOKEN_SECONDS * 1000 });
  state.refreshTokens.set(refreshToken, { ...grant, expiresAt: now() + REFRESH_TOKEN_SECONDS * 1000 });
  return { access_token: accessToken, expires_in: USER_TOKEN_SECONDS, refresh_token: refreshToken,
    openid: grant.openid, scope: grant.scope, ...(grant.unionid ? { unionid: grant.unionid } : {}) };
}

// sns/oauth2/access_token: a code once, within its 5 minutes, for its appid
function snsAccessToken(req, res, url, endpoint) {
  const q = url.searchParams;
  const account = credentials(res, endpoint, q.get('appid'), q.get('secret'));
  if (!account) return undefined;
  if (q.get('grant_type') !== 'authorization_code') return apiError(res, endpoint, 40002);
  const code = q.get('code') || '';
  const grant = state.codes.get(code);
  if (!grant || grant.appid !== account.appid || grant.expiresAt <= now()) {
    return apiError(res, endpoint, 40029);
  }
  if (grant.used) return apiError(res, endpoint, 40163);
  grant.used = true;
  return apiAnswer(res, endpoint, userTokenAnswer(grant));
}

function snsRefreshToken(req, res, url, endpoint) {
  const q = url.searchParams;
  const account = accounts.get(q.get('appid') || '');
  if (!account) return apiError(res, endpoint, 40013);
  if (q.get('grant_type') !== 'refresh_token') return apiError(res, endpoint, 40002);
  const grant = state.refreshTokens.get(q.get('refresh_token') || '');
  if (!grant || grant.appid !== account.appid || grant.expiresAt <= now()) {
    return apiError(res, endpoint, 40030);
  }
  const accessToken = crypto.randomBytes(48).toString('base64url');
  state.userTokens.set(accessToken, { ...grant, expiresAt: now() + USER_TOKEN_SECONDS * 1000 });
  return apiAnswer(res, endpoint, { access_token: accessToken, expires_in: USER_TOKEN_SECONDS,
    refresh_token: q.get('refresh_token'), openid: grant.openid, scope: grant.scope });
}

// The user's token for openid; answers the error and returns null if not.
function userGrant(res, endpoint, url) {
  const token = url.searchParams.get('access_token');
  const grant = token && state.userTokens.get(token);
  const errcode = !token ? 41001 : !grant ? 40001 : grant.expiresAt <= now() ? 42001
    : url.searchParams.get('openid') !== grant.openid ? 40003 : 0;
  if (!errcode) return grant;
  apiError(res, endpoint, errcode);
  return null;
}

function snsUserinfo(req, res, url, endpoint) {
  const grant = userGrant(res, endpoint, url);
  if (!grant) return undefined;
  if (grant.scope !== 'snsapi_userinfo') return apiError(res, endpoint, 48001);
  const user = getUser(grant.appid, grant.openid) || {};
  return apiAnswer(res, endpoint, {
    openid: grant.openid, nickname: user.nickname || '微信用户', sex: 0, province: '', city: '',
    country: '', headimgurl: user.headimgurl || '', privilege: [],
    ...(grant.unionid ? { unionid: grant.unionid } : {}),
  });
}

function snsAuth(req, res, url, endpoint) {
  if (!userGrant(res, endpoint, url)) return undefined;
  return apiAnswer(res, endpoint, { errcode: 0, errmsg: 'ok' });
}

// --- JS-SDK ----------------------------------------------------------------------

// getticket: each fetch hands out a new jsapi_ticket, and the one before it
// keeps working for the token overlap only, so that nodes that fetch a ticket
// each break the pages the others signed.  An account has --ticket-quota
// fetches (45009 after them), as WeChat counts them a day.
function getTicket(req, res, url, endpoint) {
  const account = authorize(res, endpoint, url);
  if (!account) return undefined;
  if (url.searchParams.get('type') !== 'jsapi') return apiError(res, endpoint, 40097, 'invalid type');
  const fetched = state.jsapiFetches.get(account.appid) || 0;
  if (fetched >= config.ticketQuota) return apiError(res, endpoint, 45009);
  state.jsapiFetches.set(account.appid, fetched + 1);
  const previous = state.jsapiTickets.get(state.currentJsapi.get(account.appid));
  if (previous) previous.invalidAt = Math.min(previous.invalidAt, now() + config.tokenOverlap * 1000);
  const ticket = crypto.randomBytes(64).toString('base64url');
  state.jsapiTickets.set(ticket, { appid: account.appid,
    expiresAt: now() + config.tokenTtl * 1000, invalidAt: Infinity });
  state.currentJsapi.set(account.appid, ticket);
  return apiAnswer(res, endpoint, { errcode: 0, errmsg: 'ok', ticket,
    expires_in: Math.round(config.tokenTtl) });
}

function jssdkSignature(ticket, nonceStr, timestamp, url) {
  return crypto.createHash('sha1')
    .update(`jsapi_ticket=${ticket}&noncestr=${nonceStr}&timestamp=${timestamp}&url=${url}`)
    .digest('hex');
}

// What WeChat's browser does with wx.config: the signature must be the
// SHA-1 that a live jsapi_ticket of the account gives for this page's URL
// (without its fragment), the nonce and the timestamp.
function jssdkConfig(res, body) {
  const account = accounts.get(body.appId);
  if (!account) return sendJson(res, 200, { ok: false, errMsg: 'config:invalid appid' });
  const page = String(body.url || '').split('#')[0];
  const fields = [body.timestamp, body.nonceStr, body.signature];
  if (!page || fields.some((f) => f === undefined || f === '')) {
    return sendJson(res, 200, { ok: false, errMsg: 'config:missing parameters' });
  }
  const live = [...state.jsapiTickets].filter(([, rec]) => rec.appid === account.appid
    && rec.invalidAt > now() && rec.expiresAt > now());
  const ok = live.some(([ticket]) =>
    jssdkSignature(ticket, body.nonceStr, body.timestamp, page) === String(body.signature));
  return sendJson(res, 200, { ok, errMsg: ok ? 'config:ok' : 'config:invalid signature' });
}

// A stand-in for WeChat's jweixin.js, as much as the demo needs: wx.config
// has the fake check the parameters, then calls wx.ready's or wx.error's
// callback.  Served under /_fake/, so that a page reaches it where the
// demo proxies the fake.
const JWEIXIN = `(function () {
  'use strict';
  var readyFns = [], errorFns = [], outcome = null;
  function settle(result) {
    outcome = result;
    (result.ok ? readyFns : errorFns).forEach(function (fn) { fn(result.ok ? undefined : result); });
  }
  window.wx = {
    config: function (params) {
      var body = Object.assign({}, params, { url: location.href.split('#')[0] });
      fetch('/_fake/jssdk/config', { method: 'POST', body: JSON.stringify(body),
        headers: { 'Content-Type': 'application/json' } })
        .then(function (r) { return r.json(); })
        .then(settle, function (e) { settle({ ok: false, errMsg: 'config:' + e.message }); });
    },
    ready: function (fn) { if (outcome && outcome.ok) fn(); else readyFns.push(fn); },
    error: function (fn) { if (outcome && !outcome.ok) fn(outcome); else errorFns.push(fn); }
  };
})();
`;

function jweixin(res) {
  res.writeHead(200, { 'Content-Type': 'application/javascript; charset=utf-8',
    'Content-Length': Buffer.byteLength(JWEIXIN) });
  res.end(JWEIXIN);
}

const API = {
  '/cgi-bin/token': classicToken,
  '/cgi-bin/stable_token': stableToken,
  '/cgi-bin/qrcode/create': createQrcode,
  '/cgi-bin/showqrcode': showQrcode,
  '/cgi-bin/user/info': userInfo,
  '/cgi-bin/message/custom/send': (req, res, url, ep) => sendMessage(req, res, url, ep, 'custom'),
  '/cgi-bin/message/template/send': (req, res, url, ep) => sendMessage(req, res, url, ep, 'template'),
  '/cgi-bin/getcallbackip': callbackIp,
  '/sns/oauth2/access_token': snsAccessToken,
  '/sns/oauth2/refresh_token': snsRefreshToken,
  '/sns/userinfo': snsUserinfo,
  '/sns/auth': snsAuth,
  '/cgi-bin/ticket/getticket': getTicket,
};

async function handleApi(req, res, url) {
  const endpoint = url.pathname;
  const handler = API[endpoint];
  if (!handler) {
    count(endpoint, undefined, 404);
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    return res.end('not found\n');
  }
  const delay = takeInjected(state.delays, endpoint);
  if (delay) await new Promise((resolve) => setTimeout(resolve, delay.ms));
  const failure = takeInjected(state.failures, endpoint);
  if (failure) {
    await readBody(req);
    if (failure.raw !== undefined) return rawAnswer(res, endpoint, failure);
    return apiAnswer(res, endpoint, errorBody(failure.errcode, failure.errmsg), failure.httpStatus || 200);
  }
  return handler(req, res, url, endpoint);
}

// --- the user's side: pushes to the callback -----------------------------------

function accountOrFail(res, appid) {
  const account = accountFor(appid);
  if (!account) sendJson(res, 400, { error: `unknown account ${appid === undefined ? '(none configured)' : appid}` });
  return account;
}

// Pushes xml from openid to the account's callback and reports what the
// user sees; a passive reply is recorded as a message the user received.
async function pushToCallback(res, account, openid, xml, about, callbackOverride) {
  const callback = callbackOverride || account.callback;
  if (!callback) return sendJson(res, 400, { error: `no callback URL for ${account.appid}` });
  const attempts = await push.deliver(callback, push.signPush(account, openid, xml),
    { timeoutMs: config.pushTimeout });
  for (const a of attempts) {
    process.stderr.write(`${new Date().toISOString()} push ${about.event || about.msgtype} `
      + `-> ${callback} ${a.status || a.error} ${a.ms}ms\n`);
  }
  const last = attempts[attempts.length - 1];
  const reply = last.status === 200 ? push.readReply(account, last.body) : { kind: 'none' };
  const userSees = push.userSees(attempts, reply);
  if (reply.kind === 'xml') {
    record({ kind: 'passive', appid: account.appid, openid, msgtype: reply.MsgType,
      content: reply.Content, in_reply_to: about.event || about.msgtype });
  } else if (userSees) {
    record({ kind: 'error', appid: account.appid, openid, content: userSees,
      in_reply_to: about.event || about.msgtype });
  }
  return sendJson(res, 200, {
    ...about, openid,
    tries: attempts.map(({ status, error, ms }) => ({ status, error, ms })),
    statuses: attempts.map((a) => a.status || 0),
    reply: { kind: reply.kind, encrypted: reply.encrypted, MsgType: reply.MsgType,
      Content: reply.Content, fields: reply.fields, error: reply.error, raw: reply.raw },
    user_sees: userSees,
  });
}

function sceneTicket(account, scene) {
  for (const [ticket, rec] of state.tickets) {
    if (rec.appid === account.appid && String(rec.scene) === String(scene)
      && rec.expiresAt > now()) return [ticket, rec];
  }
  // a scene the fake never made a QR code for (the site drew it itself)
  const { ticket } = newTicket(account, 'QR_STR_SCENE', String(scene), MAX_TEMPORARY_QR_SECONDS);
  return [ticket, state.tickets.get(ticket)];
}

async function scanAction(res, body) {
  let ticket = body.ticket;
  let rec;
  if (ticket) {
    rec = state.tickets.get(ticket);
    if (!rec) return sendJson(res, 404, { error: 'unknown ticket' });
    if (rec.expiresAt <= now()) return sendJson(res, 410, { error: 'ticket expired' });
  }
  const account = accountOrFail(res, rec ? rec.appid : body.appid);
  if (!account) return undefined;
  if (!rec) {
    if (body.scene === undefined) return sendJson(res, 400, { error: 'scan needs ticket or scene' });
    [ticket, rec] = sceneTicket(account, body.scene);
  }
  const openid = body.openid || randomOpenid();
  const known = getUser(account.appid, openid);
  const subscribed = body.subscribed !== undefined ? !!body.subscribed : !!(known && known.subscribed);
  const event = subscribed ? 'SCAN' : 'subscribe';
  const eventKey = subscribed ? String(rec.scene) : `qrscene_${rec.scene}`;
  const xml = push.eventXml({ to: account.originalId, from: openid, createTime: unixNow(),
    event, eventKey, ticket });
  // the user follows the account whatever the callback answers
  const fields = { subscribed: true };
  if (!subscribed) {
    Object.assign(fields, { subscribeTime: unixNow(), subscribeScene: 'ADD_SCENE_QR_CODE',
      qrScene: typeof rec.scene === 'number' ? rec.scene : 0,
      qrSceneStr: typeof rec.scene === 'string' ? rec.scene : '' });
  }
  touchUser(account.appid, openid, fields);
  return pushToCallback(res, account, openid, xml,
    { event, event_key: eventKey, ticket, scene: rec.scene }, body.callback);
}

async function sendAction(res, body) {
  const account = accountOrFail(res, body.appid);
  if (!account) return undefined;
  const openid = body.openid || randomOpenid();
  touchUser(account.appid, openid, getUser(account.appid, openid) ? {} : { subscribed: true });
  const msgId = state.nextMsgId++;
  const xml = push.textXml({ to: account.originalId, from: openid, createTime: unixNow(),
    content: String(body.content === undefined ? '' : body.content), msgId });
  return pushToCallback(res, account, openid, xml,
    { msgtype: 'text', msg_id: String(msgId) }, body.callback);
}

async function eventAction(res, body) {
  const account = accountOrFail(res, body.appid);
  if (!account) return undefined;
  if (!body.event) return sendJson(res, 400, { error: 'event needs "event"' });
  const openid = body.openid || randomOpenid();
  const xml = push.eventXml({ to: account.originalId, from: openid, createTime: unixNow(),
    event: body.event, eventKey: body.key });
  if (body.event === 'unsubscribe') touchUser(account.appid, openid, { subscribed: false });
  else if (body.event === 'subscribe') {
    touchUser(account.appid, openid, { subscribed: true, subscribeTime: unixNow(),
      subscribeScene: 'ADD_SCENE_SEARCH' });
  } else touchUser(account.appid, openid);
  return pushToCallback(res, account, openid, xml,
    { event: body.event, event_key: body.key }, body.callback);
}

// The server-URL check the console makes when the URL is saved.
async function verifyAction(res, body) {
  const account = accountOrFail(res, body.appid);
  if (!account) return undefined;
  const callback = body.callback || account.callback;
  if (!callback) return sendJson(res, 400, { error: `no callback URL for ${account.appid}` });
  const timestamp = String(unixNow());
  const nonce = wxcrypt.nonce();
  const echostr = crypto.randomBytes(9).toString('hex');
  const query = new URLSearchParams({
    signature: wxcrypt.signature(account.token, timestamp, nonce), timestamp, nonce, echostr,
  });
  const answer = await push.request('GET', `${callback}${callback.includes('?') ? '&' : '?'}${query}`,
    undefined, config.pushTimeout);
  return sendJson(res, 200, { ok: answer.status === 200 && answer.body === echostr,
    status: answer.status, error: answer.error, echostr, body: answer.body });
}

// --- control API -------------------------------------------------------------------

function injection(res, body, map, make) {
  if (!body.endpoint) return sendJson(res, 400, { error: 'needs "endpoint"' });
  const times = body.times === undefined ? 1 : Number(body.times);
  const queue = map.get(body.endpoint) || [];
  queue.push({ times, ...make(body) });
  map.set(body.endpoint, queue);
  return sendJson(res, 200, { ok: true, endpoint: body.endpoint, queued: queue.length });
}

function expireTokens(res, body) {
  const account = accountFor(body.appid);
  let expired = 0;
  for (const [token, rec] of state.tokens) {
    const match = body.access_token ? token === body.access_token
      : account && rec.appid === account.appid;
    if (match && rec.expiresAt > now()) {
      rec.expiresAt = now();
      expired++;
    }
  }
  return sendJson(res, 200, { ok: true, expired });
}

// An account's public settings, what a demo page shows of it: never its
// secret, token or key.
function publicAccount({ appid, mode, kind, originalId }) {
  return { appid, mode, kind, original_id: originalId };
}

function showAccount(res, url) {
  const account = accountOrFail(res, url.searchParams.get('appid') || undefined);
  if (!account) return undefined;
  return sendJson(res, 200, publicAccount(account));
}

function upsertAccount(res, body) {
  if (!body.appid) return sendJson(res, 400, { error: 'needs "appid"' });
  if (config.locked && (!accounts.has(body.appid)
      || Object.keys(body).some((k) => k !== 'appid' && k !== 'mode'))) {
    return sendJson(res, 403, { error: 'locked: an account\'s mode only' });
  }
  try {
    accounts.set(body.appid, makeAccount(body, accounts.get(body.appid)));
  } catch (e) {
    return sendJson(res, 400, { error: e.message });
  }
  return sendJson(res, 200, { ok: true, account: publicAccount(accounts.get(body.appid)) });
}

function upsertUser(res, body) {
  const account = accountOrFail(res, body.appid);
  if (!account) return undefined;
  if (!body.openid) return sendJson(res, 400, { error: 'needs "openid"' });
  const fields = { subscribed: body.subscribed === undefined ? true : !!body.subscribed };
  if (fields.subscribed) fields.subscribeTime = unixNow();
  if (body.nickname !== undefined) fields.nickname = body.nickname;
  if (body.headimgurl !== undefined) fields.headimgurl = body.headimgurl;
  touchUser(account.appid, body.openid, fields);
  return sendJson(res, 200, { ok: true });
}

function listTickets(res, url) {
  const appid = url.searchParams.get('appid');
  const tickets = [...state.tickets]
    .filter(([, rec]) => !appid || rec.appid === appid)
    .map(([ticket, rec]) => ({ ticket, appid: rec.appid, action_name: rec.actionName,
      scene: rec.scene, url: rec.url, expire_seconds: rec.expireSeconds || undefined }));
  return sendJson(res, 200, { tickets });
}

function listMessages(res, url) {
  const openid = url.searchParams.get('openid');
  const appid = url.searchParams.get('appid');
  const messages = state.messages.filter((m) =>
    (!openid || m.openid === openid) && (!appid || m.appid === appid));
  return sendJson(res, 200, { messages });
}

const CONTROL = {
  'GET /_fake/counts': (res) => sendJson(res, 200, state.counts),
  'POST /_fake/reset': (res) => { resetState(); return sendJson(res, 200, { ok: true }); },
  'POST /_fake/fail': (res, body) => injection(res, body, state.failures,
    (b) => ({ errcode: b.errcode === undefined ? -1 : b.errcode, errmsg: b.errmsg,
      httpStatus: b.http_status, raw: b.raw, contentLength: !!b.content_length })),
  'POST /_fake/delay': (res, body) => injection(res, body, state.delays,
    (b) => ({ ms: Number(b.ms || 0) })),
  'POST /_fake/expire-token': expireTokens,
  'GET /_fake/messages': (res, body, url) => listMessages(res, url),
  'GET /_fake/tickets': (res, body, url) => listTickets(res, url),
  'POST /_fake/scan': scanAction,
  'POST /_fake/send': sendAction,
  'POST /_fake/event': eventAction,
  'POST /_fake/verify': verifyAction,
  'GET /_fake/account': (res, body, url) => showAccount(res, url),
  'POST /_fake/account': upsertAccount,
  'POST /_fake/user': upsertUser,
  'POST /_fake/expire-codes': (res) => {
    for (const grant of state.codes.values()) grant.expiresAt = now();
    return sendJson(res, 200, { ok: true });
  },
  'POST /_fake/jssdk/config': jssdkConfig,
  'GET /_fake/jweixin.js': jweixin,
};

async function handleControl(req, res, url) {
  const handler = CONTROL[`${req.method} ${url.pathname}`];
  if (!handler) return sendJson(res, 404, { error: `no control call ${req.method} ${url.pathname}` });
  const text = await readBody(req);
  const body = text ? parseJson(text) : {};
  if (!body) return sendJson(res, 400, { error: 'body is not a JSON object' });
  if (config.locked && body.callback !== undefined) {
    return sendJson(res, 403, { error: 'locked: pushes go to the account\'s callback' });
  }
  return handler(res, body, url);
}

// --- server --------------------------------------------------------------------------

function logLine(req, res, started) {
  // secrets hidden, tokens shortened to what tells them apart
  const path = req.url.replace(/([?&]secret=)[^&]*/, '$1***')
    .replace(/([?&]access_token=[^&]{8})[^&]*/, '$1...');
  const errcode = res.errcode ? ` errcode=${res.errcode}` : '';
  process.stderr.write(`${new Date().toISOString()} ${req.method} ${path} `
    + `${res.statusCode}${errcode} ${now() - started}ms\n`);
}

const server = http.createServer((req, res) => {
  const started = now();
  res.on('finish', () => logLine(req, res, started));
  const url = new URL(req.url, 'http://fake.invalid');
  const handle = url.pathname.startsWith('/_fake/') ? handleControl
    : AUTHORIZE_PAGES[url.pathname] ? async (q, r, u) => authorizePage(q, r, u)
      : handleApi;
  handle(req, res, url).catch((e) => {
    process.stderr.write(`${new Date().toISOString()} internal error: ${e.stack}\n`);
    if (!res.headersSent) sendJson(res, 500, { error: e.message });
    else res.destroy();
  });
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}

server.listen(config.port, config.host, () => {
  const { port } = server.address();
  process.stderr.write(`fake-wechat listening on http://${config.host}:${port} `
    + `(${accounts.size} account${accounts.size === 1 ? '' : 's'})\n`);
});
