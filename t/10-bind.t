# The bind flow against a real redis-server: scenes, atomic resolution,
# polls, conflicts, rebinding, expiry, de-dup, bind info and unbinding.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw(sha256_hex);
use JSON::PP;
use POSIX ();
use Test::More;
use WxTest;

my $token = 'bindToken77';
my $appid = 'wxbindapp';
my $redis = start_redis();
my $app = start_upstream(reply => 'app-answer');

my $ng = start_nginx(http => <<"EOF");
    wechat_redis 127.0.0.1:$redis->{port};
    wechat_qrcode_confirm off;     # scans resolve at once; t/21 confirms

    server {
        listen 127.0.0.1:PORT;

        wechat_appid $appid;
        wechat_callback_token $token;

        location = /wx {
            wechat_callback;
            wechat_pass \@app;
        }

        location = /wx-unbind {
            wechat_unbind_on_unsubscribe on;
            wechat_callback;
            wechat_pass \@app;
        }

        location = /wx-nopass {
            wechat_reply bound "ok, bound ]]> done";
            wechat_callback;
        }

        location = /qrcode {
            wechat_scene_user \$http_x_user_id;
            wechat_qrcode_expire 2m;
            wechat_qrcode bind;
        }

        location = /poll {
            wechat_poll_timeout 0;      # pending is asserted at once
            wechat_poll;
        }

        location = /binding {
            wechat_binding;
        }

        location \@app {
            proxy_pass http://127.0.0.1:$app->{port};
            proxy_set_header X-WeChat-OpenID \$wechat_openid;
            proxy_set_header X-WeChat-User \$wechat_user;
            proxy_set_header X-WeChat-Resolution \$wechat_resolution;
        }
    }
EOF

my $json = JSON::PP->new->utf8->canonical;
my $P = "wx:{$appid}:";

sub qrcode {
    my ($user) = @_;
    my $res = http_req('POST', $ng->url('/qrcode'),
                       headers => { 'X-User-Id' => $user });
    is($res->{status}, 200, "qrcode for $user") or diag($res->{content});
    is($res->{headers}{'cache-control'}, 'no-store', 'qrcode: no-store');
    return $json->decode($res->{content});
}

sub poll {
    my ($scene, $tok) = @_;
    my $res = http_req('GET', $ng->url('/poll'),
                       query => { scene => $scene, token => $tok });
    is($res->{status}, 200, 'poll answered') or diag($res->{content});
    is($res->{headers}{'cache-control'}, 'no-store', 'poll: no-store');
    return $res->{content};
}

sub scan {
    my ($scene, $openid, %opt) = @_;
    my $key = ($opt{event} // 'subscribe') eq 'subscribe'
            ? "qrscene_$scene" : $scene;
    my $body = event_xml(from => $openid, event => $opt{event} // 'subscribe',
                         key => $key, time => $opt{time}, ticket => 1);
    return send_push($ng, $opt{path} // '/wx', $token, $body);
}

sub reply_content {
    my ($xml) = @_;
    return $xml =~ /<Content><!\[CDATA\[(.*?)\]\]><\/Content>/s ? $1 : undef;
}

sub stream_len { redis_cmd($redis, 'XLEN', "${P}resolutions") }

# --- issue a scene ---------------------------------------------------------

my $q = qrcode('alice');
like($q->{scene}, qr/^wxs_[0-9a-f]{32}$/, 'scene carries 128 random bits');
like($q->{token}, qr/^[0-9a-f]{32}$/, 'poll token');
is($q->{expire_seconds}, 120, 'expire_seconds from wechat_qrcode_expire');

my $h = redis_cmd($redis, 'HGETALL', "${P}scene:$q->{scene}");
my %h = @$h;
is_deeply([ @h{qw(kind user status)} ], [ 'bind', 'alice', 'pending' ],
          'scene hash in Redis');
is($h{token}, sha256_hex($q->{token}), 'only the token hash is stored');
my $ttl = redis_cmd($redis, 'TTL', "${P}scene:$q->{scene}");
ok($ttl > 110 && $ttl <= 120, "scene TTL is the QR lifetime ($ttl)");

# the same user asking again, on another page: the pending scene, whose
# token is now the new page's (wechat_qrcode's reuse is in 21-issuing.t)
my $again = qrcode('alice');
is($again->{scene}, $q->{scene}, 'the same user gets the pending scene back');
isnt($again->{token}, $q->{token}, 'with a new poll token');
is(poll($q->{scene}, $q->{token}), '{"status":"expired"}',
   'the old page\'s token no longer polls');
$q = $again;

run_case($ng, { name => 'qrcode without a user', method => 'POST',
                path => '/qrcode', status => 401, log => [qr/no user/] });

is(poll($q->{scene}, $q->{token}), '{"status":"pending"}', 'poll: pending');

# --- the scan resolves it --------------------------------------------------

my $res = scan($q->{scene}, 'oAlice');
is($res->{status}, 200, 'subscribe push answered');
is(reply_content($res->{content}), '绑定成功', 'reply: 绑定成功');
like($res->{content}, qr/<ToUserName><!\[CDATA\[oAlice\]\]>/, 'reply to the user');
like($res->{content}, qr/<FromUserName><!\[CDATA\[gh_account\]\]>/,
     'reply from the account');
like($res->{content}, qr/<CreateTime>\d{10}<\/CreateTime>/, 'reply time in seconds');

is(poll($q->{scene}, $q->{token}), '{"status":"bound","openid":"oAlice"}',
   'poll: bound');
is(redis_cmd($redis, 'HGET', "${P}users", "alice"), 'oAlice', 'user -> openid');
is(redis_cmd($redis, 'HGET', "${P}openids", "oAlice"), 'alice', 'openid -> user');

my $entries = redis_cmd($redis, 'XRANGE', "${P}resolutions", '-', '+');
is(scalar @$entries, 1, 'one resolution in the stream');
my %e = @{ $entries->[0][1] };
is_deeply([ @e{qw(scene kind user openid status replaced)} ],
          [ $q->{scene}, 'bind', 'alice', 'oAlice', 'bound', '' ],
          'stream entry');
$ng->check_log('bind flow');

# --- SCAN form -------------------------------------------------------------

my $qb = qrcode('bob');
$res = scan($qb->{scene}, 'oBob', event => 'SCAN');
is(reply_content($res->{content}), '绑定成功', 'SCAN binds too');
is(poll($qb->{scene}, $qb->{token}), '{"status":"bound","openid":"oBob"}',
   'SCAN: poll bound');

# --- conflict: the openid already belongs to another user -------------------

my $qc = qrcode('carol');
$res = scan($qc->{scene}, 'oAlice');
is(reply_content($res->{content}), '该微信已绑定其他账号', 'conflict reply');
is(poll($qc->{scene}, $qc->{token}), '{"status":"conflict"}', 'poll: conflict');
is(redis_cmd($redis, 'HGET', "${P}openids", "oAlice"), 'alice', 'binding kept');
is(redis_cmd($redis, 'HGET', "${P}users", "carol"), undef, 'carol not bound');

# --- rebind: the user binds another WeChat account --------------------------
# Even with wechat_qrcode_confirm off, a scan never replaces a binding by
# itself: the page must send the code the new WeChat got.

my $qa2 = qrcode('alice');
$res = scan($qa2->{scene}, 'oAlice2');
my ($rebind_code) = (reply_content($res->{content}) // '') =~ /(\d{6})/;
like(reply_content($res->{content}), qr/^绑定验证码 \d{6}/,
     'rebind: the scanner gets a code');
is(redis_cmd($redis, 'HGET', "${P}users", "alice"), 'oAlice',
   'rebind: nothing replaced by the scan');
is(poll($qa2->{scene}, $qa2->{token}), '{"status":"scanned"}',
   'rebind: poll scanned');
$res = http_req('POST', $ng->url('/poll'),
                body => "scene=$qa2->{scene}&code=$rebind_code"
                        . "&token=$qa2->{token}");
is($res->{content}, '{"status":"bound","openid":"oAlice2"}',
   'rebind reply: the code typed on the page binds');
is(redis_cmd($redis, 'HGET', "${P}users", "alice"), 'oAlice2', 'rebound');
is(redis_cmd($redis, 'HGET', "${P}openids", "oAlice"), undef, 'old openid released');
$entries = redis_cmd($redis, 'XRANGE', "${P}resolutions", '-', '+');
%e = @{ $entries->[-1][1] };
is($e{replaced}, 'oAlice', 'stream names the replaced openid');

# --- expired and foreign scenes ---------------------------------------------

my $gone = 'wxs_' . ('0' x 32);
$res = scan($gone, 'oDave');
is(reply_content($res->{content}), '二维码已过期，请刷新页面后重试',
   'unknown scene of ours: expired reply');
is(scalar($app->{requests}->()), 0, 'not passed upstream');

my $before = stream_len();
$res = scan('promo2024', 'oEve');
is($res->{content}, 'app-answer', 'foreign scene goes to wechat_pass');
my @req = $app->{requests}->();
like($req[-1], qr/^X-WeChat-OpenID: oEve\r$/m, 'foreign scene: openid');
unlike($req[-1], qr/^X-WeChat-Resolution:/m, 'foreign scene: no resolution');
is(stream_len(), $before, 'foreign scene: nothing resolved');

# a second scan of a resolved scene by someone else
$res = scan($qb->{scene}, 'oMallory', event => 'SCAN');
is(reply_content($res->{content}), '二维码已过期，请刷新页面后重试',
   'used scene scanned by another openid: expired');
is(redis_cmd($redis, 'HGET', "${P}users", "bob"), 'oBob', 'used scene: bob kept');

# --- a captured query cannot carry another scan ------------------------------

my $qv = qrcode('victor');
my $qm = qrcode('mallory');
my $captured = signed_query($token);
my $honest = event_xml(from => 'oMallory', event => 'SCAN', key => $qm->{scene});
$res = send_push($ng, '/wx', $token, $honest, query => $captured);
is(reply_content($res->{content}), '绑定成功', 'the honest push binds');
my $forged = event_xml(from => 'oMallory', event => 'SCAN', key => $qv->{scene});
run_case($ng, { name => 'the same query with another body', path => '/wx',
                token => $token, body => $forged,
                push => { query => $captured }, status => 403,
                log => [qr/\[warn\].*replayed query with other content/] });
is(poll($qv->{scene}, $qv->{token}), '{"status":"pending"}',
   "the victim's scene is untouched");
$res = send_push($ng, '/wx', $token, $honest, query => $captured);
is(reply_content($res->{content}), '绑定成功',
   'the same query with the same body is a retry, answered again');

# --- a flushed script cache: EVALSHA falls back to EVAL ----------------------

redis_cmd($redis, 'SCRIPT', 'FLUSH');
my $qn = qrcode('nina');
$res = scan($qn->{scene}, 'oNina');
is(reply_content($res->{content}), '绑定成功', 'resolved after SCRIPT FLUSH');
$ng->check_log('NOSCRIPT fallback');

# --- configured reply text, CDATA-safe --------------------------------------

my $qf = qrcode('frank');
$res = scan($qf->{scene}, 'oFrank', path => '/wx-nopass');
like($res->{content}, qr/\Q<![CDATA[ok, bound ]]]]><![CDATA[> done]]>\E/,
     'wechat_reply text with ]]> split');

# --- $wechat_user for passed pushes ------------------------------------------

$res = send_push($ng, '/wx', $token, text_xml(from => 'oAlice2'));
is($res->{content}, 'app-answer', 'message passed');
@req = $app->{requests}->();
like($req[-1], qr/^X-WeChat-User: alice\r$/m, '$wechat_user of a bound openid');

# --- de-dup ------------------------------------------------------------------

my $qd = qrcode('grace');
my $t = int time;
$before = stream_len();
my @replies = map { scan($qd->{scene}, 'oGrace', time => $t)->{content} } 1 .. 4;
is(scalar(grep { $_ eq $replies[0] } @replies), 4,
   'the same push 4 times in a row: identical replies');
is(reply_content($replies[0]), '绑定成功', 'de-dup: first answer kept');
is(stream_len(), $before + 1, 'de-dup: one resolution');

my $qh = qrcode('heidi');
$before = stream_len();
my @pids;
my $dir = File::Temp::tempdir(CLEANUP => 1);
for my $i (1 .. 4) {
    my $pid = fork // die;
    if ($pid == 0) {
        my $r = scan($qh->{scene}, 'oHeidi', time => $t);
        open my $fh, '>', "$dir/$i" or POSIX::_exit(1);
        print $fh "$r->{status}\n$r->{content}";
        close $fh;
        POSIX::_exit(0);
    }
    push @pids, $pid;
}
waitpid $_, 0 for @pids;
my @concurrent = map { local $/; open(my $fh, '<', "$dir/$_") or die; <$fh> } 1 .. 4;
is(scalar(grep { $_ eq $concurrent[0] } @concurrent), 4,
   'the same push 4 times at once: identical replies');
like($concurrent[0], qr/^200\n.*绑定成功/s, 'concurrent: bound');
is(stream_len(), $before + 1, 'concurrent: one resolution');

# --- polls that must reveal nothing ------------------------------------------

is(poll($q->{scene}, 'f' x 32), '{"status":"expired"}', 'wrong token: expired');
is(poll($gone, 'f' x 32), '{"status":"expired"}', 'unknown scene: expired');
is(poll('promo', 'x'), '{"status":"expired"}', 'foreign scene: expired');
run_case($ng, { name => 'poll without token', path => '/poll',
                query => { scene => $q->{scene} }, status => 400,
                log => [qr/no "scene" or "token"/] });
redis_cmd($redis, 'DEL', "${P}scene:$qa2->{scene}");
is(poll($qa2->{scene}, $qa2->{token}), '{"status":"expired"}',
   'expired scene: expired');

# --- bind info and unbind -----------------------------------------------------

run_case($ng, { name => 'binding by user', path => '/binding',
                query => { user => 'alice' }, status => 200,
                body_is => '{"user":"alice","openid":"oAlice2"}' });
run_case($ng, { name => 'binding by openid', path => '/binding',
                query => { openid => 'oBob' }, status => 200,
                body_is => '{"user":"bob","openid":"oBob"}' });
run_case($ng, { name => 'no binding', path => '/binding',
                query => { user => 'nobody' }, status => 404,
                body_is => '{"error":"not found"}' });
run_case($ng, { name => 'binding without arguments', path => '/binding',
                status => 400, log => [qr/no "user" or "openid"/] });

$before = stream_len();
for my $n (1, 2) {
    run_case($ng, { name => "unbind bob ($n)", method => 'DELETE',
                    path => '/binding', query => { user => 'bob' },
                    status => 200,
                    body_is => '{"user":"bob","status":"unbound"}' });
}
is(redis_cmd($redis, 'HGET', "${P}users", "bob"), undef, 'unbound: user key');
is(redis_cmd($redis, 'HGET', "${P}openids", "oBob"), undef, 'unbound: openid key');
is(stream_len(), $before + 1, 'one unbind in the stream');

# --- unsubscribe --------------------------------------------------------------

my $unsub = event_xml(from => 'oAlice2', event => 'unsubscribe');
$res = send_push($ng, '/wx', $token, $unsub);
is($res->{content}, 'app-answer', 'unsubscribe (option off) passed');
is(redis_cmd($redis, 'HGET', "${P}users", "alice"), 'oAlice2', 'option off: kept');

# another unsubscribe (a later one: the same one again would be a retry)
$unsub = event_xml(from => 'oAlice2', event => 'unsubscribe', time => time + 1);
$res = send_push($ng, '/wx-unbind', $token, $unsub);
is($res->{content}, 'app-answer', 'unsubscribe (option on) passed too');
is(redis_cmd($redis, 'HGET', "${P}users", "alice"), undef, 'option on: unbound');
is(redis_cmd($redis, 'HGET', "${P}openids", "oAlice2"), undef,
   'option on: openid released');
$entries = redis_cmd($redis, 'XRANGE', "${P}resolutions", '-', '+');
%e = @{ $entries->[-1][1] };
is_deeply([ @e{qw(kind user openid reason)} ],
          [ 'unbind', 'alice', 'oAlice2', 'unsubscribe' ], 'unbind entry');

$ng->check_log('bind flow end');

done_testing;
