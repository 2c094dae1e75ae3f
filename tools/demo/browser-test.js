#!/usr/bin/env node
'use strict';

// Browser tests of the demo site: Debian's chromium, driven by
// playwright-core, walks the pages as a user would and checks what each
// shows.  t/50-browser.t starts the demo stack and runs this.
//
//   node browser-test.js --url http://127.0.0.1:8080 --out DIR \
//        [--features login,code,longpoll]
//
// Prints one JSON line per result, for the Perl test to report as TAP:
//   {"ok":true|false,"name":...,"diag":...}   a check
//   {"skip":name,"reason":...}                  a part the module cannot do yet
//   {"no_browser":message}                      chromium would not start
// Screenshots of each page's states go to DIR, and of every failure to
// DIR/failure-N.png.

const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// ms any one state may take to appear; nginx under valgrind is slow
const TIMEOUT = process.env.WX_VALGRIND ? 60000 : 8000;

function parseArgs(argv) {
  const opts = { features: '' };
  for (let i = 0; i < argv.length; i += 2) opts[argv[i].replace(/^--/, '')] = argv[i + 1];
  if (!opts.url || !opts.out) throw new Error('usage: browser-test.js --url URL --out DIR [--features a,b]');
  opts.features = new Set(opts.features.split(',').filter(Boolean));
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
fs.mkdirSync(opts.out, { recursive: true });

function emit(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

let failures = 0;

// One named check: a failure is reported with its error and a screenshot of
// the page, and the checks after it go on.
async function check(name, page, fn) {
  try {
    await fn();
    emit({ ok: true, name });
  } catch (e) {
    failures++;
    const shot = path.join(opts.out, `failure-${failures}.png`);
    await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
    const seen = await pageSummary(page);
    emit({ ok: false, name, diag: `${e.message.split('\n').slice(0, 6).join('\n')}\n${seen}\nscreenshot: ${shot}` });
  }
}

// What the page showed when a check failed: the flow's state and texts.
async function pageSummary(page) {
  return page.evaluate(() => {
    const text = (sel) => { const e = document.querySelector(sel); return e ? e.innerText.trim() : '-'; };
    const flow = document.querySelector('#flow');
    return `page ${location.pathname}${location.search}: state ${flow ? flow.getAttribute('data-state') : '-'}, `
      + `status "${text('#flow .status')}", account "${text('#account')}", WeChat shows "${text('#sim-sees')}"`;
  }).catch((e) => `page: ${e.message.split('\n')[0]}`);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(opts.out, `${name}.png`), fullPage: true });
}

// The flow card's state (data-state) and its title.
async function expectState(page, state) {
  await page.locator(`#flow[data-state="${state}"]`).waitFor({ timeout: TIMEOUT });
  return page.locator('#flow .status .title').innerText();
}

function expectEqual(actual, expected, what) {
  if (actual !== expected) throw new Error(`${what}: got ${JSON.stringify(actual)}, want ${JSON.stringify(expected)}`);
}

function expectMatch(actual, re, what) {
  if (!re.test(actual)) throw new Error(`${what}: got ${JSON.stringify(actual)}, want ${re}`);
}

async function newPage(browser) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 680 },
                                             locale: 'zh-CN' });
  const page = await context.newPage();
  page.on('pageerror', (e) => emit({ ok: false, name: `no script error on ${page.url()}`, diag: e.message }));
  return page;
}

async function loginByName(page, name) {
  await page.fill('#login-name', name);
  await page.click('#login-form button[type=submit]');
  await page.locator('#account-user', { hasText: name }).waitFor({ timeout: TIMEOUT });
}

// The simulated phone scans the page's code as openid; answers what the
// user sees in WeChat.
async function simulateScan(page, openid, follows = false) {
  await page.locator('#sim-scan:not([disabled])').waitFor({ timeout: TIMEOUT });
  await page.fill('#sim-openid', openid);
  await page.setChecked('#sim-follows', follows);
  await page.click('#sim-scan');
  return (await page.locator('#sim-sees').innerText({ timeout: TIMEOUT })).trim();
}

async function qrImageShown(page) {
  await page.locator('#flow[data-state="waiting"]').waitFor({ timeout: TIMEOUT });
  // the image may still be on its way (nginx under valgrind draws it slowly)
  const loaded = await page
    .waitForFunction(() => {
      const img = document.querySelector('#qr');
      return img && img.complete && img.naturalWidth > 0;
    }, null, { timeout: TIMEOUT })
    .then(() => true, () => false);
  if (!loaded) throw new Error('the QR image did not load');
}

async function bindFlow(browser) {
  const alice = 'oDemoAlice' + Date.now().toString(36);
  const page = await newPage(browser);

  await check('start page: log in by name', page, async () => {
    await page.goto(`${opts.url}/`);
    expectMatch(await page.title(), /演示 Demo/, 'title');
    await shot(page, 'index');
    await loginByName(page, 'alice');
  });

  await check('bind page: the QR code and "scan with WeChat"', page, async () => {
    await page.goto(`${opts.url}/bind.html`);
    await qrImageShown(page);
    expectMatch(await page.locator('#flow .status .title').innerText(), /请用微信扫一扫/, 'title');
    expectMatch(await page.locator('#countdown').innerText(), /expires in \d+ s/, 'countdown');
    await shot(page, 'bind-waiting');
  });

  await check('bind page: a simulated scan binds, WeChat says 绑定成功', page, async () => {
    const sees = await simulateScan(page, alice);
    expectEqual(sees, '绑定成功', 'the reply in WeChat');
    expectMatch(await expectState(page, 'done'), /绑定成功/, 'title');
    expectEqual(await page.locator('#openid').innerText(), alice, 'openid shown');
    await page.locator('#account-binding', { hasText: '已绑定微信' }).waitFor({ timeout: TIMEOUT });
    await shot(page, 'bind-done');
  });

  const bob = await newPage(browser);
  await check('bind page: logged out, it asks to log in', bob, async () => {
    await bob.goto(`${opts.url}/bind.html`);
    expectMatch(await expectState(bob, 'login'), /请先登录/, 'title');
    if (!await bob.$eval('#sim-scan', (b) => b.disabled)) throw new Error('Scan enabled without a code');
    await shot(bob, 'bind-login');
    await loginByName(bob, 'bob');
    await qrImageShown(bob);
  });

  await check('bind page: a WeChat bound to another user is a conflict', bob, async () => {
    const sees = await simulateScan(bob, alice, true);
    expectEqual(sees, '该微信已绑定其他账号', 'the reply in WeChat');
    expectMatch(await expectState(bob, 'conflict'), /该微信已绑定其他账号/, 'title');
    await shot(bob, 'bind-conflict');
  });

  await check('bind page: a new code, and SSE falls back to polling', bob, async () => {
    await bob.goto(`${opts.url}/bind.html?sse=1`);
    await qrImageShown(bob);
    await simulateScan(bob, `${alice}B`);
    await expectState(bob, 'done');
  });

  await check('bind page: a code past its lifetime shows expired', bob, async () => {
    await bob.context().clock.install();
    await bob.goto(`${opts.url}/bind.html`);
    await qrImageShown(bob);
    await bob.clock.fastForward('02:01');
    expectMatch(await expectState(bob, 'expired'), /二维码已过期/, 'title');
    await shot(bob, 'bind-expired');
    await bob.click('#restart');
    await qrImageShown(bob);
  });

  await check('bind page: the module unavailable shows an error', bob, async () => {
    const fresh = await newPage(browser);
    await fresh.route('**/bind/qrcode', (route) => route.fulfill({
      status: 503, contentType: 'application/json', body: '{"error":"unavailable"}' }));
    await fresh.goto(`${opts.url}/bind.html`);
    await loginByName(fresh, 'carol');
    expectMatch(await expectState(fresh, 'error'), /出错了/, 'title');
    expectMatch(await fresh.locator('#flow .status .detail').innerText(), /503/, 'detail');
    await shot(fresh, 'bind-error');
    await fresh.context().close();
  });

  await check('bind page: unbind from the header', page, async () => {
    await page.click('#unbind');
    await page.locator('#account-binding', { hasText: '未绑定微信' }).waitFor({ timeout: TIMEOUT });
  });

  await page.context().close();
  await bob.context().close();
  return alice;
}

// wechat-scan.js against polls the module does not answer yet, played by
// the browser's request routing: a poll answering at once, a long poll
// holding the request, and SSE.  Answers the statuses it reported.
async function helperChecks(browser) {
  const page = await newPage(browser);
  const scene = { scene: 'wxs_0123456789abcdef0123456789abcdef', token: 'f'.repeat(32),
                  expire_seconds: 60 };
  let polls = 0;
  let accept = '';
  await page.route('**/t/qrcode', (route) => route.fulfill({ json: scene }));
  await page.route('**/t/image*', (route) => route.fulfill({ status: 204 }));
  await page.route('**/t/short-poll*', (route) => {
    polls++;
    route.fulfill({ json: polls < 3 ? { status: 'pending' } : { status: 'bound', openid: 'oShort' } });
  });
  await page.route('**/t/long-poll*', (route) => setTimeout(() => route.fulfill({
    json: { status: 'conflict' } }), 1500));
  await page.route('**/t/sse-poll*', (route) => {
    accept = route.request().headers().accept || '';
    route.fulfill({ status: 200, headers: { 'Content-Type': 'text/event-stream' },
      body: 'data: {"status":"pending"}\n\ndata: {"status":"bound","openid":"oSse"}\n\n' });
  });
  await page.goto(`${opts.url}/index.html`);
  await page.addScriptTag({ url: '/wechat-scan.js' });
  const run = (poll, sse) => page.evaluate(([pollUrl, useSse]) => new Promise((resolve) => {
    const seen = [];
    const img = document.createElement('img');
    WechatScan.start({
      qrcode: '/t/qrcode', poll: pollUrl, image: '/t/image', img, sse: useSse, interval: 100,
      onStatus: (status, answer) => {
        seen.push(status + (answer.openid ? `:${answer.openid}` : ''));
        if (WechatScan.FINAL.includes(status)) resolve({ seen, src: img.getAttribute('src') });
      },
      onError: (e) => resolve({ seen, error: e.message }),
    });
  }), [poll, sse]);

  await check('wechat-scan.js: repeats a poll that answers pending at once', page, async () => {
    const r = await run('/t/short-poll', false);
    expectEqual(r.seen.join(' '), 'pending bound:oShort', 'statuses');
    expectEqual(polls, 3, 'polls');
    // the token rides in wechat_qrcode's cookie, never in a URL
    expectEqual(r.src, `/t/image?scene=${scene.scene}&size=6`, 'image URL');
  });
  await check('wechat-scan.js: waits on a long poll', page, async () => {
    const r = await run('/t/long-poll', false);
    expectEqual(r.seen.join(' '), 'pending conflict', 'statuses');
  });
  await check('wechat-scan.js: listens with SSE when asked', page, async () => {
    const r = await run('/t/sse-poll', true);
    expectEqual(r.seen.join(' '), 'pending bound:oSse', 'statuses');
    expectMatch(accept, /text\/event-stream/, 'Accept');
  });
  await page.context().close();
}

// Without the feature, the page must say so rather than break.
async function unavailablePage(browser, file, skipReason, feature) {
  const page = await newPage(browser);
  await check(`${file}: says it is not available in this build`, page, async () => {
    await page.goto(`${opts.url}/${file}`);
    expectMatch(await expectState(page, 'unavailable'), /此功能尚未启用/, 'title');
  });
  emit({ skip: `${feature} flow`, reason: skipReason });
  await page.context().close();
}

async function loginFlow(browser) {
  const openid = 'oDemoLogin' + Date.now().toString(36);
  const page = await newPage(browser);
  await check('login page: bind a WeChat user first', page, async () => {
    await page.goto(`${opts.url}/bind.html`);
    await loginByName(page, 'dave');
    await qrImageShown(page);
    await simulateScan(page, openid);
    await expectState(page, 'done');
  });
  const guest = await newPage(browser);
  await check('login page: the QR code and "scan with WeChat"', guest, async () => {
    await guest.goto(`${opts.url}/login.html`);
    await qrImageShown(guest);
    await shot(guest, 'login-waiting');
  });
  await check('login page: a bound WeChat signs in', guest, async () => {
    await simulateScan(guest, openid, true);
    expectMatch(await expectState(guest, 'done'), /登录成功/, 'title');
    expectEqual(await guest.locator('#signed-in-user').innerText(), 'dave', 'user');
    await guest.locator('#account-user', { hasText: 'dave' }).waitFor({ timeout: TIMEOUT });
    await shot(guest, 'login-done');
  });
  const stranger = await newPage(browser);
  await check('login page: an unbound WeChat is told to bind first', stranger, async () => {
    await stranger.goto(`${opts.url}/login.html`);
    await qrImageShown(stranger);
    await simulateScan(stranger, `${openid}New`);
    expectMatch(await expectState(stranger, 'unbound'), /还没有绑定账号/, 'title');
    await shot(stranger, 'login-unbound');
  });
  for (const p of [page, guest, stranger]) await p.context().close();
}

async function codeFlow(browser) {
  const openid = 'oDemoCode' + Date.now().toString(36);
  const page = await newPage(browser);
  await check('code page: bind a WeChat user first', page, async () => {
    await page.goto(`${opts.url}/bind.html`);
    await loginByName(page, 'erin');
    await qrImageShown(page);
    await simulateScan(page, openid);
    await expectState(page, 'done');
  });
  const guest = await newPage(browser);
  let code;
  await check('code page: a scan sends the code in WeChat', guest, async () => {
    await guest.goto(`${opts.url}/code.html`);
    await qrImageShown(guest);
    const sees = await simulateScan(guest, openid, true);
    [code] = sees.match(/[A-Za-z0-9]{4,8}/) || [];
    if (!code) throw new Error(`no code in what WeChat shows: ${sees}`);
    expectMatch(await expectState(guest, 'code'), /验证码已发送/, 'title');
    await shot(guest, 'code-sent');
  });
  await check('code page: a wrong code is refused', guest, async () => {
    await guest.fill('#code', '000000' === code ? '111111' : '000000');
    await guest.click('#code-form button');
    await guest.locator('#flow .status .title', { hasText: '验证码不对' }).waitFor({ timeout: TIMEOUT });
  });
  await check('code page: the right code signs in', guest, async () => {
    await guest.fill('#code', code);
    await guest.click('#code-form button');
    expectMatch(await expectState(guest, 'done'), /登录成功/, 'title');
    expectEqual(await guest.locator('#signed-in-user').innerText(), 'erin', 'user');
    await shot(guest, 'code-done');
  });
  for (const p of [page, guest]) await p.context().close();
}

async function main() {
  let browser;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, timeout: 20000 });
  } catch (e) {
    emit({ no_browser: e.message.split('\n')[0] });
    return;
  }
  try {
    await helperChecks(browser);
    await bindFlow(browser);
    const later = (directives, work) => `the module has no ${directives} yet: ${work} has not landed`;
    if (opts.features.has('login')) await loginFlow(browser);
    else await unavailablePage(browser, 'login.html', later('"wechat_qrcode login" or wechat_redeem', 'scan-to-login'), 'login');
    if (opts.features.has('code')) await codeFlow(browser);
    else await unavailablePage(browser, 'code.html', later('"wechat_qrcode code" or wechat_redeem', 'verification codes'), 'code');
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  emit({ ok: false, name: 'browser tests ran to the end', diag: e.stack });
  process.exitCode = 1;
});
