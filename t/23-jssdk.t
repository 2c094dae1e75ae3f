# The JS-SDK at the edge: wechat_jssdk answers wx.config's parameters for a
# page of the site, signed with the account's jsapi_ticket, which the token
# store keeps for the fleet (one getticket for many callers on two nodes,
# the same lock, back-off and metrics as the access_token).  Signatures
# are checked here with Perl's own SHA-1, first against WeChat's published
# example, and by the fake platform as WeChat's browser would.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw(sha1_hex);
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep);
use WxTest;

plan skip_all => 'node not installed'
    if system('command -v node >/dev/null') != 0;

my $json = JSON::PP->new->utf8->canonical;
my ($appid, $secret) = ('wxjssdkapp', 'jssdkSecret');
my $warm_id = 'wxjsswarm';
my $redis = start_redis();
my $fake = start_fake_wechat(accounts => [
    { appid => $appid, secret => $secret, token => 'jsTok' },
    { appid => $warm_id, secret => 'warmSecret', token => 'warmTok' },
]);

my $http = <<"EOF";
    wechat_redis 127.0.0.1:$redis->{port};

    server {
        listen 127.0.0.1:PORT;

        wechat_appid $appid;
        wechat_secret $secret;
        wechat_api_pass /wechat-api-upstream;

        location /wechat-api-upstream/ {
            internal;
            proxy_pass $fake->{url}/;
        }

        location = /jssdk {
            wechat_jssdk_hosts www.example.com shop.example.com:8443;
            wechat_jssdk;
        }

        location = /status {
            wechat_status;
        }

        # another account, whose ticket no case looks at: under valgrind
        # it runs the path first on workers fresh from a reload
        location = /warm/jssdk {
            wechat_appid $warm_id;
            wechat_secret warmSecret;
            wechat_jssdk_hosts www.example.com;
            wechat_jssdk;
        }
    }
EOF

my @nodes = (start_nginx(workers => 2, http => $http),
             start_nginx(workers => 2, http => $http));
my $P = "wx:{$appid}:";
my $page = 'https://www.example.com/share?id=42&from=timeline';

# wx.config's signature as WeChat's JS-SDK document defines it.
sub wx_signature {
    my ($ticket, $nonce, $timestamp, $url) = @_;
    $url =~ s/#.*//s;
    return sha1_hex("jsapi_ticket=$ticket&noncestr=$nonce"
                    . "&timestamp=$timestamp&url=$url");
}

sub jssdk {
    my ($ng, $url) = @_;
    my $res = http_req('GET', $ng->url('/jssdk'),
                       defined $url ? (query => { url => $url }) : ());
    $res->{json} = eval { $json->decode($res->{content}) };
    return $res;
}

sub calls { $fake->calls(@_) }

sub stored_ticket {
    return redis_cmd($redis, 'HGET', "${P}jsapi_ticket", 'value');
}

# A clean account: no token, no ticket, no back-off, no worker's copy.
sub fresh {
    for my $prefix ($P, "wx:{$warm_id}:") {
        redis_cmd($redis, 'DEL', map { ("$prefix$_", "$prefix$_:lock",
                                        "$prefix$_:backoff",
                                        "$prefix$_:failures") }
                                     qw(token jsapi_ticket));
    }
    $_->reload for @nodes;
    sleep 1;
    warm();
    $fake->reset;
}

# A worker runs each code path much slower the first time under memcheck:
# there, the workers fresh from a reload first sign a page of another
# account, eight callers at once on each node.
sub warm {
    return unless $WxTest::Nginx::VALGRIND;
    my $warm = '/warm/jssdk?url=https%3A%2F%2Fwww.example.com%2F';
    posts_at_once(map { my $ng = $_; map { [ $ng, $warm, 'GET' ] } 1 .. 8 }
                  @nodes);
    $_->new_log for @nodes;     # what memcheck's slow start logged
}

# --- WeChat's example, with the test's own SHA-1 ---------------------------

subtest "the test's signature gives WeChat's published example" => sub {
    is(wx_signature('sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nb'
                    . 'SlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg', 'Wm3WZYTPz0wzccnW',
                    1414587457, 'http://mp.weixin.qq.com?params=value'),
       '0f9de62fce790f9a083d5c99e95740ceb90c27ed', 'the documented SHA-1');
};

# --- the fake platform's getticket and its check of wx.config ---------------

subtest 'the fake platform: getticket and wx.config' => sub {
    fresh();
    my $get = sub {
        $fake->api('GET', '/cgi-bin/ticket/getticket', query => { @_ });
    };
    is($get->(type => 'jsapi')->{json}{errcode}, 41001, 'no token: 41001');
    is($get->(access_token => 'bogus', type => 'jsapi')->{json}{errcode},
       40001, 'an unknown token: 40001');
    my $token = $fake->access_token;
    is($get->(access_token => $token, type => 'wx_card')->{json}{errcode},
       40097, 'another type: 40097');
    my $answer = $get->(access_token => $token, type => 'jsapi')->{json};
    is($answer->{errcode}, 0, 'a ticket');
    is($answer->{expires_in}, 7200, 'for 7200 s');
    like($answer->{ticket}, qr/^[A-Za-z0-9_-]{40,}$/, 'of WeChat\'s shape');

    my %config = (appId => $appid, timestamp => 1700000000,
                  nonceStr => 'abcdef0123456789', url => $page);
    $config{signature} = wx_signature($answer->{ticket}, @config{qw(nonceStr
                                      timestamp url)});
    is($fake->jssdk_config(%config)->{errMsg}, 'config:ok',
       'wx.config with the signature of the ticket: ok');
    is($fake->jssdk_config(%config, url => "$page#frag")->{errMsg},
       'config:ok', 'the fragment is not signed');
    is($fake->jssdk_config(%config, url => "$page&x=1")->{errMsg},
       'config:invalid signature', 'another page: invalid signature');

    $fake->expire_token(access_token => $token);
    is($get->(access_token => $token, type => 'jsapi')->{json}{errcode},
       42001, 'an expired token: 42001');
    is(calls('/cgi-bin/ticket/getticket', 0), 1, 'the fetches are counted');

    my $quota = start_fake_wechat(appid => $appid, secret => $secret,
                                  ticket_quota => 1);
    my $t = $quota->access_token;
    my $q = sub {
        $quota->api('GET', '/cgi-bin/ticket/getticket',
                    query => { access_token => $t, type => 'jsapi' })->{json}
    };
    is($q->()->{errcode}, 0, 'within the quota: a ticket');
    is($q->()->{errcode}, 45009, 'past the quota: 45009');
};

# --- the signed parameters ---------------------------------------------------

# What a node's counters added since $before (name => value) was taken.
sub added {
    my ($ng, $before) = @_;
    return { map { $_ => ($ng->metric($_) // 0) - $before->{$_} }
             keys %$before };
}

sub counters {
    my ($ng, @names) = @_;
    return { map { $_ => $ng->metric($_) // 0 } @names };
}

my $ticket_ok = 'wechat_jsapi_ticket_refreshes_total{outcome="ok"}';
my $ticket_failed = 'wechat_jsapi_ticket_refreshes_total{outcome="failed"}';
my $getticket_ok = 'wechat_api_calls_total{endpoint="ticket",result="ok"}';
my $refusals = 'wechat_jsapi_ticket_backoff_refusals_total';
my $woken_by_message = 'wechat_jsapi_ticket_waiter_wakeups_total'
                       . '{by="message"}';

subtest 'wx.config parameters for a page of the site' => sub {
    fresh();
    # the counters live as long as the nodes: what this case adds
    my $before = counters($nodes[0], $ticket_ok, $getticket_ok);
    my $res = jssdk($nodes[0], "$page#section-2");
    is($res->{status}, 200, 'signed') or diag($res->{content});
    is($res->{headers}{'cache-control'}, 'no-store', 'not cached');
    like($res->{headers}{'content-type'}, qr{^application/json}, 'JSON');
    my $c = $res->{json} // {};
    is_deeply([sort keys %$c], [qw(appId nonceStr signature timestamp)],
              'appId, timestamp, nonceStr, signature and nothing else');
    is($c->{appId}, $appid, 'the account\'s appId');
    cmp_ok(abs(($c->{timestamp} // 0) - time), '<=', 5, 'a timestamp of now');
    like($c->{nonceStr} // '', qr/^[0-9a-f]{16}$/, 'a random nonce');

    my $ticket = stored_ticket();
    ok($ticket, 'the ticket is kept in Redis for the fleet');
    unlike($res->{content}, qr/\Q$ticket\E/, 'and never shown');
    is($c->{signature},
       wx_signature($ticket, $c->{nonceStr}, $c->{timestamp}, $page),
       'the signature: SHA-1 over ticket, nonce, timestamp, url without '
       . 'its fragment');
    my $check = $fake->jssdk_config(%$c, url => "$page#section-2");
    is($check->{errMsg}, 'config:ok', 'WeChat\'s check of wx.config: ok');

    my $again = jssdk($nodes[1], $page)->{json} // {};
    isnt($again->{nonceStr}, $c->{nonceStr}, 'a new nonce each time');
    is($fake->jssdk_config(%$again, url => $page)->{errMsg}, 'config:ok',
       'the other node signs with the same ticket');

    my $port = jssdk($nodes[1], 'https://SHOP.example.com:8443/cart');
    is($port->{status}, 200, 'a listed host:port, whatever the case');

    is(calls('/cgi-bin/ticket/getticket'), 1, 'one getticket');
    is(calls('/cgi-bin/stable_token'), 1, 'one access_token');
    like($nodes[0]->metric('wechat_jsapi_ticket_age_seconds') // '', qr/^\d+$/,
         'metrics: the ticket\'s age');
    is_deeply(added($nodes[0], $before), { $ticket_ok => 1,
                                           $getticket_ok => 1 },
              'metrics: one refresh, one getticket call');
    $_->check_log('signed') for @nodes;
};

# --- one getticket for many callers on two nodes ------------------------------

subtest 'one ticket fetch for 20 callers at once on two nodes' => sub {
    fresh();
    my @before = map { counters($_, $woken_by_message) } @nodes;
    # the fetch is slow: every caller comes while it is under way
    $fake->delay(endpoint => '/cgi-bin/ticket/getticket', ms => 800,
                 times => 1);
    my $path = '/jssdk?url=' . 'https%3A%2F%2Fwww.example.com%2Fshare';
    my @answers = posts_at_once(map { [ $nodes[$_ % 2], $path, 'GET' ] }
                                0 .. 19);
    my $ok = grep { $_->{status} == 200 } @answers;
    is($ok, 20, 'all 20 callers got their parameters')
        or diag(join ' ', map { $_->{status} } @answers);
    is(calls('/cgi-bin/ticket/getticket'), 1, 'one getticket for all');
    is(calls('/cgi-bin/stable_token'), 1, 'and one access_token');
    my $ticket = stored_ticket();
    my $good = grep {
        my $c = eval { $json->decode($_->{body}) } // {};
        ($c->{signature} // '') eq wx_signature($ticket, $c->{nonceStr} // '',
            $c->{timestamp} // 0, 'https://www.example.com/share')
    } @answers;
    is($good, 20, 'every signature is over the one ticket');
    my $woken = 0;
    $woken += added($nodes[$_], $before[$_])->{$woken_by_message} for 0, 1;
    cmp_ok($woken, '>=', 1, 'waiters woke on the refresh\'s end');
    $_->check_log('at once') for @nodes;
};

# --- foreign and malformed pages ----------------------------------------------

subtest 'pages of other sites, and malformed urls, are refused' => sub {
    fresh();
    my %refused = (
        'https://evil.example.net/share'              => 'foreign url',
        'https://www.example.com.evil.net/'           => 'foreign url',
        'https://example.com/'                        => 'foreign url',
        'https://shop.example.com/cart'               => 'foreign url',
        'https://shop.example.com:9443/cart'          => 'foreign url',
        'https://user@www.example.com/'               => 'bad url',
        'https://www.example.com@evil.net/'           => 'bad url',
        'https://evil.net\\@www.example.com/'          => 'bad url',
        'javascript:alert(1)//www.example.com/'       => 'bad url',
        'ftp://www.example.com/'                      => 'bad url',
        '//www.example.com/share'                     => 'bad url',
        'www.example.com/share'                       => 'bad url',
        "https://www.example.com/\r\nSet-Cookie: a=b" => 'bad url',
        "https://www.example.com/\x00"                => 'bad url',
        'https://www.example.com/a b'                 => 'bad url',
        'https://www.example.com/' . ('a' x 5000)     => 'bad url',
        ''                                            => 'bad url',
    );
    for my $url (sort keys %refused) {
        my $res = jssdk($nodes[0], $url);
        (my $shown = substr $url, 0, 60)
            =~ s/([^ -~])/sprintf '\\x%02x', ord $1/ge;
        is($res->{status}, 400, "refused: $shown");
        is(($res->{json} // {})->{error}, $refused{$url},
           "  as $refused{$url}");
    }
    my $none = jssdk($nodes[0], undef);
    is($none->{status}, 400, 'no url: 400');
    is(http_req('POST', $nodes[0]->url('/jssdk'),
                query => { url => $page })->{status}, 405, 'POST: 405');
    is(calls('/cgi-bin/ticket/getticket'), 0, 'WeChat was not asked');
    my $log = $nodes[0]->log_text;
    like($log, qr{\[info\]\ .*wechat\ jssdk:\ foreign\ url\ refused:
                  \ "https://evil\.example\.net/share"}x,
         'a refusal is logged at info');
    like($log, qr{wechat\ jssdk:\ bad\ url\ refused:
                  \ "https://www\.example\.com/\\x0d\\x0aSet-Cookie}x,
         'with the url escaped');
    $nodes[0]->check_log('refused');
};

# --- 40001 and 42001 on getticket: the token first ----------------------------

subtest 'a token refused at getticket is refreshed, then the ticket' => sub {
    for my $case ([ 40001, 'a token WeChat does not know' ],
                  [ 42001, 'a token WeChat says expired' ]) {
        my ($errcode, $what) = @$case;
        fresh();
        # a token another node stored long ago
        redis_cmd($redis, 'HSET', "${P}token", 'value', "stale$errcode",
                  'issued', 0);
        redis_cmd($redis, 'PEXPIRE', "${P}token", 7_200_000);
        $fake->fail(endpoint => '/cgi-bin/ticket/getticket',
                    errcode => 42001, times => 1)
            if $errcode == 42001;
        my $res = jssdk($nodes[0], $page);
        is($res->{status}, 200, "$errcode: signed after all")
            or diag($res->{content});
        is(calls('/cgi-bin/ticket/getticket', $errcode), 1,
           "$errcode: $what, at getticket");
        is(calls('/cgi-bin/stable_token'), 1, "$errcode: a new token");
        is(calls('/cgi-bin/ticket/getticket', 0), 1,
           "$errcode: then the ticket, once");
        isnt(redis_cmd($redis, 'HGET', "${P}token", 'value'), "stale$errcode",
             "$errcode: the stale token is gone from Redis");
        my $c = $res->{json} // {};
        is($c->{signature}, wx_signature(stored_ticket(), $c->{nonceStr},
                                         $c->{timestamp}, $page),
           "$errcode: signed with the new ticket");
        $nodes[0]->check_log("$errcode",
                             log => [ qr/access_token refused \($errcode\)/ ]);
    }
};

# --- a failing getticket: back-off for the fleet ----------------------------

subtest 'a failing getticket backs off for every node' => sub {
    fresh();
    my @before = (counters($nodes[0], $ticket_failed),
                  counters($nodes[1], $refusals));
    $fake->fail(endpoint => '/cgi-bin/ticket/getticket', errcode => 45009,
                times => 0);
    my $first = jssdk($nodes[0], $page);
    is($first->{status}, 503, 'the refresher: 503');
    is(($first->{json} // {})->{errcode}, 45009, 'with WeChat\'s errcode');
    my $second = jssdk($nodes[1], $page);
    is($second->{status}, 503, 'the other node: 503 at once');
    cmp_ok(($second->{json} // {})->{retry_after} // 0, '>=', 1,
           'with retry_after');
    like($second->{headers}{'retry-after'} // '', qr/^\d+$/, 'and Retry-After');
    is(calls('/cgi-bin/ticket/getticket'), 1, 'WeChat asked once');
    cmp_ok(redis_cmd($redis, 'PTTL', "${P}jsapi_ticket:backoff"), '>', 0,
           'the back-off is in Redis');
    is(redis_cmd($redis, 'EXISTS', "${P}jsapi_ticket:lock"), 0,
       'the lock is let go');
    is(redis_cmd($redis, 'EXISTS', "${P}token:backoff"), 0,
       'the token has no back-off of its own');
    is_deeply(added($nodes[0], $before[0]), { $ticket_failed => 1 },
              'metrics: a failed refresh');
    is_deeply(added($nodes[1], $before[1]), { $refusals => 1 },
              'metrics: a refusal in the back-off');
    $nodes[0]->check_log('quota', errors_ok => 1,
                         log => [ qr/jsapi_ticket\ refresh\ failed:
                                     \ HTTP\ 200,\ errcode\ 45009/x ]);
    $nodes[1]->check_log('quota, refused',
                         log => [ qr/jsapi_ticket refresh backs off/ ]);
};

# --- Redis down ---------------------------------------------------------------

subtest 'Redis down: 503' => sub {
    fresh();
    WxTest::stop_redis($redis);
    $_->reload for @nodes;          # no worker keeps a ticket
    sleep 1;
    warm();                         # its 503s, on the other account
    my $res = jssdk($nodes[0], $page);
    is($res->{status}, 503, '503');
    is(($res->{json} // {})->{error}, 'unavailable', 'a JSON error');
    cmp_ok($res->{elapsed}, '<', 5, 'at once');
    is(calls('/cgi-bin/ticket/getticket'), 0, 'WeChat was not asked');
    $nodes[0]->check_log('redis down', errors_ok => 1);
};

done_testing;
