# An adversarial review of OAuth web authorization (网页授权), kept as
# regression tests: off-site and header-injecting return paths, two
# callbacks racing with one code, forged and truncated sessions, hostile
# nicknames and avatars, broken or huge sns answers (the fake's "raw"
# injection), WeChat's errors with one log line each, Redis down at the
# callback, method-1 links replayed by another user, and unionid lookups
# with attacker-chosen values.  Sessions are sealed here with Digest::SHA.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Encode ();
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use Test::More;
use WxOAuth;
use WxTest;

plan skip_all => 'node not installed'
    if system('command -v node >/dev/null') != 0;

my ($appid, $secret) = ('wxattackapp', 'attackSecret');
my $key = 'K' x 40;
my $redis = start_redis();
my $app = start_upstream(reply => 'site-page');
my $fake = start_fake_wechat(appid => $appid, secret => $secret,
                             token => 'attackToken',
                             open_platform => 'open-platform-2');
my $port = free_port();
my $origin = "http://127.0.0.1:$port";

my $ng = start_nginx(port => $port, http => <<"EOF");
    wechat_redis 127.0.0.1:$redis->{port};

    server {
        listen 127.0.0.1:PORT;

        wechat_appid $appid;
        wechat_secret $secret;
        wechat_api_pass /wechat-api-upstream;
        wechat_api_timeout 3s;
        wechat_oauth_secret $key;
        wechat_oauth_redirect_uri $origin/oauth/callback;
        wechat_oauth_authorize_url $fake->{url}/connect/oauth2/authorize;

        location /wechat-api-upstream/ {
            internal;
            proxy_pass $fake->{url}/;
        }

        location = /oauth/callback {
            wechat_oauth_callback;
        }

        location / {
            wechat_oauth base;
            proxy_pass http://127.0.0.1:$app->{port};
            proxy_set_header X-Openid \$wechat_openid;
            proxy_set_header X-User \$wechat_user;
        }

        location /u/ {
            wechat_oauth userinfo;
            proxy_pass http://127.0.0.1:$app->{port};
            proxy_set_header X-Openid \$wechat_openid;
            proxy_set_header X-Nick \$wechat_nickname;
            proxy_set_header X-Avatar \$wechat_avatar;
        }

        location = /binding {
            wechat_binding;
        }

        location /m1/ {
            wechat_qrcode_oauth on;
            wechat_qrcode_confirm off;

            location = /m1/bind {
                wechat_scene_user \$http_x_site_user;
                wechat_qrcode bind;
            }
        }

        location = /poll {
            wechat_poll_timeout 0;
            wechat_poll;
        }
    }
EOF

my $P = "wx:{$appid}:";
my $UA = 'Mozilla/5.0 (iPhone) AppleWebKit MicroMessenger/8.0.47 NetType/WIFI';
my $http = oauth_site(ng => $ng, appid => $appid, key => $key, app => $app,
                      ua => $UA, timeout => 15);
my $json = JSON::PP->new->utf8->canonical;

sub exchanges {
    return ($fake->counts->{'/sns/oauth2/access_token'} // {})->{calls} // 0;
}

# The "wechat oauth" lines an action wrote to the error log.
sub oauth_lines {
    my ($log) = @_;
    return grep { /wechat oauth/ } split /\n/, $log;
}

# --- the way back: never off-site, never a header of its own ---------------

for my $c (['//evil.example/x', 'a protocol-relative path'],
           ['/\\evil.example/x', 'a backslash after the slash'],
           ['/%2f%2fevil.example', 'encoded slashes'],
           ['/%5c%5cevil.example', 'encoded backslashes'],
           ['/x%0d%0aSet-Cookie:%20injected=1', 'an encoded CRLF'],
           ['/' . ('a' x 3000), 'a 3000-byte path'])
{
    my ($path, $name) = @$c;
    my $res = sign_in($path, 'oWalker');
    is($res->{status}, 302, "$name: signed in") or diag($res->{content});
    my $loc = $res->{headers}{location} // '';
    like($loc, qr{^(?:\Q$origin\E)?/(?![/\\])}, "$name: back on this site")
        or diag($loc);
    unlike($loc, qr/[\x00-\x20\x7f]/, "$name: no control byte or space");
    ok(!cookie_of($res, 'injected'), "$name: no injected cookie");
    my ($back) = $loc =~ m{^(?:\Q$origin\E)?(/.*)$};
    ok(defined $back && ($back eq $path || $back eq '/'),
       "$name: the path asked for, or the root") or diag($loc);
    $ng->check_log($name);
}

is(get($ng->url('/x%00y'))->{status}, 400,
   'an encoded NUL: nginx refuses the request itself');
$ng->check_log('encoded NUL');

# --- one code, two callbacks at once -------------------------------------

# Raw requests sent before any answer is read: the module sees them race.
sub gets_at_once {
    my (@reqs) = @_;
    my @socks = map {
        my ($url, $browser) = @$_;
        (my $path = $url) =~ s{^\Q$origin\E}{};
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp')
            or die "connect: $!";
        print $s "GET $path HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                 . "User-Agent: $UA\r\n"
                 . "Cookie: wechat_oauth_state=$browser\r\n\r\n";
        $s;
    } @reqs;
    my (%buf, $sel) = ();
    $sel = IO::Select->new(@socks);
    my $deadline = time + 20;
    while ($sel->count && time < $deadline) {
        for my $s ($sel->can_read(1)) {
            my $n = sysread($s, my $chunk, 65536);
            if ($n) { $buf{$s} .= $chunk; next }
            $sel->remove($s);
            close $s;
        }
    }
    return map { $buf{$_} // '' } @socks;
}

{
    my $before = exchanges();
    my $a = start_auth('/race');
    my $cb = authorize_as($a, 'oRacer');
    my @answers = gets_at_once(([$cb, $a->{browser}]) x 4);
    my @status = map { m{^HTTP/1\.\d (\d+)} ? $1 : 0 } @answers;
    is(scalar(grep { $_ == 302 } @status), 1,
       'one state and code in four racing callbacks: one sign-in')
        or diag("@status");
    is(scalar(grep { $_ == 403 } @status), 3, 'the three others: 403');
    is(scalar(grep { /Set-Cookie: wechat_session=/ } @answers), 1,
       'one session cookie');
    is(exchanges() - $before, 1, 'the code exchanged once');
    $ng->check_log('racing callbacks', log => [qr/state unknown/]);

    # the same code behind two states of one browser (two tabs)
    $before = exchanges();
    my $t1 = start_auth('/tab1');
    my $t2 = get($ng->url('/tab2'),
                 cookies => { wechat_oauth_state => $t1->{browser} });
    my $state2 = query_of($t2->{headers}{location})->{state};
    $cb = authorize_as($t1, 'oTabs');
    (my $other = $cb) =~ s/state=\w+/state=$state2/;
    @answers = gets_at_once([$cb, $t1->{browser}], [$other, $t1->{browser}]);
    @status = sort map { m{^HTTP/1\.\d (\d+)} ? $1 : 0 } @answers;
    is("@status", '302 403', 'one code behind two states at once: one wins');
    is(exchanges() - $before, 1, 'and the code is exchanged once');
    $ng->check_log('one code, two states', log => [qr/code used before/]);
}

# --- a state or a callback URL in another browser's hands ----------------

{
    my $victim = start_auth('/mine');
    my $attacker = start_auth('/theirs');
    my $cb = authorize_as($victim, 'oVic');
    (my $bogus = $cb) =~ s/code=\w+/code=attackerscode/;
    my $res = callback($bogus, $attacker->{browser});
    is($res->{status}, 403, 'the victim\'s state, a made-up code, another '
       . 'browser: 403');
    $res = callback($cb, $attacker->{browser});
    is($res->{status}, 403, 'the victim\'s whole callback URL, another browser: 403');
    $ng->check_log('state in other hands',
                   log => [qr/the state belongs to another browser/]);
    $res = callback($cb, $victim->{browser});
    is($res->{status}, 302, 'the victim still signs in: neither try spent '
       . 'the state or the code') or diag($res->{content});
    is($res->{headers}{location} =~ s{^\Q$origin\E}{}r, '/mine',
       'back where the victim started');
    $ng->check_log('the victim signs in');
}

# --- sessions: forged, cut, moved ----------------------------------------

{
    my $good = seal(openid => 'oSeal', expires => time + 600);
    my $res = get($ng->url('/s'), cookies => { wechat_session => $good });
    is($res->{status}, 200, 'a session sealed with the key: 200');
    $ng->check_log('sealed here');

    my %bad = (
        'cut short by one byte'   => substr($good, 0, -1),
        'cut before the MAC'      => substr($good, 0, index($good, '.', 3)),
        'its MAC in capitals'     => do { (my $v = $good) =~ s/\.([0-9a-f]+)$/'.' . uc $1/e; $v },
        'another key'             => seal(openid => 'oSeal', expires => time + 600,
                                          key => 'X' x 40),
        'another appid'           => seal(openid => 'oSeal', expires => time + 600,
                                          appid => 'wxother'),
        'expired a second ago'    => seal(openid => 'oSeal', expires => time - 1),
        'expires with a leading 0' => seal(openid => 'oSeal',
                                           expires => '0' . (time + 600)),
        'a negative expiry'       => seal(openid => 'oSeal', expires => '-1'),
        'a CR in the nickname'    => seal(openid => 'oSeal', expires => time + 600,
                                          nickname => "x\r\nX-Evil: 1"),
        'a 3 kB cookie'           => $good . ('0' x 3000),
        'the MAC alone'           => substr($good, rindex($good, '.') + 1),
    );

    for my $name (sort keys %bad) {
        my $res = get($ng->url('/s'), cookies => { wechat_session => $bad{$name} });
        is($res->{status}, 302, "session $name: back to WeChat");
        unlike($res->{headers}{location} // '', qr/^\/s/, "$name: not let in");
        $ng->check_log("session $name");
    }

    $res = get($ng->url('/u/s'), cookies => { wechat_session => $good });
    is($res->{status}, 302, 'a base session at a userinfo location: 302');
    is(query_of($res->{headers}{location})->{scope}, 'snsapi_userinfo',
       'it asks for userinfo');
    $ng->check_log('base for userinfo');
}

# --- userinfo: hostile nickname and avatar -------------------------------

{
    $fake->user(openid => 'oEve', nickname => "Eve\r\nX-Injected: 1\x1b<script>\x7f",
                headimgurl => 'https://thirdwx.qlogo.cn/mmopen/eve/132');
    my $a = start_auth('/u/page');
    (my $url = $a->{location}) =~ s/#.*//;
    my $res = $http->get("$url&openid=oEve&action=allow");
    (my $cb = $res->{headers}{location} // '') =~ s{^\Q$origin\E}{};
    $res = callback($cb, $a->{browser});
    is($res->{status}, 302, 'a hostile nickname: signed in')
        or diag($res->{content});
    my $session = cookie_of($res, 'wechat_session');
    $res = get($ng->url('/u/page'), cookies => { wechat_session => $session });
    is($res->{status}, 200, 'the userinfo page');
    my $nick = header_of(last_request(), 'X-Nick');
    is($nick, 'Eve??X-Injected: 1?<script>?',
       'the nickname\'s control bytes are "?" in $wechat_nickname');
    is(header_of(last_request(), 'X-Injected'), undef, 'no header injected upstream');
    $ng->check_log('hostile nickname');

    $fake->user(openid => 'oMal', nickname => 'Mal',
                headimgurl => 'javascript:alert(1)');
    $a = start_auth('/u/page');
    ($url = $a->{location}) =~ s/#.*//;
    $res = $http->get("$url&openid=oMal&action=allow");
    ($cb = $res->{headers}{location} // '') =~ s{^\Q$origin\E}{};
    $res = callback($cb, $a->{browser});
    is($res->{status}, 502, 'a javascript: avatar: 502');
    ok(!cookie_of($res, 'wechat_session'), 'no session with it');
    $ng->check_log('javascript avatar', errors_ok => 1,
                   log => [qr/sns\/userinfo answered HTTP 200/]);

    # WeChat's avatars are short, but one within the parser's cap (1024)
    # must not cost the user the sign-in: the cookie is capped at 2048
    my $long = 'https://thirdwx.qlogo.cn/mmopen/' . ('A' x 950) . '/132';
    $fake->user(openid => 'oLong', nickname => '长' x 42, headimgurl => $long);
    $a = start_auth('/u/page');
    ($url = $a->{location}) =~ s/#.*//;
    $res = $http->get("$url&openid=oLong&action=allow");
    ($cb = $res->{headers}{location} // '') =~ s{^\Q$origin\E}{};
    $res = callback($cb, $a->{browser});
    is($res->{status}, 302, 'a 1000-byte avatar: still signed in')
        or diag($res->{content});
    $session = cookie_of($res, 'wechat_session');
    ok($session && length($session) <= 2048, 'a session of at most 2048 bytes');
    $res = get($ng->url('/u/page'), cookies => { wechat_session => $session // '' });
    is($res->{status}, 200, 'and it lets the user in');
    is(header_of(last_request(), 'X-Nick'), Encode::encode_utf8('长' x 42),
       'the nickname kept');
    $ng->check_log('long avatar');
}

# --- broken, huge and hostile answers from WeChat -------------------------

# A sign-in whose sns/oauth2/access_token answers body: status and log.
sub broken_answer {
    my ($name, $raw, $status, %opt) = @_;
    my $a = start_auth('/page');
    my $cb = authorize_as($a, 'oBroken');
    $fake->fail(endpoint => $opt{endpoint} // '/sns/oauth2/access_token',
                raw => $raw, http_status => $opt{http_status});
    my $res = callback($cb, $a->{browser});
    is($res->{status}, $status, "$name: $status") or diag($res->{content});
    ok(!cookie_of($res, 'wechat_session'), "$name: no session");
    $ng->check_log($name, errors_ok => 1, log => $opt{log});
    return $res;
}

broken_answer('not JSON', '<html>busy</html>', 502);
broken_answer('JSON cut short', '{"access_token":"t","openid":"o', 502);
broken_answer('an openid with a space', '{"access_token":"t","openid":"o x"}', 502);
broken_answer('an openid with a CRLF',
              '{"access_token":"t","openid":"o\r\nX-A: 1"}', 502);
broken_answer('an openid of 65 bytes',
              '{"access_token":"t","openid":"' . ('o' x 65) . '"}', 502);
broken_answer('a unionid with a colon',
              '{"access_token":"t","openid":"oB","unionid":"u:x"}', 502);
broken_answer('a token with a control byte',
              '{"access_token":"t\u0001","openid":"oB"}', 502);
broken_answer('an array', '[1,2,3]', 502);

# Over subrequest_output_buffer_size (4k or 8k by default here), chunked
# or with a Content-Length: the OAuth error page with a 502, and one error
# line, the API layer's, naming the call and the limit; never a closed
# connection.  Asked once, raw: HTTP::Tiny would quietly ask a closed
# connection's GET again.
sub too_big {
    my ($name, $path, $endpoint, $raw, $sized) = @_;
    my $a = start_auth($path);
    my $cb = authorize_as($a, 'oBig');
    $ng->new_log;
    $fake->fail(endpoint => $endpoint, raw => $raw,
                content_length => $sized ? JSON::PP::true : JSON::PP::false);
    my ($answer) = gets_at_once([$cb, $a->{browser}]);
    my ($status) = ($answer // '') =~ m{^HTTP/1\.\d (\d+)};
    is($status, 502, "$name: 502, not a closed connection")
        or diag(substr($answer // '', 0, 200));
    like($answer // '', qr/WeChat's answer was not usable/,
         "$name: the OAuth page says so");
    unlike($answer // '', qr/^Set-Cookie: wechat_session=/mi,
           "$name: no session");
    my @errors = grep { /\[(?:error|crit|alert)\]/ } split /\n/, $ng->new_log;
    is(scalar @errors, 1, "$name: one error line") or diag(join "\n", @errors);
    my $limit = qr{subrequest_output_buffer_size \d+ of "/wechat-api-upstream/"};
    like($errors[0] // '', qr{wechat api: \Q$endpoint\E answered more than $limit},
         "$name: it names the call and the limit");
    unlike($errors[0] // '', qr/code=[^*&" ]/, "$name: the code masked in it");
}

for my $size (10_000, 1 << 20) {
    for my $sized (0, 1) {
        my $how = $sized ? 'with a Content-Length' : 'chunked';
        too_big("a $size-byte token answer, $how", '/page',
                '/sns/oauth2/access_token',
                '{"access_token":"t","openid":"oBig","x":"'
                . ('x' x $size) . '"}', $sized);
    }
}

{
    # the token answer is fine; userinfo's is too big
    $fake->fail(endpoint => '/sns/userinfo',
                raw => '{"openid":"oBig","nickname":"'
                       . ('n' x 20_000) . '"}');
    my $a = start_auth('/u/page');
    (my $url = $a->{location}) =~ s/#.*//;
    my $res = $http->get("$url&openid=oBig&action=allow");
    (my $cb = $res->{headers}{location} // '') =~ s{^\Q$origin\E}{};
    $ng->new_log;
    my ($answer) = gets_at_once([$cb, $a->{browser}]);
    my ($status) = ($answer // '') =~ m{^HTTP/1\.\d (\d+)};
    is($status, 502, 'a 20 kB userinfo answer: 502') or diag($answer);
    like($ng->new_log, qr{wechat api: /sns/userinfo answered more than },
         'a 20 kB userinfo answer: the line names sns/userinfo');
}

{
    my $res = sign_in('/page', 'oAfterBig');
    is($res->{status}, 302, 'a sign-in after the big answers works')
        or diag($res->{content});
    $ng->check_log('after the big answers');
}

# --- WeChat's errors: a clear status and one log line each ----------------

for my $c ([40029, 403, qr/invalid or expired/],
           [40163, 403, qr/used/],
           [40001, 502, qr/cannot reach WeChat/],
           [-1, 503, qr/busy/])
{
    my ($errcode, $status, $page) = @$c;
    my $a = start_auth('/page');
    my $cb = authorize_as($a, 'oErr');
    $ng->new_log;
    $fake->fail(endpoint => '/sns/oauth2/access_token', errcode => $errcode,
                errmsg => "bad\r\n[alert] forged line\x1b");
    my $res = callback($cb, $a->{browser});
    is($res->{status}, $status, "errcode $errcode: $status");
    like($res->{content}, $page, "errcode $errcode: the page says what to do");
    my @lines = oauth_lines($ng->new_log);
    is(scalar @lines, 1, "errcode $errcode: one log line") or diag(join "\n", @lines);
    like($lines[0] // '', qr/errcode \Q$errcode\E/, "errcode $errcode: it names the errcode");
    unlike(join("\n", @lines), qr/^\S*\s*\[alert\] forged/m,
           "errcode $errcode: WeChat's errmsg forges no log line");
}

{
    my $a = start_auth('/page');
    my $cb = authorize_as($a, 'oErr');
    $ng->new_log;
    $fake->fail(endpoint => '/sns/oauth2/access_token', errcode => -1,
                http_status => 500);
    my $res = callback($cb, $a->{browser});
    is($res->{status}, 502, 'HTTP 500 from WeChat: 502');
    my @lines = oauth_lines($ng->new_log);
    is(scalar @lines, 1, 'HTTP 500 from WeChat: one log line')
        or diag(join "\n", @lines);
}

# --- Redis down -----------------------------------------------------------

{
    my $a = start_auth('/page');
    my $cb = authorize_as($a, 'oDown');
    my $session = seal(openid => 'oDown', expires => time + 600);
    stop_redis($redis);
    my $t0 = time;
    my $res = callback($cb, $a->{browser});
    is($res->{status}, 503, 'Redis down at the callback: 503');
    ok(!cookie_of($res, 'wechat_session'), 'no session');
    $res = get($ng->url('/page'));
    is($res->{status}, 503, 'Redis down, no session: 503, no state handed out');
    ok(!cookie_of($res, 'wechat_oauth_state'), 'and no state cookie');
    $res = get($ng->url('/page'), cookies => { wechat_session => $session });
    is($res->{status}, 503, 'a session when $wechat_user needs Redis: 503');
    ok(time - $t0 < 10, 'all answered at once');
    $ng->check_log('Redis down', errors_ok => 1);
    restart_redis($redis);
    wait_until('the module reconnects', sub {
        get($ng->url('/page'))->{status} == 302 });

    # hung, not down: the access phase waits wechat_redis_timeout, no more
    kill 'STOP', $redis->{pid};
    $t0 = time;
    $res = get($ng->url('/page'), cookies => { wechat_session => $session });
    my $took = time - $t0;
    kill 'CONT', $redis->{pid};
    is($res->{status}, 503, 'Redis hung, $wechat_user to look up: 503');
    ok($took <= 4, "answered within the Redis timeout ($took s)");
    $ng->check_log('Redis hung', errors_ok => 1);
    wait_until('the module reconnects', sub {
        get($ng->url('/page'))->{status} == 302 });
    $res = sign_in('/page', 'oDown');
    is($res->{status}, 302, 'Redis back: signed in again')
        or diag($res->{content});
    $ng->check_log('Redis back', errors_ok => 1);
}

# --- method 1: another user's link, a replayed callback -------------------

{
    my $res = http_req('POST', $ng->url('/m1/bind'),
                       headers => { 'X-Site-User' => 'ivy' });
    my $q = $json->decode($res->{content});
    my $cb = authorize_as({ location => $q->{url} }, 'oIvy');
    $res = callback($cb, undef);
    is($res->{status}, 200, 'method 1: ivy\'s phone binds') or diag($res->{content});
    ok(!cookie_of($res, 'wechat_session'), 'a scene\'s callback gives no session');
    is(redis_cmd($redis, 'HGET', "${P}users", 'ivy'), 'oIvy', 'ivy is oIvy');

    $res = callback($cb, undef);
    is($res->{status}, 403, 'the same callback replayed: 403');
    my $mallory = authorize_as({ location => $q->{url} }, 'oMallory');
    $res = callback($mallory, undef);
    isnt($res->{status}, 302, 'the link opened by another user: no redirect');
    is(redis_cmd($redis, 'HGET', "${P}users", 'ivy'), 'oIvy',
       'ivy stays bound to her openid');
    is(redis_cmd($redis, 'HGET', "${P}openids", 'oMallory'), undef,
       'mallory is bound to nobody');
    $ng->check_log('method 1 replays', errors_ok => 1);

    # a scene's state in a plain sign-in: the scene path, never a session
    my $a = start_auth('/page');
    my $code = query_of(authorize_as($a, 'oPlain'))->{code};
    (my $hex = $q->{scene}) =~ s/^wxs_//;
    $res = callback("/oauth/callback?code=$code&state=s$hex", $a->{browser});
    ok(!cookie_of($res, 'wechat_session'),
       'a plain code with a scene\'s state: no session');
    $ng->check_log('scene state, plain code', errors_ok => 1);
}

# --- where the code goes after the callback ------------------------------

# The callback answers itself and never passes the request on: the way back
# is the path asked for before WeChat's code existed, so the app never sees
# code= or state=.  What carries the code is the callback's own request
# line: in nginx's log lines it is masked, and a link on a callback's page
# (method 1's reply) sends no Referer with it.
{
    my $a = start_auth('/page?x=1');
    my $cb = authorize_as($a, 'oCoder');
    my $code = query_of($cb)->{code};
    ok($code, 'the callback carries a code');
    my $res = callback($cb, $a->{browser});
    is($res->{status}, 302, 'signed in');
    like($res->{headers}{location} // '', qr{^(?:\Q$origin\E)?/page\?x=1$},
         'back to the path asked for, without code or state');
    is($res->{headers}{'referrer-policy'}, 'no-referrer',
       'the callback\'s answer: Referrer-Policy no-referrer');
    $res = get($ng->url('/page?x=1'),
               cookies => { wechat_session => cookie_of($res, 'wechat_session') });
    is($res->{status}, 200, 'the app answers');
    my @seen = $app->{requests}->();
    my ($line) = ($seen[-1] // '') =~ /^([^\r\n]*)/;
    is($line, 'GET /page?x=1 HTTP/1.0', 'the app\'s request line has no code');
    unlike(join("\n", @seen), qr/\Q$code\E/, 'the code reached the app nowhere');

    # a refusal after the code came: its log line masks it
    $a = start_auth('/page');
    $cb = authorize_as($a, 'oCoder');
    $code = query_of($cb)->{code};
    $ng->new_log;
    $res = callback($cb, undef);
    is($res->{status}, 403, 'a callback without its state cookie: 403');
    is($res->{headers}{'referrer-policy'}, 'no-referrer', 'no Referer either');
    my $log = $ng->new_log;
    like($log, qr{request: "GET /oauth/callback\?code=\*+&state=},
         'the log line masks the code');
    unlike($log, qr/\Q$code\E/, 'the code is in no log line');

    # method 1: the page's links send no Referer
    $res = http_req('POST', $ng->url('/m1/bind'),
                    headers => { 'X-Site-User' => 'rita' });
    my $q = $json->decode($res->{content});
    $cb = authorize_as({ location => $q->{url} }, 'oRita');
    $res = callback($cb, undef);
    is($res->{status}, 200, 'method 1: the phone\'s page');
    is($res->{headers}{'referrer-policy'}, 'no-referrer',
       'method 1\'s page: Referrer-Policy no-referrer');
    $ng->check_log('the code after the callback', errors_ok => 1);
}

# --- unionid lookups with values an attacker picks ------------------------

{
    my $res = sign_in('/page', 'oUni');
    is($res->{status}, 302, 'oUni signs in (with a unionid)');
    my $uid = redis_cmd($redis, 'HGET', "${P}unionids", 'oUni');
    ok($uid, 'its unionid is stored');
    $res = http_req('GET', $ng->url('/binding'), query => { unionid => $uid });
    is($res->{status}, 200, 'looked up by its unionid');
    is($json->decode($res->{content})->{openid}, 'oUni', 'the openid');
    $res = http_req('GET', $ng->url('/binding'), query => { unionid => 'oUni' });
    is($res->{status}, 404, 'an openid passed as a unionid: 404');
    for my $v ("u:$uid", "$uid\r\n", '*', ('u' x 65), '') {
        $res = http_req('GET', $ng->url('/binding'), query => { unionid => $v });
        ok($res->{status} == 400 || $res->{status} == 404,
           "unionid \"" . ($v =~ s/[\r\n]/?/gr) . "\": refused ($res->{status})");
    }
    $ng->check_log('unionid lookups');

    # WeChat names another unionid for the openid: the old one leads nowhere
    my $a = start_auth('/page');
    my $cb = authorize_as($a, 'oUni');
    $fake->fail(endpoint => '/sns/oauth2/access_token',
                raw => '{"access_token":"t","openid":"oUni",'
                       . '"unionid":"oUnewUnion"}');
    $res = callback($cb, $a->{browser});
    is($res->{status}, 302, 'oUni signs in with a new unionid');
    $res = http_req('GET', $ng->url('/binding'), query => { unionid => 'oUnewUnion' });
    is($res->{status}, 200, 'the new unionid leads to oUni');
    $res = http_req('GET', $ng->url('/binding'), query => { unionid => $uid });
    is($res->{status}, 404, 'the old unionid no longer does');
    $ng->check_log('a changed unionid');
}

done_testing();
