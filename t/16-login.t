# Scan-to-login, verification codes and signed links against a real
# redis-server and the fake WeChat platform: login scenes (confirmed and
# unbound), the poll token as a cookie, codes redeemed once, binding after
# registration, codes by passive reply and by template message, and the
# attacks: no token, random scenes, concurrent redeems, late scans, codes
# of the other kind, guessing, forged, expired, shifted and replayed links.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw(hmac_sha256_hex sha256_hex);
use Encode ();
use File::Temp ();
use HTTP::Tiny;
use JSON::PP;
use POSIX ();
use Test::More;
use Time::HiRes qw(time);
use WxTest;

binmode Test::More->builder->$_, ':encoding(UTF-8)'
    for qw(output failure_output todo_output);

plan skip_all => 'node not installed'
    if system('command -v node >/dev/null') != 0;

my ($appid, $secret, $token) = ('wxloginapp', 'loginSecret', 'loginToken7');
my $link_secret = 'L' x 40;
my $old_secret = 'O' x 32;
my $redis = start_redis();
my $app = start_upstream(reply => 'site-page');
my $fake = start_fake_wechat(appid => $appid, secret => $secret,
                             token => $token);

my $ng = start_nginx(http => <<"EOF");
    wechat_redis 127.0.0.1:$redis->{port};
    wechat_qrcode_confirm off;     # scans resolve at once; t/21 confirms

    server {
        listen 127.0.0.1:PORT;

        wechat_appid $appid;
        wechat_callback_token $token;
        wechat_secret $secret;
        wechat_link_secret $link_secret $old_secret;
        wechat_link_url https://example.com/register;
        wechat_reply register "Register: {link}";

        location /wechat-api-upstream/ {
            internal;
            proxy_pass $fake->{url}/;
        }

        location = /wx {
            wechat_callback;
        }

        location = /wx-greet {
            wechat_reply subscribe "欢迎关注！注册：{link}";
            wechat_callback;
        }

        location = /wx-tpl {
            wechat_api_pass /wechat-api-upstream;
            wechat_code_template TPL_CODE "code={code}" "note=valid_{minutes}m";
            wechat_callback;
        }

        location = /login/qrcode {
            wechat_qrcode login;
        }

        location = /code/qrcode {
            wechat_qrcode code;
        }

        location = /poll {
            wechat_poll_timeout 0;      # pending is asserted at once
            wechat_poll;
        }

        location = /redeem {
            wechat_redeem_attempts 5;
            wechat_redeem;
        }

        location = /binding {
            wechat_binding;
        }

        location = /register {
            wechat_link_verify;
            proxy_pass http://127.0.0.1:$app->{port};
            proxy_set_header X-Link-Openid \$wechat_link_openid;
        }

        location = /status {
            wechat_status;
        }
    }
EOF

my $json = JSON::PP->new->utf8->canonical;
my $P = "wx:{$appid}:";

sub issue {
    my ($kind) = @_;
    my $res = http_req('POST', $ng->url("/$kind/qrcode"));
    is($res->{status}, 200, "$kind qrcode") or diag($res->{content});
    my $q = $json->decode($res->{content});
    $q->{cookie} = $res->{headers}{'set-cookie'};
    return $q;
}

sub poll {
    my ($q, %opt) = @_;
    my %query = (scene => $q->{scene});
    $query{token} = $opt{token} if defined $opt{token};
    my $res = http_req('GET', $ng->url('/poll'), query => \%query,
                       headers => { Cookie => "wechat_poll=$q->{token}" });
    is($res->{status}, 200, 'poll answered') or diag($res->{content});
    return $res->{content};
}

sub scan {
    my ($scene, $openid, %opt) = @_;
    my $body = event_xml(from => $openid, event => 'SCAN', key => $scene,
                         time => $opt{time});
    return send_push($ng, $opt{path} // '/wx', $token, $body,
                     $opt{query} ? (query => $opt{query}) : ());
}

sub content {
    my ($res) = @_;
    return $res->{content} =~ /<Content><!\[CDATA\[(.*?)\]\]><\/Content>/s
           ? Encode::decode('UTF-8', $1) : undef;
}

sub redeem {
    my ($scene, $code) = @_;
    return http_req('POST', $ng->url('/redeem'),
                    body => "scene=$scene&code=$code",
                    headers => { 'Content-Type'
                                 => 'application/x-www-form-urlencoded' });
}

sub scene_hash {
    my ($scene) = @_;
    return { @{ redis_cmd($redis, 'HGETALL', "${P}scene:$scene") } };
}

# --- scan-to-login for a bound openid ----------------------------------------

run_case($ng, { name => 'bind alice after registration', method => 'PUT',
                path => '/binding',
                query => { user => 'alice', openid => 'oAlice' },
                status => 200,
                body_is => '{"user":"alice","openid":"oAlice",'
                           . '"status":"bound"}' });
my $entries = redis_cmd($redis, 'XRANGE', "${P}resolutions", '-', '+');
my %e = @{ $entries->[-1][1] };
is_deeply([ @e{qw(scene kind user openid status)} ],
          [ '', 'site', 'alice', 'oAlice', 'bound' ],
          'PUT: the stream entry of a scan');
run_case($ng, { name => 'PUT of an openid bound to another user',
                method => 'PUT', path => '/binding',
                query => { user => 'mallory', openid => 'oAlice' },
                status => 409, body_like => qr/"status":"conflict"/ });
is(redis_cmd($redis, 'HGET', "${P}openids", "oAlice"), 'alice',
   'conflict: binding kept');

my $q = issue('login');
like($q->{cookie},
     qr/^wechat_poll=$q->{token}; Path=\/login\/; Max-Age=300; HttpOnly; SameSite=Lax$/,
     'the poll token as an HttpOnly, SameSite=Lax cookie for /login/ only '
     . '(no Secure on http)');
my $h = scene_hash($q->{scene});
is($h->{kind}, 'login', 'a login scene');
is($h->{user}, '', 'anonymous');
like($h->{code}, qr/^[0-9a-f]{64}$/, 'the login code only as a hash');

is(poll($q), '{"status":"pending"}', 'poll by cookie: pending');
run_case($ng, { name => 'a poll without the cookie or the token',
                path => '/poll', query => { scene => $q->{scene} },
                status => 400, log => [qr/no "scene" or "token"/] });

my $res = scan($q->{scene}, 'oAlice');
is(content($res), '登录成功', 'scan of a bound openid: 登录成功');
my $answer = $json->decode(poll($q));
is($answer->{status}, 'confirmed', 'poll: confirmed');
like($answer->{code}, qr/^[0-9a-f]{32}$/, 'poll: the login code');
my $code = $answer->{code};
is(sha256_hex(join '', map { length($_) . ":$_" }
              'wechat-code-hash/1', 'login', $q->{scene}, $code),
   scene_hash($q->{scene})->{code}, 'Redis keeps the hash of that code');
is(poll($q, token => 'f' x 32), '{"status":"expired"}',
   'a wrong token learns nothing, even with the cookie of another');

$res = redeem($q->{scene}, 'a' x 32);
is($res->{status}, 404, 'a wrong login code: 404');
$res = redeem($q->{scene}, $code);
is($res->{status}, 200, 'redeemed');
is($res->{content}, '{"openid":"oAlice","user":"alice","kind":"login"}',
   'redeem: openid, user, kind');
is(redeem($q->{scene}, $code)->{status}, 404, 'a code is redeemed once');
is(poll($q), '{"status":"redeemed"}', 'poll after redeem: no code');

$res = scan($q->{scene}, 'oAlice', time => int(time) + 1);
is(content($res), '二维码已过期，请刷新页面后重试',
   'a scan after completion: expired');
is(scene_hash($q->{scene})->{status}, 'redeemed',
   'a scan after completion changes nothing');
$ng->check_log('login flow', allow => []);

# --- a follower who is not a user yet ----------------------------------------

my $qn = issue('login');
$res = scan($qn->{scene}, 'oNewbie');
my ($link) = (content($res) // '') =~ /^Register: (\S+)$/;
like($link // '', qr{^https://example\.com/register\?openid=oNewbie&expires=\d+&nonce=[0-9a-f]{32}&sig=[0-9a-f]{64}$},
     'register reply carries a signed link');
$answer = $json->decode(poll($qn));
is($answer->{status}, 'unbound', 'poll: unbound');
my $qother = issue('login');
is(content(scan($qother->{scene}, 'oAlice')), '登录成功', 'another login');
is(content(scan($qother->{scene}, 'oEve')), '二维码已过期，请刷新页面后重试',
   'the scene scanned by another openid: expired');
is(scene_hash($qother->{scene})->{openid}, 'oAlice', 'and nothing changed');

$res = redeem($qn->{scene}, $answer->{code});
is($res->{content}, '{"openid":"oNewbie","user":null,"kind":"login"}',
   'redeem of an unbound openid: user null');
run_case($ng, { name => 'the site binds its new user', method => 'PUT',
                path => '/binding',
                query => { user => 'newbie', openid => 'oNewbie' },
                status => 200, body_like => qr/"status":"bound"/ });

# --- the signed link -----------------------------------------------------------

my ($path_q) = $link =~ /\?(.*)$/;
$res = http_req('GET', $ng->url("/register?$path_q"));
is($res->{status}, 200, 'the signed link opens the page');
my @req = $app->{requests}->();
like($req[-1], qr/^X-Link-Openid: oNewbie\r$/m, '$wechat_link_openid upstream');
run_case($ng, { name => 'a link replayed', path => "/register?$path_q",
                status => 403, log => [qr/wechat link: refused: used before/] });

# the link's message: each field as <length>:<bytes>, for this account and
# the purpose of wechat_link_verify ("register"), with no scene
sub link_message {
    my (%f) = @_;
    return join '', map { length($_) . ":$_" }
           'wechat-link/2', $f{appid} // $appid, $f{purpose} // 'register',
           $f{openid}, $f{scene} // '', $f{expires}, $f{nonce};
}

sub link_query {
    my (%f) = @_;
    my $msg = link_message(%f);
    my $sig = $f{sig} // hmac_sha256_hex($msg, $f{secret} // $link_secret);
    return "openid=$f{openid}&expires=$f{expires}&nonce=$f{nonce}&sig=$sig";
}

my $t = int(time) + 600;
my %good = (openid => 'oEve', expires => $t, nonce => '345abc');
my $sig = hmac_sha256_hex(link_message(%good), $link_secret);
run_case($ng, { name => 'a forged link', status => 403,
                path => '/register?' . link_query(%good, secret => 'x' x 32),
                log => [qr/refused: signature mismatch/] });
run_case($ng, { name => 'an openid swapped', status => 403,
                path => '/register?' . link_query(%good, openid => 'oAlice',
                                                  sig => $sig),
                log => [qr/refused: signature mismatch/] });
my %shifted = (%good, expires => $t * 10 + 3, nonce => '45abc', sig => $sig);
is("$shifted{expires}$shifted{nonce}", "$t$good{nonce}",
   'the shifted fields concatenate to the same bytes');
run_case($ng, { name => 'fields shifted (ts=12&n=345 against ts=123&n=45)',
                path => '/register?' . link_query(%shifted), status => 403,
                log => [qr/refused: signature mismatch/] });
run_case($ng, { name => 'a link signed for another account', status => 403,
                path => '/register?' . link_query(%good, appid => 'wxother'),
                log => [qr/refused: signature mismatch/] });
run_case($ng, { name => 'a link signed for another purpose', status => 403,
                path => '/register?' . link_query(%good,
                                                  purpose => 'login-confirm'),
                log => [qr/refused: signature mismatch/] });
run_case($ng, { name => 'an expired link', status => 403,
                path => '/register?' . link_query(%good, expires => $t - 1200),
                log => [qr/refused: expired/] });
run_case($ng, { name => 'a link without its signature', status => 403,
                path => '/register?openid=oEve&expires=' . $t . '&nonce=1',
                log => [qr/refused: an argument is missing/] });
# A plain subscribe (no scene) by a follower who is no user yet gets
# wechat_reply subscribe with a signed link; a site user is answered as any
# push (here "success": no wechat_pass).
{
    my $body = event_xml(from => 'oNewFollower', event => 'subscribe');
    my $greeted = content(send_push($ng, '/wx-greet', $token, $body));
    like($greeted // '', qr{^欢迎关注！注册：https://example\.com/register\?openid=oNewFollower&expires=\d+&nonce=[0-9a-f]+&sig=[0-9a-f]{64}$},
         'a new follower who is no user gets the subscribe reply and a link');
    my ($link) = ($greeted // '') =~ m{register\?(\S+)$};
    run_case($ng, { name => 'the link of the subscribe reply verifies',
                    path => "/register?$link", status => 200 });
    $body = event_xml(from => 'oAlice', event => 'subscribe');
    is(send_push($ng, '/wx-greet', $token, $body)->{content}, 'success',
       'a follower who is a site user: answered as any push');
}

# what the link signs is read once, and spelled one way
my %other = (%good, nonce => 'n-repeat');
run_case($ng, { name => 'a genuine link with a second openid appended',
                status => 403,
                path => '/register?' . link_query(%other) . '&openid=oMallory',
                log => [qr/refused: a repeated argument/] });
run_case($ng, { name => 'a genuine link with expires spelled 000...',
                status => 403,
                path => '/register?' . link_query(%other, expires => "000$t"),
                log => [qr/refused: malformed/] });
run_case($ng, { name => 'a link for an openid of another shape', status => 403,
                path => '/register?' . link_query(%other, openid => 'o:1'),
                log => [qr/refused: malformed/] });
run_case($ng, { name => 'PUT of an openid of another shape', method => 'PUT',
                path => '/binding?user=bob&openid=not%20an%20openid',
                status => 400 });

run_case($ng, { name => 'a link signed with the previous secret',
                path => '/register?' . link_query(%good, secret => $old_secret),
                status => 200 });
run_case($ng, { name => 'and the same again', status => 403,
                path => '/register?' . link_query(%good, secret => $old_secret),
                log => [qr/used before/] });

# --- verification codes by passive reply ---------------------------------------

my $qc = issue('code');
$res = scan($qc->{scene}, 'oAlice', time => 1700000000 + int(rand 1e6));
my ($digits) = (content($res) // '') =~ /^验证码 (\d{6})，5 分钟内有效$/;
ok(defined $digits, 'the code in the passive reply') or diag(content($res));
is(poll($qc), '{"status":"code_sent"}', 'poll: code_sent, never the code');
my $hc = scene_hash($qc->{scene});
unlike(join(' ', %$hc), qr/\b$digits\b/, 'Redis does not hold the code');

is(redeem($qc->{scene}, $code)->{status}, 404,
   'a login code against a code scene: 404');
my $ql = issue('login');
scan($ql->{scene}, 'oAlice');
is(redeem($ql->{scene}, $digits)->{status}, 404,
   'a verification code against a login scene: 404');

$res = redeem($qc->{scene}, $digits);
is($res->{content}, '{"openid":"oAlice","user":"alice","kind":"code"}',
   'the code checked: openid and user');
is(redeem($qc->{scene}, $digits)->{status}, 404, 'and only once');

# a retried push carries a new code, which is the one that counts
my $qr = issue('code');
my $query = signed_query($token);
my $when = int time;
my $first = content(scan($qr->{scene}, 'oAlice', time => $when,
                         query => $query));
my $again = content(scan($qr->{scene}, 'oAlice', time => $when,
                         query => $query));
my ($c1) = $first =~ /(\d{6})/;
my ($c2) = $again =~ /(\d{6})/;
ok($c1 && $c2, 'a retry of the push is answered with a code');
is(redeem($qr->{scene}, $c2)->{status}, 200, "the retry's code is valid");

# --- guessing burns the scene ---------------------------------------------------

my $qg = issue('login');
scan($qg->{scene}, 'oAlice');
my $good_code = $json->decode(poll($qg))->{code};
is(redeem($qg->{scene}, sprintf('%032x', $_))->{status}, 404,
   "wrong guess $_") for 1 .. 5;
is(redeem($qg->{scene}, $good_code)->{status}, 404,
   'after 5 wrong codes the right one is refused too');
is(poll($qg), '{"status":"expired"}', 'the scene is burnt');

# --- two redeems at once: exactly one wins -----------------------------------

my $qx = issue('login');
scan($qx->{scene}, 'oAlice');
my $xcode = $json->decode(poll($qx))->{code};
my $dir = File::Temp::tempdir(CLEANUP => 1);
my @pids;
for my $i (1 .. 2) {
    my $pid = fork // die;
    if ($pid == 0) {
        my $r = redeem($qx->{scene}, $xcode);
        open my $fh, '>', "$dir/$i" or POSIX::_exit(1);
        print $fh $r->{status};
        close $fh;
        POSIX::_exit(0);
    }
    push @pids, $pid;
}
waitpid $_, 0 for @pids;
my @statuses = sort map { local $/; open(my $fh, '<', "$dir/$_") or die; <$fh> }
               1 .. 2;
is_deeply(\@statuses, [ 200, 404 ], 'two concurrent redeems: one wins');

# --- 10,000 polls of random scenes ----------------------------------------------

my $t0 = time;
for my $c (1 .. 4) {
    my $pid = fork // die;
    if ($pid == 0) {
        my $http = HTTP::Tiny->new(keep_alive => 1, timeout => 10);
        my $bad = 0;
        for (1 .. 2500) {
            my $scene = 'wxs_' . join '', map { sprintf '%04x', rand 65536 } 1 .. 8;
            my $tok = join '', map { sprintf '%04x', rand 65536 } 1 .. 8;
            my $r = $http->get($ng->url("/poll?scene=$scene&token=$tok"));
            $bad++ unless $r->{status} == 200
                          && $r->{content} eq '{"status":"expired"}';
        }
        open my $fh, '>', "$dir/poll$c" or POSIX::_exit(1);
        print $fh $bad;
        close $fh;
        POSIX::_exit(0);
    }
    push @pids, $pid;
}
waitpid $_, 0 for @pids;
my $bad = 0;
$bad += do { local $/; open(my $fh, '<', "$dir/poll$_") or die; <$fh> }
    for 1 .. 4;
is($bad, 0, '10,000 polls of random scenes: all expired');
my $took = time - $t0;
ok($took < 120, sprintf('in %.1f s', $took));

# --- verification codes by template message ------------------------------------

$fake->user(openid => 'oTpl', subscribed => JSON::PP::true);
my $qt = issue('code');
$res = scan($qt->{scene}, 'oTpl', path => '/wx-tpl');
is($res->{content}, 'success', 'with a template: the push answered at once');
my $sent;
wait_until('the template message', sub {
    ($sent) = grep { $_->{kind} eq 'template' } @{ $fake->messages('oTpl') };
    return $sent;
});
is($sent->{template_id}, 'TPL_CODE', 'template id');
like($sent->{data}{code}{value}, qr/^\d{6}$/, 'the code in the data');
is($sent->{data}{note}{value}, 'valid_5m', '{minutes} in the data');
is(poll($qt), '{"status":"code_sent"}', 'poll: code_sent');
is(redeem($qt->{scene}, $sent->{data}{code}{value})->{content},
   '{"openid":"oTpl","user":null,"kind":"code"}', 'the template code redeems');
my $status = http_req('GET', $ng->url('/status'))->{content};
like($status,
     qr/^wechat_api_calls_total\{endpoint="template",result="ok"\} 1$/m,
     'the template send counted');
like($status, qr/^wechat_pushes_total\{outcome="code_sent"\} [1-9]/m,
     'code scans counted');

$ng->check_log('end', allow => []);

done_testing;
