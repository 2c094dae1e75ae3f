# The access_token when WeChat's token endpoint fails or is slow: a failed
# refresh starts a back-off kept in Redis for every node (1 s doubling to
# 60 s, less some jitter), in which pages get 503 with retry_after at once
# and WeChat is not asked; a success ends it.  Callers waiting for another's
# refresh wake on its end (pub/sub), not by polling Redis.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);
use WxTest;

plan skip_all => 'node not installed'
    if system('command -v node >/dev/null') != 0;

my $json = JSON::PP->new->utf8->canonical;
my ($appid, $secret) = ('wxbackoff', 'backoffSecret');
my $redis = start_redis();
my $fake = start_fake_wechat(appid => $appid, secret => $secret,
                             token => 'boTok');

my $http = <<"EOF";
    wechat_redis 127.0.0.1:$redis->{port};

    server {
        listen 127.0.0.1:PORT;

        wechat_appid $appid;
        wechat_callback_token boTok;
        wechat_secret $secret;
        wechat_api_pass /wechat-api-upstream;
        wechat_qrcode_rate 1000/s;

        location /wechat-api-upstream/ {
            internal;
            proxy_pass $fake->{url}/;
        }

        location = /login/qrcode {
            wechat_qrcode login;
        }

        location = /status {
            wechat_status;
        }
    }
EOF

my @nodes = (start_nginx(workers => 2, http => $http),
             start_nginx(workers => 2, http => $http));
my $P = "wx:{$appid}:";

sub calls {
    my ($endpoint) = @_;
    return $fake->counts->{$endpoint}{calls} // 0;
}

sub page {
    my ($ng) = @_;
    my $res = http_req('POST', $ng->url('/login/qrcode'));
    $res->{json} = eval { $json->decode($res->{content}) };
    return $res;
}

sub metric {
    my ($ng, $name) = @_;
    my $text = http_req('GET', $ng->url('/status'))->{content};
    return $text =~ /^\Q$name\E (\d+)$/m ? $1 : undef;
}

# A clean account: no token, no back-off, no worker's copy.
sub fresh {
    redis_cmd($redis, 'DEL', "${P}token", "${P}token:lock",
              "${P}token:backoff", "${P}token:failures");
    $fake->reset;
    $_->reload for @nodes;
    sleep 1;
}

# --- the failing endpoint: 100 page loads over 10 s, at most 5 calls --------

subtest 'a failing token endpoint is asked a few times, not per page' => sub {
    fresh();
    $fake->fail(endpoint => '/cgi-bin/stable_token', errcode => 45009,
                times => 0);
    my (%status, $refused, $retry_header);
    for my $i (0 .. 99) {
        my $res = page($nodes[$i % 2]);
        $status{$res->{status}}++;
        if ($res->{status} == 503 && $res->{json}
            && ($res->{json}{error} // '') eq 'wechat')
        {
            $refused++;
            $retry_header //= $res->{headers}{'retry-after'};
            cmp_ok($res->{json}{retry_after}, '>=', 1, 'retry_after >= 1')
                if $refused == 1;
            cmp_ok($res->{json}{retry_after}, '<=', 60, 'retry_after <= 60')
                if $refused == 1;
            is($res->{headers}{'cache-control'}, 'no-store', 'no-store')
                if $refused == 1;
        }
        sleep 0.1;
    }
    note(join ', ', map { "$_: $status{$_}" } sort keys %status);
    my $token_calls = calls('/cgi-bin/stable_token');
    cmp_ok($token_calls, '<=', 5, "$token_calls token calls for 100 pages");
    cmp_ok($token_calls, '>=', 2, 'and WeChat is asked again after a while');
    cmp_ok($refused, '>=', 90, "$refused pages refused at once in the back-off");
    like($retry_header // '', qr/^\d+$/, 'with a Retry-After header');
    is(calls('/cgi-bin/qrcode/create'), 0, 'no QR code was asked for');
    is(($status{502} // 0) + ($refused // 0), 100,
       'every page got 502 (the failed refresh) or 503 (the back-off)');

    my $failures = redis_cmd($redis, 'GET', "${P}token:failures");
    is($failures, $token_calls, 'the failures in a row are counted in Redis');

    my $m = $nodes[0];
    cmp_ok(metric($m, 'wechat_token_backoff_refusals_total') // 0, '>=', 40,
           'refusals counted in the metrics');
    cmp_ok(metric($m, 'wechat_token_backoff_seconds') // -1, '>=', 0,
           'the back-off gauge is reported');
    $_->new_log for @nodes;
};

# --- the back-off doubles, with jitter, and a success ends it -------------------

subtest 'back-off: 1 s doubling, jittered, reset on success' => sub {
    # its windows are a second long: memcheck's cold workers take longer
    plan skip_all => 'windows of a second, too short under memcheck'
        if $WxTest::Nginx::VALGRIND;
    fresh();
    $fake->fail(endpoint => '/cgi-bin/stable_token', errcode => -1, times => 0);
    my @windows;
    my $failed = metric($nodes[0], 'wechat_token_refresh_failures') // 0;
    for my $n (1 .. 3) {
        my $res = page($nodes[0]);
        is($res->{status}, 502, "failure $n: the refresher sees WeChat's error");
        my $pttl = redis_cmd($redis, 'PTTL', "${P}token:backoff");
        my $max = 1000 * 2 ** ($n - 1);
        cmp_ok($pttl, '<=', $max, "failure $n: back-off <= $max ms ($pttl)");
        cmp_ok($pttl, '>', $max * 0.75 - 200, "failure $n: and > 3/4 of it");
        push @windows, $pttl;
        my $refused = page($nodes[1]);
        is(metric($nodes[0], 'wechat_token_refresh_failures'), $failed + $n,
           "failure $n: the refresher's gauge of failures since a good one");
        is($refused->{status}, 503, "failure $n: the other node refuses at once");
        cmp_ok($refused->{elapsed}, '<', 0.5, 'at once');
        sleep $pttl / 1000 + 0.1;
    }
    is(calls('/cgi-bin/stable_token'), 3, 'one call per back-off window');

    $fake->reset;                                   # WeChat answers again
    my $res = page($nodes[1]);
    is($res->{status}, 200, 'after the back-off, WeChat is asked and answers');
    is(redis_cmd($redis, 'EXISTS', "${P}token:failures"), 0,
       'the success forgot the failures');
    is(redis_cmd($redis, 'EXISTS', "${P}token:backoff"), 0, 'no back-off');
    is(metric($nodes[1], 'wechat_token_backoff_seconds'), 0,
       'the gauge is back at 0');
    is(metric($nodes[1], 'wechat_token_refresh_failures'), 0,
       'the good refresh set its node\'s failures to 0');
    $_->new_log for @nodes;
};

# --- a failure while others wait: they hear of it, and are refused -------------

subtest 'waiters hear of a failed refresh at once' => sub {
    fresh();
    $fake->delay(endpoint => '/cgi-bin/stable_token', ms => 1000, times => 1);
    $fake->fail(endpoint => '/cgi-bin/stable_token', errcode => 45009,
                times => 1);
    my @answers = posts_at_once(map { [ $nodes[$_ % 2], '/login/qrcode' ] }
                                0 .. 9);
    my %status;
    $status{$_->{status}}++ for @answers;
    note(join ', ', map { "$_: $status{$_}" } sort keys %status);
    is($status{502} // 0, 1, 'the refresher: 502');
    is($status{503} // 0, 9, 'the waiters: 503 with retry_after');
    my $slowest = (sort { $b <=> $a } map { $_->{elapsed} } @answers)[0];
    cmp_ok($slowest, '<', 2.5, "all answered soon after the refresh ($slowest s)");
    is(calls('/cgi-bin/stable_token'), 1, 'one token call');
    $_->new_log for @nodes;
};

# --- a slow refresh: the waiters wake on its end, without polling Redis --------

subtest 'waiters for a slow refresh do not poll Redis' => sub {
    fresh();
    $fake->delay(endpoint => '/cgi-bin/stable_token', ms => 2500, times => 1);
    my $before = evalsha_calls();
    my $woken = metric($nodes[0], 'wechat_token_waiter_wakeups_total{by="message"}')
                + metric($nodes[1], 'wechat_token_waiter_wakeups_total{by="message"}');
    my @answers = posts_at_once(map { [ $nodes[$_ % 2], '/login/qrcode' ] }
                                0 .. 19);
    my $ok = grep { $_->{status} == 200 } @answers;
    is($ok, 20, 'all 20 pages got their QR code');
    my $evalsha = evalsha_calls() - $before;
    # per page QRCODE_REUSE and ISSUE, one TOKEN_SET; each waiter looks
    # when it starts, when its channel is ready, on the message, maybe once
    # on the timer (at 2 s) and once more if woken while it looked: 41 +
    # 5 x 20 at most
    cmp_ok($evalsha, '<=', 141,
           "$evalsha EVALSHA for 20 pages waiting 2.5 s (a 100 ms poll: ~500)");
    my $after = metric($nodes[0], 'wechat_token_waiter_wakeups_total{by="message"}')
                + metric($nodes[1], 'wechat_token_waiter_wakeups_total{by="message"}');
    cmp_ok($after - $woken, '>=', 10, 'the waiters were woken by the message');
    is(calls('/cgi-bin/stable_token'), 1, 'one token call');
    $_->new_log for @nodes;
};

done_testing;

sub evalsha_calls {
    my $info = redis_cmd($redis, 'INFO', 'commandstats');
    return $info =~ /cmdstat_evalsha:calls=(\d+)/ ? $1 : 0;
}
