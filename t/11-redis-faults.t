# Redis faults: stopped, hung (SIGSTOP), back again, and clients that leave
# while their command is in flight.  Polls get 503; pushes still reach the
# business upstream within WeChat's budget; nginx recovers by itself.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP;
use Test::More;
use WxTest;

my $token = 'faultToken1';
my $redis = start_redis();
my $app = start_upstream(reply => 'app-answer');

my $ng = start_nginx(http => <<"EOF");
    wechat_redis 127.0.0.1:$redis->{port};
    wechat_qrcode_confirm off;     # scans resolve at once; t/21 confirms
    wechat_redis_timeout 500ms;
    wechat_redis_connect_timeout 500ms;

    server {
        listen 127.0.0.1:PORT;

        wechat_appid wxfaults;
        wechat_callback_token $token;

        location = /wx {
            wechat_callback;
            wechat_pass \@app;
        }

        location = /wx-nopass {
            wechat_callback;
        }

        location = /qrcode {
            wechat_scene_user \$arg_user;
            wechat_qrcode bind;
        }

        location = /poll {
            wechat_poll;
        }

        location \@app {
            proxy_pass http://127.0.0.1:$app->{port};
            proxy_set_header X-WeChat-Resolution \$wechat_resolution;
        }
    }
EOF

my $json = JSON::PP->new;

sub qrcode { http_req('POST', $ng->url('/qrcode?user=u1')) }

sub scan_push {
    my ($path, $scene) = @_;
    return send_push($ng, $path, $token,
                     event_xml(from => 'oFault', event => 'SCAN', key => $scene));
}

wait_until('the Redis connection', sub { qrcode()->{status} == 200 }, 20);
my $res = qrcode();
is($res->{status}, 200, 'redis up: qrcode');
my $q = $json->decode($res->{content});

# --- Redis stopped ---------------------------------------------------------

WxTest::stop_redis($redis);

$res = qrcode();
is($res->{status}, 503, 'redis down: qrcode 503');
is($res->{content}, '{"error":"unavailable"}', 'redis down: JSON error');

$res = http_req('GET', $ng->url('/poll'), query => $q);
is($res->{status}, 503, 'redis down: poll 503');

my $before = scalar $app->{requests}->();
$res = scan_push('/wx', $q->{scene});
is($res->{status}, 200, 'redis down: push answered');
is($res->{content}, 'app-answer', 'redis down: push passed upstream');
my @req = $app->{requests}->();
is(scalar @req, $before + 1, 'upstream received the scan');
like($req[-1], qr/^X-WeChat-Resolution: unavailable\r$/m,
     '$wechat_resolution is unavailable');

$res = scan_push('/wx-nopass', $q->{scene});
is($res->{content}, 'success', 'no wechat_pass: success');
$ng->check_log('redis down', errors_ok => 1,
               log => [qr/\[error\].*scan not resolved, redis unavailable: appid "wxfaults" openid "oFault" event "SCAN" scene "$q->{scene}"/]);

# --- and back, with no nginx restart -----------------------------------------

WxTest::restart_redis($redis);
wait_until('reconnect', sub { qrcode()->{status} == 200 }, 20);
pass('qrcode works again after Redis is back');
$q = $json->decode(qrcode()->{content});
$res = scan_push('/wx', $q->{scene});
like($res->{content}, qr/绑定成功/, 'scan resolved again');
$ng->check_log('recovery', errors_ok => 1);

# --- Redis hung --------------------------------------------------------------

kill 'STOP', $redis->{pid};

# a client that gives up while its command is in flight
$res = http_req('GET', $ng->url('/poll'), query => $q, timeout => 0.2);
is($res->{status}, 599, 'client left mid-command');
sleep 1;

$res = http_req('GET', $ng->url('/poll'), query => $q);
is($res->{status}, 503, 'redis hung: poll 503');
cmp_ok($res->{elapsed}, '<', 2, 'redis hung: poll answered within budget');

$res = scan_push('/wx', $q->{scene});
is($res->{content}, 'app-answer', 'redis hung: push passed upstream');
cmp_ok($res->{elapsed}, '<', 4.5, 'redis hung: push answered within 4.5 s');


kill 'CONT', $redis->{pid};
wait_until('recovery after SIGCONT', sub { qrcode()->{status} == 200 }, 20);
pass('answers again after SIGCONT');

# Redis stops with the connection ready: the script is sent, and may yet
# run when Redis wakes, so the app must not take the scan as unbound.
$q = $json->decode(qrcode()->{content});
kill 'STOP', $redis->{pid};
$res = scan_push('/wx', $q->{scene});
is($res->{content}, 'app-answer', 'redis stopped mid-command: push passed');
@req = $app->{requests}->();
like($req[-1], qr/^X-WeChat-Resolution: unknown\r$/m,
     '$wechat_resolution is unknown when the command timed out');
kill 'CONT', $redis->{pid};
wait_until('recovery after SIGCONT', sub { qrcode()->{status} == 200 }, 20);
$ng->check_log('redis hung', errors_ok => 1,
               log => [qr/command timed out after 500ms/]);

ok(kill(0, $ng->pid), 'nginx master alive');
unlike($ng->log_text, qr/signal \d+ \(core dumped\)|exited on signal/,
       'no worker crashed');

done_testing;
