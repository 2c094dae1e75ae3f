'use strict';

// Pushes to a callback URL as WeChat makes them: the event and message XML,
// the signed query (and in safe or compatible mode the encrypted body and
// msg_signature), delivery with WeChat's 5 s wait and three tries, and the
// reading of the passive reply.  Shared by server.js and wxsim.

const http = require('http');
const https = require('https');
const wxcrypt = require('./wxcrypt');

// What the WeChat client shows when the callback fails to answer properly.
const SERVICE_UNAVAILABLE = '该公众号暂时无法提供服务，请稍后再试';

function cdata(text) {
  return '<![CDATA[' + String(text).split(']]>').join(']]]]><![CDATA[>') + ']]>';
}

// fields: [[name, value]]; numbers (and bigints) are written bare, strings
// as CDATA.
function buildXml(fields) {
  const inner = fields
    .filter(([, value]) => value !== undefined && value !== null)
    .map(([name, value]) => `<${name}>${typeof value === 'string' ? cdata(value) : value}</${name}>`)
    .join('\n');
  return `<xml>\n${inner}\n</xml>`;
}

function unescapeXml(text) {
  return text.replace(/&(lt|gt|amp|quot|apos);/g,
    (_, e) => ({ lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" })[e]);
}

// The top-level elements of a flat <xml> document, CDATA sections joined.
// Enough for replies and pushes; nested elements come back as raw text.
function parseXml(xml) {
  const root = /^\s*<xml>([\s\S]*)<\/xml>\s*$/.exec(xml);
  if (!root) return null;
  const fields = {};
  const element = /<([A-Za-z_][\w.-]*)>([\s\S]*?)<\/\1>/g;
  let m;
  while ((m = element.exec(root[1])) !== null) {
    const raw = m[2];
    fields[m[1]] = /^(\s*<!\[CDATA\[[\s\S]*?\]\]>)+\s*$|^[^<]*$/.test(raw)
      ? raw.replace(/<!\[CDATA\[([\s\S]*?)\]\]>|([^<]+)/g,
        (_, data, text) => (data !== undefined ? data : unescapeXml(text.trim())))
      : raw;
  }
  return fields;
}

function eventXml({ to, from, createTime, event, eventKey, ticket }) {
  return buildXml([
    ['ToUserName', to], ['FromUserName', from], ['CreateTime', createTime],
    ['MsgType', 'event'], ['Event', event], ['EventKey', eventKey], ['Ticket', ticket],
  ]);
}

function textXml({ to, from, createTime, content, msgId }) {
  return buildXml([
    ['ToUserName', to], ['FromUserName', from], ['CreateTime', createTime],
    ['MsgType', 'text'], ['Content', content], ['MsgId', msgId],
  ]);
}

// account: { token, appid, aesKey, mode: plain|compatible|safe, originalId }.
// Returns { query, body } for one push of xml from openid.
function signPush(account, openid, xml) {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const nonce = wxcrypt.nonce();
  const query = new URLSearchParams({
    signature: wxcrypt.signature(account.token, timestamp, nonce), timestamp, nonce,
  });
  if (openid) query.set('openid', openid);
  const mode = account.mode || 'plain';
  if (mode === 'plain') return { query: query.toString(), body: xml };

  const encrypted = wxcrypt.encrypt(account.aesKey, account.appid, xml);
  query.set('encrypt_type', 'aes');
  query.set('msg_signature', wxcrypt.signature(account.token, timestamp, nonce, encrypted));
  const body = mode === 'safe'
    ? buildXml([['ToUserName', account.originalId], ['Encrypt', encrypted]])
    // compatible mode: the plaintext fields and Encrypt side by side
    : xml.replace(/<\/xml>$/, `<Encrypt>${cdata(encrypted)}</Encrypt>\n</xml>`);
  return { query: query.toString(), body };
}

// One HTTP request; resolves { status, body, ms } or { error, ms }.
function request(method, url, body, timeoutMs) {
  return new Promise((resolve) => {
    const started = Date.now();
    const target = new URL(url);
    const client = target.protocol === 'https:' ? https : http;
    const headers = { 'User-Agent': 'Mozilla/4.0', Connection: 'close' };
    if (body !== undefined) {
      headers['Content-Type'] = 'text/xml';
      headers['Content-Length'] = Buffer.byteLength(body);
    }
    let settled = false;
    const finish = (result) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...result, ms: Date.now() - started });
    };
    const req = client.request(target, { method, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => finish({ status: res.statusCode,
        body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (e) => finish({ error: e.message }));
    });
    const timer = setTimeout(() => {
      finish({ error: 'timeout' });
      req.destroy();
    }, timeoutMs);
    req.on('error', (e) => finish({ error: e.message }));
    req.end(body);
  });
}

// Sends the same request up to `tries` times, as WeChat does when the answer
// is late or broken: each try waits timeoutMs, and only a 200 ends it.
async function deliver(url, pushed, { tries = 3, timeoutMs = 5000 } = {}) {
  const target = url + (url.includes('?') ? '&' : '?') + pushed.query;
  const attempts = [];
  for (let i = 0; i < tries; i++) {
    const result = await request('POST', target, pushed.body, timeoutMs);
    attempts.push(result);
    if (result.status === 200) break;
  }
  return attempts;
}

// What WeChat makes of an answer: { kind: empty|success|xml|invalid,
// encrypted, xml (the decrypted reply), fields, MsgType, Content, error }.
function readReply(account, body) {
  const text = body.trim();
  if (text === '') return { kind: 'empty' };
  if (text === 'success') return { kind: 'success' };
  const outer = parseXml(text);
  if (!outer) return { kind: 'invalid', error: 'not XML', raw: body };
  const mode = account.mode || 'plain';
  if (outer.Encrypt === undefined) {
    if (mode === 'safe') return { kind: 'invalid', error: 'plaintext reply in safe mode', raw: body };
    return { kind: 'xml', encrypted: false, fields: outer, MsgType: outer.MsgType, Content: outer.Content };
  }
  if (mode === 'plain') return { kind: 'invalid', error: 'encrypted reply in plaintext mode', raw: body };
  try {
    const opened = wxcrypt.openReply(account.token, account.aesKey, account.appid, outer);
    const fields = parseXml(opened.msg);
    if (!fields) return { kind: 'invalid', error: 'decrypted reply is not XML', raw: opened.msg };
    return { kind: 'xml', encrypted: true, xml: opened.msg, fields, MsgType: fields.MsgType,
      Content: fields.Content };
  } catch (e) {
    return { kind: 'invalid', encrypted: true, error: e.message, raw: body };
  }
}

// The text the user sees in WeChat for a delivery, or null for nothing.
function userSees(attempts, reply) {
  const last = attempts[attempts.length - 1];
  if (!last || last.status !== 200 || reply.kind === 'invalid') return SERVICE_UNAVAILABLE;
  if (reply.kind !== 'xml') return null;
  return reply.MsgType === 'text' ? reply.Content : `[${reply.MsgType}]`;
}

module.exports = {
  SERVICE_UNAVAILABLE, cdata, buildXml, parseXml, eventXml, textXml,
  signPush, request, deliver, readReply, userSees,
};
