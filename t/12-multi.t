# Many nodes and many accounts: two nginx instances share one Redis (push on
# one, poll on the other), and two accounts in one nginx stay apart.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP;
use Test::More;
use WxTest;

my $redis = start_redis(args => [ '--requirepass', 'sekret' ]);
redis_cmd($redis, 'AUTH', 'sekret');

my $conf = <<"EOF";
    wechat_redis 127.0.0.1:$redis->{port} db=3 password=sekret;
    wechat_qrcode_confirm off;     # scans resolve at once; t/21 confirms

    server {
        listen 127.0.0.1:PORT;
        wechat_scene_user \$arg_user;

        location = /a/wx {
            wechat_appid wxaaaa;
            wechat_callback_token tokenA;
            wechat_callback;
        }

        location = /b/wx {
            wechat_appid wxbbbb;
            wechat_callback_token tokenB;
            wechat_callback;
        }

        location = /a/qrcode { wechat_appid wxaaaa; wechat_qrcode bind; }
        location = /b/qrcode { wechat_appid wxbbbb; wechat_qrcode bind; }
        # pending is asserted at once
        location = /a/poll {
            wechat_appid wxaaaa; wechat_poll_timeout 0; wechat_poll;
        }
        location = /b/poll {
            wechat_appid wxbbbb; wechat_poll_timeout 0; wechat_poll;
        }
    }
EOF

my $n1 = start_nginx(http => $conf, workers => 2);
my $n2 = start_nginx(http => $conf, workers => 2);
my $json = JSON::PP->new;

sub qrcode {
    my ($ng, $acct, $user) = @_;
    my $res = http_req('POST', $ng->url("/$acct/qrcode?user=$user"));
    is($res->{status}, 200, "qrcode $acct/$user") or diag($res->{content});
    return $json->decode($res->{content});
}

sub scan {
    my ($ng, $acct, $tok, $scene, $openid) = @_;
    return send_push($ng, "/$acct/wx", $tok,
        event_xml(from => $openid, event => 'SCAN', key => $scene))->{content};
}

sub poll {
    my ($ng, $acct, $q) = @_;
    return http_req('GET', $ng->url("/$acct/poll"), query => $q)->{content};
}

# --- two nodes, one Redis (with AUTH and SELECT) ------------------------------

my $q = qrcode($n1, 'a', 'alice');
like(scan($n2, 'a', 'tokenA', $q->{scene}, 'oAlice'), qr/绑定成功/,
     'push on node 2 resolves a scene from node 1');
is(poll($n1, 'a', $q), '{"status":"bound","openid":"oAlice"}',
   'poll on node 1 sees it');
is(poll($n2, 'a', $q), '{"status":"bound","openid":"oAlice"}',
   'and on node 2');

redis_cmd($redis, 'AUTH', 'sekret');
my $keys = do {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $redis->{port});
    print $s "AUTH sekret\r\nSELECT 3\r\nKEYS *\r\n";
    WxTest::read_resp($s) for 1 .. 2;
    WxTest::read_resp($s);
};
ok((grep { $_ eq 'wx:{wxaaaa}:users' } @$keys), 'keys live in db 3');

# --- two accounts, kept apart ------------------------------------------------

my $qb = qrcode($n1, 'b', 'bob');
like(scan($n1, 'a', 'tokenA', $qb->{scene}, 'oBob'), qr/二维码已过期/,
     'a scene of account B is unknown to account A');
is(poll($n1, 'b', $qb), '{"status":"pending"}', 'B: still pending');
is(poll($n1, 'a', $qb), '{"status":"expired"}', 'A cannot poll B');

is(send_push($n1, '/b/wx', 'tokenA',
             event_xml(event => 'SCAN', key => $qb->{scene}))->{status},
   403, "account A's token does not sign for B");
$n1->new_log;

like(scan($n1, 'b', 'tokenB', $qb->{scene}, 'oAlice'), qr/绑定成功/,
     'the same openid string binds separately in account B');
is(poll($n2, 'b', $qb), '{"status":"bound","openid":"oAlice"}', 'B bound');

for my $ng ($n1, $n2) {
    $ng->check_log('two nodes');
}

done_testing;
