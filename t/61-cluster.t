# Redis Cluster: three masters with a replica each, all with a password.
# nginx's workers learn the slot map from two of the masters (the account's
# slot lives on the third), route each command by the account's hash tag,
# and follow the account's slot when it moves to another node under load,
# key by key as resharding does; then that node is killed and its replica
# takes over.  Each time every push is answered within 5 s and resolved or
# passed upstream, a long poll that waited across it is answered, bind
# flows work again within seconds, and no worker crashes.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use WxTest;
use WxLoad ();
use WxTopology;

my $workers = 2;
my $seconds = $ENV{WX_LOAD_SECONDS} // 3;
my $token = 'clusterTok';
my $password = 'clusterPw';
my @nodes = start_cluster(password => $password, replicas => 1);
my @masters = @nodes[0 .. 2];

# an account whose slot is on the third node, which is no seed
my ($appid, $slot);
for my $n (1 .. 1000) {
    $slot = cluster_slot($nodes[0], "{wxcluster$n}");
    next unless cluster_owner($slot, @nodes) == $masters[2];
    $appid = "wxcluster$n";
    last;
}
ok($appid, "an account on the third node: $appid, slot $slot");
my $P = "wx:{$appid}:";

my $app = start_upstream(reply => 'app-answer');
my $ng = start_nginx(workers => $workers, log_level => 'notice',
                     http => WxLoad::http_conf(
                         "cluster=127.0.0.1:$nodes[0]{port},"
                         . "127.0.0.1:$nodes[1]{port} password=$password",
                         $appid, $token, $app));

sub qrcode { WxLoad::qrcode($ng, @_) }
sub scan { WxLoad::scan($ng, $token, @_) }

my $flows = WxLoad::Flows->new($ng, $token);
sub bind_flow { $flows->bind_flow }

my $first = '';
eval { wait_until('the slot map', sub { ($first = bind_flow()) =~ /"bound"/ }, 20) };
like($first, qr/"bound"/, 'a bind flow on the node the map names')
    or diag($ng->log_text);
my $user = $flows->{last};
my $openid = "o$user";
is(redis_cmd($masters[2], 'HGET', "${P}users", $user), $openid,
   'the binding is on the third node');
like($ng->log_text, qr/wechat cluster: the slot map from "127\.0\.0\.1:\d+", 3 nodes known/,
     'the map learnt: three masters');
like(http_req('GET', $ng->url("/binding?user=$user"))->{content},
     qr/$openid/, 'wechat_binding reads it');

# --- the account's slot moves under load ------------------------------------------

my $across = qrcode('across');
my $waiting = poll_start($ng, '/longpoll', $across);

my $before = scalar $app->{requests}->();
my ($moved, $recovered);
$flows->own;    # a new phase: forget the scans before
my @records = WxLoad::under_load($ng, $token, $seconds + 4, sub {
    sleep 1;
    $moved = move_slot(slot => $slot, from => $masters[2], to => $masters[0],
                       nodes => \@masters, batch => 5, pause => 0.02);
    my $t0 = time;
    wait_until('a bind flow works', sub { bind_flow() =~ /"bound"/ }, 20);
    $recovered = time - $t0;
});
WxLoad::check_phase($app, 'slot moved', $before, @records, $flows->own);
diag(sprintf 'slot moved: %d keys, binds again %.1f s after', $moved,
             $recovered);
cmp_ok($recovered, '<', 3, 'slot moved: binds again within 3 s');
ok((grep { $_->[0] eq 'scan' && $_->[3] eq 'resolved' } @records),
   'slot moved: scans resolved under load');
is(cluster_owner($slot, @nodes), $masters[0], 'the slot is on the first node');
is(redis_cmd($masters[0], 'HGET', "${P}users", $user), $openid,
   'the bindings moved with it');

like(scan($across->{scene}, 'oAcross'), qr/绑定成功/,
     'a scene made before the move resolves after it');
poll_read($waiting, 5);
is($waiting->{body}, '{"status":"bound","openid":"oAcross"}',
   'the long poll that waited across the move is answered');
like(http_req('GET', $ng->url('/binding?user=across'))->{content},
     qr/oAcross/, 'wechat_binding reads the new node');

WxLoad::no_crash($ng, 'slot moved');

# --- the master of the slot killed: its replica takes over -------------------------

my ($dead) = @masters;
my ($heir) = grep { redis_cmd($_, 'INFO', 'replication')
                    =~ /master_port:$dead->{port}\b/ } @nodes[3 .. 5];
my @alive = grep { $_ != $dead } @nodes;
$across = qrcode('across2');
$waiting = poll_start($ng, '/longpoll', $across);
sleep 0.5;    # the scene reaches the replica

$before = scalar $app->{requests}->();
my ($took_over, $binds);
$flows->own;    # a new phase: forget the scans before
@records = WxLoad::under_load($ng, $token, $seconds + 10, sub {
    sleep 1;
    kill 'KILL', $dead->{pid};
    waitpid $dead->{pid}, 0;
    my $t0 = time;
    wait_until('the replica takes over', sub {
        (cluster_owner($slot, @alive) // 0) == $heir }, 30);
    $took_over = time - $t0;
    $t0 = time;
    wait_until('a bind flow works', sub { bind_flow() =~ /"bound"/ }, 20);
    $binds = time - $t0;
});
WxLoad::check_phase($app, 'master killed', $before, @records, $flows->own);
diag(sprintf 'master killed: the replica took over after %.1f s, binds '
             . 'again %.1f s later', $took_over, $binds);
cmp_ok($binds, '<', 5, 'master killed: binds again within 5 s');
like(scan($across->{scene}, 'oAcross2'), qr/绑定成功/,
     'a scene made before the failover resolves after it');
poll_read($waiting, 5);
is($waiting->{body}, '{"status":"bound","openid":"oAcross2"}',
   'the long poll that waited across the failover is answered');
WxLoad::no_crash($ng, 'master killed');

like(http_req('GET', $ng->url('/status'))->{content},
     qr/^wechat_redis_connected_workers $workers$/m, 'every worker connected');

done_testing;
