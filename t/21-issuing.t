# Bounded scene issuing: wechat_qrcode answers POST only (a cross-site
# <img> or link issues nothing); a browser whose cookie holds a pending
# scene's token, or a site user with a pending scene, gets that scene back
# without a new qrcode/create; and new scenes per account and second are
# capped by wechat_qrcode_rate, counted in Redis over every node.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw(sha256_hex);
use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);
use WxTest;

plan skip_all => 'node not installed'
    if system('command -v node >/dev/null') != 0;

my $json = JSON::PP->new->utf8->canonical;
my ($appid, $secret, $token) = ('wxissuing', 'issuingSecret', 'issTok');
my $redis = start_redis();
my $fake = start_fake_wechat(appid => $appid, secret => $secret,
                             token => $token);

my $http = <<"EOF";
    wechat_redis 127.0.0.1:$redis->{port};
    wechat_qrcode_confirm off;     # scans resolve at once; t/21-consent confirms

    server {
        listen 127.0.0.1:PORT;

        wechat_appid $appid;
        wechat_callback_token $token;
        wechat_secret $secret;
        wechat_api_pass /wechat-api-upstream;

        location /wechat-api-upstream/ {
            internal;
            proxy_pass $fake->{url}/;
        }

        location = /wx { wechat_callback; }

        location = /bind/qrcode {
            wechat_scene_user \$http_x_user;
            wechat_qrcode bind;
        }

        location = /login/qrcode {
            wechat_qrcode login;
        }

        location = /code/qrcode {
            wechat_qrcode code;
        }

        location = /slow/qrcode {
            wechat_qrcode_rate 5/s;
            wechat_qrcode login;
        }

        location = /poll { wechat_poll_timeout 0; wechat_poll; }
        location = /redeem { wechat_redeem; }
        location = /status { wechat_status; }
    }
EOF

my @nodes = (start_nginx(workers => 2, http => $http),
             start_nginx(workers => 2, http => $http));
my $ng = $nodes[0];
my $P = "wx:{$appid}:";

sub creates { $fake->counts->{'/cgi-bin/qrcode/create'}{calls} // 0 }
sub scenes { scalar @{ redis_cmd($redis, 'KEYS', "${P}scene:*") } }

sub issue {
    my ($path, %o) = @_;
    my %h;
    $h{Cookie} = "wechat_poll=$o{cookie}" if $o{cookie};
    $h{'X-User'} = $o{user} if $o{user};
    my $res = http_req($o{method} // 'POST', ($o{ng} // $ng)->url($path),
                       headers => \%h);
    $res->{json} = eval { $json->decode($res->{content}) };
    ($res->{cookie}) = ($res->{headers}{'set-cookie'} // '')
        =~ /^wechat_poll=([0-9a-f]+)/;
    return $res;
}

sub poll {
    my ($q, $tok) = @_;
    return http_req('GET', $ng->url('/poll'),
                    query => { scene => $q->{scene}, token => $tok })->{content};
}

sub metric {
    my ($name) = @_;
    my $sum = 0;
    for my $n (@nodes) {
        my $text = http_req('GET', $n->url('/status'))->{content};
        $sum += $1 if $text =~ /^\Q$name\E (\d+)$/m;
    }
    return $sum;
}

# --- POST only -------------------------------------------------------------------

subtest 'GET and HEAD issue nothing' => sub {
    my ($scenes, $creates) = (scenes(), creates());
    for my $method (qw(GET HEAD PUT)) {
        my $res = issue('/login/qrcode', method => $method);
        is($res->{status}, 405, "$method: 405");
        is($res->{content}, '{"error":"method"}', "$method: JSON body")
            unless $method eq 'HEAD';
        is($res->{headers}{'cache-control'}, 'no-store', "$method: no-store");
        is($res->{headers}{allow}, 'POST', "$method: Allow: POST");
        ok(!$res->{headers}{'set-cookie'}, "$method: no cookie");
    }
    is(scenes(), $scenes, 'no scene stored');
    is(creates(), $creates, 'no qrcode/create');
    $ng->check_log('methods');
};

# --- the same browser: its cookie ------------------------------------------------

subtest 'a browser with a pending scene gets it back, with a new token' => sub {
    my $first = issue('/login/qrcode');
    is($first->{status}, 200, 'a login scene');
    is($first->{cookie}, $first->{json}{token}, 'its token in the cookie');
    my $creates = creates();

    my ($held, @tokens) = ($first->{cookie}, $first->{json}{token});
    for my $node (@nodes) {
        my $again = issue('/login/qrcode', cookie => $held, ng => $node);
        is($again->{status}, 200, 'asked again');
        is($again->{json}{$_}, $first->{json}{$_}, "the same $_")
            for qw(scene ticket url qrcode_url);
        cmp_ok($again->{json}{expire_seconds}, '<=', 300,
               'expire_seconds: the scene\'s life left');
        ok(!(grep { $_ eq $again->{json}{token} } @tokens),
           'a new poll token: whoever planted the cookie does not know it');
        is($again->{cookie}, $again->{json}{token}, 'the new token\'s cookie');
        like($again->{headers}{'set-cookie'}, qr/Max-Age=\d+;/,
             'for the life left');
        is(poll($first->{json}, $held), '{"status":"expired"}',
           'the token before it polls no more');
        is(poll($first->{json}, $again->{cookie}), '{"status":"pending"}',
           'the new one does');
        $held = $again->{cookie};
        push @tokens, $held;
    }
    is(creates(), $creates, 'no qrcode/create for it');

    my $other = issue('/login/qrcode', cookie => 'f' x 32);
    isnt($other->{json}{scene}, $first->{json}{scene},
         'a token of no scene: a new scene');
    my $odd = issue('/login/qrcode', cookie => "${held}x");
    isnt($odd->{json}{scene}, $first->{json}{scene},
         'a cookie of another shape: a new scene');
    my $stale = issue('/login/qrcode', cookie => $tokens[0]);
    isnt($stale->{json}{scene}, $first->{json}{scene},
         'a token replaced since: a new scene');

    my $code = issue('/code/qrcode', cookie => $held);
    isnt($code->{json}{scene}, $first->{json}{scene},
         'a login scene is not given back as a code scene');

    # the login code is made of the token the page holds now
    my $scan = send_push($ng, '/wx', $token,
                         event_xml(from => 'oScanner1', event => 'SCAN',
                                   key => $first->{json}{scene}));
    is($scan->{status}, 200, 'scanned');
    my $polled = eval { $json->decode(poll($first->{json}, $held)) } // {};
    is($polled->{status}, 'unbound', 'the scan is seen with the new token');
    my $redeem = http_req('POST', $ng->url('/redeem'),
                          body => "scene=$first->{json}{scene}&code="
                                  . ($polled->{code} // ''),
                          headers => { 'Content-Type'
                                       => 'application/x-www-form-urlencoded' });
    is($redeem->{status}, 200, 'and its login code redeems')
        or diag($redeem->{content});

    # no longer pending: the next one is new
    my $after = issue('/login/qrcode', cookie => $held);
    isnt($after->{json}{scene}, $first->{json}{scene},
         'a scanned scene is not given back');
    $ng->check_log('browser');
};

# --- the same site user ----------------------------------------------------------

subtest 'a user with a pending bind scene gets it back' => sub {
    my $first = issue('/bind/qrcode', user => 'alice');
    is($first->{status}, 200, 'a bind scene for alice');
    my $creates = creates();

    my $tab = issue('/bind/qrcode', user => 'alice', ng => $nodes[1]);
    is($tab->{json}{$_}, $first->{json}{$_}, "another page: the same $_")
        for qw(scene ticket url);
    isnt($tab->{json}{token}, $first->{json}{token},
         'with a new poll token: one page holds the scene');
    is(redis_cmd($redis, 'HGET', "${P}scene:$first->{json}{scene}", 'token'),
       sha256_hex($tab->{json}{token}), 'only its hash is stored');
    is(poll($first->{json}, $first->{json}{token}), '{"status":"expired"}',
       'the first page\'s token polls no more');
    is(poll($tab->{json}, $tab->{json}{token}), '{"status":"pending"}',
       'the new page\'s does');
    is(creates(), $creates, 'no qrcode/create for any of them');

    my $bob = issue('/bind/qrcode', user => 'bob', cookie => $tab->{cookie});
    isnt($bob->{json}{scene}, $first->{json}{scene},
         'another user, with alice\'s cookie: not alice\'s scene');
    is(creates(), $creates + 1, 'bob\'s scene was created');
    $ng->check_log('user');
};

# --- the ceiling -------------------------------------------------------------------

subtest 'new scenes per second are capped, over every node' => sub {
    sleep 1.1;
    my $creates = creates();
    my @answers = posts_at_once(map { [ $nodes[$_ % 2], '/slow/qrcode' ] }
                                1 .. 30);
    my @ok = grep { $_->{status} == 200 } @answers;
    my @refused = grep { $_->{status} == 429 } @answers;
    cmp_ok(scalar @ok, '<=', 10, scalar(@ok) . ' issued (5/s, the burst may '
           . 'straddle two seconds)');
    cmp_ok(scalar @ok, '>=', 5, 'at least the ceiling issued');
    is(@ok + @refused, 30, 'the others refused with 429');
    is($refused[0]{body}, '{"error":"rate","retry_after":1}', '429 JSON');
    like($refused[0]{head}, qr/^Retry-After: 1\r?$/mi, 'Retry-After: 1');
    like($refused[0]{head}, qr/^Cache-Control: no-store\r?$/mi, 'no-store');
    is(creates() - $creates, scalar @ok, 'one qrcode/create per scene issued');
    cmp_ok(metric('wechat_qrcodes_total{outcome="rate_limited"}'), '>=',
           scalar @refused, 'refusals counted');
    is(metric('wechat_qrcodes_total{outcome="reused"}'), 3,
       'the scenes given back above counted');
    sleep 1.1;
    is(issue('/slow/qrcode')->{status}, 200, 'the next second issues again');
    $_->check_log('rate', allow => [qr/over wechat_qrcode_rate/]) for @nodes;
};

subtest '500 anonymous requests in a second: a bounded number of creates' => sub {
    sleep 1.1;
    my $creates = creates();
    my @answers = posts_at_once(map { [ $nodes[$_ % 2], '/login/qrcode' ] }
                                1 .. 500);
    my $ok = grep { $_->{status} == 200 } @answers;
    my $created = creates() - $creates;
    note("$ok issued, $created qrcode/create");
    cmp_ok($created, '<=', 60, "$created qrcode/create for 500 requests "
           . '(the default 20/s)');
    is(scalar(grep { $_->{status} != 200 && $_->{status} != 429 } @answers), 0,
       'each answered 200 or 429');
    $_->check_log('burst', allow => [qr/over wechat_qrcode_rate/]) for @nodes;
};

done_testing;
