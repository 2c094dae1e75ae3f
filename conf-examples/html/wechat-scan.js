/*
 * wechat-scan.js: the browser's side of ngx_http_wechat_module's QR flows,
 * for any page; no dependencies.
 *
 *   var scan = WechatScan.start({
 *     qrcode: '/bind/qrcode',     // wechat_qrcode: {scene, poll_token, expire_seconds, ...}
 *     poll: '/bind/poll',         // wechat_poll
 *     image: '/qrcode/image',     // wechat_qrcode_image
 *     img: document.getElementById('qr'),
 *     onScene: function (scene) {},            // the answer of `qrcode`
 *     onStatus: function (status, answer) {},  // each new status
 *     onError: function (error) {}             // error.final: it gave up
 *   });
 *   scan.confirm(code).then(function (answer) {});  // status "scanned"
 *   scan.stop();
 *
 * It asks `qrcode` for a scene (POST, with the page's cookies), shows its QR
 * code in `img`, and asks `poll` until a final status.  A poll that answers
 * "pending" at once is asked again after `interval` ms; a long poll that
 * holds the request is asked again as soon as it answers.  With `sse: true`
 * it listens with an EventSource on the poll URL instead, and falls back to
 * polling when the server does not speak SSE.  It stops on a final status
 * and when the scene's expire_seconds have passed (status "expired").
 *
 * On the way: "scanned" (a bind scan; the scanner got a code in WeChat,
 * which the page asks its user for and hands to scan.confirm), "confirming"
 * (a login scan; the scanner is asked to confirm in WeChat), "code_sent".
 * scan.confirm POSTs scene and code to `poll` and answers its JSON with
 * httpStatus: 200 bound or conflict (also reported as the status), 403
 * wrong code (too many burn the scene: the poll says "expired"), 404, 409
 * (the scene is no longer "scanned").
 *
 * The poll token rides in the cookie wechat_qrcode set, not in the URLs:
 * URLs end up in access logs, and the token is what gets a login code.
 * `tokenInQuery: true` puts it in the URLs, for a poll on another origin.
 */
(function (global) {
  'use strict';

  // Statuses after which the scene can change no more.
  var FINAL = ['bound', 'conflict', 'expired', 'confirmed', 'unbound',
               'redeemed', 'cancelled'];

  var DEFAULTS = {
    image: '/qrcode/image',
    imageParams: { size: 6 },   // PNG modules of 6 px: about 200 px wide
    interval: 1000,             // ms between the starts of two short polls
    retry: 2000,                // ms before asking again after an error
    sse: false,
    tokenInQuery: false,
    fetchOptions: { credentials: 'same-origin' }
  };

  function query(params) {
    return Object.keys(params).map(function (k) {
      return encodeURIComponent(k) + '=' + encodeURIComponent(params[k]);
    }).join('&');
  }

  function withQuery(url, params) {
    return url + (url.indexOf('?') < 0 ? '?' : '&') + query(params);
  }

  function ScanError(message, fields) {
    var e = new Error(message);
    for (var k in fields) e[k] = fields[k];
    return e;
  }

  function getJson(url, options) {
    return fetch(url, options).then(function (res) {
      return res.text().then(function (text) {
        var body;
        try { body = JSON.parse(text); } catch (e) { body = null; }
        if (!res.ok || !body) {
          throw ScanError('HTTP ' + res.status + ' from ' + url.split('?')[0],
                          { status: res.status, body: body });
        }
        return body;
      });
    });
  }

  function start(options) {
    var o = {};
    var k;
    for (k in DEFAULTS) o[k] = DEFAULTS[k];
    for (k in options) o[k] = options[k];

    var stopped = false;
    var timer = null;
    var source = null;
    var expiryTimer = null;
    var lastStatus = null;
    var scene = null;

    function sceneParams() {
      var params = { scene: scene.scene };
      if (o.tokenInQuery) params.poll_token = scene.poll_token;
      // a status that waits for the user is known already: the poll waits
      // while it lasts, as while pending
      if (lastStatus === 'scanned' || lastStatus === 'confirming') {
        params.seen = lastStatus;
      }
      return params;
    }

    function stop() {
      stopped = true;
      clearTimeout(timer);
      clearTimeout(expiryTimer);
      if (source) source.close();
    }

    function fail(error, final) {
      error.final = final;
      if (final) stop();
      if (o.onError) o.onError(error);
    }

    function report(answer) {
      if (stopped) return;
      if (answer.status !== lastStatus) {
        lastStatus = answer.status;
        if (FINAL.indexOf(answer.status) >= 0) stop();
        if (o.onStatus) o.onStatus(answer.status, answer);
      }
    }

    function pollOnce() {
      var started = Date.now();
      getJson(withQuery(o.poll, sceneParams()), o.fetchOptions)
        .then(function (answer) {
          report(answer);
          if (stopped) return;
          var wait = Math.max(0, o.interval - (Date.now() - started));
          timer = setTimeout(pollOnce, wait);
        }, function (error) {
          if (stopped) return;
          // 4xx will not get better; Redis away (503) or a lost
          // connection may
          var final = error.status >= 400 && error.status < 500;
          fail(error, final);
          if (!final) timer = setTimeout(pollOnce, o.retry);
        });
    }

    function listen() {
      var answered = false;
      source = new EventSource(withQuery(o.poll, sceneParams()));
      function onMessage(event) {
        var answer;
        try { answer = JSON.parse(event.data); } catch (e) { return; }
        answered = true;
        report(answer);
      }
      source.addEventListener('message', onMessage);
      source.addEventListener('status', onMessage);
      source.onerror = function () {
        if (stopped || source.readyState !== EventSource.CLOSED) return;
        // closed for good: no SSE here (a JSON answer), or it went away
        source = null;
        if (!answered) pollOnce();
        else timer = setTimeout(pollOnce, o.retry);
      };
    }

    // The code the scanner of a bind scene got, typed on the page; a
    // decided scene is reported as any status is.
    function confirm(code) {
      if (!scene) return Promise.reject(new Error('no scene yet'));
      var params = sceneParams();
      var options = {};
      for (var name in o.fetchOptions) options[name] = o.fetchOptions[name];
      options.method = 'POST';
      options.headers = { 'Content-Type': 'application/x-www-form-urlencoded' };
      params.code = code;
      // the token in the body, never only in the cookie: a form of
      // another site could send the cookie, but cannot know the token
      params.poll_token = scene.poll_token;
      delete params.seen;
      options.body = query(params);
      return fetch(o.poll, options).then(function (res) {
        return res.json().catch(function () { return {}; }).then(function (answer) {
          answer.httpStatus = res.status;
          if (answer.status && (res.status === 200 || res.status === 409)) {
            report({ status: answer.status, openid: answer.openid });
          }
          return answer;
        });
      });
    }

    // POST: wechat_qrcode issues nothing for a GET (a cross-site <img>)
    var issue = { method: 'POST' };
    for (k in o.fetchOptions) if (k !== 'method') issue[k] = o.fetchOptions[k];

    getJson(o.qrcode, issue).then(function (answer) {
      if (stopped) return;
      scene = answer;
      if (o.img) {
        var params = sceneParams();
        for (var p in o.imageParams) params[p] = o.imageParams[p];
        o.img.src = withQuery(o.image, params);
      }
      if (o.onScene) o.onScene(answer);
      // waiting from now on: a long poll answers only when that changes
      report({ status: 'pending' });
      if (answer.expire_seconds) {
        expiryTimer = setTimeout(function () {
          report({ status: 'expired', local: true });
        }, answer.expire_seconds * 1000);
      }
      if (o.sse && global.EventSource) listen(); else pollOnce();
    }, function (error) {
      fail(error, true);
    });

    return {
      stop: stop,
      confirm: confirm,
      scene: function () { return scene; },
      status: function () { return lastStatus; }
    };
  }

  global.WechatScan = { start: start, FINAL: FINAL };
})(this);
