'use strict';

// Writes N encrypted SCAN pushes, one per line: "QUERY\tBODY", for the
// safe-mode case of the benchmark.  Encrypted with wechat-crypto (the
// middleware's own library), not with the module.
//   node gen-safe.js TOKEN AES_KEY APPID FIRST_SCENE N > file

const crypto = require('crypto');
const WXBizMsgCrypt = require('wechat-crypto');

const [token, key, appid, first, n] = process.argv.slice(2);
const cryptor = new WXBizMsgCrypt(token, key, appid);
const ts = Math.floor(Date.now() / 1000);
const out = [];

for (let i = Number(first); i < Number(first) + Number(n); i++) {
  const scene = 'wxs_' + i.toString(16).padStart(32, '0');
  const xml = '<xml><ToUserName><![CDATA[gh_bench]]></ToUserName>'
    + `<FromUserName><![CDATA[o${i}]]></FromUserName>`
    + `<CreateTime>${ts}</CreateTime><MsgType><![CDATA[event]]></MsgType>`
    + `<Event><![CDATA[SCAN]]></Event><EventKey><![CDATA[${scene}]]></EventKey></xml>`;
  const encrypt = cryptor.encrypt(xml);
  const nonce = String(i);
  const signature = crypto.createHash('sha1')
    .update([token, String(ts), nonce].sort().join('')).digest('hex');
  const query = `signature=${signature}&timestamp=${ts}&nonce=${nonce}`
    + `&encrypt_type=aes&msg_signature=${cryptor.getSignature(ts, nonce, encrypt)}`;
  out.push(`${query}\t<xml><ToUserName><![CDATA[gh_bench]]></ToUserName>`
    + `<Encrypt><![CDATA[${encrypt}]]></Encrypt></xml>`);
}

process.stdout.write(out.join('\n') + '\n');
