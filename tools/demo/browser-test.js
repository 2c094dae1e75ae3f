#!/usr/bin/env node
'use strict';

// Browser tests of the demo site, every flow its index lists: Debian's
// chromium, driven by playwright-core, walks the pages as a user would and
// checks what each shows and what the app then knows.  t/50-browser.t
// starts the demo stack and runs this.
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

// The code in the reply a bind scan got in WeChat.
function bindCode(sees) {
  const [, code] = sees.match(/^绑定验证码 (\d{4,8})，/) || [];
  if (!code) throw new Error(`no bind code in what WeChat shows: ${sees}`);
  return code;
}

// Types a code into the page's code form and sends it; answers the
// response of the request it made (urlPart names it).
async function typeCode(page, code, urlPart) {
  await page.fill('#code', code);
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().includes(urlPart) && r.request().method() === 'POST',
                         { timeout: TIMEOUT }),
    page.click('#code-form button'),
  ]);
  return response;
}

function otherCode(code) {
  return code === '000000' ? '111111' : '000000';
}

// A bind of the page's user to openid: the scan, the code typed in.
async function bindByScan(page, openid, follows = false) {
  const sees = await simulateScan(page, openid, follows);
  await expectState(page, 'scanned');
  await typeCode(page, bindCode(sees), '/bind/poll');
  await expectState(page, 'done');
}

async function scanDisabled(page) {
  await page.locator('#sim-scan[disabled]').waitFor({ timeout: TIMEOUT });
}

// Registers the WeChat user the app offered a registration to, as name.
async function register(page, name) {
  await page.fill('#register-name', name, { timeout: TIMEOUT });
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/app/register') && r.request().method() === 'POST',
                         { timeout: TIMEOUT }),
    page.click('#register-form button[type=submit]'),
  ]);
  expectEqual(response.status(), 200, 'POST /app/register');
}

// The app's view of this browser: {user, openid} or 401.
async function me(page) {
  return page.evaluate(() => Demo.api('GET', '/app/me'));
}

// The link in the phone's reply, tapped: the page it opens in the phone's
// own window (WeChat's browser, in the demo a small pop-up).
async function openConfirmLink(page) {
  const [phone] = await Promise.all([
    page.waitForEvent('popup', { timeout: TIMEOUT }),
    page.click('#sim-sees .sim-link'),
  ]);
  await phone.waitForLoadState();
  await phone.setViewportSize({ width: 400, height: 640 });
  return phone;
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

  let code;
  await check('bind page: a scan binds nothing, WeChat sends the scanner a code, the page asks for it', page, async () => {
    const sees = await simulateScan(page, alice);
    expectMatch(sees, /^绑定验证码 \d{6}，请在网页上输入/, 'the reply in WeChat');
    code = bindCode(sees);
    expectMatch(await expectState(page, 'scanned'), /请输入微信收到的验证码/, 'title');
    if (!await page.locator('#code-form').isVisible()) throw new Error('no code form');
    expectEqual((await me(page)).openid, null, 'the binding after the scan');
    await shot(page, 'bind-code');
  });

  await check('bind page: a wrong code is refused', page, async () => {
    const response = await typeCode(page, otherCode(code), '/bind/poll');
    expectEqual(response.status(), 403, 'answer');
    await page.locator('#flow .status .title', { hasText: '验证码不对' }).waitFor({ timeout: TIMEOUT });
    expectEqual(await page.getAttribute('#flow', 'data-state'), 'scanned', 'state');
    expectEqual((await me(page)).openid, null, 'the binding after a wrong code');
  });

  await check('bind page: the code from WeChat binds', page, async () => {
    await typeCode(page, code, '/bind/poll');
    expectMatch(await expectState(page, 'done'), /绑定成功/, 'title');
    expectEqual(await page.locator('#openid').innerText(), alice, 'openid shown');
    await page.locator('#account-binding', { hasText: '已绑定微信' }).waitFor({ timeout: TIMEOUT });
    if (await page.locator('#code-form').isVisible()) throw new Error('the code form is still shown');
    await scanDisabled(page);
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
    // a stranger's scan decides nothing: the conflict shows once the code
    // the scanner got is typed
    const sees = await simulateScan(bob, alice, true);
    await expectState(bob, 'scanned');
    await typeCode(bob, bindCode(sees), '/bind/poll');
    expectMatch(await expectState(bob, 'conflict'), /该微信已绑定其他账号/, 'title');
    await scanDisabled(bob);
    await shot(bob, 'bind-conflict');
  });

  await check('bind page: a new code, and SSE falls back to polling', bob, async () => {
    await bob.goto(`${opts.url}/bind.html?sse=1`);
    await qrImageShown(bob);
    await bindByScan(bob, `${alice}B`);
  });

  await check('bind page: too many wrong codes void the QR code', bob, async () => {
    await bob.goto(`${opts.url}/bind.html`);
    await qrImageShown(bob);
    const right = bindCode(await simulateScan(bob, `${alice}C`));
    // wechat_redeem_attempts: 5 by default
    for (let i = 1; i <= 5; i++) {
      const response = await typeCode(bob, otherCode(right), '/bind/poll');
      expectEqual(response.status(), 403, `wrong code ${i}`);
    }
    expectMatch(await expectState(bob, 'burnt'), /验证码错误次数太多/, 'title');
    await scanDisabled(bob);
    expectEqual((await me(bob)).openid, `${alice}B`, 'the binding kept');
    await shot(bob, 'bind-burnt');
  });

  await check('bind page: a code past its lifetime shows expired', bob, async () => {
    await bob.context().clock.install();
    await bob.goto(`${opts.url}/bind.html`);
    await qrImageShown(bob);
    await bob.clock.fastForward('02:01');
    expectMatch(await expectState(bob, 'expired'), /二维码已过期/, 'title');
    await scanDisabled(bob);
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
    await scanDisabled(fresh);
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
  const scene = { scene: 'wxs_0123456789abcdef0123456789abcdef', poll_token: 'f'.repeat(32),
                  token: 'f'.repeat(32), expire_seconds: 60 };
  let polls = 0;
  let accept = '';
  await page.route('**/t/qrcode', (route) => route.fulfill({ json: scene }));
  await page.route('**/t/image*', (route) => route.fulfill({ status: 204 }));
  await page.route('**/t/short-poll*', (route) => {
    polls++;
    route.fulfill({ json: polls < 3 ? { status: 'pending' } : { status: 'bound', openid: 'oShort' } });
  });
  let confirmed = null;
  await page.route('**/t/confirm-poll*', (route) => {
    const request = route.request();
    if (request.method() !== 'POST') return route.fulfill({ json: { status: 'scanned' } });
    confirmed = { body: request.postData(), type: request.headers()['content-type'] };
    return /&code=246810(&|$)/.test(confirmed.body)
      ? route.fulfill({ json: { status: 'bound', openid: 'oCode' } })
      : route.fulfill({ status: 403, json: { error: 'wrong code' } });
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
  // codes: typed in turn once the poll says "scanned"
  const run = (poll, sse, codes = []) => page.evaluate(([pollUrl, useSse, typed]) => new Promise((resolve) => {
    const seen = [];
    const img = document.createElement('img');
    const next = () => scan.confirm(typed.shift()).then((answer) => {
      seen.push(`http${answer.httpStatus}`);
      if (typed.length) next();
    });
    const scan = WechatScan.start({
      qrcode: '/t/qrcode', poll: pollUrl, image: '/t/image', img, sse: useSse, interval: 100,
      onStatus: (status, answer) => {
        seen.push(status + (answer.openid ? `:${answer.openid}` : ''));
        if (status === 'scanned' && typed.length) next();
        if (WechatScan.FINAL.includes(status)) resolve({ seen: seen.slice(), src: img.getAttribute('src') });
      },
      onError: (e) => resolve({ seen, error: e.message }),
    });
  }), [poll, sse, codes]);

  await check('wechat-scan.js: repeats a poll that answers pending at once', page, async () => {
    const r = await run('/t/short-poll', false);
    expectEqual(r.seen.join(' '), 'pending bound:oShort', 'statuses');
    expectEqual(polls, 3, 'polls');
    // the token rides in wechat_qrcode's cookie, never in a URL
    expectEqual(r.src, `/t/image?scene=${scene.scene}&size=6`, 'image URL');
  });
  await check('wechat-scan.js: confirm() posts the code to the poll and reports the binding', page, async () => {
    const r = await run('/t/confirm-poll', false, ['000000', '246810']);
    expectEqual(r.seen.join(' '), 'pending scanned http403 bound:oCode', 'statuses');
    expectEqual(confirmed.body, `scene=${scene.scene}&code=246810&poll_token=${scene.poll_token}`,
                'the form, with the poll token');
    expectEqual(confirmed.type, 'application/x-www-form-urlencoded', 'its type');
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
    await bindByScan(page, openid);
  });
  const guest = await newPage(browser);
  await check('login page: the QR code and "scan with WeChat"', guest, async () => {
    await guest.goto(`${opts.url}/login.html`);
    await qrImageShown(guest);
    await shot(guest, 'login-waiting');
  });
  await check('login page: a scan signs nobody in, WeChat sends a confirm link', guest, async () => {
    const sees = await simulateScan(guest, openid, true);
    expectMatch(sees, /^请确认是否登录：http:\/\/127\.0\.0\.1:\d+\/login\/confirm\?openid=/, 'the reply in WeChat');
    expectMatch(await expectState(guest, 'confirming'), /请在手机上确认/, 'title');
    expectEqual((await me(guest)).httpStatus, 401, 'the app before the confirm');
    await shot(guest, 'login-confirming');
  });
  let phone;
  await check('login page: the link opens the confirm page, naming the site and the browser', guest, async () => {
    phone = await openConfirmLink(guest);
    expectMatch(await phone.locator('h1').innerText(), /^登录 127\.0\.0\.1？$/, 'its question');
    const who = await phone.locator('.who').first().innerText();
    expectMatch(who, /Chrome/, 'the browser that asked');
    expectMatch(who, /Its network: 127\.0\.0\.\*/, 'its network');
    await shot(phone, 'login-phone');
    expectEqual(await guest.getAttribute('#flow', 'data-state'), 'confirming', 'the page, the link opened');
  });
  await check('login page: Confirm on the phone signs in', guest, async () => {
    await phone.click('button[value=confirm]');
    expectMatch(await phone.locator('h1').innerText(), /已确认登录/, 'the phone');
    await phone.close();
    expectMatch(await expectState(guest, 'done'), /登录成功/, 'title');
    expectEqual(await guest.locator('#signed-in-user').innerText(), 'dave', 'user');
    await guest.locator('#account-user', { hasText: 'dave' }).waitFor({ timeout: TIMEOUT });
    await scanDisabled(guest);
    await shot(guest, 'login-done');
  });
  const victim = await newPage(browser);
  await check('login page: Cancel on the phone signs nobody in', victim, async () => {
    await victim.goto(`${opts.url}/login.html`);
    await qrImageShown(victim);
    await simulateScan(victim, openid, true);
    await expectState(victim, 'confirming');
    const cancel = await openConfirmLink(victim);
    await cancel.click('button[value=cancel]');
    expectMatch(await cancel.locator('h1').innerText(), /已取消/, 'the phone');
    await cancel.close();
    expectMatch(await expectState(victim, 'cancelled'), /已在手机上取消/, 'title');
    await scanDisabled(victim);
    expectEqual((await me(victim)).httpStatus, 401, 'the app after the cancel');
    await shot(victim, 'login-cancelled');
    await victim.click('#restart');
    await qrImageShown(victim);
    await victim.locator('#sim-scan:not([disabled])').waitFor({ timeout: TIMEOUT });
  });
  const stranger = await newPage(browser);
  await check('login page: an unbound WeChat, confirmed, is told to bind first', stranger, async () => {
    await stranger.goto(`${opts.url}/login.html`);
    await qrImageShown(stranger);
    await simulateScan(stranger, `${openid}New`);
    await expectState(stranger, 'confirming');
    const confirm = await openConfirmLink(stranger);
    await confirm.click('button[value=confirm]');
    expectMatch(await confirm.locator('body').innerText(), /这个微信还没有绑定账号/, 'the phone');
    expectMatch(await expectState(stranger, 'unbound'), /这个微信还没有账号/, 'title');
    await scanDisabled(stranger);
    await shot(stranger, 'login-unbound');
    phone = confirm;
  });
  await check('login page: the confirm page\'s signed link registers the follower, once', stranger, async () => {
    const link = await phone.getAttribute('a[href*="/register?"]', 'href', { timeout: TIMEOUT });
    expectMatch(link, /\/register\?openid=oDemoLogin\w+New&expires=\d+&nonce=\w+&sig=/, 'the link');
    await phone.click('a[href*="/register?"]');
    await phone.locator('#register-form').waitFor({ timeout: TIMEOUT });
    expectEqual(await phone.locator('#offer-openid').innerText(), `${openid}New`, 'the openid offered');
    await shot(phone, 'register-link');
    await register(phone, 'frank');
    expectMatch(await expectState(phone, 'done'), /注册成功/, 'title');
    const account = await me(stranger);
    expectEqual(`${account.user} ${account.openid}`, `frank ${openid}New`, 'the app\'s view');
    const again = await phone.evaluate((url) => fetch(url, { redirect: 'manual' }).then((r) => r.status), link);
    expectEqual(again, 403, 'the link a second time');
    await phone.close();
  });
  await check('app: a redeem body that is not JSON is refused (login CSRF)', stranger, async () => {
    const statuses = await stranger.evaluate(() => Promise.all([
      fetch('/app/redeem', { method: 'POST', body: new URLSearchParams({ scene: 'wxs_a', code: 'b' }) }),
      fetch('/app/redeem', { method: 'POST', headers: { 'Content-Type': 'text/plain' },
                             body: '{"scene":"wxs_a","code":"b"}' }),
    ].map((p) => p.then((r) => r.status))));
    expectEqual(statuses.join(' '), '415 415', 'statuses');
  });
  for (const p of [page, guest, victim, stranger]) await p.context().close();
}

async function codeFlow(browser) {
  const openid = 'oDemoCode' + Date.now().toString(36);
  const page = await newPage(browser);
  await check('code page: bind a WeChat user first', page, async () => {
    await page.goto(`${opts.url}/bind.html`);
    await loginByName(page, 'erin');
    await qrImageShown(page);
    await bindByScan(page, openid);
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
    await typeCode(guest, otherCode(code), '/app/redeem');
    await guest.locator('#flow .status .title', { hasText: '验证码不对' }).waitFor({ timeout: TIMEOUT });
  });
  await check('code page: the right code signs in', guest, async () => {
    await typeCode(guest, code, '/app/redeem');
    expectMatch(await expectState(guest, 'done'), /登录成功/, 'title');
    expectEqual(await guest.locator('#signed-in-user').innerText(), 'erin', 'user');
    await shot(guest, 'code-done');
    await scanDisabled(guest);
  });
  // the bug of issue 28: the app answered "unbound", the page polled on
  // and showed the scene's "redeemed" as an error
  const newcomer = await newPage(browser);
  await check('code page: the right code of a WeChat with no account offers to register', newcomer, async () => {
    await newcomer.goto(`${opts.url}/code.html`);
    await qrImageShown(newcomer);
    const sees = await simulateScan(newcomer, `${openid}New`, true);
    const [fresh] = sees.match(/[A-Za-z0-9]{4,8}/) || [];
    await expectState(newcomer, 'code');
    await typeCode(newcomer, fresh, '/app/redeem');
    expectMatch(await expectState(newcomer, 'unbound'), /这个微信还没有账号/, 'title');
    await scanDisabled(newcomer);
    // the poll's "redeemed" comes after the app's answer: still unbound
    await newcomer.waitForTimeout(1500);
    expectEqual(await newcomer.getAttribute('#flow', 'data-state'), 'unbound', 'state, a poll later');
    await shot(newcomer, 'code-unbound');
  });
  await check('code page: the newcomer registers, and their WeChat is bound to the new account', newcomer, async () => {
    await register(newcomer, 'newcomer');
    expectMatch(await expectState(newcomer, 'done'), /注册成功/, 'title');
    expectEqual(await newcomer.locator('#openid').innerText(), `${openid}New`, 'openid shown');
    const account = await me(newcomer);
    expectEqual(`${account.user} ${account.openid}`, `newcomer ${openid}New`, 'the app\'s view');
    await shot(newcomer, 'code-registered');
  });
  for (const p of [page, guest, newcomer]) await p.context().close();
}

// OAuth: the mobile page behind wechat_oauth, in WeChat's browser (its
// User-Agent), through the fake's consent page; and binding by link
// (method 1), the phone's browser in the page's panel.
async function oauthFlows(browser) {
  const context = await browser.newContext({
    viewport: { width: 420, height: 760 }, locale: 'zh-CN',
    userAgent: 'Mozilla/5.0 (iPhone) AppleWebKit/605 MicroMessenger/8.0.47',
  });
  const phone = await context.newPage();
  const mina = 'oDemoMina' + Date.now().toString(36);

  await check('mobile page: no session, WeChat asks who authorizes', phone, async () => {
    await phone.goto(`${opts.url}/m/`);
    await phone.locator('#allow').waitFor({ timeout: TIMEOUT });
    expectMatch(await phone.title(), /微信授权/, 'the authorize page');
    await shot(phone, 'oauth-authorize');
  });

  await check('mobile page: authorized, back on the page with the openid', phone, async () => {
    await phone.fill('#openid', mina);
    await phone.click('#allow');
    await phone.locator('#m-openid').waitFor({ timeout: TIMEOUT });
    expectEqual(await phone.locator('#m-openid').innerText(), mina, 'the openid the edge gave');
    expectEqual(new URL(phone.url()).pathname, '/m/', 'back where it started');
    await shot(phone, 'oauth-mobile-page');
  });

  await check('mobile page: the session lets the next request through', phone, async () => {
    const res = await phone.goto(`${opts.url}/m/`);
    expectEqual(res.status(), 200, 'status');
    expectEqual(await phone.locator('#m-openid').innerText(), mina, 'the openid');
  });
  await context.close();

  const page = await newPage(browser);
  const nina = 'oDemoNina' + Date.now().toString(36);
  await check('bind by link: the PC shows the link as a QR code and waits', page, async () => {
    await page.goto(`${opts.url}/`);
    await loginByName(page, 'nina');
    await page.goto(`${opts.url}/link.html`);
    await page.locator('#flow[data-state="pending"]').waitFor({ timeout: TIMEOUT });
    await page.locator('#qr').evaluate((img) => img.complete && img.naturalWidth > 0
      || new Promise((ok) => { img.onload = ok; }));
    await shot(page, 'link-waiting');
  });

  let code;
  await check('bind by link: the phone opens it and is shown a code, the PC waits for it', page, async () => {
    await page.fill('#phone-openid', nina);
    await page.click('#phone-open');
    const outcome = page.frameLocator('#phone-frame').locator('#outcome');
    const text = await outcome.innerText({ timeout: TIMEOUT });
    expectMatch(text, /^绑定验证码 \d{6}/, 'the phone page');
    code = bindCode(text);
    await page.locator('#flow[data-state="scanned"]').waitFor({ timeout: TIMEOUT });
    expectEqual((await me(page)).openid, null, 'nothing bound yet');
    await shot(page, 'link-scanned');
  });

  await check('bind by link: the code typed on the PC binds the phone\'s WeChat', page, async () => {
    await page.fill('#link-code', code);
    await page.click('#link-code-form button[type=submit]');
    await page.locator('#flow[data-state="bound"]').waitFor({ timeout: TIMEOUT });
    expectEqual((await me(page)).openid, nina, 'the binding');
    await page.locator('#phone-open[disabled]').waitFor({ timeout: TIMEOUT });
    await shot(page, 'link-bound');
  });
  await page.context().close();
  return nina;
}

// Website login on the PC through the Open Platform: the person bound
// through the official account (openid, as its OAuth learnt their unionid
// on the mobile page) scans the Website App's QR code, and the PC page is
// the same site user's.
async function websiteLogin(browser, openid, user) {
  const phone = await (await browser.newContext({
    userAgent: 'Mozilla/5.0 (iPhone) AppleWebKit/605 MicroMessenger/8.0.47',
  })).newPage();
  await check('website login: the official account knows the person (mobile page)', phone, async () => {
    await phone.goto(`${opts.url}/m/`);
    await phone.fill('#openid', openid);
    await phone.click('#allow');
    await phone.locator('#m-user').waitFor({ timeout: TIMEOUT });
    expectEqual(await phone.locator('#m-user').innerText(), user, 'the site user');
  });
  await phone.context().close();

  const page = await newPage(browser);
  await check('website login: the PC button leads to the qrconnect page', page, async () => {
    await page.goto(`${opts.url}/`);
    await page.click('#go-pc');
    await page.locator('#allow').waitFor({ timeout: TIMEOUT });
    const url = new URL(page.url());
    expectEqual(url.pathname, '/connect/qrconnect', 'the page');
    expectEqual(url.searchParams.get('scope'), 'snsapi_login', 'scope');
    await shot(page, 'website-login-qrconnect');
  });
  await check('website login: confirmed on the phone, the PC is the same site user', page, async () => {
    await page.fill('#openid', openid);
    await page.click('#allow');
    await page.locator('#pc-user').waitFor({ timeout: TIMEOUT });
    expectEqual(new URL(page.url()).pathname, '/pc/', 'back where it started');
    expectEqual(await page.locator('#pc-user').innerText(), user, '$wechat_user');
    expectMatch(await page.locator('#pc-unionid').innerText(), /^oU[\w-]{26}$/, 'the unionid');
    expectMatch(await page.locator('#pc-openid').innerText(), /^oW[\w-]{26}$/, "the Website App's openid");
    await shot(page, 'website-login-done');
  });
  await page.context().close();
}

// The share page inside "WeChat": the signed wx.config parameters from
// wechat_jssdk, checked by the fake platform's jweixin.js as WeChat's
// browser checks them, for the page's URL without its fragment.
async function shareFlow(browser) {
  const page = await newPage(browser);
  await check('share page: WeChat accepts the wx.config signature', page, async () => {
    await page.goto(`${opts.url}/share.html?from=timeline#section-2`);
    await page.locator('#share[data-state="ready"]').waitFor({ timeout: TIMEOUT });
    const params = JSON.parse(await page.locator('#params').innerText());
    expectMatch(params.signature, /^[0-9a-f]{40}$/, 'signature');
    expectMatch(params.nonceStr, /^[0-9a-f]{16}$/, 'nonceStr');
    expectMatch(String(params.timestamp), /^\d{10}$/, 'timestamp');
    await shot(page, 'share-ready');
  });
  await check('share page: the fake refuses a signature for another page', page, async () => {
    const verdict = await page.evaluate(async () => {
      const c = await (await fetch(`/jssdk?url=${encodeURIComponent(location.href.split('#')[0])}`)).json();
      const check = await fetch('/_fake/jssdk/config', { method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ ...c, url: `${location.origin}/other.html` }) });
      return (await check.json()).errMsg;
    });
    expectEqual(verdict, 'config:invalid signature', 'errMsg');
  });
  await check('share page: wechat_jssdk signs no other site\'s page', page, async () => {
    const status = await page.evaluate(async () => (await fetch(
      `/jssdk?url=${encodeURIComponent('https://evil.example.net/share.html')}`)).status);
    expectEqual(status, 400, 'status');
  });
  await page.context().close();
}

// A follower with no account, who follows without a QR code: WeChat
// greets them with a signed link (wechat_reply subscribe), which opens the
// registration.
async function followAndRegister(browser) {
  const page = await newPage(browser);
  const openid = 'oDemoFollow' + Date.now().toString(36);
  let phone;
  await check('register page: a newcomer who follows gets a signed link in WeChat', page, async () => {
    await page.goto(`${opts.url}/register.html`);
    expectMatch(await expectState(page, 'waiting'), /关注公众号/, 'title');
    await page.fill('#sim-openid', openid);
    await page.click('#sim-follow');
    const sees = (await page.locator('#sim-sees').innerText({ timeout: TIMEOUT })).trim();
    expectMatch(sees, /^感谢关注！还没有账号？注册：http:\/\/127\.0\.0\.1:\d+\/register\?openid=/, 'the greeting');
    await shot(page, 'register-follow');
    phone = await openConfirmLink(page);
  });
  await check('register page: the link opens the registration, which binds the new account', page, async () => {
    await phone.locator('#register-form').waitFor({ timeout: TIMEOUT });
    expectEqual(await phone.locator('#offer-openid').innerText(), openid, 'the openid offered');
    await register(phone, 'gina');
    expectMatch(await expectState(phone, 'done'), /注册成功/, 'title');
    expectEqual((await me(page)).openid, openid, 'the binding');
    await shot(phone, 'register-done');
    await phone.close();
  });
  await check('register page: the app registers no openid of the client\'s choosing', page, async () => {
    const fresh = await newPage(browser);
    await fresh.goto(`${opts.url}/register.html`);
    const statuses = await fresh.evaluate(() => Promise.all([
      fetch('/register?openid=oForged'),
      fetch('/app/register', { method: 'POST', headers: { 'Content-Type': 'application/json' },
                               body: '{"name":"mallory","openid":"oForged"}' }),
    ].map((p) => p.then((r) => r.status))));
    expectEqual(statuses.join(' '), '403 404', 'an unsigned link, a registration never offered');
    await fresh.context().close();
  });
  await page.context().close();
}

// metrics.html: wechat_status's counters that moved since it opened.
async function metricsPage(browser) {
  const page = await newPage(browser);
  await check('metrics page: a scan moves the counters in the table', page, async () => {
    await page.goto(`${opts.url}/metrics.html`);
    await page.locator('#metrics[data-state="ready"]').waitFor({ timeout: TIMEOUT });
    const sees = await page.evaluate(async () => {
      const scene = await (await fetch('/code/qrcode', { method: 'POST' })).json();
      const scan = await fetch('/_fake/scan', { method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ ticket: scene.ticket, openid: 'oDemoMetrics', subscribed: true }) });
      return (await scan.json()).user_sees;
    });
    expectMatch(sees, /^验证码 \d{6}/, 'the scan\'s reply');
    for (const key of ['wechat_scenes_issued_total{kind="code"}', 'wechat_pushes_total{outcome="code_sent"}']) {
      const delta = page.locator(`tr[data-metric='${key}'] td.delta`);
      expectEqual(await delta.innerText({ timeout: TIMEOUT }), '+1', key);
    }
    await shot(page, 'metrics');
  });
  await page.context().close();
}

// Safe mode, switched on the fake platform from the phone panel: the scan
// is pushed encrypted, the module (wechat_mode compatible) answers in kind,
// and the bind goes through; switched back to plain after.
async function safeMode(browser) {
  const page = await newPage(browser);
  const openid = 'oDemoSafe' + Date.now().toString(36);
  await check('safe mode: the switch makes the fake encrypt its pushes, and a bind still works', page, async () => {
    await page.goto(`${opts.url}/bind.html`);
    await loginByName(page, 'sam');
    await qrImageShown(page);
    await page.locator('#sim-safe:not([disabled])').waitFor({ timeout: TIMEOUT });
    await page.check('#sim-safe');
    await page.waitForFunction(async () => (await (await fetch('/_fake/account')).json()).mode === 'safe',
      null, { timeout: TIMEOUT });
    const sees = await simulateScan(page, openid);
    await page.locator('#sim-encrypted').waitFor({ timeout: TIMEOUT });
    await expectState(page, 'scanned');
    await typeCode(page, bindCode(sees), '/bind/poll');
    await expectState(page, 'done');
    expectEqual((await me(page)).openid, openid, 'the binding');
    await shot(page, 'bind-safe-mode');
  });
  await check('safe mode: the switch shows the mode on the next page, and turns it off', page, async () => {
    await page.goto(`${opts.url}/`);
    await page.locator('#sim-safe:checked:not([disabled])').waitFor({ timeout: TIMEOUT });
    await page.uncheck('#sim-safe');
    await page.waitForFunction(async () => (await (await fetch('/_fake/account')).json()).mode === 'plain',
      null, { timeout: TIMEOUT });
  });
  await page.context().close();
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
    await followAndRegister(browser);
    await websiteLogin(browser, await oauthFlows(browser), 'nina');
    await shareFlow(browser);
    await metricsPage(browser);
    await safeMode(browser);
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  emit({ ok: false, name: 'browser tests ran to the end', diag: e.stack });
  process.exitCode = 1;
});
