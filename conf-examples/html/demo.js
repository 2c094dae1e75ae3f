/*
 * The demo pages' shared parts: the account in the header, the login-by-name
 * form, the QR flow's states, and the simulated phone.  The module's side of
 * the flows is wechat-scan.js; this file is only the demo site around it.
 */
(function (global) {
  'use strict';

  function $(selector, root) { return (root || document).querySelector(selector); }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    for (var k in attrs || {}) {
      if (k === 'text') node.textContent = attrs[k];
      else if (k === 'onclick') node.addEventListener('click', attrs[k]);
      else node.setAttribute(k, attrs[k]);
    }
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    });
    return node;
  }

  // Chinese first, English after it in grey: every label of the demo.
  function both(zh, en) {
    return el('span', {}, [zh + ' ', el('span', { class: 'en', text: en })]);
  }

  function api(method, url, body) {
    return fetch(url, {
      method: method,
      credentials: 'same-origin',
      headers: body ? { 'Content-Type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (json) {
        json.httpStatus = res.status;
        return json;
      });
    });
  }

  // --- the account --------------------------------------------------------

  var account = { user: null, openid: null };

  function loadAccount() {
    return api('GET', '/app/me').then(function (me) {
      account = me.httpStatus === 200 ? me : { user: null, openid: null };
      renderAccount();
      return account;
    });
  }

  function renderAccount() {
    var box = $('#account');
    if (!box) return;
    box.textContent = '';
    if (!account.user) {
      box.appendChild(both('未登录', 'not logged in'));
      return;
    }
    box.appendChild(el('b', { text: account.user, id: 'account-user' }));
    box.appendChild(el('span', { id: 'account-binding' }, [' · ', account.openid
      ? both('已绑定微信', 'bound') : both('未绑定微信', 'not bound')]));
    if (account.openid) {
      box.appendChild(el('button', { class: 'link', id: 'unbind', text: '解除绑定 Unbind',
        onclick: function () { api('POST', '/app/unbind').then(loadAccount); } }));
    }
    box.appendChild(el('button', { class: 'link', id: 'logout', text: '退出 Log out',
      onclick: function () {
        api('POST', '/app/logout').then(function () { location.reload(); });
      } }));
  }

  // A form that sends a user name to the app: o.id names it (o.id-form,
  // o.id-name), o.url takes {"name"}, o.label and o.button are [zh, en];
  // o.onDone(answer) once the app answered 200 and the header knows.
  function nameForm(o) {
    var input = el('input', { type: 'text', id: o.id + '-name', placeholder: o.placeholder,
                              autocomplete: 'username' });
    var message = el('div', { class: 'detail', id: o.id + '-message' });
    var form = el('form', { id: o.id + '-form' }, [
      el('div', { class: 'field' }, [
        el('label', { for: o.id + '-name' }, [both(o.label[0], o.label[1])]), input]),
      el('button', { class: 'primary', type: 'submit' }, [both(o.button[0], o.button[1])]),
      message
    ]);
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      api('POST', o.url, { name: input.value.trim() }).then(function (answer) {
        if (answer.httpStatus !== 200) {
          message.textContent = answer.error || o.url + ': HTTP ' + answer.httpStatus;
          return;
        }
        loadAccount().then(function () { o.onDone(answer); });
      });
    });
    return form;
  }

  // A form that logs in by name (the stand-in app trusts any name).
  function loginForm(onLogin) {
    return nameForm({ id: 'login', url: '/app/login', placeholder: 'alice',
                      label: ['演示账号名', 'Demo user name'], button: ['登录', 'Log in'],
                      onDone: function () { onLogin(account); } });
  }

  // --- the QR flow's states -----------------------------------------------

  var MARKS = { done: ['✓', 'ok'], conflict: ['✕', 'bad'], error: ['!', 'bad'],
                expired: ['↻', 'old'], scanned: ['✓', 'ok'], confirming: ['✓', 'ok'],
                cancelled: ['✕', 'old'], burnt: ['✕', 'bad'], unbound: ['?', 'old'] };

  // state: loading, waiting, scanned, confirming, done, conflict, expired,
  // burnt, cancelled, unbound, error, login, unavailable, or a page's own; opts:
  // title [zh, en], detail (text or node), kind (ok, bad, old), actions
  // (nodes).
  function setState(flow, state, opts) {
    opts = opts || {};
    flow.setAttribute('data-state', state);
    var veil = $('.veil', flow) || el('div');   // a card without a QR code has none
    veil.textContent = '';
    if (state === 'loading') veil.appendChild(el('div', { class: 'spinner' }));
    var mark = MARKS[state] || (opts.kind && ['✓', opts.kind]);
    if (mark && state !== 'waiting') veil.appendChild(el('div', { class: 'mark ' + mark[1], text: mark[0] }));
    var status = $('.status', flow);
    status.textContent = '';
    status.setAttribute('data-state', state);
    if (opts.title) {
      status.appendChild(el('div', { class: 'title ' + (opts.kind || (mark ? mark[1] : '')) },
                            [both(opts.title[0], opts.title[1])]));
    }
    if (opts.detail) {
      status.appendChild(el('div', { class: 'detail' },
                            [typeof opts.detail === 'string' ? opts.detail : opts.detail]));
    }
    if (opts.actions) status.appendChild(el('div', { class: 'actions' }, opts.actions));
  }

  // The form a code from WeChat is typed into, hidden until shown; submit
  // hands onCode the code.
  function codeForm(label, onCode) {
    var input = el('input', { type: 'text', id: 'code', inputmode: 'numeric',
                              autocomplete: 'one-time-code', placeholder: '验证码 code',
                              'aria-label': '验证码 code' });
    var form = el('form', { class: 'code-entry', id: 'code-form', hidden: '' }, [input,
      el('button', { class: 'primary', type: 'submit' }, [both(label[0], label[1])])]);
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      onCode(input.value.trim());
    });
    form.show = function () {
      form.hidden = false;
      input.select();
      input.focus();
    };
    return form;
  }

  function restartButton(onClick) {
    return el('button', { class: 'primary', id: 'restart', onclick: onClick },
              [both('刷新二维码', 'New code')]);
  }

  // Seconds left on the code, under it.
  function countdown(node, seconds) {
    var end = Date.now() + seconds * 1000;
    function tick() {
      var left = Math.max(0, Math.round((end - Date.now()) / 1000));
      node.textContent = '二维码 ' + Math.floor(left / 60) + ':' + ('0' + left % 60).slice(-2)
        + ' 后过期 · expires in ' + left + ' s';
      if (left > 0) node.timer = setTimeout(tick, 1000);
    }
    clearTimeout(node.timer);
    tick();
    return function () { clearTimeout(node.timer); node.textContent = ''; };
  }

  // --- registration ------------------------------------------------------

  // The form that registers the WeChat user the app offered a registration
  // to (its cookie: a redeemed code, or a signed link); onDone(answer)
  // once registered and logged in.
  function registerForm(onDone) {
    return nameForm({ id: 'register', url: '/app/register', placeholder: 'newcomer',
                      label: ['新账号名', 'New user name'], button: ['注册', 'Register'],
                      onDone: onDone });
  }

  // A flow that ended on a WeChat user with no account: the registration
  // the app offered, then the new account.
  function showUnbound(flow) {
    setState(flow, 'unbound', { title: ['这个微信还没有账号', 'This WeChat has no account yet'],
      detail: '注册一个，微信就绑定到它 · register one, and this WeChat is bound to it',
      actions: [registerForm(function (answer) { registered(flow, answer); })] });
  }

  // The answer of a registration, on the card.
  function registered(flow, answer) {
    setState(flow, 'done', { title: ['注册成功', 'Registered'],
      detail: el('span', {}, [signedIn(answer.user), ' · openid ',
                              el('code', { id: 'openid', text: answer.openid })]) });
  }

  // --- the simulated phone ------------------------------------------------

  function randomOpenid() {
    var abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
    var id = 'oDemo';
    for (var i = 0; i < 23; i++) id += abc[Math.floor(Math.random() * abc.length)];
    return id;
  }

  // The fake platform's message mode for the demo's account: plain, or
  // safe (AES-encrypted pushes); demo.conf's "wechat_mode compatible"
  // takes both.
  function safeModeSwitch() {
    var box = el('input', { type: 'checkbox', id: 'sim-safe', disabled: '' });
    var appid = null;
    api('GET', '/_fake/account').then(function (account) {
      if (account.httpStatus !== 200) return;
      appid = account.appid;
      box.checked = account.mode === 'safe';
      box.disabled = false;
    });
    box.addEventListener('change', function () {
      box.disabled = true;
      api('POST', '/_fake/account', { appid: appid, mode: box.checked ? 'safe' : 'plain' })
        .then(function (answer) {
          if (answer.httpStatus !== 200) box.checked = !box.checked;
          box.disabled = false;
        });
    });
    return el('label', { class: 'check' }, [box,
      both('安全模式：推送用 AES 加密', 'safe mode: pushes encrypted (AES)')]);
  }

  // A link in a WeChat message opens in WeChat's own browser, on the phone:
  // here in a small window of its own.  (The module's confirm page may not
  // be framed, and would not be in WeChat either.)
  function openOnPhone(e) {
    var win = window.open(this.href, 'wechat-phone', 'popup,width=400,height=640');
    if (!win) return;           // no pop-ups: the link's own new tab
    e.preventDefault();
    win.opener = null;
  }

  // A reply's text, its web links made links to open "on the phone".
  function replyNodes(text) {
    return text.split(/(https?:\/\/[^\s"<>]+)/).map(function (part, i) {
      if (i % 2 === 0) return document.createTextNode(part);
      return el('a', { href: part, class: 'sim-link', target: '_blank', rel: 'noreferrer',
                       text: part, onclick: openOnPhone });
    });
  }

  // The panel beside a QR code: the fake WeChat platform scans the current
  // scene (currentScene() answers the qrcode answer, or null) as the chosen
  // WeChat user, and shows what WeChat would show that user.
  function phone(panel, currentScene, options) {
    options = options || {};
    var enabled = false;
    var openid = el('input', { type: 'text', id: 'sim-openid', class: 'mono',
                               value: randomOpenid(), spellcheck: 'false' });
    var follows = el('input', { type: 'checkbox', id: 'sim-follows' });
    var reply = el('div', { id: 'sim-reply' }, [el('span', { class: 'empty' },
                  [both('还没有扫码', 'not scanned yet')])]);
    // off until the page has a code to scan
    var button = el('button', { class: 'primary', id: 'sim-scan', disabled: '' },
                    [both('模拟扫码', 'Scan')]);

    button.addEventListener('click', function () {
      var scene = currentScene();
      if (!scene) return;
      button.disabled = true;
      reply.textContent = '';
      reply.appendChild(el('span', { class: 'empty' }, [both('扫码中…', 'scanning…')]));
      api('POST', '/_fake/scan', {
        ticket: scene.ticket, scene: scene.ticket ? undefined : scene.scene,
        openid: openid.value.trim(), subscribed: follows.checked
      }).then(function (answer) {
        // the scan may have ended the flow meanwhile
        button.disabled = !enabled;
        reply.textContent = '';
        if (answer.httpStatus !== 200) {
          reply.appendChild(el('div', { class: 'bubble failed', id: 'sim-sees' },
            [answer.httpStatus === 410 ? '二维码已过期 (WeChat: QR code expired)'
                                       : (answer.error || 'scan failed')]));
          return;
        }
        follows.checked = true;   // scanning follows the account
        showReply(answer, answer.event === 'subscribe' ? '关注并扫码 · followed and scanned'
                                                       : '已关注用户扫码 · a follower scanned');
      }, function (e) {
        button.disabled = !enabled;
        reply.textContent = e.message;
      });
    });

    // what WeChat showed the user after a push: answer is the fake's
    function showReply(answer, who) {
      reply.textContent = '';
      var encrypted = answer.reply && answer.reply.encrypted;
      reply.appendChild(el('div', { class: 'who', id: 'sim-who' }, [who, encrypted
        ? el('span', { class: 'lock', id: 'sim-encrypted' }, [' · 加密推送 encrypted push (AES)']) : '']));
      reply.appendChild(el('div', { class: 'bubble' + (answer.user_sees ? '' : ' failed'),
                                    id: 'sim-sees' },
                           answer.user_sees ? replyNodes(answer.user_sees)
                                            : ['（没有回复 no reply）']));
      if ($('.sim-link', reply)) {
        reply.appendChild(el('div', { class: 'who hint' }, [both(
          '点链接，在“手机”小窗口里打开，和在微信里一样',
          'tap the link: it opens in a small window, as in WeChat')]));
      }
    }

    // a plain follow, no QR code: a newcomer is greeted with a signed link
    // to register (wechat_reply subscribe)
    var follow = el('button', { id: 'sim-follow' }, [both('关注公众号', 'Follow')]);
    follow.addEventListener('click', function () {
      follow.disabled = true;
      api('POST', '/_fake/event', { openid: openid.value.trim(), event: 'subscribe' })
        .then(function (answer) {
          follow.disabled = false;
          if (answer.httpStatus !== 200) {
            reply.textContent = answer.error || 'follow failed';
            return;
          }
          follows.checked = true;
          showReply(answer, '关注了公众号 · followed the account');
        });
    });

    panel.appendChild(el('span', { class: 'tag', text: '演示 DEMO · 不需要手机 no phone needed' }));
    panel.appendChild(el('h2', {}, [both('模拟扫码', 'Simulate scan')]));
    panel.appendChild(el('p', { class: 'note' }, [
      '假的微信平台扮演用户的手机：它把签名的扫码事件推送到 /wechat，和微信一样。',
      el('br'), el('span', { class: 'en',
        text: 'The fake WeChat platform plays the phone: it pushes the signed scan to /wechat, as WeChat does.' })]));
    panel.appendChild(el('div', { class: 'field' }, [
      el('label', { for: 'sim-openid' }, [both('微信用户 openid', 'WeChat user')]), openid]));
    panel.appendChild(el('div', { class: 'field' }, [el('label', { class: 'check' }, [
      follows, both('已关注公众号', 'already follows the account')])]));
    panel.appendChild(el('div', { class: 'field' }, [safeModeSwitch()]));
    panel.appendChild(el('div', { class: 'buttons' }, [button].concat(options.follow ? [follow] : []).concat([
      el('button', { class: 'link',
        onclick: function () { openid.value = randomOpenid(); follows.checked = false; } },
        ['换一个用户 another user'])])));
    panel.appendChild(el('div', { class: 'chat' }, [
      el('div', { class: 'who' }, [both('微信里用户看到', 'what the user sees in WeChat')]), reply]));

    return {
      enable: function (on) { enabled = on; button.disabled = !on; }
    };
  }

  // --- the scan card every page shares ------------------------------------

  // Gets a QR code of o.kind, counts it down, drives the phone beside it
  // (no scans once the scene is decided), and shows what the page does
  // not: waiting, expiry and failures.  The page's o.onStatus(status,
  // answer) answers true for a status it showed; o.onError(error) true for
  // an error it took care of; o.onStart() runs before each new code;
  // o.waiting and o.unavailable are the details shown while waiting and
  // when the build lacks the flow (404); o.follow gives the phone a Follow
  // button (a follow without a scan).
  function scanFlow(o) {
    var flow = $('#flow');
    var scan = null;
    var stopCountdown = function () {};
    var card = {
      flow: flow,
      scene: function () { return scan && scan.scene(); },
      status: function () { return scan && scan.status(); },
      confirm: function (code) { return scan.confirm(code); },
      stopCountdown: function () { stopCountdown(); },
      stop: function () { if (scan) scan.stop(); stopCountdown(); panel.enable(false); },
      fail: function (title, detail) {
        panel.enable(false);
        setState(flow, 'error', { title: title, detail: detail,
                                  actions: [restartButton(start)] });
      },
      start: start
    };
    var panel = phone($('#phone'), card.scene, { follow: o.follow });

    function start() {
      if (scan) scan.stop();
      if (o.onStart) o.onStart();
      setState(flow, 'loading', { title: ['正在生成二维码…', 'Getting a QR code…'] });
      panel.enable(false);
      scan = WechatScan.start({
        qrcode: '/' + o.kind + '/qrcode',
        poll: '/' + o.kind + '/poll',
        image: '/' + o.kind + '/image',
        img: $('#qr'),
        sse: /[?&]sse=1/.test(location.search),
        onScene: function (scene) {
          panel.enable(true);
          stopCountdown = countdown($('#countdown'), scene.expire_seconds);
        },
        onStatus: show,
        onError: function (error) {
          if (o.onError && o.onError(error)) return;
          if (!error.final) return;
          panel.enable(false);
          stopCountdown();
          if (error.status === 404 && o.unavailable) {
            return setState(flow, 'unavailable', { detail: o.unavailable,
              title: ['此功能尚未启用', 'Not available in this build'] });
          }
          card.fail(['出错了', 'Something went wrong'], error.message);
        }
      });
    }

    function show(status, answer) {
      if (WechatScan.FINAL.indexOf(status) >= 0) panel.enable(false);
      if (status === 'pending') {
        return setState(flow, 'waiting', { detail: o.waiting,
          title: ['请用微信扫一扫', 'Scan with WeChat'] });
      }
      if (o.onStatus(status, answer)) return;
      stopCountdown();
      if (status === 'expired') {
        setState(flow, 'expired', { title: ['二维码已过期', 'The code has expired'],
          actions: [restartButton(start)] });
      } else {
        card.fail(['出错了', 'Something went wrong'], 'status ' + status);
      }
    }

    return card;
  }

  // The signed-in user's name, as the pages show it.
  function signedIn(user) {
    return el('span', {}, ['欢迎 welcome, ', el('b', { id: 'signed-in-user', text: user })]);
  }

  global.Demo = {
    $: $, el: el, both: both, api: api,
    loadAccount: loadAccount, account: function () { return account; },
    loginForm: loginForm, registerForm: registerForm, showUnbound: showUnbound, registered: registered,
    setState: setState, codeForm: codeForm, restartButton: restartButton,
    countdown: countdown, phone: phone, safeModeSwitch: safeModeSwitch, scanFlow: scanFlow, signedIn: signedIn
  };
})(this);
