# Long polls: a poll on a pending scene waits until the scene changes or
# wechat_poll_timeout passes, woken through Redis pub/sub on this node or
# another; clients that leave free their wait; a Redis restart and a reload
# leave no poll unanswered; the server-sent events form.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);
use WxTest;

my $token = 'longToken1';
my $appid = 'wxlongpoll';
my $P = "wx:{$appid}:";

# persistent, so that a restart keeps the scenes
my $data = tempdir('wechat-redis-data-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $redis = start_redis(args => [ '--dir', $data, '--appendonly', 'yes',
                                  '--appendfsync', 'always' ]);

my $conf = <<"EOF";
    wechat_redis 127.0.0.1:$redis->{port};
    wechat_qrcode_confirm off;     # scans resolve at once; t/21 confirms
    wechat_redis_timeout 500ms;
    wechat_redis_connect_timeout 500ms;

    server {
        listen 127.0.0.1:PORT;

        wechat_appid $appid;
        wechat_callback_token $token;
        wechat_qrcode_rate 1000/s;      # 100 scenes at once below

        location = /wx { wechat_callback; }
        location = /qrcode { wechat_scene_user \$arg_user; wechat_qrcode bind; }
        location = /poll { wechat_poll; }
        location = /poll1s { wechat_poll_timeout 1s; wechat_poll; }
        location = /poll0 { wechat_poll_timeout 0; wechat_poll; }
        location = /sse {
            wechat_poll_timeout 3s;
            wechat_poll_heartbeat 300ms;
            wechat_poll;
        }
        location = /status { wechat_status; }
    }
EOF

my $ng = start_nginx(http => $conf);
my $ng2 = start_nginx(http => $conf);

my $json = JSON::PP->new->utf8;

sub qrcode {
    my ($node, $user) = @_;
    my $res = http_req('POST', $node->url("/qrcode?user=$user"));
    return $json->decode($res->{content});
}

sub scan {
    my ($scene, $openid) = @_;
    return send_push($ng, '/wx', $token,
        event_xml(from => $openid, event => 'SCAN', key => $scene));
}

sub metric {
    my ($node, $name) = @_;
    my $text = http_req('GET', $node->url('/status'))->{content};
    return $text =~ /^\Q$name\E (\d+)$/m ? $1 : undef;
}

sub waiting_is {
    my ($node, $n, $what) = @_;
    my $ok = eval {
        wait_until($what, sub {
            (metric($node, 'wechat_polls_waiting') // -1) == $n }, 10);
    };
    ok($ok, $what);
}

wait_until('Redis ready', sub {
    http_req('POST', $ng->url('/qrcode?user=x'))->{status} == 200 }, 20);

# --- wake-up on the same node ------------------------------------------------

my $q = qrcode($ng, 'alice');
my $p = poll_start($ng, '/poll', $q);
waiting_is($ng, 1, 'same node: the poll waits');
sleep 0.2;
poll_read($p, 0.3);
ok(!$p->{eof}, 'same node: no answer while pending');
my $t0 = time;
like(scan($q->{scene}, 'oAlice')->{content}, qr/绑定成功/, 'scan resolved');
poll_read($p, 5);
is($p->{status}, 200, 'same node: poll answered');
is($p->{body}, '{"status":"bound","openid":"oAlice"}', 'same node: bound');
cmp_ok(time - $t0, '<', 1, 'same node: woken at once');
waiting_is($ng, 0, 'same node: nothing waits afterwards');
is(metric($ng, 'wechat_poll_wakeups_total'), 1, 'a wake-up counted');
is(metric($ng, 'wechat_pubsub_channels'), 0, 'channel unsubscribed');
is(redis_cmd($redis, 'PUBSUB', 'NUMSUB', "${P}resolved:$q->{scene}")->[1], 0,
   'Redis has no subscriber left');

# --- a poll on a resolved scene answers at once ------------------------------

$p = poll_start($ng, '/poll', $q);
poll_read($p, 5);
is($p->{body}, '{"status":"bound","openid":"oAlice"}', 'resolved: answer');
cmp_ok($p->{elapsed}, '<', 1, 'resolved: at once');

# --- across nodes ------------------------------------------------------------

$q = qrcode($ng2, 'bob');
$p = poll_start($ng2, '/poll', $q);
waiting_is($ng2, 1, 'other node: the poll waits');
sleep 0.2;
$t0 = time;
scan($q->{scene}, 'oBob');          # through the first node
poll_read($p, 5);
is($p->{body}, '{"status":"bound","openid":"oBob"}', 'other node: bound');
cmp_ok(time - $t0, '<', 1, 'other node: woken at once');

# --- the timeout, and 0 ------------------------------------------------------

$q = qrcode($ng, 'carol');
$p = poll_start($ng, '/poll1s', $q);
poll_read($p, 5);
is($p->{body}, '{"status":"pending"}', 'timeout: pending');
cmp_ok($p->{elapsed}, '>=', 0.9, 'timeout: after wechat_poll_timeout');
cmp_ok($p->{elapsed}, '<', 2, 'timeout: not much later');
is(metric($ng, 'wechat_poll_timeouts_total'), 1, 'a timeout counted');

$p = poll_start($ng, '/poll0', $q);
poll_read($p, 5);
is($p->{body}, '{"status":"pending"}', 'timeout 0: pending');
cmp_ok($p->{elapsed}, '<', 0.5, 'timeout 0: at once');

# several polls on one scene share its channel
my @ps = map { poll_start($ng, '/poll', $q) } 1 .. 3;
waiting_is($ng, 3, 'three polls on one scene');
is(metric($ng, 'wechat_pubsub_channels'), 1, 'one channel for them');
scan($q->{scene}, 'oCarol');
for (@ps) {
    poll_read($_, 5);
    is($_->{body}, '{"status":"bound","openid":"oCarol"}', 'all woken');
}

# the pub/sub connection, idle while polls only wait, has TCP keepalive on,
# so a Redis host that dies without a word is noticed (/proc/net/tcp: the
# connection to Redis, established, its keepalive timer running)
{
    my $port = sprintf '%04X', $redis->{port};
    open my $tcp, '<', '/proc/net/tcp' or die;
    my $kept = grep { /^\s*\d+: [0-9A-F]+:[0-9A-F]+ 0100007F:$port 01 \S+ 02:/ }
               <$tcp>;
    cmp_ok($kept, '>=', 1, 'the pub/sub connection has TCP keepalive on');
}

# --- a client that leaves ----------------------------------------------------

$q = qrcode($ng, 'dave');
$p = poll_start($ng, '/poll', $q);
waiting_is($ng, 1, 'disconnect: the poll waits');
close $p->{sock};
waiting_is($ng, 0, 'disconnect: the wait is freed');
is(metric($ng, 'wechat_pubsub_channels'), 0, 'disconnect: channel left');
$ng->check_log('wake-ups, timeouts, disconnects');

# --- the event stream --------------------------------------------------------

$q = qrcode($ng, 'erin');
$p = poll_start($ng, '/sse', $q, Accept => 'text/event-stream');
sleep 0.8;
poll_read($p, 0.1);
is($p->{status}, 200, 'sse: 200');
like($p->{buf}, qr{^Content-Type: text/event-stream\r$}mi, 'sse: type');
like($p->{buf}, qr{^Cache-Control: no-store\r$}mi, 'sse: no-store');
like($p->{body}, qr/^data: \{"status":"pending"\}\n\n/, 'sse: first event');
like($p->{body}, qr/\n\n:\n\n/, 'sse: a heartbeat comment');
scan($q->{scene}, 'oErin');
poll_read($p, 5);
ok($p->{eof}, 'sse: the stream ends with the final status');
my @events = $p->{body} =~ /^data: (.*)$/mg;
is_deeply(\@events, [ '{"status":"pending"}',
                      '{"status":"bound","openid":"oErin"}' ],
          'sse: one event per status');

$q = qrcode($ng, 'erin2');
$p = poll_start($ng, '/sse', $q, Accept => 'text/event-stream');
poll_read($p, 6);
ok($p->{eof}, 'sse: ends at the timeout');
@events = $p->{body} =~ /^data: (.*)$/mg;
is_deeply(\@events, [ '{"status":"pending"}' ], 'sse: no event unchanged');
$ng->check_log('sse');

# --- a Redis restart while 100 polls wait ------------------------------------

my @scenes = map { qrcode($ng, "user$_") } 1 .. 100;
@ps = map { poll_start($ng, '/poll', $_) } @scenes;
waiting_is($ng, 100, 'restart: 100 polls wait');

# half of them resolved with no message: only a read after the reconnect
# can see it
for my $i (0 .. 49) {
    redis_cmd($redis, 'HSET', "${P}scene:$scenes[$i]{scene}",
              'status', 'bound', 'openid', "oQuiet$i");
}

WxTest::stop_redis($redis);
sleep 0.3;
WxTest::restart_redis($redis);

# a slow restart lets the backoff grow: its attempts after 0.1, 0.3, 0.7,
# 1.5, 3.1 and 6.3 s (each up to half as much later) can pass 10 s
wait_until('resubscribed', sub {
    (redis_cmd($redis, 'PUBSUB', 'NUMSUB',
               "${P}resolved:$scenes[99]{scene}")->[1] // 0) == 1 }, 20);

wait_until('commands again', sub {
    http_req('POST', $ng->url('/qrcode?user=x'))->{status} == 200 }, 10);
my $resolved = grep { scan($scenes[$_]{scene}, "oLoud$_")->{content}
                      =~ /绑定成功/ } 50 .. 99;
is($resolved, 50, 'restart: the other 50 scanned and resolved');

my $right = 0;
for my $i (0 .. 99) {
    poll_read($ps[$i], 5);
    my $openid = $i < 50 ? "oQuiet$i" : "oLoud$i";
    $right++ if $ps[$i]{body} eq qq({"status":"bound","openid":"$openid"});
}
is($right, 100, 'restart: all 100 polls answered bound');
waiting_is($ng, 0, 'restart: nothing waits');
cmp_ok(metric($ng, 'wechat_pubsub_reconnects_total'), '>=', 1,
       'a pub/sub reconnect counted');
$ng->check_log('redis restart', errors_ok => 1,
               log => [qr/wechat pubsub: connection to .* lost/]);

# --- a Redis that hangs while polls only wait --------------------------------

# nothing is due from Redis while polls only wait: the probe asks, and its
# reply not coming within wechat_redis_timeout drops the connection
$q = qrcode($ng, 'hung');
$p = poll_start($ng, '/poll', $q);
waiting_is($ng, 1, 'hung: the poll waits');
my $reconnects = metric($ng, 'wechat_pubsub_reconnects_total');
kill 'STOP', $redis->{pid};
my $logged = length $ng->log_text;
my $noticed = eval {
    wait_until('the probe', sub {
        substr($ng->log_text, $logged) =~ /no reply in time/ }, 9);
};
kill 'CONT', $redis->{pid};
ok($noticed, 'hung: a Redis that stops answering is noticed');
wait_until('reconnected', sub {
    metric($ng, 'wechat_pubsub_reconnects_total') > $reconnects }, 10);
wait_until('resubscribed', sub {
    (redis_cmd($redis, 'PUBSUB', 'NUMSUB',
               "${P}resolved:$q->{scene}")->[1] // 0) == 1 }, 10);
scan($q->{scene}, 'oHung');
poll_read($p, 5);
is($p->{body}, '{"status":"bound","openid":"oHung"}',
   'hung: the poll is answered after the reconnect');
$ng->check_log('hung redis', errors_ok => 1,
               log => [qr/wechat pubsub: no reply in time/]);

# --- a reload while polls wait -----------------------------------------------

sub workers {
    my ($node) = @_;
    my $master = $node->pid;
    return grep { /^\d+$/ } map { s/\s+//gr }
           `ps -o pid= --ppid $master`;
}

my @old = workers($ng);
$q = qrcode($ng, 'frank');
@ps = (poll_start($ng, '/poll', $q),
       poll_start($ng, '/sse', $q, Accept => 'text/event-stream'));
waiting_is($ng, 2, 'reload: polls wait');
$t0 = time;
$ng->reload;
poll_read($_, 5) for @ps;
is($ps[0]{body}, '{"status":"pending"}', 'reload: answered pending');
ok($ps[1]{eof}, 'reload: event stream ended');
cmp_ok(time - $t0, '<', 2, 'reload: answered promptly');
ok(eval { wait_until('old worker gone',
                     sub { !grep { kill 0, $_ } @old }, 5) },
   'reload: the old worker exited long before the timeout');
$ng->check_log('reload');

# --- Redis away: a poll that cannot read at all gets 503 at once -------------

WxTest::stop_redis($redis);
$p = poll_start($ng, '/poll', $q);
poll_read($p, 5);
is($p->{status}, 503, 'redis down: 503');
cmp_ok($p->{elapsed}, '<', 1, 'redis down: at once');
waiting_is($ng, 0, 'redis down: nothing waits');
$ng->check_log('redis down', errors_ok => 1);

done_testing;
