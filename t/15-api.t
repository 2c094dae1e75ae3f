# WeChat's API from the edge, against the fake WeChat platform: one shared
# access_token for every worker and node, refreshed once, ahead of expiry
# and after WeChat refuses it; real QR codes (ticket, url, image); the API
# proxy for the business app; error mapping and deadlines; and the bind flow
# driven by the fake's scan of a ticket the module created.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw(sha256_hex);
use File::Temp qw(tempfile);
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use Test::More;
use Time::HiRes qw(time);
use WxTest;

binmode Test::More->builder->$_, ':encoding(UTF-8)'
    for qw(output failure_output todo_output);

for my $tool (qw(node zbarimg)) {
    plan skip_all => "$tool not installed"
        if system("command -v $tool >/dev/null") != 0;
}

my $json = JSON::PP->new->utf8->canonical;
my ($appid, $secret, $token) = ('wxapiedge', 'edgeSecret', 'edgeToken1');
my ($classic_id, $kept_id) = ('wxclassic', 'wxkept');
my $redis = start_redis();

my $fake = start_fake_wechat(accounts => [
    { appid => $appid, secret => $secret, token => $token },
    { appid => $classic_id, secret => 'classicSecret', token => 'clToken' },
    { appid => $kept_id, secret => 'keptSecret', token => 'keptToken' },
]);

my $http = <<"EOF";
    wechat_redis 127.0.0.1:$redis->{port};
    wechat_qrcode_confirm off;     # scans resolve at once; t/21 confirms

    server {
        listen 127.0.0.1:PORT;

        wechat_appid $appid;
        wechat_callback_token $token;
        wechat_secret $secret;
        wechat_api_pass /wechat-api-upstream;
        wechat_qrcode_rate 1000/s;             # bursts of 200 below

        location /wechat-api-upstream/ {
            internal;
            proxy_pass $fake->{url}/;
            subrequest_output_buffer_size 64k;
        }

        location = /wx {
            wechat_callback;
        }

        location = /qrcode {
            wechat_scene_user \$arg_user;
            wechat_qrcode bind;
        }

        location = /qrcode-header {
            wechat_scene_user \$http_x_site_user;
            wechat_qrcode bind;
        }

        location = /qrcode-slow {
            wechat_api_timeout 500ms;
            wechat_scene_user \$arg_user;
            wechat_qrcode bind;
        }

        location = /qrcode-classic {
            wechat_appid $classic_id;
            wechat_secret classicSecret;
            wechat_access_token_api classic;
            wechat_scene_user \$arg_user;
            wechat_qrcode bind;
        }

        location = /qrcode-kept {
            wechat_appid $kept_id;
            wechat_secret "";
            wechat_access_token_key kept:token;
            wechat_scene_user \$arg_user;
            wechat_qrcode bind;
        }

        location = /qrimage {
            wechat_qrcode_image;
        }

        location = /poll {
            wechat_poll;
        }

        location /wechat-api/ {
            wechat_api;
        }

        location = /status {
            wechat_status;
        }
    }
EOF

my $ng1 = start_nginx(workers => 2, http => $http);
my $ng2 = start_nginx(workers => 2, http => $http);
my $P = "wx:{$appid}:";

sub calls {
    my ($endpoint) = @_;
    return $fake->counts->{$endpoint}{calls} // 0;
}

# Many requests at once, on raw sockets: their answers, in order.
sub at_once {
    my (@urls) = @_;
    my (@socks, %answer);
    for my $url (@urls) {
        my ($port, $path) = $url =~ m{^http://127\.0\.0\.1:(\d+)(/.*)$};
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp')
            or die "connect: $!";
        print $s "POST $path HTTP/1.0\r\nHost: localhost\r\n"
                 . "Content-Length: 0\r\n\r\n";
        push @socks, $s;
    }
    my $sel = IO::Select->new(@socks);
    my %buf;
    my $deadline = time + 20;
    while ($sel->count && time < $deadline) {
        for my $s ($sel->can_read(1)) {
            my $n = sysread($s, my $chunk, 65536);
            if ($n) { $buf{$s} .= $chunk; next }
            $sel->remove($s);
            close $s;
        }
    }
    return map {
        my ($status, $body) = ($buf{$_} // '') =~ m{^HTTP/1\.\d (\d+).*?\r\n\r\n(.*)}s;
        { status => $status // 0, body => $body // '' }
    } @socks;
}

sub qrcode {
    my ($ng, $path, $user) = @_;
    my $res = http_req('POST', $ng->url("$path?user=$user"));
    $res->{json} = eval { $json->decode($res->{content}) };
    return $res;
}

# --- one token for all: 200 QR codes at once, over two nodes ------------------

my @urls = map { ($_ % 2 ? $ng1 : $ng2)->url("/qrcode?user=u$_") } 1 .. 200;
my @answers = at_once(@urls);
is(scalar(grep { $_->{status} == 200 } @answers), 200,
   '200 QR codes at once over two nodes: all answered')
    or diag(join "\n", map { "$_->{status} $_->{body}" } grep { $_->{status} != 200 } @answers);
is(calls('/cgi-bin/stable_token'), 1, 'the token was fetched exactly once');
is(calls('/cgi-bin/token'), 0, 'and never by the classic endpoint');
is(calls('/cgi-bin/qrcode/create'), 200, 'one qrcode/create each');

my $q = $json->decode($answers[0]{body});
like($q->{scene}, qr/^wxs_[0-9a-f]{32}$/, 'answer: scene');
like($q->{token}, qr/^[0-9a-f]{32}$/, 'answer: poll token');
is($q->{expire_seconds}, 300, 'answer: expire_seconds');
ok(length $q->{ticket}, 'answer: ticket');
like($q->{url}, qr{^http://weixin\.qq\.com/q/}, 'answer: url, the QR content');
(my $enc = $q->{ticket}) =~ s/([^A-Za-z0-9_.~-])/sprintf '%%%02X', ord $1/ge;
is($q->{qrcode_url},
   "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=$enc",
   'answer: showqrcode with the ticket URL-encoded');

my ($created) = grep { $_->{ticket} eq $q->{ticket} } @{ $fake->tickets };
is($created->{scene}, $q->{scene}, 'WeChat created the code for the scene');
my %h = @{ redis_cmd($redis, 'HGETALL', "${P}scene:$q->{scene}") };
is_deeply([ @h{qw(ticket url status)} ], [ $q->{ticket}, $q->{url}, 'pending' ],
          'the scene keeps its ticket and url');
my $stored = redis_cmd($redis, 'HGET', "${P}token", 'value');
ok($stored, 'the token lives in Redis, under the account');
my $pttl = redis_cmd($redis, 'PTTL', "${P}token");
ok($pttl > 7000_000 && $pttl <= 7200_000, "with its expiry ($pttl ms)");

# --- the image, drawn at the edge ------------------------------------------------

sub image {
    my (%q) = @_;
    return http_req('GET', $ng1->url('/qrimage'), query => \%q);
}

my $png = image(scene => $q->{scene}, token => $q->{token});
is($png->{status}, 200, 'QR image');
is($png->{headers}{'content-type'}, 'image/png', 'a PNG');
like($png->{headers}{'cache-control'}, qr/^private, max-age=(\d+)$/,
     'cacheable by the browser for the scene\'s life');
my ($fh, $file) = tempfile(SUFFIX => '.png', UNLINK => 1);
binmode $fh;
print $fh $png->{content};
close $fh;
chomp(my $decoded = `zbarimg --raw -q $file`);
is($decoded, $q->{url}, 'the image decodes back to the url (zbarimg)');

my $svg = image(scene => $q->{scene}, token => $q->{token}, format => 'svg',
                size => 300);
is($svg->{headers}{'content-type'}, 'image/svg+xml', 'an SVG');
like($svg->{content}, qr/<svg[^>]*width="300"/, 'of the size asked');

is(image(scene => $q->{scene})->{status}, 400, 'image without token: 400');
is(image(scene => $q->{scene}, token => $q->{token}, format => 'gif')->{status},
   400, 'image in another format: 400');
is(image(scene => $q->{scene}, token => $q->{token}, size => 99)->{status},
   400, 'image of a silly size: 400');
is(image(scene => 'wxs_' . ('0' x 32), token => $q->{token})->{status}, 404,
   'image of an unknown scene: 404');
is(image(scene => $q->{scene}, token => 'f' x 32)->{status}, 404,
   'image with a wrong token: 404, no oracle');
$ng1->check_log('images');

# --- WeChat's errors --------------------------------------------------------------

my $scenes = scalar @{ redis_cmd($redis, 'KEYS', "${P}scene:*") };

$fake->fail(endpoint => '/cgi-bin/qrcode/create', errcode => 45009, times => 1);
my $res = qrcode($ng1, '/qrcode', 'limited');
is($res->{status}, 502, 'errcode 45009: 502');
is($res->{json}{error}, 'wechat', 'error: wechat');
is($res->{json}{errcode}, 45009, 'with errcode');
ok(length $res->{json}{errmsg}, 'and errmsg');
is(scalar @{ redis_cmd($redis, 'KEYS', "${P}scene:*") }, $scenes,
   'a failed create leaves no scene behind');

$fake->fail(endpoint => '/cgi-bin/qrcode/create', errcode => -1, times => 1);
is(qrcode($ng1, '/qrcode', 'busy1')->{status}, 200, 'errcode -1 once: retried');
$fake->fail(endpoint => '/cgi-bin/qrcode/create', errcode => -1, times => 2);
$res = qrcode($ng1, '/qrcode', 'busy2');
is($res->{status}, 502, 'errcode -1 twice: 502');
is($res->{json}{errcode}, -1, 'errcode -1');

$fake->delay(endpoint => '/cgi-bin/qrcode/create', ms => 2000, times => 1);
$res = qrcode($ng1, '/qrcode-slow', 'slow');
is($res->{status}, 504, 'no answer within wechat_api_timeout: 504');
is($res->{json}{error}, 'timeout', 'error: timeout');
cmp_ok($res->{elapsed}, '<', 1.5, "answered at the deadline ($res->{elapsed} s)");
my $log = $ng1->new_log;
like($log, qr/did not answer within/, 'the deadline is logged');
unlike($log, qr/access_token=[^*&" ]/, 'with the token masked in the log line');
$ng1->check_log('errors', errors_ok => 1);

# --- a bad site user: refused before WeChat is asked ---------------------------------

for my $c (["alice\x01admin", 'a user with a control character'],
           ['u' x 257, 'a user of 257 bytes'])
{
    my ($user, $name) = @$c;
    my $before = calls('/cgi-bin/qrcode/create');
    $ng1->new_log;
    # raw: HTTP::Tiny sends no control character in a header
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $ng1->{port}, Proto => 'tcp')
        or die "connect: $!";
    print $s "POST /qrcode-header HTTP/1.0\r\nHost: localhost\r\n"
             . "X-Site-User: $user\r\nContent-Length: 0\r\n\r\n";
    my $answer = do { local $/; <$s> } // '';
    my ($status, $body) = $answer =~ m{^HTTP/1\.\d (\d+).*?\r\n\r\n(.*)}s;
    is($status, 400, "$name: 400") or diag($answer);
    is_deeply(eval { $json->decode($body) }, { error => 'bad request' },
              "$name: the JSON error");
    is(calls('/cgi-bin/qrcode/create'), $before, "$name: WeChat not asked");
    like($ng1->new_log, qr/wechat qrcode: user has a control character/,
         "$name: logged");
}
$res = http_req('POST', $ng1->url('/qrcode-header'),
                headers => { 'X-Site-User' => 'alice' });
is($res->{status}, 200, 'a good user there: 200');

# --- an answer over subrequest_output_buffer_size (64k here) -----------------------

# Chunked, then with a Content-Length: a 502 with the JSON error, one error
# line naming the call and the limit, and the connection answered.
for my $sized (0, 1) {
    my $name = $sized ? 'a 70 kB answer with a Content-Length'
                      : 'a 70 kB chunked answer';
    $fake->fail(endpoint => '/cgi-bin/qrcode/create',
                raw => '{"ticket":"' . ('t' x 70_000) . '","url":"u"}',
                content_length => $sized ? JSON::PP::true : JSON::PP::false);
    $res = qrcode($ng1, '/qrcode', "big$sized");
    is($res->{status}, 502, "$name: 502") or diag($res->{content});
    is_deeply($res->{json}, { error => 'wechat', errcode => -1,
                              errmsg => 'answer too big' },
              "$name: the JSON error says so");
    my @errors = grep { /\[(?:error|crit|alert)\]/ } split /\n/, $ng1->new_log;
    is(scalar @errors, 1, "$name: one error line") or diag(join "\n", @errors);
    my $limit = qr{subrequest_output_buffer_size 65536};
    like($errors[0] // '',
         qr{wechat api: /cgi-bin/qrcode/create answered more than $limit},
         "$name: it names the call and the limit");
    unlike($errors[0] // '', qr/access_token=[^*&" ]/, "$name: token masked");
}
is(qrcode($ng1, '/qrcode', 'afterbig')->{status}, 200,
   'the next QR code after the big answers: 200');
$ng1->check_log('big answers');

# --- a refused token: one refresh, and the call again -------------------------------

# A token younger than five seconds is kept whatever WeChat says of it, so
# that a caller refused again and again cannot refresh again and again;
# each case below starts with a token older than that ("issued" is in ms).
sub settle {
    my $issued = redis_cmd($redis, 'HGET', "${P}token", 'issued') // 0;
    my $left = $issued / 1000 + 5.5 - time;
    Time::HiRes::sleep($left) if $left > 0;
}

settle();

# Just after a whole second, so that the five seconds measured in whole
# seconds would be six and more: the refresh here issues a token at about
# T0, kept when refused at T0 + 4.5, dropped at T0 + 5.5.
Time::HiRes::sleep(1.05 - (time - int time));
my $t0 = time;
my $before = calls('/cgi-bin/stable_token');
$fake->fail(endpoint => '/cgi-bin/qrcode/create', errcode => 40001, times => 1);
is(qrcode($ng1, '/qrcode', 'after40001')->{status}, 200,
   '40001: refreshed and called again');
is(calls('/cgi-bin/stable_token'), $before + 1, 'with exactly one refresh');
# the ages from the token's own "issued": on a busy machine the refresh
# can store it well after T0
$t0 = (redis_cmd($redis, 'HGET', "${P}token", 'issued') // 1000 * $t0) / 1000;

for my $age (4.5, 5.5) {
    my $wait = $t0 + $age - time;
    Time::HiRes::sleep($wait) if $wait > 0;
    $before = calls('/cgi-bin/stable_token');
    $fake->fail(endpoint => '/cgi-bin/qrcode/create', errcode => 40001,
                times => 1);
    is(qrcode($ng1, '/qrcode', "young$age")->{status}, 200,
       "a token ${age} s old refused: the call made again");
    is(calls('/cgi-bin/stable_token') - $before, $age < 5 ? 0 : 1,
       $age < 5 ? 'younger than 5 s: kept' : 'older than 5 s: refreshed');
}

# The token expires at WeChat: 20 requests at once over two nodes all fail
# with it, and the compare-and-delete lets only one of them refresh.
settle();
$fake->expire_token(appid => $appid);
$before = calls('/cgi-bin/stable_token');
@answers = at_once(map { ($_ % 2 ? $ng1 : $ng2)->url("/qrcode?user=e$_") }
                   1 .. 20);
is(scalar(grep { $_->{status} == 200 } @answers), 20,
   'an expired token: all 20 recover');
is(calls('/cgi-bin/stable_token'), $before + 1, 'with one refresh, not a storm');
isnt(redis_cmd($redis, 'HGET', "${P}token", 'value'), $stored,
     'a new token in Redis');

# Ahead of expiry: a token with less than five minutes left is refreshed by
# the first caller that finds it so (new workers, with nothing cached).
redis_cmd($redis, 'PEXPIRE', "${P}token", 200_000);
$ng2->reload;
sleep 1;
$before = calls('/cgi-bin/stable_token');
is(qrcode($ng2, '/qrcode', 'ahead')->{status}, 200, 'a QR code near expiry');
is(calls('/cgi-bin/stable_token'), $before + 1, 'refreshed ahead of expiry');
ok(redis_cmd($redis, 'PTTL', "${P}token") > 1000_000, 'for its whole life again');

# --- classic tokens, and a token another service keeps ------------------------------

$before = calls('/cgi-bin/token');
is(qrcode($ng1, '/qrcode-classic', 'cl')->{status}, 200, 'classic token');
is(calls('/cgi-bin/token'), $before + 1, 'from /cgi-bin/token');

my $kept = $fake->access_token(appid => $kept_id);
redis_cmd($redis, 'SET', 'kept:token', $kept);
$before = calls('/cgi-bin/token') + calls('/cgi-bin/stable_token');
is(qrcode($ng1, '/qrcode-kept', 'kp')->{status}, 200,
   'a token kept by another service');
is(calls('/cgi-bin/token') + calls('/cgi-bin/stable_token'), $before,
   'read, never fetched');

# --- the API proxy for the business app ---------------------------------------------

# A token refused again right after its refresh is not dropped again: the
# call is made once more with it, and fails as WeChat says.
$fake->fail(endpoint => '/cgi-bin/getcallbackip', errcode => 40001,
            times => 4);
$before = calls('/cgi-bin/stable_token');
for (1 .. 2) {
    $res = http_req('GET', $ng1->url('/wechat-api/cgi-bin/getcallbackip'));
    is($json->decode($res->{content})->{errcode}, 40001,
       'proxy: refused again and again');
}
ok(calls('/cgi-bin/stable_token') <= $before + 1,
   'proxy: no refresh after refresh (' . (calls('/cgi-bin/stable_token') - $before) . ')');

$fake->user(appid => $appid, openid => 'oProxied', nickname => 'Proxy');
for my $name ('access_token', 'ACCESS_TOKEN', 'access%5Ftoken', '%61ccess_token')
{
    $res = http_req('GET', $ng1->url("/wechat-api/cgi-bin/user/info?openid=o1&$name=A"));
    is($res->{status}, 400, "proxy: the app's own $name is refused");
}

$res = http_req('GET', $ng1->url('/wechat-api/cgi-bin/user/info'),
                query => { openid => 'oProxied', lang => 'zh_CN' });
is($res->{status}, 200, 'proxy: user/info');
my $info = $json->decode($res->{content});
is($info->{openid}, 'oProxied', "proxy: WeChat's answer");

settle();
$before = calls('/cgi-bin/stable_token');
$fake->fail(endpoint => '/cgi-bin/user/info', errcode => 40001, times => 1);
$res = http_req('GET', $ng1->url('/wechat-api/cgi-bin/user/info'),
                query => { openid => 'oProxied' });
is($json->decode($res->{content})->{openid}, 'oProxied',
   'proxy: a refused token refreshed, the call made again');
is(calls('/cgi-bin/stable_token'), $before + 1, 'proxy: one refresh');

$res = http_req('POST', $ng1->url('/wechat-api/cgi-bin/message/custom/send'),
                body => $json->encode({ touser => 'oProxied', msgtype => 'text',
                                        text => { content => '你好' } }));
is($json->decode($res->{content})->{errcode}, 0, 'proxy: a POST');
my ($msg) = grep { ($_->{content} // '') eq '你好' } @{ $fake->messages('oProxied') };
ok($msg, 'proxy: the body reached WeChat');

$res = http_req('GET', $ng1->url('/wechat-api/cgi-bin/user/info'),
                query => { openid => 'no openid' });
is($res->{status}, 200, "proxy: WeChat's errors as WeChat answered them");
is($json->decode($res->{content})->{errcode}, 40003, 'errcode 40003');

# --- the bind flow, driven by the fake's scan of the module's ticket ---------------

$fake->account(appid => $appid, callback => $ng1->url('/wx'));
$q = qrcode($ng1, '/qrcode', 'scanner')->{json};
my $scan = $fake->scan(appid => $appid, ticket => $q->{ticket},
                       openid => 'oScanner', subscribed => JSON::PP::false);
is($scan->{event}, 'subscribe', 'the fake pushes subscribe for a new follower');
is($scan->{reply}{Content}, '绑定成功', 'the user sees 绑定成功 in WeChat');
$res = http_req('GET', $ng2->url('/poll'),
                query => { scene => $q->{scene}, token => $q->{token} });
is($json->decode($res->{content})->{status}, 'bound', 'the page sees bound');

# --- metrics, and Redis away ---------------------------------------------------------

my $status = http_req('GET', $ng1->url('/status'))->{content};
like($status, qr/^wechat_api_calls_total\{endpoint="qrcode_create",result="ok"\} [1-9]/m,
     'metrics: qrcode/create calls');
like($status, qr/^wechat_api_calls_total\{endpoint="qrcode_create",result="errcode"\} [1-9]/m,
     'metrics: WeChat errors');
like($status, qr/^wechat_token_refreshes_total\{outcome="ok"\} [1-9]/m,
     'metrics: token refreshes');
like($status, qr/^wechat_token_age_seconds \d+$/m, 'metrics: token age');

WxTest::stop_redis($redis);
$res = qrcode($ng1, '/qrcode-classic', 'noredis');
is($res->{status}, 503, 'Redis away: 503') or diag($res->{content});
is($res->{json}{error}, 'unavailable', 'error: unavailable');

$ng1->check_log('the end', errors_ok => 1);
unlike($ng1->log_text . $ng2->log_text, qr/\[alert\]|\[crit\]|exited on signal/,
       'no worker crashed');

done_testing;
