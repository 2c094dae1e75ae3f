# A hostile or broken Redis (t/lib/WxHostile.pm, between nginx and a real
# redis-server): a reply nobody asked for, a SUBSCRIBE answered short, a
# malformed message, an error or a nil where an array is due, an endless
# bulk string, replies split at every byte, silence, and a sentinel whose
# +switch-master message is one element long.  In every case the worker
# lives on, the connection is dropped and made again, the requests in
# flight get their documented answer, and nothing is bound twice.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);
use WxTest;
use WxHostile;

my $token = 'hostileToken1';
my $appid = 'wxhostile';
my $P = "wx:{$appid}:";

my $redis = start_redis();
my $hostile = WxHostile->start(upstream => $redis->{port});
my $app = start_upstream(reply => 'app-answer');

sub conf {
    my ($redis_directive) = @_;
    return <<"EOF";
    $redis_directive
    wechat_redis_timeout 500ms;
    wechat_redis_connect_timeout 500ms;

    server {
        listen 127.0.0.1:PORT;

        wechat_appid $appid;
        wechat_callback_token $token;

        location = /wx { wechat_callback; wechat_pass \@app; }
        location = /qrcode {
            wechat_qrcode_confirm off;  # binds at once; t/21 confirms
            wechat_scene_user \$arg_user;
            wechat_qrcode bind;
        }
        location = /poll { wechat_poll_timeout 0; wechat_poll; }
        location = /wait { wechat_poll_timeout 5s; wechat_poll; }
        location = /status { wechat_status; }

        location \@app {
            proxy_pass http://127.0.0.1:$app->{port};
            proxy_set_header X-WeChat-Resolution \$wechat_resolution;
        }
    }
EOF
}

my $ng = start_nginx(http => conf("wechat_redis 127.0.0.1:$hostile->{port};"));
my $json = JSON::PP->new->utf8;
my $resolved = 0;
my $worker;

sub qrcode {
    my ($node, $user) = @_;
    return http_req('POST', $node->url("/qrcode?user=$user"));
}

sub scan {
    my ($node, $scene, $openid) = @_;
    my $res = send_push($node, '/wx', $token,
                        event_xml(from => $openid, event => 'SCAN',
                                  key => $scene));
    $resolved++ if $res->{content} =~ /绑定成功/;
    return $res;
}

# the worker; under valgrind nginx is one process
sub worker {
    my ($node) = @_;
    my $master = $node->pid;
    my ($pid) = `ps -o pid= --ppid $master` =~ /(\d+)/;
    return $pid // $master;
}

# memcheck's own memory would blur the worker's
sub grows_little {
    my ($before, $name) = @_;
    return if $WxTest::Nginx::VALGRIND;
    cmp_ok(rss_kb($worker) - $before, '<', 4096, "$name: no memory grown");
}

sub rss_kb {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/status" or return 0;
    my ($kb) = join('', <$fh>) =~ /^VmRSS:\s+(\d+)/m;
    return $kb;
}

sub metric {
    my ($node, $name) = @_;
    my $text = http_req('GET', $node->url('/status'))->{content};
    return $text =~ /^\Q$name\E (\d+)$/m ? $1 : 0;
}

# Redis answers through the module again: a scene issued, scanned, bound.
sub binds {
    my ($node, $name, $user) = @_;
    wait_until("$name: Redis again",
               sub { qrcode($node, 'probe')->{status} == 200 }, 15);
    my $q = $json->decode(qrcode($node, $user)->{content});
    like(scan($node, $q->{scene}, "o$user")->{content}, qr/绑定成功/,
         "$name: a scan binds afterwards");
    my $res = http_req('GET', $node->url('/poll'), query => $q);
    is($res->{content}, qq({"status":"bound","openid":"o$user"}),
       "$name: and the poll sees it");
}

# the worker that started is the one that answers, and the log says so
$worker = worker($ng);

sub lives {
    my ($node, $name, %opt) = @_;
    is(worker($node), $worker, "$name: the worker lives");
    $node->check_log($name, errors_ok => 1, log => $opt{log});
    unlike($node->log_text, qr/exited on signal/, "$name: no worker died");
}

# a poll on a pending scene, waiting on pub/sub
sub waiting_poll {
    my ($node, $user) = @_;
    my $q = $json->decode(qrcode($node, $user)->{content});
    my $p = poll_start($node, '/wait', $q);
    wait_until('the poll waits', sub {
        metric($node, 'wechat_polls_waiting') == 1
        && (redis_cmd($redis, 'PUBSUB', 'NUMSUB',
                      "${P}resolved:$q->{scene}")->[1] // 0) == 1 }, 10);
    return ($q, $p);
}

binds($ng, 'start', 'u0');
lives($ng, 'start');

# --- the command connection ---------------------------------------------------

# one reply more than asked for, after a poll's HMGET
$hostile->play('extra_after_hmget');
my $q = $json->decode(qrcode($ng, 'u1')->{content});
my $res = http_req('GET', $ng->url('/poll'), query => $q);
is($res->{status}, 200, 'extra reply: the poll it followed is answered');
$hostile->wait_played;
binds($ng, 'extra reply', 'u1');
lives($ng, 'extra reply',
      log => [qr/\[error\].*wechat redis: "127\.0\.0\.1:\d+" sent a reply nobody asked for, dropping the connection/]);

# a reply to no command at all
$hostile->play('unsolicited');
$hostile->wait_played;
binds($ng, 'unsolicited', 'u2');
lives($ng, 'unsolicited', log => [qr/sent a reply nobody asked for/]);

# an error where a script's array is due: refused, the connection kept
$hostile->play('error_eval');
$res = qrcode($ng, 'u3');
is($res->{status}, 503, 'error reply: qrcode 503');
is($res->{content}, '{"error":"unavailable"}', 'error reply: the JSON error');
binds($ng, 'error reply', 'u3');
lives($ng, 'error reply', log => [qr/wechat redis: \S+ failed: ERR hostile/]);

# a nil where a script's array is due: the push's claim may have run
$q = $json->decode(qrcode($ng, 'u4')->{content});
$hostile->play('nil_eval');
$res = scan($ng, $q->{scene}, 'ou4');
is($res->{content}, 'app-answer', 'nil reply: the push is passed');
like(($app->{requests}->())[-1], qr/^X-WeChat-Resolution: unknown\r$/m,
     'nil reply: $wechat_resolution is unknown');
binds($ng, 'nil reply', 'u4b');
lives($ng, 'nil reply',
      log => [qr/answered EVALSHA with a reply of an unexpected shape, dropping the connection/]);

# a reply announced as 100 MB and streamed: refused at its header
my $rss = rss_kb($worker);
$hostile->play('endless_hmget');
$q = $json->decode(qrcode($ng, 'u5')->{content});
$res = http_req('GET', $ng->url('/poll'), query => $q);
is($res->{status}, 503, 'endless reply: the poll gets 503');
grows_little($rss, 'endless reply');
binds($ng, 'endless reply', 'u5');
lives($ng, 'endless reply',
      log => [qr/wechat redis: "127\.0\.0\.1:\d+" sent a reply larger than 1 MB, dropping the connection/]);

# every reply split at every byte
$hostile->set('split');
binds($ng, 'split replies', 'u6');
$hostile->clear;
lives($ng, 'split replies');

# a Redis that takes the connection and never answers
$hostile->set('silent');
$res = qrcode($ng, 'u7');
is($res->{status}, 503, 'silent: qrcode 503');
cmp_ok($res->{elapsed}, '<', 2, 'silent: answered within the timeout');
sleep 1.5;
$hostile->clear;
binds($ng, 'silent', 'u7');
# (under memcheck the harness gives connects 30 s: no connect times out)
lives($ng, 'silent', log => [qr/command timed out after 500ms/,
                             $WxTest::Nginx::VALGRIND ? () :
                             qr/wechat redis: connect to "127\.0\.0\.1:\d+" timed out/]);

# --- the pub/sub connection ---------------------------------------------------

for my $case (['short_subscribe', 'SUBSCRIBE answered with one element',
               qr/wechat pubsub: "127\.0\.0\.1:\d+" sent a reply of an unexpected shape, dropping the connection/],
              ['error_subscribe', 'SUBSCRIBE answered with an error',
               qr/wechat pubsub: .* unexpected shape/],
              ['bad_message', 'a message with an integer channel',
               qr/wechat pubsub: .* unexpected shape/],
              ['nil_message', 'a message with a nil channel',
               qr/wechat pubsub: .* unexpected shape/],
              ['short_message', 'a message of one element',
               qr/wechat pubsub: .* unexpected shape/],
              ['big_message', 'a message of 2 GB streamed',
               qr/wechat pubsub: "127\.0\.0\.1:\d+" sent a reply larger than 1 MB, dropping the connection/])
{
    my ($cue, $name, $log) = @$case;
    my $user = "w$cue";
    my ($q, $p);
    $rss = rss_kb($worker);
    my $reconnects = metric($ng, 'wechat_pubsub_reconnects_total');
    $hostile->play($cue);
    if ($cue =~ /subscribe/) {
        # the answer to this poll's SUBSCRIBE is the hostile one
        $q = $json->decode(qrcode($ng, $user)->{content});
        $p = poll_start($ng, '/wait', $q);
    } else {
        ($q, $p) = waiting_poll($ng, $user);
    }
    $hostile->wait_played;
    wait_until("$name: reconnected", sub {
        metric($ng, 'wechat_pubsub_reconnects_total') > $reconnects }, 10);
    grows_little($rss, $name);
    wait_until("$name: subscribed again", sub {
        (redis_cmd($redis, 'PUBSUB', 'NUMSUB',
                   "${P}resolved:$q->{scene}")->[1] // 0) == 1 }, 10);
    like(scan($ng, $q->{scene}, "o$user")->{content}, qr/绑定成功/,
         "$name: the scan binds");
    poll_read($p, 5);
    is($p->{body}, qq({"status":"bound","openid":"o$user"}),
       "$name: the waiting poll is answered");
    lives($ng, $name, log => [$log]);
}

# --- a sentinel ---------------------------------------------------------------

my $sentinel = WxHostile->start(upstream => $redis->{port},
                                master => $redis->{port});
my $ng2 = start_nginx(http => conf("wechat_redis sentinel=127.0.0.1:"
                                   . "$sentinel->{port} master=m1;"));
binds($ng2, 'sentinel', 's1');
$ng2->new_log;
my $worker2 = worker($ng2);
$sentinel->play('short_message');
$sentinel->wait_played;
wait_until('the sentinel asked again', sub {
    $ng2->log_text =~ /wechat sentinel: .* sent a reply of an unexpected shape/ }, 10);
binds($ng2, 'sentinel message of one element', 's2');
is(worker($ng2), $worker2, 'sentinel message of one element: the worker lives');
$ng2->check_log('sentinel', errors_ok => 1,
                log => [qr/wechat sentinel: "127\.0\.0\.1:\d+" sent a reply of an unexpected shape, for "m1"/]);
unlike($ng2->log_text, qr/exited on signal/, 'sentinel: no worker died');

# --- nothing bound twice --------------------------------------------------------

is(redis_cmd($redis, 'XLEN', "${P}resolutions"), $resolved,
   'one resolution per scan that bound');

done_testing;
