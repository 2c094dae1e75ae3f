# wechat_status: counters shared by all workers, in the Prometheus text
# format, kept across reloads.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP;
use Test::More;
use WxTest;

my $token = 'statusTok1';
my $redis = start_redis();
my $app = start_upstream(reply => 'ok');

my $ng = start_nginx(workers => 2, http => <<"EOF");
    wechat_redis 127.0.0.1:$redis->{port};
    wechat_qrcode_confirm off;     # scans resolve at once; t/21 confirms

    server {
        listen 127.0.0.1:PORT;
        wechat_appid wxstatus;
        wechat_callback_token $token;

        location = /wx { wechat_callback; wechat_pass \@app; }
        location = /qrcode { wechat_scene_user \$arg_user; wechat_qrcode bind; }
        location = /poll { wechat_poll; }
        location = /status { allow 127.0.0.1; deny all; wechat_status; }
        location \@app { proxy_pass http://127.0.0.1:$app->{port}; }
    }
EOF

my $json = JSON::PP->new;

sub metrics {
    my $res = http_req('GET', $ng->url('/status'));
    is($res->{status}, 200, 'status answered');
    like($res->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4},
         'Prometheus text format');
    my %m;
    for my $line (split /\n/, $res->{content}) {
        next if $line =~ /^# (HELP|TYPE) \w+ /;
        like($line, qr/^\w+(\{\w+="[^"]*"(,\w+="[^"]*")*\})? \d+(\.\d+)?$/, "line: $line")
            or next;
        my ($k, $v) = $line =~ /^(\S+) (\S+)$/;
        $m{$k} = $v;
    }
    return \%m;
}

sub scan {
    my ($scene, $openid, %opt) = @_;
    return send_push($ng, '/wx', $token,
        event_xml(from => $openid, event => 'SCAN', key => $scene,
                  time => $opt{time}));
}

my $q1 = $json->decode(http_req('POST', $ng->url('/qrcode?user=u1'))->{content});
my $q2 = $json->decode(http_req('POST', $ng->url('/qrcode?user=u2'))->{content});
my $t = int time;
scan($q1->{scene}, 'o1', time => $t) for 1 .. 3;     # bound, then 2 retries
scan($q2->{scene}, 'o1');                            # conflict
scan('wxs_' . ('0' x 32), 'o3');                     # expired
send_push($ng, '/wx', $token, text_xml());           # passed
send_push($ng, '/wx', 'wrong', text_xml());          # bad signature
http_req('GET', $ng->url('/poll'), query => $q1);    # bound
http_req('GET', $ng->url('/poll'), query => { scene => $q2->{scene}, token => 'x' });
$ng->new_log;

my ($version) = do {
    open my $fh, '<', "$ROOT/src/ngx_http_wechat_version.h" or die $!;
    map { /^#define NGX_HTTP_WECHAT_VERSION\s+"([^"]+)"/ ? $1 : () } <$fh>;
};
like($version, qr/^\d+\.\d+\.\d+$/, "the version ($version)");

my $m = metrics();
is($m->{"wechat_build_info{version=\"$version\"}"}, 1,
   'the version in the status output');
is($m->{'wechat_pushes_total{outcome="bound"}'}, 3, 'bound pushes (with retries)');
is($m->{'wechat_dedup_hits_total'}, 2, 'de-dup hits');
is($m->{'wechat_pushes_total{outcome="conflict"}'}, 1, 'conflicts');
is($m->{'wechat_pushes_total{outcome="expired"}'}, 1, 'expired');
is($m->{'wechat_pushes_total{outcome="passed"}'}, 1, 'passed');
is($m->{'wechat_pushes_rejected_total{reason="signature"}'}, 1,
   'signature failures');
is($m->{'wechat_polls_total{status="bound"}'}, 1, 'polls: bound');
is($m->{'wechat_polls_total{status="expired"}'}, 1, 'polls: wrong token');
is($m->{'wechat_polls_waiting'}, 0, 'no poll waiting');
is($m->{'wechat_redis_connected_workers'}, 2, 'every worker connected');
my $count = $m->{'wechat_redis_command_duration_seconds_count'};
cmp_ok($count, '>=', 9, "Redis round trips observed ($count)");
is($m->{'wechat_redis_command_duration_seconds_bucket{le="+Inf"}'}, $count,
   'the +Inf bucket holds them all');

$ng->reload;
sleep 1;
my $after = metrics();
is($after->{'wechat_pushes_total{outcome="bound"}'}, 3,
   'counters survive a reload');

my @starts = $ng->log_text
    =~ m{\[notice\] .*ngx_http_wechat_module/\Q$version\E \(built for nginx/[\d.]+, hiredis \d+\.\d+\)}g;
is(scalar @starts, 1, 'the version logged once, at start, not at reload');

WxTest::stop_redis($redis);
http_req('GET', $ng->url('/poll'), query => $q1) for 1 .. 2;
wait_until('workers see Redis gone', sub {
    metrics()->{'wechat_redis_connected_workers'} == 0 }, 10);
$m = metrics();
cmp_ok($m->{'wechat_polls_total{status="unavailable"}'}, '>=', 1,
       'polls: unavailable');
$ng->check_log('status', errors_ok => 1);

# the workers go on trying the stopped Redis, with backoff: under load an
# attempt can fall between the check above and this case
run_case($ng, { name => 'status refuses POST', method => 'POST',
                path => '/status', status => 405,
                allow => [ qr/connect to "127\.0\.0\.1:$redis->{port}"/ ] });

done_testing;
