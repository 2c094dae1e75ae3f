'use strict';

// WeChat's callback signatures and message encryption, written from the
// protocol (docs: /work/shared/wechat-protocol.md sections 1 to 3) with
// node's crypto only, independent of the module's C++ core.  Shared by the
// fake platform (server.js) and the wxsim CLI.

const crypto = require('crypto');

const BLOCK = 32;   // WeChat pads to 32 bytes, not AES's 16

function sha1Hex(text) {
  return crypto.createHash('sha1').update(text, 'utf8').digest('hex');
}

// signature = sha1(sort([token, timestamp, nonce]).join('')); with the
// Encrypt value as a fourth part this is the msg_signature of safe mode.
function signature(...parts) {
  return sha1Hex(parts.map(String).sort().join(''));
}

function aesKey(encodingAesKey) {
  if (!/^[A-Za-z0-9+/]{43}$/.test(encodingAesKey || '')) {
    throw new Error('EncodingAESKey must be 43 base64 characters');
  }
  return Buffer.from(encodingAesKey + '=', 'base64');
}

function aes(direction, key, data) {
  const make = direction === 'encrypt' ? crypto.createCipheriv : crypto.createDecipheriv;
  const cipher = make('aes-256-cbc', key, key.subarray(0, 16));
  cipher.setAutoPadding(false);   // PKCS#7 to 32 bytes is done by hand
  return Buffer.concat([cipher.update(data), cipher.final()]);
}

// base64(AES(random16 || msg_len (4 bytes, big-endian) || msg || appid || pad))
function encrypt(encodingAesKey, appid, msg) {
  const body = Buffer.from(msg, 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  const plain = Buffer.concat([crypto.randomBytes(16), len, body, Buffer.from(appid, 'utf8')]);
  const pad = BLOCK - (plain.length % BLOCK);
  const padded = Buffer.concat([plain, Buffer.alloc(pad, pad)]);
  return aes('encrypt', aesKey(encodingAesKey), padded).toString('base64');
}

// Returns { msg, appid }; throws on any malformed ciphertext.
function decrypt(encodingAesKey, b64) {
  const data = Buffer.from(b64, 'base64');
  if (data.length === 0 || data.length % 16 !== 0) throw new Error('bad ciphertext length');
  const plain = aes('decrypt', aesKey(encodingAesKey), data);
  const pad = plain[plain.length - 1];
  if (pad < 1 || pad > BLOCK || pad > plain.length) throw new Error(`bad padding ${pad}`);
  for (let i = plain.length - pad; i < plain.length; i++) {
    if (plain[i] !== pad) throw new Error('inconsistent padding');
  }
  const unpadded = plain.subarray(0, plain.length - pad);
  if (unpadded.length < 20) throw new Error('plaintext too short');
  const len = unpadded.readUInt32BE(16);
  if (20 + len > unpadded.length) throw new Error('msg_len beyond the plaintext');
  return {
    msg: unpadded.subarray(20, 20 + len).toString('utf8'),
    appid: unpadded.subarray(20 + len).toString('utf8'),
  };
}

// Decrypts an encrypted passive reply after checking its MsgSignature.
// Returns { msg, appid }; throws when the signature or AppID is wrong.
function openReply(token, encodingAesKey, appid, fields) {
  const { Encrypt, MsgSignature, TimeStamp, Nonce } = fields;
  if (!Encrypt || !MsgSignature || !TimeStamp || !Nonce) {
    throw new Error('encrypted reply lacks Encrypt, MsgSignature, TimeStamp or Nonce');
  }
  if (signature(token, TimeStamp, Nonce, Encrypt) !== MsgSignature) {
    throw new Error('wrong MsgSignature');
  }
  const opened = decrypt(encodingAesKey, Encrypt);
  if (opened.appid !== appid) throw new Error(`reply AppID ${opened.appid} is not ${appid}`);
  return opened;
}

function nonce() {
  return String(crypto.randomInt(1, 2 ** 31));
}

module.exports = { sha1Hex, signature, aesKey, encrypt, decrypt, openReply, nonce };
