'use strict';

// The app-server peer of the benchmark: the bind flow as a careful app
// developer writes it with node-webot's wechat middleware (signature check,
// XML parsing, safe mode, passive replies), express, and the node redis
// client.  One script per scan, as the module does, so that the comparison
// is with the peer at its best.

const crypto = require('crypto');
const express = require('express');
const wechat = require('wechat');
const { createClient } = require('redis');

const PORT = Number(process.env.PORT || 8090);
const REDIS_PORT = Number(process.env.REDIS_PORT || 6379);
const config = {
  token: process.env.WECHAT_TOKEN,
  appid: process.env.WECHAT_APPID,
  encodingAESKey: process.env.WECHAT_AES_KEY,
};
const prefix = `wx:{${config.appid}}:`;

const RESOLVE = `
local seen = redis.call('GET', KEYS[2])
if seen then return seen end
local p, openid, now = ARGV[1], ARGV[2], ARGV[3]
local outcome = 'expired'
local s = redis.call('HMGET', KEYS[1], 'status', 'user', 'openid', 'kind')
if s[1] == 'pending' then
  local user = s[2]
  local owner = redis.call('GET', p .. 'openid:' .. openid)
  if owner and owner ~= user then
    outcome = 'conflict'
  else
    local old = redis.call('GET', p .. 'user:' .. user)
    if old and old ~= openid then redis.call('DEL', p .. 'openid:' .. old) end
    redis.call('SET', p .. 'user:' .. user, openid)
    redis.call('SET', p .. 'openid:' .. openid, user)
    outcome = 'bound'
  end
  redis.call('HSET', KEYS[1], 'status', outcome, 'openid', openid)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', '100000', '*', 'scene', ARGV[4],
             'user', user, 'openid', openid, 'status', outcome, 'time', now)
  redis.call('PUBLISH', p .. 'resolved', ARGV[4])
elseif s[1] and s[3] == openid then
  outcome = s[1]
end
redis.call('SET', KEYS[2], outcome, 'EX', 60)
return outcome
`;

const replies = {
  bound: '绑定成功',
  conflict: '该微信已绑定其他账号',
  expired: '二维码已过期，请刷新页面后重试',
};

const redis = createClient({ socket: { host: '127.0.0.1', port: REDIS_PORT } });
let resolveSha;

function sceneOf(m) {
  if (m.Event === 'subscribe' && m.EventKey && m.EventKey.startsWith('qrscene_')) {
    return m.EventKey.slice(8);
  }
  return m.Event === 'SCAN' ? m.EventKey : '';
}

function onPush(req, res) {
  const m = req.weixin;
  const scene = m.MsgType === 'event' ? sceneOf(m) : '';

  if (!/^wxs_[0-9a-f]{32}$/.test(scene || '')) {
    res.reply('');      // the business logic of other pushes goes here
    return;
  }

  const dedup = crypto.createHash('sha1')
    .update([m.ToUserName, m.FromUserName, m.CreateTime, m.Event, m.EventKey].join('\n'))
    .digest('hex');

  redis.evalSha(resolveSha, {
    keys: [`${prefix}scene:${scene}`, `${prefix}dedup:${dedup}`, `${prefix}resolutions`],
    arguments: [prefix, m.FromUserName, String(Math.floor(Date.now() / 1000)), scene],
  }).then(
    (outcome) => res.reply(replies[outcome]),
    () => res.reply(''),
  );
}

async function main() {
  await redis.connect();
  resolveSha = await redis.scriptLoad(RESOLVE);

  const app = express();
  app.disable('x-powered-by');

  app.use('/wx', wechat({ token: config.token, appid: config.appid }, onPush));
  app.use('/safe', wechat(config, onPush));

  app.get('/poll', async (req, res) => {
    res.set('Cache-Control', 'no-store');
    try {
      const [status, openid, stored] = await redis.hmGet(
        `${prefix}scene:${req.query.scene}`, ['status', 'openid', 'token']);
      const hash = crypto.createHash('sha256').update(String(req.query.token || '')).digest('hex');
      const ok = stored && stored.length === hash.length
        && crypto.timingSafeEqual(Buffer.from(stored), Buffer.from(hash));
      if (!ok || !status) return res.json({ status: 'expired' });
      return res.json(status === 'bound' ? { status, openid } : { status });
    } catch (e) {
      return res.status(503).json({ error: 'unavailable' });
    }
  });

  app.listen(PORT, '127.0.0.1', () => console.log(`peer on ${PORT}`));
}

main().catch((e) => { console.error(e); process.exit(1); });
