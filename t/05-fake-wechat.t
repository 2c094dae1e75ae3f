# The fake WeChat platform (tools/fake-wechat) over real HTTP: access-token
# semantics, QR codes and their images, users and messages, injected
# failures; then the whole bind flow driven by its scan action against
# nginx and Redis, in plaintext and safe mode; the retries of a slow
# callback; and the wxsim CLI.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempfile);
use IO::Socket::INET;
use JSON::PP;
use POSIX ();
use HTTP::Tiny;
use Test::More;
use Time::HiRes qw(sleep time);
use WxTest;

binmode Test::More->builder->$_, ':encoding(UTF-8)'
    for qw(output failure_output todo_output);

for my $tool (qw(node qrencode zbarimg)) {
    plan skip_all => "$tool not installed"
        if system("command -v $tool >/dev/null") != 0;
}

my ($appid, $secret) = ('wxfakeapi', 'apiSecret');
my $fake = start_fake_wechat(appid => $appid, secret => $secret,
                             token => 'apiToken', token_overlap => 1);

sub token_call {
    my (%q) = @_;
    return $fake->api('GET', '/cgi-bin/token', query => {
        grant_type => 'client_credential', appid => $appid,
        secret => $secret, %q })->{json};
}

sub stable_call {
    my (%b) = @_;
    return $fake->api('POST', '/cgi-bin/stable_token', json => {
        grant_type => 'client_credential', appid => $appid,
        secret => $secret, force_refresh => JSON::PP::false, %b })->{json};
}

# errcode of an API call made with an access_token (0 when none)
sub with_token {
    my ($token) = @_;
    my $res = $fake->api('GET', '/cgi-bin/getcallbackip',
                         query => { access_token => $token });
    return $res->{json}{errcode} // 0;
}

# --- access tokens ------------------------------------------------------------

my $t1 = token_call();
like($t1->{access_token}, qr/^[\w-]{100,}$/, 'classic token');
is($t1->{expires_in}, 7200, 'expires_in 7200');
my $t2 = token_call();
isnt($t2->{access_token}, $t1->{access_token}, 'a new fetch, a new token');
is(with_token($t1->{access_token}), 0, 'the previous token works during the overlap');

my $s1 = stable_call();
is(stable_call()->{access_token}, $s1->{access_token}, 'stable token: the same again');
ok($s1->{expires_in} > 7100, 'stable token: expires_in');
isnt($s1->{access_token}, $t2->{access_token}, 'stable and classic tokens are apart');
my $s2 = stable_call(force_refresh => JSON::PP::true);
isnt($s2->{access_token}, $s1->{access_token}, 'force_refresh: a new token');
token_call();   # retires $t2 after the overlap, but not the stable token

sleep 1.2;
is(with_token($t1->{access_token}), 40001, 'the previous classic token: 40001 after the overlap');
is(with_token($t2->{access_token}), 40001, 'a classic fetch invalidates the one before');
is(with_token($s1->{access_token}), 40001, 'force_refresh invalidates the old stable token');
is(with_token($s2->{access_token}), 0, 'classic fetches leave the stable token alone');

is(token_call(secret => 'wrong')->{errcode}, 40125, 'wrong secret: 40125');
is(token_call(appid => 'wxnobody')->{errcode}, 40013, 'wrong appid: 40013');
is(token_call(grant_type => 'password')->{errcode}, 40002, 'wrong grant_type: 40002');
is(stable_call(secret => 'wrong')->{errcode}, 40125, 'stable_token, wrong secret: 40125');
is(with_token(undef), 41001, 'no access_token: 41001');
is(with_token('made-up'), 40001, 'unknown access_token: 40001');
like(token_call(secret => 'wrong')->{errmsg}, qr/^invalid appsecret rid: \w+$/,
     'errmsg as WeChat writes it');

my $t3 = $fake->access_token;
is($fake->expire_token(appid => $appid)->{expired} >= 1, 1, 'expire-token control');
is(with_token($t3), 42001, 'an expired token: 42001');

my $short = start_fake_wechat(appid => 'wxshort', secret => 's', token_ttl => 1);
my $st = $short->access_token;
is($short->api('GET', '/cgi-bin/getcallbackip', query => { access_token => $st })
       ->{json}{ip_list}[0], '127.0.0.1', 'getcallbackip');
sleep 1.1;
is($short->api('GET', '/cgi-bin/getcallbackip', query => { access_token => $st })
       ->{json}{errcode}, 42001, 'token_ttl 1 s: expired after it (42001)');

# --- QR codes -------------------------------------------------------------------

my $token = $fake->access_token;

sub create_qr {
    my ($body) = @_;
    return $fake->api('POST', '/cgi-bin/qrcode/create',
                      query => { access_token => $token },
                      ref $body ? (json => $body) : (body => $body))->{json};
}

sub str_scene { { action_name => 'QR_STR_SCENE', action_info => { scene => { scene_str => $_[0] } }, @_[1 .. $#_] } }

my $qr = create_qr(str_scene('wxs_abc', expire_seconds => 300));
ok($qr->{ticket}, 'qrcode/create: ticket');
is($qr->{expire_seconds}, 300, 'qrcode/create: expire_seconds');
like($qr->{url}, qr{^http://weixin\.qq\.com/q/[\w-]+$}, 'qrcode/create: url');
is(create_qr(str_scene('x'))->{expire_seconds}, 30, 'expire_seconds absent: 30');
is(create_qr(str_scene('x', expire_seconds => 2592000))->{expire_seconds}, 2592000,
   'expire_seconds 30 days');
my $id = create_qr({ action_name => 'QR_SCENE', expire_seconds => 60,
                     action_info => { scene => { scene_id => 123 } } });
ok($id->{ticket} && $id->{expire_seconds} == 60, 'QR_SCENE with scene_id');
my $perm = create_qr({ action_name => 'QR_LIMIT_STR_SCENE',
                       action_info => { scene => { scene_str => 'promo' } } });
ok($perm->{ticket} && !exists $perm->{expire_seconds}, 'permanent: no expire_seconds');

for my $bad ([ 'scene_str of 65 characters', str_scene('a' x 65), 40097 ],
             [ 'empty scene_str', str_scene(''), 40097 ],
             [ 'expire_seconds over 30 days', str_scene('x', expire_seconds => 2592001), 40097 ],
             [ 'scene_id 0', { action_name => 'QR_SCENE', action_info => { scene => { scene_id => 0 } } }, 40097 ],
             [ 'scene_str for QR_SCENE', { action_name => 'QR_SCENE', action_info => { scene => { scene_str => 'x' } } }, 40097 ],
             [ 'unknown action_name', { action_name => 'QR_X', action_info => { scene => { scene_str => 'x' } } }, 40097 ],
             [ 'not JSON', '{"action_name":', 47001 ]) {
    is(create_qr($bad->[1])->{errcode}, $bad->[2], "qrcode/create, $bad->[0]: $bad->[2]");
}

my $tickets = $fake->tickets;
my ($known) = grep { $_->{ticket} eq $qr->{ticket} } @$tickets;
is($known->{scene}, 'wxs_abc', 'the fake remembers ticket -> scene');

my $png = $fake->api('GET', '/cgi-bin/showqrcode', query => { ticket => $qr->{ticket} });
is($png->{status}, 200, 'showqrcode');
is($png->{headers}{'content-type'}, 'image/png', 'showqrcode: image/png');
is(substr($png->{content}, 0, 8), "\x89PNG\r\n\x1a\n", 'showqrcode: a PNG');
my ($fh, $file) = tempfile(SUFFIX => '.png', UNLINK => 1);
binmode $fh;
print $fh $png->{content};
close $fh;
chomp(my $decoded = `zbarimg --raw -q $file 2>/dev/null`);
is($decoded, $qr->{url}, 'the PNG decodes back to the url');
is($fake->api('GET', '/cgi-bin/showqrcode', query => { ticket => 'gQnope' })->{status},
   404, 'showqrcode of an unknown ticket: 404');

# --- users and messages -------------------------------------------------------------

$fake->user(openid => 'oFollower', nickname => 'Fan');
$fake->user(openid => 'oGone', subscribed => 0);

sub info {
    my ($openid) = @_;
    return $fake->api('GET', '/cgi-bin/user/info', query => {
        access_token => $token, openid => $openid, lang => 'zh_CN' })->{json};
}

my $info = info('oFollower');
is_deeply([ @$info{qw(subscribe openid nickname language)} ],
          [ 1, 'oFollower', 'Fan', 'zh_CN' ], 'user/info of a follower');
ok(exists $info->{subscribe_time} && exists $info->{qr_scene_str}, 'user/info fields');
is_deeply(info('oGone'), { subscribe => 0, openid => 'oGone' }, 'user/info of a non-follower');
# an openid the fake never saw: one that pushed past it (wxsim does), made a
# follower on first use; what is no openid is refused
my $stranger = info('oStranger');
is($stranger->{subscribe}, 1,
   'user/info of an openid never seen: created as a follower');
sleep 1.1;
is(info('oStranger')->{subscribe_time}, $stranger->{subscribe_time},
   'created once, not again on the next call');
is(info('no openid!')->{errcode}, 40003, 'user/info of what is no openid: 40003');

sub send_message {
    my ($kind, $body) = @_;
    return $fake->api('POST', "/cgi-bin/message/$kind/send",
                      query => { access_token => $token }, json => $body)->{json};
}

is_deeply(send_message('custom', { touser => 'oFollower', msgtype => 'text',
                                   text => { content => '你的验证码 123456' } }),
          { errcode => 0, errmsg => 'ok' }, 'custom/send');
my $tpl = send_message('template', { touser => 'oFollower', template_id => 'tplCode',
                                     url => 'https://example.com',
                                     data => { code => { value => '654321' } } });
is($tpl->{errcode}, 0, 'template/send');
like($tpl->{msgid}, qr/^\d+$/, 'template/send: msgid');
is(send_message('template', { touser => 'oNewcomer', template_id => 'tplCode',
                              data => { code => { value => '1' } } })->{errcode},
   0, 'template/send to an openid never seen: sent, the user created');
is(send_message('custom', { touser => "o\nx", msgtype => 'text',
                            text => { content => 'x' } })->{errcode},
   40003, 'custom/send to what is no openid: 40003');
is(send_message('template', { touser => 'oGone', template_id => 't' })->{errcode},
   43004, 'template/send to a non-follower: 43004');

my $received = $fake->messages('oFollower');
is_deeply([ map { $_->{kind} } @$received ], [ 'custom', 'template' ],
          'the messages the user received');
is($received->[0]{content}, '你的验证码 123456', 'custom text recorded');
is($received->[1]{data}{code}{value}, '654321', 'template data recorded');
is($received->[1]{msgid}, $tpl->{msgid}, 'template msgid recorded');

# --- injected failures and counts ---------------------------------------------------

$fake->reset;
$token = $fake->access_token;
$fake->fail(endpoint => '/cgi-bin/qrcode/create', errcode => -1, times => 2);
$fake->fail(endpoint => '/cgi-bin/qrcode/create', errcode => 45009);
$fake->fail(endpoint => '/cgi-bin/qrcode/create', errcode => 40001);
my @codes = map { create_qr(str_scene("s$_"))->{errcode} // 0 } 1 .. 5;
is_deeply(\@codes, [ -1, -1, 45009, 40001, 0 ],
          'failures in the order they were queued, then success');
is(create_qr(str_scene('after'))->{errcode}, undef, 'then success again');

$fake->fail(endpoint => '/cgi-bin/getcallbackip', errcode => -1, http_status => 502);
is($fake->api('GET', '/cgi-bin/getcallbackip', query => { access_token => $token })
       ->{status}, 502, 'an injected HTTP status');

$fake->delay(endpoint => '/cgi-bin/getcallbackip', ms => 400);
my $slow = $fake->api('GET', '/cgi-bin/getcallbackip', query => { access_token => $token });
ok($slow->{elapsed} >= 0.4, sprintf 'an injected delay (%.2f s)', $slow->{elapsed});
ok($fake->api('GET', '/cgi-bin/getcallbackip', query => { access_token => $token })
       ->{elapsed} < 0.3, 'the delay was for one call');

my $counts = $fake->counts;
is($counts->{'/cgi-bin/token'}{calls}, 1, 'counts: token calls since the reset');
is($counts->{'/cgi-bin/qrcode/create'}{calls}, 6, 'counts: qrcode/create calls');
is_deeply($counts->{'/cgi-bin/qrcode/create'}{errcodes},
          { -1 => 2, 45009 => 1, 40001 => 1, 0 => 2 }, 'counts per errcode');
is($counts->{'/cgi-bin/getcallbackip'}{statuses}{502}, 1, 'counts per HTTP status');

# --- the bind flow: the fake scans, nginx and Redis resolve ---------------------------

my %plain = (appid => 'wxbindplain', secret => 'plainSecret', token => 'plainToken1');
my %safe = (appid => 'wxbindsafe', secret => 'safeSecret', token => 'safeToken1',
            aes_key => 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG');
my $redis = start_redis();
my $app = start_upstream(reply => '<xml><ToUserName><![CDATA[o]]></ToUserName>'
    . '<FromUserName><![CDATA[gh]]></FromUserName><CreateTime>1</CreateTime>'
    . '<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[app got it]]></Content></xml>');

# One server per account: wechat_pass's named location must see the
# account's token and AppID to sign and encrypt the app's replies.
my $safe_port = free_port();
my $ng = start_nginx(http => <<"EOF");
    wechat_redis 127.0.0.1:$redis->{port};
    wechat_qrcode_confirm off;     # scans resolve at once; t/21 confirms
    wechat_scene_user \$http_x_user_id;

    server {
        listen 127.0.0.1:PORT;
        wechat_appid $plain{appid};
        wechat_callback_token $plain{token};

        location = /wx { wechat_callback; wechat_pass \@app; }
        location = /qrcode { wechat_qrcode bind; }
        location = /poll { wechat_poll; }
        location \@app { proxy_pass http://127.0.0.1:$app->{port}; }

        # the demo's layout, for wxsim scene: a login sets the session
        # cookie, and a bind scene is the session's user's
        location = /app/login {
            add_header Set-Cookie "session=demo-user; Path=/";
            return 200 "{}";
        }
        location = /bind/qrcode {
            wechat_scene_user \$cookie_session;
            wechat_qrcode bind;
        }
        location = /login/qrcode { wechat_qrcode login; }

        # the safe account set in the callback's location only
        location = /safe-here/wx {
            wechat_appid $safe{appid};
            wechat_callback_token $safe{token};
            wechat_aes_key $safe{aes_key};
            wechat_mode safe;
            wechat_callback;
            wechat_pass \@app;
        }
    }

    server {
        listen 127.0.0.1:$safe_port;
        wechat_appid $safe{appid};
        wechat_callback_token $safe{token};
        wechat_aes_key $safe{aes_key};
        wechat_mode safe;

        location = /wx { wechat_callback; wechat_pass \@app; }
        location = /qrcode { wechat_qrcode bind; }
        location = /poll { wechat_poll; }
        location \@app { proxy_pass http://127.0.0.1:$app->{port}; }
    }
EOF
$plain{base} = $ng->url('');
$safe{base} = "http://127.0.0.1:$safe_port";

my $wx = start_fake_wechat(push_timeout => 800, accounts => [
    { %plain, callback => "$plain{base}/wx" },
    { %safe, mode => 'safe', callback => "$safe{base}/wx" },
]);
my $json = JSON::PP->new->utf8;

for my $acct (\%plain, \%safe) {
    my $mode = $acct == \%plain ? 'plain' : 'safe';
    my $user = "user-$mode";
    my $openid = "o${mode}FakeUser000000000000000";

    ok($wx->verify(appid => $acct->{appid})->{ok}, "$mode: server URL verified");

    my $res = http_req('POST', "$acct->{base}/qrcode", headers => { 'X-User-Id' => $user });
    is($res->{status}, 200, "$mode: scene issued") or diag($res->{content});
    my $q = $json->decode($res->{content});

    my $scan = $wx->scan(appid => $acct->{appid}, scene => $q->{scene},
                         openid => $openid, subscribed => 0);
    is($scan->{event}, 'subscribe', "$mode: a new follower subscribes");
    is($scan->{event_key}, "qrscene_$q->{scene}", "$mode: EventKey qrscene_SCENE");
    is_deeply($scan->{statuses}, [200], "$mode: answered on the first try");
    is($scan->{reply}{Content}, '绑定成功', "$mode: the user sees 绑定成功");
    is($scan->{reply}{MsgType}, 'text', "$mode: a text reply");
    is(!!$scan->{reply}{encrypted}, $mode eq 'safe', "$mode: reply encrypted as the mode says");

    my $poll = http_req('GET', "$acct->{base}/poll",
                        query => { scene => $q->{scene}, token => $q->{token} });
    is($poll->{content}, qq({"status":"bound","openid":"$openid"}), "$mode: poll bound");

    my ($passive) = grep { $_->{kind} eq 'passive' } @{ $wx->messages($openid) };
    is($passive->{content}, '绑定成功', "$mode: the passive reply is recorded");

    my $tok = $wx->access_token(appid => $acct->{appid});
    my $u = $wx->api('GET', '/cgi-bin/user/info',
                     query => { access_token => $tok, openid => $openid })->{json};
    is_deeply([ @$u{qw(subscribe subscribe_scene qr_scene_str)} ],
              [ 1, 'ADD_SCENE_QR_CODE', $q->{scene} ], "$mode: now a follower");

    # the follower scans again: SCAN without prefix
    $q = $json->decode(http_req('POST', "$acct->{base}/qrcode",
                                headers => { 'X-User-Id' => $user })->{content});
    $scan = $wx->scan(appid => $acct->{appid}, scene => $q->{scene}, openid => $openid);
    is($scan->{event}, 'SCAN', "$mode: a follower's scan is SCAN");
    is($scan->{event_key}, $q->{scene}, "$mode: EventKey SCENE");
    is($scan->{reply}{Content}, '绑定成功', "$mode: SCAN binds");

    my $sent = $wx->send(appid => $acct->{appid}, openid => $openid, content => 'hi');
    like($sent->{msg_id}, qr/^\d+$/, "$mode: a text message with a MsgId");
    is($sent->{reply}{Content}, 'app got it', "$mode: the app's reply reaches the user")
        or diag explain $sent->{reply};

    my $click = $wx->event(appid => $acct->{appid}, openid => $openid,
                           event => 'CLICK', key => 'MENU_1');
    is($click->{reply}{Content}, 'app got it', "$mode: a menu click is passed");

    $wx->event(appid => $acct->{appid}, openid => $openid, event => 'unsubscribe');
    $u = $wx->api('GET', '/cgi-bin/user/info',
                  query => { access_token => $tok, openid => $openid })->{json};
    is($u->{subscribe}, 0, "$mode: unsubscribed");
}

{
    # the app's answer is encrypted in its named location, with the
    # account of the callback that decrypted the push
    my $sent = $wx->send(appid => $safe{appid}, openid => 'oSafeHere', content => 'hi',
                         callback => "$plain{base}/safe-here/wx");
    is($sent->{reply}{Content}, 'app got it',
       "safe account set in the callback's location: the app's reply reaches the user");
}

{
    # an account's public settings (the demo's safe-mode switch reads the
    # mode there): the first account by default, never a secret
    my $first = $wx->control('GET', 'account');
    is_deeply([ @$first{qw(appid mode kind)} ], [ $plain{appid}, 'plain', 'official' ],
              'GET /_fake/account: the first account');
    my $other = $wx->control('GET', "account?appid=$safe{appid}");
    is($other->{mode}, 'safe', 'GET /_fake/account?appid=: that account');
    ok(!grep({ exists $other->{$_} } qw(secret token aes_key aesKey)),
       'GET /_fake/account shows no secret');
    is($wx->control('GET', 'account?appid=wxnosuchaccount0000')->{http_status}, 400,
       'GET /_fake/account: an unknown account is 400');
}

{
    # the demo's fake, whose control calls browsers reach: locked, and its
    # authorize page sends browsers back to the demo's host only
    my $locked = start_fake_wechat(appid => 'wxlockedaccount01', token => 'lockedTok',
        aes_key => 'A' x 43, mode => 'compatible', callback => "$plain{base}/wx",
        oauth_domain => 'demo.example', locked => 'yes');
    my $switched = $locked->control('POST', 'account',
                                    { appid => 'wxlockedaccount01', mode => 'plain' });
    is($switched->{account}{mode}, 'plain', 'locked: the mode switches');
    ok(!grep({ exists $switched->{account}{$_} } qw(secret token aes_key aesKey)),
       'POST /_fake/account answers no secret, token or key');
    for my $change ({ token => 'mine' }, { callback => 'http://evil.example/' },
                    { secret => 'mine' }, { aes_key => 'B' x 43 }) {
        my ($field) = keys %$change;
        is($locked->control('POST', 'account',
                            { appid => 'wxlockedaccount01', %$change })->{http_status},
           403, "locked: POST /_fake/account refuses a $field");
    }
    is($locked->control('POST', 'account', { appid => 'wxnewaccount0001' })->{http_status},
       403, 'locked: no new account');
    for my $call (qw(scan send event verify)) {
        is($locked->control('POST', $call, { scene => 'x', openid => 'oX', event => 'CLICK',
                                             callback => 'http://127.0.0.1:1/' })->{http_status},
           403, "locked: $call refuses a callback of the caller's");
    }
    my $authorize = sub {
        my ($redirect) = @_;
        my $http = HTTP::Tiny->new(max_redirect => 0);
        return $http->get($locked->url('/connect/oauth2/authorize?') . $http->www_form_urlencode({
            appid => 'wxlockedaccount01', redirect_uri => $redirect, response_type => 'code',
            scope => 'snsapi_base', openid => 'oVictim' }));
    };
    my $home = $authorize->('http://demo.example:8080/oauth/callback');
    like($home->{headers}{location} // '', qr{^http://demo\.example:8080/oauth/callback\?code=},
         '--oauth-domain: back to that host');
    for my $elsewhere ('https://evil.example/', 'http://demo.example.evil.example/',
                       'http://evil.example\@demo.example/x') {
        my $res = $authorize->($elsewhere);
        ok($res->{status} == 400 && !$res->{headers}{location},
           "--oauth-domain: no redirect to $elsewhere");
    }
}

# a scan of a ticket from qrcode/create carries that ticket
my $wxtoken = $wx->access_token;
my $q = $json->decode(http_req('POST', "$plain{base}/qrcode",
                               headers => { 'X-User-Id' => 'ticket-user' })->{content});
my $created = $wx->api('POST', '/cgi-bin/qrcode/create', query => { access_token => $wxtoken },
                       json => str_scene($q->{scene}, expire_seconds => 120))->{json};
my $scan = $wx->scan(ticket => $created->{ticket}, openid => 'oTicketUser');
is($scan->{ticket}, $created->{ticket}, 'scan by ticket: the push carries it');
is($scan->{reply}{Content}, '绑定成功', 'scan by ticket: bound');
is($wx->scan(ticket => 'gQunknown', openid => 'o')->{http_status}, 404,
   'scan of an unknown ticket: 404');

$ng->check_log('bind flow driven by the fake');

# --- WeChat's retries of a slow or failing callback ------------------------------------

# A stand-in callback that answers each connection by the plan: 'hang'
# (read the push, never answer), an HTTP status, or a body for 200.  It
# writes what each try sent to a file, one per connection.
sub start_callback {
    my (@plan) = @_;
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                       Proto => 'tcp', Listen => 16, ReuseAddr => 1)
        or die "callback: $!";
    my $dir = File::Temp::tempdir(CLEANUP => 1);
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my @hung;
        for my $n (1 .. @plan) {
            my $c = $listen->accept or last;
            my ($head, $body) = ('', '');
            while (my $l = <$c>) { $head .= $l; last if $l eq "\r\n" }
            my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
            read($c, $body, $len) if $len;
            my ($target) = $head =~ /^POST (\S+)/;
            open my $fh, '>', "$dir/$n" or die;
            print $fh "$target\n$body";
            close $fh;
            my $step = $plan[$n - 1];
            if ($step eq 'hang') { push @hung, $c; next }
            my ($status, $reply) = $step =~ /^\d+$/ ? ($step, '') : (200, $step);
            print $c "HTTP/1.1 $status X\r\nContent-Length: " . length($reply)
                   . "\r\nConnection: close\r\n\r\n$reply";
            close $c;
        }
        sleep 2;   # keep the hung connections open until the fake gives up
        POSIX::_exit(0);   # not exit: WxTest's END would stop the servers
    }
    my $port = $listen->sockport;
    close $listen;
    return { url => "http://127.0.0.1:$port/cb", dir => $dir, pid => $pid };
}

sub tries_sent {
    my ($cb) = @_;
    waitpid $cb->{pid}, 0;
    return map { local $/; open(my $fh, '<', "$cb->{dir}/$_") or die; <$fh> }
           sort { $a <=> $b } grep { /^\d+$/ } do { opendir my $d, $cb->{dir}; readdir $d };
}

my $reply_xml = '<xml><ToUserName><![CDATA[oRetry]]></ToUserName>'
    . '<FromUserName><![CDATA[gh]]></FromUserName><CreateTime>1</CreateTime>'
    . '<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[third time lucky]]></Content></xml>';
my $cb = start_callback('hang', 500, $reply_xml);
my $t0 = time;
$scan = $wx->scan(appid => $plain{appid}, scene => 'retry-scene', openid => 'oRetry',
                  callback => $cb->{url});
is_deeply($scan->{statuses}, [ 0, 500, 200 ], 'slow, then failing, then answered: three tries');
is($scan->{tries}[0]{error}, 'timeout', 'the first try timed out');
ok(time - $t0 >= 0.8, 'the fake waited for the slow answer');
is($scan->{user_sees}, 'third time lucky', 'the third answer reaches the user');
my @sent = tries_sent($cb);
is(scalar @sent, 3, 'the callback got three tries');
is(scalar(grep { $_ eq $sent[0] } @sent), 3, 'every try is the same signed push');

$cb = start_callback(('hang') x 3);
$scan = $wx->scan(appid => $plain{appid}, scene => 'retry-scene', openid => 'oRetry',
                  callback => $cb->{url});
is_deeply($scan->{statuses}, [ 0, 0, 0 ], 'never answered: three tries, then it gives up');
is($scan->{user_sees}, '该公众号暂时无法提供服务，请稍后再试',
   'the user sees that the account cannot serve');
tries_sent($cb);

# --- wxsim, the CLI --------------------------------------------------------------------

my $wxsim = "$ROOT/tools/wxsim";
for my $acct (\%plain, \%safe) {
    my $mode = $acct == \%plain ? 'plain' : 'safe';
    my $q = $json->decode(http_req('POST', "$acct->{base}/qrcode",
                                   headers => { 'X-User-Id' => "cli-$mode" })->{content});
    my @key = $acct->{aes_key} ? ('--aes-key', $acct->{aes_key}, '--appid', $acct->{appid}) : ();
    my $out = `$wxsim scan --url $acct->{base}/wx --token $acct->{token} @key --openid oCli$mode --scene $q->{scene}`;
    utf8::decode($out);
    is($?, 0, "wxsim $mode: exit 0");
    like($out, qr/^HTTP 200 /, "wxsim $mode: status");
    like($out, qr/^user sees: 绑定成功$/m, "wxsim $mode: the reply");
    like($out, qr/decrypted \(MsgSignature ok\)/, "wxsim $mode: decrypted") if $acct->{aes_key};
}
my $out = `$wxsim verify --url $plain{base}/wx --token $plain{token}`;
like($out, qr/verified$/m, 'wxsim verify');
`$wxsim scan --url $plain{base}/wx --token wrongToken --scene x 2>&1`;
is($? >> 8, 1, 'wxsim: a refused push exits 1');

# bad usage exits 2, as docs/operations.md says; --help is no error
my $dead = 'http://127.0.0.1:' . free_port();
for my $case (
    [ '', 'no command' ],
    [ "bogus --url $dead --token t", 'an unknown command' ],
    [ "scan --url $dead --token t --scene s --colour red", 'an unknown option' ],
    [ "scan --url $dead --token t --scene", 'an option without its value' ],
    [ "scan --url $dead --token t", 'scan without --scene' ],
    [ "scan --url $dead/wx --scene s", 'no --token' ],
    [ "scan --url ftp://x --token t --scene s", 'a URL that is not http' ],
    [ "verify --url $dead --token t --timeout soon", 'a timeout not in ms' ],
    [ "text --url $dead --token t --mode weird", 'an unknown mode' ],
    [ 'scene', 'scene without --site' ],
    [ "scene --site $dead --kind bogus", 'an unknown kind' ],
) {
    my ($args, $what) = @$case;
    my $err = `$wxsim $args 2>&1 >/dev/null`;
    is($? >> 8, 2, "wxsim: $what: exit 2");
    like($err, qr/^usage: wxsim /m, "wxsim: $what: the usage");
}
`$wxsim --help`;
is($? >> 8, 0, 'wxsim --help: exit 0');

# wxsim scene: a scene from a site laid out as the demo, by itself
my $scene = `$wxsim scene --site $plain{base}`;
is($? >> 8, 0, 'wxsim scene: exit 0');
chomp $scene;
like($scene, qr/^wxs_[0-9a-f]{32}$/, 'wxsim scene: prints a bind scene');
is(redis_cmd($redis, 'HGET', "wx:{$plain{appid}}:scene:$scene", 'user'),
   'demo-user', 'issued for the user its login made');
$out = `$wxsim scan --url $plain{base}/wx --token $plain{token} --openid oSceneCli --scene $scene`;
utf8::decode($out);
like($out, qr/^user sees: 绑定成功$/m, 'and wxsim scan of it binds');
like(`$wxsim scene --site $plain{base}/ --kind login`, qr/^wxs_[0-9a-f]{32}$/,
     'wxsim scene --kind login');
`$wxsim scene --site $dead 2>&1`;
is($? >> 8, 1, 'wxsim scene: no site there: exit 1');

$ng->check_log('wxsim', allow => [qr/signature/]);

like($wx->log_text, qr{^\S+ POST /_fake/scan 200 \d+ms$}m, 'the fake logs one line per request');

done_testing;
