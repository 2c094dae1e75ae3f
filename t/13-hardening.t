# The callback as an attacker tries it.  Each case needs what anyone who
# reads an access log has: a signed query string from the last few minutes.
# Header injection through the fields, reuse of a query for another push,
# missing fields, forged log lines, relayed safe-mode pushes, old GET
# checks, and pushes while Redis is away.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP;
use Test::More;
use WxCrypt;
use WxTest;

my $token = 'hardenToken5';
my $appid = 'wxhardened';
my $aes_key = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';
my $redis = start_redis();
my $app = start_upstream(reply => 'app-answer');

my $ng = start_nginx(http => <<"EOF");
    wechat_redis 127.0.0.1:$redis->{port};
    wechat_qrcode_confirm off;     # scans resolve at once; t/21 confirms
    wechat_redis_timeout 500ms;

    server {
        listen 127.0.0.1:PORT;

        wechat_appid $appid;
        wechat_callback_token $token;

        location = /wx {
            wechat_unbind_on_unsubscribe on;
            wechat_callback;
            wechat_pass \@app;
        }

        location = /wx-safe {
            wechat_mode safe;
            wechat_aes_key $aes_key;
            wechat_callback;
            wechat_pass \@app;
        }

        location = /qrcode {
            wechat_scene_user \$arg_user;
            wechat_qrcode bind;
        }

        location = /poll {
            add_header X-Scene \$wechat_scene;
            wechat_poll_timeout 0;      # pending is asserted at once
            wechat_poll;
        }

        location ~ "^/qr-path/([\\s\\S]*)\$" {
            wechat_poll_cookie wechat_poll path=/;  # a regex has no directory
            wechat_scene_user \$1;
            wechat_qrcode bind;
        }

        location = /binding {
            wechat_binding;
        }

        location \@app {
            proxy_pass http://127.0.0.1:$app->{port};
            proxy_set_header X-WeChat-OpenID \$wechat_openid;
            proxy_set_header X-WeChat-Msg-Type \$wechat_msg_type;
            proxy_set_header X-WeChat-Event \$wechat_event;
            proxy_set_header X-WeChat-Event-Key \$wechat_event_key;
            proxy_set_header X-WeChat-Scene \$wechat_scene;
            proxy_set_header X-WeChat-User \$wechat_user;
            proxy_set_header X-WeChat-Resolution \$wechat_resolution;
            proxy_set_header X-WeChat-Retry \$wechat_retry;
        }
    }
EOF

my $json = JSON::PP->new->utf8;
my $P = "wx:{$appid}:";

sub issue {
    my ($user) = @_;
    my $res = http_req('POST', $ng->url("/qrcode?user=$user"));
    is($res->{status}, 200, "scene for $user");
    return $json->decode($res->{content});
}

sub poll_status {
    my ($q) = @_;
    my $res = http_req('GET', $ng->url('/poll'),
                       query => { scene => $q->{scene}, token => $q->{token} });
    return $json->decode($res->{content})->{status};
}

sub requests { scalar(my @r = $app->{requests}->()) }
sub last_request { my @r = $app->{requests}->(); $r[-1] }

sub push_xml {
    my (%f) = @_;
    my $xml = '<xml>';
    for my $name (qw(ToUserName FromUserName CreateTime MsgType Event
                     EventKey Ticket Content MsgId))
    {
        next unless defined $f{$name};
        $xml .= "<$name>$f{$name}</$name>";
    }
    return "$xml</xml>";
}

sub scan_xml {
    my ($scene, $openid) = @_;
    return event_xml(from => $openid, event => 'SCAN', key => $scene);
}

# --- 1. no control character reaches a variable, a header or a key ----------

my %good = (ToUserName => 'gh_account', FromUserName => 'oAttacker1',
            CreateTime => time, MsgType => 'event', Event => 'CLICK',
            EventKey => 'MENU_1', Ticket => 'TICKET');

for my $field (qw(ToUserName FromUserName MsgType Event EventKey Ticket)) {
    for my $form ('reference', 'CDATA') {
        # the attacker's field: a value, CR LF, and a header of their own
        my $value = $form eq 'reference'
                  ? 'o1&#13;&#10;X-WeChat-User: admin'
                  : "<![CDATA[o1\r\nX-WeChat-User: admin]]>";
        my $before = requests();
        run_case($ng, { name => "CR LF in $field ($form)", path => '/wx',
                        push => {}, token => $token,
                        body => push_xml(%good, $field => $value),
                        status => 400,
                        log => [qr/\[warn\].*field "$field" is missing or not allowed/] });
        is(requests(), $before, "$field ($form): nothing reached the upstream");
    }
}

run_case($ng, { name => 'a whole second request smuggled in EventKey',
                path => '/wx', push => {}, token => $token,
                body => push_xml(%good, EventKey => 'k&#13;&#10;&#13;&#10;'
                    . 'GET /admin HTTP/1.1&#13;&#10;Host: app&#13;&#10;'),
                status => 400, log => [qr/field "EventKey"/] });

# the same push without the attack is what WeChat sends, and it passes
run_case($ng, { name => 'a clean click passes', path => '/wx', push => {},
                token => $token, body => push_xml(%good), status => 200,
                body_is => 'app-answer' });
like(last_request(), qr/^X-WeChat-Event-Key: MENU_1\r$/m,
     'clean click: its variables reach the upstream');

# --- 2. a query used once cannot carry a scan later ------------------------

for my $first (['a text message', push_xml(%good, MsgType => 'text',
                    Content => 'hi', MsgId => '1001', Event => undef,
                    EventKey => undef, Ticket => undef)],
               ['a menu click', push_xml(%good)],
               ['an unsubscribe', push_xml(%good, Event => 'unsubscribe',
                    EventKey => undef, Ticket => undef)])
{
    my ($what, $body) = @$first;
    my $victim = issue('victim');
    my $q = signed_query($token);

    # WeChat's own push, captured from the access log with its query...
    run_case($ng, { name => "$what, first use", path => '/wx', token => $token,
                    push => { query => $q }, body => $body, status => 200 });

    # ...and the same query carrying the attacker's scan of the victim's scene
    run_case($ng, { name => "the query of $what carries a scan", path => '/wx',
                    token => $token, push => { query => $q },
                    body => scan_xml($victim->{scene}, 'oAttacker1'),
                    status => 403,
                    log => [qr/\[warn\].*replayed query with other content/] });
    is(poll_status($victim), 'pending', "$what: the victim's scene is untouched");
    is(redis_cmd($redis, 'HGET', "${P}openids", "oAttacker1"), undef,
       "$what: the attacker is bound to nobody");
}

{
    my $victim = issue('victim');
    my $q = signed_query($token);
    my $check = http_req('GET', $ng->url('/wx'),
                         query => { %$q, echostr => 'e1' });
    is($check->{content}, 'e1', 'the GET check answers its echostr');

    run_case($ng, { name => 'the query of a GET check carries a scan',
                    path => '/wx', token => $token, push => { query => $q },
                    body => scan_xml($victim->{scene}, 'oAttacker1'),
                    status => 403, log => [qr/replayed query/] });
    is(poll_status($victim), 'pending', 'GET check: the scene is untouched');
}

# --- 3. one query, one push --------------------------------------------------

for my $n (1, 2) {
    my $s = issue("user$n");
    send_push($ng, '/wx', $token, scan_xml($s->{scene}, "oBound$n"));
}
is(redis_cmd($redis, 'HGET', "${P}openids", "oBound2"), 'user2', 'two bindings');

my $q = signed_query($token);
run_case($ng, { name => 'unsubscribe of oBound1', path => '/wx', token => $token,
                push => { query => $q }, status => 200,
                body => push_xml(%good, FromUserName => 'oBound1',
                                 Event => 'unsubscribe', EventKey => undef) });
is(redis_cmd($redis, 'HGET', "${P}openids", "oBound1"), undef, 'oBound1 unbound');

# the attacker replays the query to unbind everyone whose openid they know
my $before = requests();
run_case($ng, { name => 'the same query unsubscribes oBound2', path => '/wx',
                token => $token, push => { query => $q }, status => 403,
                body => push_xml(%good, FromUserName => 'oBound2',
                                 Event => 'unsubscribe', EventKey => undef),
                log => [qr/replayed query/] });
is(redis_cmd($redis, 'HGET', "${P}openids", "oBound2"), 'user2',
   'oBound2 is still bound');
is(requests(), $before, 'the replay never reached the upstream as verified');

# WeChat's retry of a push: the same query, the same body, passed again
my $text = push_xml(%good, MsgType => 'text', Content => 'again',
                    MsgId => '2002', Event => undef, EventKey => undef,
                    Ticket => undef);
$q = signed_query($token);
for my $try (1, 2) {
    run_case($ng, { name => "a text message, try $try", path => '/wx',
                    token => $token, push => { query => $q }, body => $text,
                    status => 200, body_is => 'app-answer' });
}

# --- 4. required fields and message types ----------------------------------

{
    my $s = issue('carol');
    run_case($ng, { name => 'a scan without FromUserName', path => '/wx',
                    token => $token, push => {}, status => 400,
                    body => push_xml(%good, FromUserName => undef,
                                     Event => 'SCAN', EventKey => $s->{scene}),
                    log => [qr/field "FromUserName" is missing/] });
    run_case($ng, { name => 'a push without MsgType', path => '/wx',
                    token => $token, push => {}, status => 400,
                    body => push_xml(%good, MsgType => undef),
                    log => [qr/field "MsgType" is missing/] });
    run_case($ng, { name => 'an openid of another shape', path => '/wx',
                    token => $token, push => {}, status => 400,
                    body => push_xml(%good, FromUserName => 'o1 admin'),
                    log => [qr/field "FromUserName"/] });

    # a text message that carries Event=SCAN is a text message
    run_case($ng, { name => 'a text push carrying Event=SCAN', path => '/wx',
                    token => $token, push => {}, status => 200,
                    body_is => 'app-answer',
                    body => push_xml(%good, MsgType => 'text',
                                     Event => 'SCAN', EventKey => $s->{scene},
                                     Content => 'x', MsgId => '3003') });
    is(poll_status($s), 'pending', 'text with Event=SCAN: not resolved');
    unlike(last_request(), qr/^X-WeChat-Resolution:/m,
           'text with Event=SCAN: passed with no resolution');
}

run_case($ng, { name => 'a device_event passes with its variables',
                path => '/wx', token => $token, push => {}, status => 200,
                body_is => 'app-answer',
                body => push_xml(%good, MsgType => 'device_event',
                                 Event => 'bind', EventKey => 'dev-1') });
my $req = last_request();
like($req, qr/^X-WeChat-Msg-Type: device_event\r$/m, 'device_event: msg type');
like($req, qr/^X-WeChat-Event: bind\r$/m, 'device_event: its event');

# --- 5. nothing untrusted forges a log line --------------------------------

{
    my $forged = "1\n2026/01/01 00:00:00 [emerg] 1#1: forged";
    my $res = http_req('GET', $ng->url('/wx'),
        query => { %{ signed_query($token) }, timestamp => $forged,
                   echostr => 'x' });
    is($res->{status}, 403, 'a timestamp with a line break is refused');
    my $log = $ng->new_log;
    unlike($log, qr/^2026\/01\/01 00:00:00 \[emerg\]/m, 'no forged log line');
}

# --- 6. the GET check: the timestamp window, and single use -----------------

run_case($ng, { name => 'an old GET check', path => '/wx',
                query => { %{ signed_query($token, timestamp => time - 3600) },
                           echostr => 'old' },
                status => 403, log => [qr/stale timestamp/] });

$q = signed_query($token);
run_case($ng, { name => 'GET check', path => '/wx',
                query => { %$q, echostr => 'first' }, status => 200,
                body_is => 'first' });
run_case($ng, { name => 'GET check retried', path => '/wx',
                query => { %$q, echostr => 'first' }, status => 200,
                body_is => 'first' });
run_case($ng, { name => 'GET check query reflecting another echostr',
                path => '/wx', query => { %$q, echostr => '<script>' },
                status => 403, log => [qr/replayed query/] });

# --- 7. safe mode: the record digests Encrypt, which msg_signature signs ----

{
    my $s = issue('dave');
    my $inner = scan_xml($s->{scene}, 'oSafeUser1');
    my $encrypt = wx_encrypt($aes_key, $appid, $inner);
    my $sq = signed_query($token);
    $sq->{encrypt_type} = 'aes';
    $sq->{msg_signature} = msg_signature($token, $sq->{timestamp},
                                         $sq->{nonce}, $encrypt);
    my $wechat = "<xml><ToUserName><![CDATA[gh_account]]></ToUserName>"
               . "<Encrypt><![CDATA[$encrypt]]></Encrypt></xml>";

    # a relay delivers a copy first, with an envelope of its own
    my $relayed = "<xml><ToUserName><![CDATA[gh_other]]></ToUserName>"
                . "<Encrypt><![CDATA[$encrypt]]></Encrypt></xml>";
    my $first = send_push($ng, '/wx-safe', $token, $relayed, query => $sq);
    is($first->{status}, 200, 'safe mode: the relayed copy is answered');

    # WeChat's own delivery is a retry of the same signed content
    my $res = send_push($ng, '/wx-safe', $token, $wechat, query => $sq);
    is($res->{status}, 200, "safe mode: WeChat's own delivery is answered");

    # encrypted afresh, the same reply
    my @replies = map {
        my ($enc) = $_->{content} =~ /<Encrypt><!\[CDATA\[(.*?)\]\]>/;
        (wx_decrypt($aes_key, $enc))[0];
    } $first, $res;
    like($replies[0], qr/绑定成功/, 'safe mode: the reply is the binding');
    is($replies[1], $replies[0], 'safe mode: WeChat gets the first answer');

    # but another Encrypt under the same query is a replay
    my $other = wx_encrypt($aes_key, $appid,
                           scan_xml(issue('erin')->{scene}, 'oSafeUser2'));
    $sq->{msg_signature} = msg_signature($token, $sq->{timestamp},
                                         $sq->{nonce}, $other);
    run_case($ng, { name => 'safe mode: the query with another Encrypt',
                    path => '/wx-safe', token => $token,
                    push => { query => $sq },
                    body => "<xml><Encrypt><![CDATA[$other]]></Encrypt></xml>",
                    status => 403, log => [qr/replayed query/] });
}

# --- 8. what a second review found -------------------------------------------

# A captured push replayed as it is: WeChat tries three times in all, so a
# fourth use is no retry; the app sees the second and third as retries.
{
    my $q = signed_query($token);
    my $body = push_xml(%good, EventKey => 'MENU_2');
    my @got = map {
        send_push($ng, '/wx', $token, $body, query => $q)->{status}
    } 1 .. 4;
    is_deeply(\@got, [ 200, 200, 200, 403 ],
              'the same push: three tries, then refused');
    my @seen = $app->{requests}->();
    unlike($seen[-3], qr/^X-WeChat-Retry:/m, 'the first try is no retry');
    like($seen[-1], qr/^X-WeChat-Retry: 1\r$/m, 'the third is a retry');
    $ng->check_log('a fourth use', log => [qr/used more often than WeChat/]);
}

# WeChat does not promise that a retry carries the same signed query: the
# same message (MsgId) or event (sender, CreateTime, Event) under a fresh
# signature is a retry too, passed with $wechat_retry.
{
    my $msg = '<xml><ToUserName><![CDATA[gh_account]]></ToUserName>'
            . '<FromUserName><![CDATA[oRetrier]]></FromUserName>'
            . '<CreateTime>1700000123</CreateTime><MsgType><![CDATA[text]]>'
            . '</MsgType><Content><![CDATA[hi]]></Content>'
            . '<MsgId>6000000000000000001</MsgId></xml>';
    my @got = map { send_push($ng, '/wx', $token, $msg)->{status} } 1 .. 2;
    is_deeply(\@got, [ 200, 200 ], 'a message twice, each freshly signed');
    my @seen = $app->{requests}->();
    unlike($seen[-2], qr/^X-WeChat-Retry:/m, 'the first is no retry');
    like($seen[-1], qr/^X-WeChat-Retry: 1\r$/m,
         'the same MsgId under a fresh signature is a retry');

    my $ev = push_xml(%good, EventKey => 'MENU_RETRY');
    send_push($ng, '/wx', $token, $ev) for 1 .. 2;
    @seen = $app->{requests}->();
    like($seen[-1], qr/^X-WeChat-Retry: 1\r$/m,
         'the same sender, CreateTime and Event: a retry');
    (my $later = $ev) =~ s/<CreateTime>(\d+)/'<CreateTime>' . ($1 + 1)/e;
    send_push($ng, '/wx', $token, $later);
    @seen = $app->{requests}->();
    unlike($seen[-1], qr/^X-WeChat-Retry:/m, 'another CreateTime: no retry');
    $ng->check_log('retries by content');
}

# Input of a poll never becomes a push's variable.
{
    my $res = http_req('GET', $ng->url('/poll') . '?scene=x%0d%0aSet-Cookie:'
                       . '%20sid=evil&token=t');
    is($res->{status}, 200, 'a poll with a line break in its scene');
    ok(!exists $res->{headers}{'x-scene'}, 'no $wechat_scene from a poll');
    ok(!exists $res->{headers}{'set-cookie'}, 'no header smuggled');
}

# A site user with a line break would become a header to the app.
run_case($ng, { name => 'a site user with CR LF', method => 'POST', path =>
                '/qr-path/alice%0d%0aX-Admin:%20yes', status => 400,
                log => [qr/user has a control character/] });

# Two scans that carry the same MsgId are still two scans.
{
    my ($s1, $s2) = (issue('frank'), issue('grace'));
    for my $pair ([ $s1, 'oDedup1' ], [ $s2, 'oDedup2' ]) {
        my ($s, $openid) = @$pair;
        send_push($ng, '/wx', $token,
                  push_xml(%good, FromUserName => $openid, Event => 'SCAN',
                           EventKey => $s->{scene}, MsgId => '777'));
    }
    is(poll_status($s1), 'bound', 'the first scan with MsgId 777');
    is(poll_status($s2), 'bound', 'the second, with the same MsgId');
}

# A field that holds elements reads differently to different parsers.
run_case($ng, { name => 'elements inside FromUserName', path => '/wx',
                push => {}, token => $token, status => 400,
                body => push_xml(%good,
                                 FromUserName => 'oVic<b>tim1</b>'),
                log => [qr/field "FromUserName"/] });

# --- 9. Redis away: the node-local record still refuses replays -------------

WxTest::stop_redis($redis);

$q = signed_query($token);
run_case($ng, { name => 'redis down: a click passes', path => '/wx',
                token => $token, push => { query => $q },
                body => push_xml(%good), status => 200,
                body_is => 'app-answer', errors_ok => 1 });
run_case($ng, { name => 'redis down: the query reused is refused here',
                path => '/wx', token => $token, push => { query => $q },
                body => scan_xml('wxs_' . ('a' x 32), 'oAttacker1'),
                status => 403, log => [qr/replayed query/], errors_ok => 1 });

{
    my $s = 'wxs_' . ('b' x 32);
    send_push($ng, '/wx', $token, scan_xml($s, 'oLost'));
    like(last_request(), qr/^X-WeChat-Resolution: unavailable\r$/m,
         'redis down: a scan is passed as unavailable (never asked)');
    $ng->check_log('redis down', errors_ok => 1);
}

done_testing;
