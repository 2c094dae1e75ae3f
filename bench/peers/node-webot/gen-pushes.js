'use strict';

// Writes N signed pushes, one per line: "QUERY\tBODY", each with its own
// nonce (the module takes a signed query once, and refuses it with another
// body): SCANs of fresh scenes, plain or, in safe mode, encrypted with
// wechat-crypto, the middleware's own library, not with the module; or
// menu CLICKs.  Each mode has nonces of its own: a node remembers the
// queries it took across measurements.
//   node gen-pushes.js plain|safe|click TOKEN AES_KEY APPID FIRST N > file

const crypto = require('crypto');
const WXBizMsgCrypt = require('wechat-crypto');

const [mode, token, key, appid, first, n] = process.argv.slice(2);
const cryptor = new WXBizMsgCrypt(token, key, appid);
const ts = Math.floor(Date.now() / 1000);
const out = [];

for (let i = Number(first); i < Number(first) + Number(n); i++) {
  const scene = 'wxs_' + i.toString(16).padStart(32, '0');
  const event = mode === 'click' ? ['CLICK', 'MENU_1'] : ['SCAN', scene];
  const xml = '<xml><ToUserName><![CDATA[gh_bench]]></ToUserName>'
    + `<FromUserName><![CDATA[o${i}]]></FromUserName>`
    + `<CreateTime>${ts}</CreateTime><MsgType><![CDATA[event]]></MsgType>`
    + `<Event><![CDATA[${event[0]}]]></Event>`
    + `<EventKey><![CDATA[${event[1]}]]></EventKey></xml>`;
  const nonce = { plain: '', safe: 's', click: 'c' }[mode] + String(i);
  const signature = crypto.createHash('sha1')
    .update([token, String(ts), nonce].sort().join('')).digest('hex');
  let query = `signature=${signature}&timestamp=${ts}&nonce=${nonce}`;
  let body = xml;

  if (mode === 'safe') {
    const encrypt = cryptor.encrypt(xml);
    query += `&encrypt_type=aes&msg_signature=${cryptor.getSignature(ts, nonce, encrypt)}`;
    body = '<xml><ToUserName><![CDATA[gh_bench]]></ToUserName>'
      + `<Encrypt><![CDATA[${encrypt}]]></Encrypt></xml>`;
  }

  out.push(`${query}\t${body}`);
}

process.stdout.write(out.join('\n') + '\n');
