# Redis Cluster: three masters with a password.  nginx's workers learn the
# slot map from two of them (the account's slot lives on the third), route
# each command by the account's hash tag, and follow the account's slot
# when it moves to another node under load, key by key as resharding does.
# Every push is answered within 5 s and resolved or passed upstream, a long
# poll that waited across the move is answered, bind flows work on the new
# node at once, and no worker crashes.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);
use WxTest;
use WxLoad ();
use WxTopology;

plan skip_all => 'needs nginx with a master process'
    if $WxTest::Nginx::VALGRIND;

my $seconds = $ENV{WX_LOAD_SECONDS} // 3;
my $token = 'clusterTok';
my $password = 'clusterPw';
my @nodes = start_cluster(password => $password);

# an account whose slot is on the third node, which is no seed
my ($appid, $slot);
for my $n (1 .. 1000) {
    $slot = cluster_slot($nodes[0], "{wxcluster$n}");
    next unless cluster_owner($slot, @nodes) == $nodes[2];
    $appid = "wxcluster$n";
    last;
}
ok($appid, "an account on the third node: $appid, slot $slot");
my $P = "wx:{$appid}:";

my $app = start_upstream(reply => 'app-answer');
my $ng = start_nginx(workers => 2, log_level => 'notice', http => <<"EOF");
    wechat_redis cluster=127.0.0.1:$nodes[0]{port},127.0.0.1:$nodes[1]{port}
                 password=$password;
    wechat_redis_timeout 500ms;
    wechat_redis_connect_timeout 500ms;

    server {
        listen 127.0.0.1:PORT;
        wechat_appid $appid;
        wechat_token $token;

        location = /wx { wechat_callback; wechat_pass \@app; }
        location = /qrcode { wechat_user \$arg_user; wechat_qrcode bind; }
        location = /poll { wechat_poll; }
        location = /longpoll { wechat_poll_timeout 30s; wechat_poll; }
        location = /binding { wechat_binding; }
        location = /status { wechat_status; }
        location \@app {
            proxy_pass http://127.0.0.1:$app->{port};
            proxy_set_header X-WeChat-Resolution \$wechat_resolution;
        }
    }
EOF

my $json = JSON::PP->new->utf8;

sub qrcode {
    my ($user) = @_;
    my $res = http_req('GET', $ng->url("/qrcode?user=$user"), timeout => 3);
    return $res->{status} == 200 ? $json->decode($res->{content}) : undef;
}

sub scan {
    my ($scene, $openid) = @_;
    return send_push($ng, '/wx', $token,
                     event_xml(from => $openid, event => 'SCAN',
                               key => $scene), timeout => 6)->{content};
}

my $flows = 0;
my %flows;
sub bind_flow {
    my $n = ++$flows;
    $flows{last} = "flow$n";
    my $q = qrcode("flow$n") or return 'no QR code';
    my $scan = scan($q->{scene}, "oFlow$n");
    return "scan: $scan" unless $scan =~ /绑定成功/;
    return http_req('GET', $ng->url('/poll'), timeout => 3,
                    query => { scene => $q->{scene}, token => $q->{token} })
        ->{content};
}

my $first = '';
eval { wait_until('the slot map', sub { ($first = bind_flow()) =~ /"bound"/ }, 20) };
like($first, qr/"bound"/, 'a bind flow on the node the map names')
    or diag($ng->log_text);
my $user = $flows{last};
(my $openid = $user) =~ s/^flow/oFlow/;
is(redis_cmd($nodes[2], 'HGET', "${P}users", $user), $openid,
   'the binding is on the third node');
like($ng->log_text, qr/wechat cluster: the slot map from "127\.0\.0\.1:\d+", 3 nodes known/,
     'the map learnt: three nodes');
like(http_req('GET', $ng->url("/binding?user=$user"))->{content},
     qr/$openid/, 'wechat_binding reads it');

# --- the account's slot moves under load ------------------------------------------

my $across = qrcode('across');
my $waiting = poll_start($ng, '/longpoll', $across);

my $before = scalar $app->{requests}->();
my ($moved, $recovered);
my @records = WxLoad::under_load($ng, $token, $seconds + 4, sub {
    sleep 1;
    $moved = move_slot(slot => $slot, from => $nodes[2], to => $nodes[0],
                       nodes => \@nodes, batch => 5, pause => 0.02);
    my $t0 = time;
    wait_until('a bind flow works', sub { bind_flow() =~ /"bound"/ }, 20);
    $recovered = time - $t0;
});
WxLoad::check_phase($app, 'slot moved', $before, @records);
diag(sprintf 'slot moved: %d keys, binds again %.1f s after', $moved,
             $recovered);
cmp_ok($recovered, '<', 3, 'slot moved: binds again within 3 s');
ok((grep { $_->[0] eq 'scan' && $_->[3] eq 'resolved' } @records),
   'slot moved: scans resolved under load');
is(cluster_owner($slot, @nodes), $nodes[0], 'the slot is on the first node');
is(redis_cmd($nodes[0], 'HGET', "${P}users", $user), $openid,
   'the bindings moved with it');

like(scan($across->{scene}, 'oAcross'), qr/绑定成功/,
     'a scene made before the move resolves after it');
poll_read($waiting, 5);
is($waiting->{body}, '{"status":"bound","openid":"oAcross"}',
   'the long poll that waited across the move is answered');
like(http_req('GET', $ng->url('/binding?user=across'))->{content},
     qr/oAcross/, 'wechat_binding reads the new node');

WxLoad::no_crash($ng, 'slot moved');
like(http_req('GET', $ng->url('/status'))->{content},
     qr/^wechat_redis_connected_workers 2$/m, 'both workers connected');

done_testing;
