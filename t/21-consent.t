# No account changes hands without its holder's say, against a real
# redis-server: a bind scan waits for the code the scanner got, typed on the
# page that holds the poll token; a login scan waits for the scanner's
# Confirm on a page opened from a signed link in WeChat; a scan never
# replaces a binding silently; redeeming can be bound to the browser.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw(hmac_sha256_hex);
use Encode ();
use JSON::PP;
use IO::Select;
use IO::Socket::INET;
use Test::More;
use WxTest;

my ($appid, $token) = ('wxconsentapp', 'consentToken9');
my $link_secret = 'C' x 40;
my $redis = start_redis();

my $ng = start_nginx(http => <<"EOF");
    wechat_redis 127.0.0.1:$redis->{port};

    server {
        listen 127.0.0.1:PORT;

        wechat_appid $appid;
        wechat_callback_token $token;
        wechat_link_secret $link_secret;
        wechat_link_url https://example.com/register;
        wechat_login_confirm_url https://example.com/login/confirm;
        wechat_redeem_attempts 3;

        location = /wx {
            wechat_callback;
        }

        location = /bind/qrcode {
            wechat_scene_user \$http_x_user_id;
            wechat_qrcode bind;
        }

        # the page's poll, and its confirm: only for the scene's own user
        location = /bind/poll {
            wechat_scene_user \$http_x_user_id;
            wechat_poll_timeout 0;
            wechat_poll;
        }

        location = /login/qrcode {
            wechat_qrcode login;
        }

        location = /login/poll {
            wechat_poll_timeout 0;
            wechat_poll;
        }

        location = /login/confirm {
            wechat_login_confirm;
        }

        location = /login/wait {
            wechat_poll_timeout 3s;
            wechat_poll;
        }

        location = /redeem {
            wechat_redeem_attempts 10;  # the wrong tries below count
            wechat_redeem_poll_token on;
            wechat_redeem;
        }

        location = /redeem-code-only {
            wechat_redeem;
        }

        location = /register {
            wechat_link_verify register;
            empty_gif;      # content phase: after the access check
        }

        location = /status {
            wechat_status;
        }
    }
EOF

my $json = JSON::PP->new->utf8->canonical;
my $P = "wx:{$appid}:";

sub issue {
    my ($kind, %opt) = @_;
    my $res = http_req('POST', $ng->url("/$kind/qrcode"),
                       headers => $opt{headers} // {});
    is($res->{status}, 200, "$kind qrcode") or diag($res->{content});
    return $json->decode($res->{content});
}

sub poll {
    my ($kind, $q, %opt) = @_;
    my $res = http_req('GET', $ng->url("/$kind/poll"),
                       query => { scene => $q->{scene} },
                       headers => { Cookie => "wechat_poll=$q->{token}",
                                    %{ $opt{headers} // {} } });
    return $res->{content};
}

sub scan {
    my ($scene, $openid) = @_;
    my $body = event_xml(from => $openid, event => 'SCAN', key => $scene);
    my $res = send_push($ng, '/wx', $token, $body);
    return $res->{content} =~ /<Content><!\[CDATA\[(.*?)\]\]><\/Content>/s
           ? Encode::decode('UTF-8', $1) : $res->{content};
}

sub confirm_bind {
    my ($q, $code, %opt) = @_;
    my $body = "scene=$q->{scene}&code=$code";
    $body .= "&poll_token=$opt{token}" if defined $opt{token};
    return http_req('POST', $ng->url('/bind/poll'), body => $body,
                    headers => { 'X-User-Id' => $opt{user} // 'alice',
                                 'Content-Type' =>
                                     'application/x-www-form-urlencoded',
                                 Cookie => "wechat_poll=$q->{token}",
                                 %{ $opt{headers} // {} } });
}

sub code_of { ($_[0] // '') =~ /(\d{6})/ ? $1 : '' }

# The counters of wechat_status, and what a step added to them.
sub metrics {
    my $text = http_req('GET', $ng->url('/status'))->{content};
    return { $text =~ /^(wechat_\w+(?:\{[^}]*\})?) (\d+)$/mg };
}

sub added {
    my ($before, $what, %want) = @_;
    my $after = metrics();
    my %got = map { $_ => ($after->{$_} // -1) - ($before->{$_} // 0) }
              keys %want;
    is_deeply(\%got, \%want, "metrics: $what");
}

# --- 1. bind waits for the code the scanner got ------------------------------

my $m = metrics();
my $qa = issue('bind', headers => { 'X-User-Id' => 'alice' });
my $reply = scan($qa->{scene}, 'oMallory');
like($reply, qr/^绑定验证码 \d{6}，请在网页上输入/,
     "an observer's scan gets a code on the observer's own phone");
my $mallory_code = code_of($reply);
is(redis_cmd($redis, 'HGET', "${P}users", 'alice'), undef,
   'the scan bound nothing');
is(poll('bind', $qa, headers => { 'X-User-Id' => 'alice' }),
   '{"status":"scanned"}', 'the page sees "scanned", and no openid');

# alice cannot type mallory's code: she scans herself; the latest scan wins
$reply = scan($qa->{scene}, 'oAlice');
my $alice_code = code_of($reply);
like($reply, qr/^绑定验证码 \d{6}/, 'a later scan by another WeChat gets its own code');
run_case($ng, { name => 'the first scanner\'s code no longer binds',
                method => 'POST', path => '/bind/poll',
                body => "scene=$qa->{scene}&code=$mallory_code"
                        . "&token=$qa->{token}",
                headers => { 'X-User-Id' => 'alice',
                             Cookie => "wechat_poll=$qa->{token}" },
                status => 403, body_is => '{"error":"wrong code"}' })
    unless $mallory_code eq $alice_code;

my $res = confirm_bind($qa, $alice_code, user => 'bob', token => $qa->{token});
is($res->{status}, 404, 'another site user cannot confirm the scene');
$res = confirm_bind($qa, $alice_code, user => '', token => $qa->{token});
is($res->{status}, 401, 'nor a request with no user where the location names one');
$res = confirm_bind($qa, $alice_code, token => 'f' x 32);
is($res->{status}, 404, 'another browser (poll token) cannot confirm it');
$res = confirm_bind($qa, $alice_code);
is($res->{status}, 400, 'a confirm with the token in the cookie only: 400');
is($res->{content}, '{"error":"bad request"}', 'answered as JSON');
$res = confirm_bind($qa, $alice_code, token => $qa->{token},
                    headers => { 'Sec-Fetch-Site' => 'cross-site' });
is($res->{status}, 403, 'a confirm another site sent: 403');
$res = confirm_bind($qa, $alice_code, token => $qa->{token});
is($res->{status}, 200, 'the code the phone got, typed on the page: 200');
is($res->{content}, '{"status":"bound","openid":"oAlice"}', 'bound');
is(redis_cmd($redis, 'HGET', "${P}users", 'alice'), 'oAlice', 'alice bound');
is(poll('bind', $qa), '{"status":"bound","openid":"oAlice"}', 'poll: bound');
$res = confirm_bind($qa, $alice_code, token => $qa->{token});
is($res->{status}, 409, 'a second confirm: nothing to confirm');
like($res->{content}, qr/"status":"bound"/, 'it names the status');

# the attempt limit burns the scene
my $qw = issue('bind', headers => { 'X-User-Id' => 'wendy' });
scan($qw->{scene}, 'oWendy');
for my $i (1 .. 2) {
    $res = confirm_bind($qw, '000000', user => 'wendy', token => $qw->{token});
    is($res->{status}, 403, "wrong code $i: 403");
}
$res = confirm_bind($qw, '000000', user => 'wendy', token => $qw->{token});
is(redis_cmd($redis, 'EXISTS', "${P}scene:$qw->{scene}"), 0,
   'the third wrong code burns the scene');
is(poll('bind', $qw, headers => { 'X-User-Id' => 'wendy' }),
   '{"status":"expired"}', 'poll: expired');
is(redis_cmd($redis, 'HGET', "${P}users", 'wendy'), undef, 'wendy not bound');
added($m, 'bind scenes and their confirms',
      'wechat_scenes_issued_total{kind="bind"}' => 2,
      'wechat_scenes_issued_total{kind="login"}' => 0,
      'wechat_bind_confirms_total{outcome="bound"}' => 1,
      'wechat_bind_confirms_total{outcome="conflict"}' => 0,
      'wechat_bind_confirms_total{outcome="wrong"}' =>
          $mallory_code eq $alice_code ? 3 : 4,
      'wechat_bind_confirms_total{outcome="not_found"}' => 2,
      'wechat_bind_confirms_total{outcome="not_scanned"}' => 1);

# --- 3. a scan never replaces a binding silently ------------------------------

my $qr = issue('bind', headers => { 'X-User-Id' => 'alice' });
$reply = scan($qr->{scene}, 'oAliceNew');
is(redis_cmd($redis, 'HGET', "${P}users", 'alice'), 'oAlice',
   'a rebinding scan replaces nothing');
$res = confirm_bind($qr, code_of($reply), token => $qr->{token});
is($res->{content}, '{"status":"bound","openid":"oAliceNew"}',
   'the holder\'s code replaces it');
my $entries = redis_cmd($redis, 'XRANGE', "${P}resolutions", '-', '+');
my %e = @{ $entries->[-1][1] };
is($e{replaced}, 'oAlice', 'the stream names the replaced openid');
is(redis_cmd($redis, 'HGET', "${P}openids", 'oAlice'), undef,
   'the old openid is released');

# an openid bound to another user: a stranger's scan decides nothing, the
# conflict shows once the code is sent
my $qc = issue('bind', headers => { 'X-User-Id' => 'carol' });
$reply = scan($qc->{scene}, 'oAliceNew');
like($reply, qr/^绑定验证码/, 'an openid of another user: a code too');
is(poll('bind', $qc, headers => { 'X-User-Id' => 'carol' }),
   '{"status":"scanned"}', 'the scene only waits');
$res = confirm_bind($qc, code_of($reply), user => 'carol',
                    token => $qc->{token});
is($res->{content}, '{"status":"conflict"}', 'the code tells the conflict');
is(redis_cmd($redis, 'HGET', "${P}openids", 'oAliceNew'), 'alice',
   'and the binding stays');

# bad confirms end their connection (a raw client that waits to be closed)
for my $body ('', 'scene=zzz&code=111111&token=x') {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $ng->{port}) or die $!;
    print $s "POST /bind/poll HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
           . "X-User-Id: alice\r\nContent-Length: " . length($body)
           . "\r\n\r\n$body";
    my $sel = IO::Select->new($s);
    my ($got, $closed) = ('', 0);
    while ($sel->can_read(3)) {
        my $n = sysread($s, my $chunk, 4096);
        if (!$n) { $closed = 1; last }
        $got .= $chunk;
    }
    like($got, qr{^HTTP/1\.1 (400|404)}, "a bad confirm ('$body') answered");
    ok($closed, "and its connection closed");
}

# --- 2. login waits for the scanner's Confirm in WeChat -----------------------

redis_cmd($redis, 'HSET', "${P}openids", 'oLogin', 'larry');
redis_cmd($redis, 'HSET', "${P}users", 'larry', 'oLogin');

my $ql = issue('login');
$reply = scan($ql->{scene}, 'oLogin');
my ($link) = $reply =~ m{(https://example\.com/login/confirm\?\S+)};
ok($link, 'the scan is answered with a confirm link') or diag($reply);
like($link // '', qr{\?openid=oLogin&scene=\Q$ql->{scene}\E&expires=\d+&nonce=[0-9a-f]{32}&sig=[0-9a-f]{64}$},
     'the link signs the openid and the scene');
is(poll('login', $ql), '{"status":"confirming"}',
   'the page waits: no login code before the confirm');
my ($query) = ($link // '') =~ /\?(.*)$/;

# the link is checked here independently: HMAC-SHA256 over the fields
my %f = map { split /=/, $_, 2 } split /&/, $query // '';
my $msg = join '', map { length($_) . ":$_" } 'wechat-link/2', $appid,
          'login-confirm', $f{openid}, $f{scene}, $f{expires}, $f{nonce};
is($f{sig}, hmac_sha256_hex($msg, $link_secret),
   'the signature is HMAC-SHA256 of account, purpose, openid, scene');

$res = http_req('GET', $ng->url("/login/confirm?$query"));
is($res->{status}, 200, 'the confirm page opens');
my $page = Encode::decode('UTF-8', $res->{content});
like($page, qr/登录 127\.0\.0\.1？/, 'it names the site');
like($page, qr/It calls itself: HTTP-Tiny/, 'and what the browser that asked says it is');
like($page, qr/Its network: 127\.0\.0\.\*/, 'and its network, no more');
like($page, qr/This phone's network: 127\.0\.0\.\*/, 'beside the phone\'s own');
like($page, qr/name="action" value="confirm"/, 'a Confirm button');
like($page, qr/name="action" value="cancel"/, 'a Cancel button');
is($res->{headers}{'x-frame-options'}, 'DENY', 'no framing');
is($res->{headers}{'cache-control'}, 'no-store', 'no caching');
is(poll('login', $ql), '{"status":"confirming"}', 'opening the page confirms nothing');

# tampered, foreign and register links are refused
$m = metrics();
(my $other = $query) =~ s/openid=oLogin/openid=oEve/;
run_case($ng, { name => 'a confirm link with another openid',
                path => "/login/confirm?$other", status => 403,
                log => [qr/refused: signature mismatch/] });
my $rmsg = join '', map { length($_) . ":$_" } 'wechat-link/2', $appid,
           'register', 'oLogin', '', $f{expires}, $f{nonce};
my $register_q = "openid=oLogin&scene=$f{scene}&expires=$f{expires}"
               . "&nonce=$f{nonce}&sig=" . hmac_sha256_hex($rmsg, $link_secret);
run_case($ng, { name => 'a register link with a scene added', status => 403,
                path => "/login/confirm?$register_q",
                log => [qr/refused: signature mismatch/] });
(my $noscene = $register_q) =~ s/&scene=[^&]+//;
run_case($ng, { name => 'a register link at the confirm page', status => 403,
                path => "/login/confirm?$noscene",
                log => [qr/no scene/] });
run_case($ng, { name => 'a confirm link at the register page', status => 403,
                path => "/register?$query",
                log => [qr/refused: signature mismatch/] });
my $emsg = join '', map { length($_) . ":$_" } 'wechat-link/2', $appid,
           'register', 'oLogin', '', time - 10, $f{nonce};
run_case($ng, { name => 'an expired register link', status => 403,
                path => "/register?openid=oLogin&expires=" . (time - 10)
                        . "&nonce=$f{nonce}&sig="
                        . hmac_sha256_hex($emsg, $link_secret),
                log => [qr/refused: expired/] });
added($m, 'links refused',
      'wechat_link_refusals_total{reason="signature"}' => 3,
      'wechat_link_refusals_total{reason="expired"}' => 1,
      'wechat_link_refusals_total{reason="used"}' => 0);

# a redeem while confirming finds nothing
$res = http_req('POST', $ng->url('/redeem-code-only'),
                body => "scene=$ql->{scene}&code=" . ('0' x 32));
is($res->{status}, 404, 'no code redeems before the confirm');

$m = metrics();
$res = http_req('POST', $ng->url('/login/confirm'),
                body => "$query&action=confirm");
is($res->{status}, 200, 'Confirm: 200');
like(Encode::decode('UTF-8', $res->{content}), qr/已确认登录/,
     'the page says it is confirmed');
my $answer = $json->decode(poll('login', $ql));
is($answer->{status}, 'confirmed', 'only Confirm makes it confirmed');
like($answer->{code} // '', qr/^[0-9a-f]{32}$/, 'the page gets its login code');
$res = http_req('POST', $ng->url('/login/confirm'),
                body => "$query&action=confirm");
is($res->{status}, 410, 'the link is single-use');
added($m, 'a login confirmed, and its link used again',
      'wechat_login_confirms_total{outcome="confirmed"}' => 1,
      'wechat_login_confirms_total{outcome="used"}' => 1,
      'wechat_login_confirms_total{outcome="gone"}' => 0,
      'wechat_link_refusals_total{reason="used"}' => 1);

# --- 7. redeeming bound to the browser ----------------------------------------

$m = metrics();

run_case($ng, { name => 'a code without the browser\'s token', method => 'POST',
                path => '/redeem', status => 404,
                body => "scene=$ql->{scene}&code=$answer->{code}" });
run_case($ng, { name => 'a code with another browser\'s token',
                method => 'POST', path => '/redeem', status => 404,
                body => "scene=$ql->{scene}&code=$answer->{code}",
                headers => { Cookie => 'wechat_poll=' . ('a' x 32) } });
run_case($ng, { name => 'the token in the body does not stand for the cookie',
                method => 'POST', path => '/redeem', status => 404,
                body => "scene=$ql->{scene}&code=$answer->{code}"
                        . "&token=$ql->{token}",
                headers => { Cookie => 'wechat_poll=' . ('b' x 32) } });
$res = run_case($ng, { name => 'a code with the cookie the backend forwarded',
                       method => 'POST', path => '/redeem', status => 200,
                       body => "scene=$ql->{scene}&code=$answer->{code}",
                       headers => { Cookie => "x=1; wechat_poll=$ql->{token}" } });
is($res->{content}, '{"openid":"oLogin","user":"larry","kind":"login"}',
   'redeemed for larry');

# wrong codes at the attempt limit (3 here) burn a scene; then it is gone
my $qb = issue('login');
for my $n (1 .. 4) {
    $res = http_req('POST', $ng->url('/redeem-code-only'),
                    body => "scene=$qb->{scene}&code=" . ('0' x 32));
    is($res->{status}, 404, "a wrong login code $n: 404");
}
added($m, 'redeems',
      'wechat_redeems_total{outcome="ok"}' => 1,
      'wechat_redeems_total{outcome="wrong"}' => 5,
      'wechat_redeems_total{outcome="burnt"}' => 1,
      'wechat_redeems_total{outcome="not_found"}' => 1);

# --- a relayed login QR code: the victim cancels ------------------------------

my $qx = issue('login');     # the attacker's page
$reply = scan($qx->{scene}, 'oLogin');     # the victim scans the relayed code
($link) = $reply =~ m{\?(\S+)};
$res = http_req('POST', $ng->url('/login/confirm'), body => "$link&action=cancel");
like(Encode::decode('UTF-8', $res->{content}), qr/已取消/, 'Cancel: cancelled');
is(poll('login', $qx), '{"status":"cancelled"}',
   'the attacker\'s page gets no code');
$res = http_req('POST', $ng->url('/redeem-code-only'),
                body => "scene=$qx->{scene}&code=" . ('0' x 32));
is($res->{status}, 404, 'and nothing to redeem');
like(scan($qx->{scene}, 'oLogin'), qr/二维码已过期/,
     'a cancelled scene scanned again: expired, nothing revived');
is(poll('login', $qx), '{"status":"cancelled"}', 'still cancelled');

# --- two WeChats scan one login: neither confirms it ---------------------------

{
    my $q = issue('login');
    my ($first) = scan($q->{scene}, 'oLogin') =~ m{\?(\S+)};
    like(scan($q->{scene}, 'oObserver'), qr/二维码已过期/,
         'a second WeChat scanning a login that waits: expired');
    is(poll('login', $q), '{"status":"expired"}', 'the scene is void');
    $res = http_req('POST', $ng->url('/login/confirm'),
                    body => "$first&action=confirm");
    is($res->{status}, 410, 'the first scanner\'s confirm finds nothing');
}

# --- an unbound follower confirms: the register link follows ------------------

my $qn = issue('login');
$reply = scan($qn->{scene}, 'oNewcomer');
($link) = $reply =~ m{\?(\S+)};
$res = http_req('POST', $ng->url('/login/confirm'), body => "$link&action=confirm");
my ($register) = $res->{content} =~ m{href="https://example\.com/register\?([^"]+)"};
ok($register, 'an unbound follower gets the signed register link');
$register =~ s/&amp;/&/g if $register;
run_case($ng, { name => 'that register link verifies', status => 200,
                path => "/register?" . ($register // '') });
$m = metrics();
run_case($ng, { name => 'that register link used again', status => 403,
                path => "/register?" . ($register // ''),
                log => [qr/refused: used before/] });
added($m, 'a link used again',
      'wechat_link_refusals_total{reason="used"}' => 1);
is($json->decode(poll('login', $qn))->{status}, 'unbound', 'poll: unbound');

# --- long polls: a status that waits for the user's say is waited through -----

{
    my $q = issue('login');
    my $sse = poll_start($ng, '/login/wait', $q, Accept => 'text/event-stream');
    poll_read($sse, 0.3);
    like($sse->{body}, qr/^data: \{"status":"pending"\}\n\n\z/,
         'the event stream starts pending');
    $reply = scan($q->{scene}, 'oLogin');
    ($link) = $reply =~ m{\?(\S+)};
    poll_read($sse, 0.5);
    like($sse->{body}, qr/data: \{"status":"confirming"\}\n\n\z/,
         'then confirming, and it goes on');
    ok(!$sse->{eof}, 'the stream waits for the confirm');

    my $plain = poll_start($ng, '/login/wait', { %$q, token => "$q->{token}&seen=confirming" });
    poll_read($plain, 0.5);
    ok(!$plain->{eof}, 'a poll that saw confirming waits too');

    http_req('POST', $ng->url('/login/confirm'), body => "$link&action=confirm");
    poll_read($sse, 2);
    like($sse->{body}, qr/data: \{"status":"confirmed","code":"[0-9a-f]{32}"\}\n\n\z/,
         'the confirm ends the stream with the code');
    poll_read($plain, 2);
    like($plain->{body}, qr/^\{"status":"confirmed","code":"[0-9a-f]{32}"\}$/,
         'and wakes the waiting poll');
    cmp_ok($plain->{elapsed}, '<', 2.5, 'at once, not at the timeout');

    my $q2 = issue('login');
    scan($q2->{scene}, 'oLogin');
    my $idle = poll_start($ng, '/login/wait', { %$q2, token => "$q2->{token}&seen=confirming" });
    poll_read($idle, 5);
    is($idle->{body}, '{"status":"confirming"}',
       'at the timeout: the status as the page knows it');
}

# --- the confirm page escapes what the browser sent ---------------------------

my $qh = issue('login', headers => { 'User-Agent' => '<script>alert(1)</script>"' });
$reply = scan($qh->{scene}, 'oLogin');
($link) = $reply =~ m{\?(\S+)};
$res = http_req('GET', $ng->url("/login/confirm?$link"));
unlike($res->{content}, qr/<script>/, 'a hostile user agent is escaped');
like($res->{content}, qr/&lt;script&gt;alert\(1\)&lt;\/script&gt;&quot;/,
     'and shown as text');

$ng->check_log('consent flows end');

done_testing;
