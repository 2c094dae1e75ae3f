# Redis Sentinel: a master, a replica and three sentinels, all with
# passwords.  nginx's workers find the master through the sentinels and
# follow it: the master killed under load, then a failover back that the
# sentinels are asked for, then the master demoted by hand, behind the
# sentinels' back.  Each time, every push is answered within 5 s and
# resolved or passed upstream, a long poll that waited across the failover
# is answered, a new bind flow works again within seconds, and no worker
# crashes.

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
my $name = 'wxmaster';
my $token = 'sentinelTok';
my $password = 'masterPw';
my ($master, $replica) = start_replicated(password => $password);
my @sentinels = start_sentinels(master => $master, name => $name,
                                password => $password,
                                sentinel_password => 'sentinelPw');
my $app = start_upstream(reply => 'app-answer');
my $list = join ',', map { "127.0.0.1:$_->{port}" } @sentinels;

my $ng = start_nginx(workers => $workers, log_level => 'notice',
                     http => WxLoad::http_conf(
                         "sentinel=$list master=$name password=$password "
                         . "sentinel_password=sentinelPw",
                         'wxsentinel', $token, $app));

sub qrcode { WxLoad::qrcode($ng, @_) }
sub scan { WxLoad::scan($ng, $token, @_) }

my $flows = WxLoad::Flows->new($ng, $token);
sub bind_flow { $flows->bind_flow }

sub master_is {
    my ($redis) = @_;
    return (sentinel_master($sentinels[0], $name) // 0) == $redis->{port};
}

# Every worker logged $redis as the master for the $nth time.
sub workers_follow {
    my ($redis, $what, $nth) = @_;
    my $at = qr/the master is "\Q$name\E \(127\.0\.0\.1:$redis->{port}\)"/;
    ok(eval { wait_until($what, sub {
        my @seen = $ng->log_text =~ /$at/g;
        @seen >= $workers * $nth }, 10) }, "$what: every worker follows")
        or diag($ng->log_text);
}

# Fails over while clients load nginx: $failover->() starts it; then waits
# for the sentinels to name $to, and for a bind flow to work again.
sub failover_under_load {
    my ($phase, $to, $failover) = @_;
    my $before = scalar $app->{requests}->();
    my ($started, $switched, $recovered);
    $flows->own;    # a new phase: forget the scans before
    my @records = WxLoad::under_load($ng, $token, $seconds + 6, sub {
        sleep 1;
        $started = time;
        $failover->();
        wait_until('the sentinels switch', sub { master_is($to) }, 30);
        $switched = time;
        wait_until('a bind flow works', sub { bind_flow() =~ /"bound"/ }, 20);
        $recovered = time;
    });
    WxLoad::check_phase($app, $phase, $before, @records, $flows->own);
    diag(sprintf '%s: switched after %.1f s, binds again %.1f s later',
                 $phase, $switched - $started, $recovered - $switched);
    cmp_ok($recovered - $switched, '<', 5,
           "$phase: binds again within 5 s of the switch");
    ok((grep { $_->[0] eq 'scan' && $_->[3] eq 'resolved' } @records),
       "$phase: scans resolved under load");
}

my $first = '';
eval { wait_until('the master', sub { ($first = bind_flow()) =~ /"bound"/ }, 20) };
like($first, qr/"bound"/, 'a bind flow through the master the sentinels name')
    or diag($ng->log_text);
workers_follow($master, 'at start', 1);

# --- the master killed under load ----------------------------------------------

my $across = qrcode('across');
my $waiting = poll_start($ng, '/longpoll', $across);
sleep 0.5;    # the scene reaches the replica

failover_under_load('master killed', $replica, sub {
    kill 'KILL', $master->{pid};
    waitpid $master->{pid}, 0;
});
workers_follow($replica, 'master killed', 1);

like(scan($across->{scene}, 'oAcross'), qr/绑定成功/,
     'a scene made before the failover resolves after it');
poll_read($waiting, 5);
is($waiting->{body}, '{"status":"bound","openid":"oAcross"}',
   'the long poll that waited across the failover is answered');
WxLoad::no_crash($ng, 'master killed');

# --- a failover back, asked of the sentinels -------------------------------------

my $old = start_redis(port => $master->{port},
                      args => [ '--requirepass', $password,
                                '--masterauth', $password,
                                '--replicaof', '127.0.0.1', $replica->{port} ]);
$old->{password} = $password;
wait_until('the old master in sync as a replica', sub {
    redis_cmd($old, 'INFO', 'replication') =~ /master_link_status:up/ }, 20);
wait_until('the sentinels see it', sub {
    my $replicas = redis_cmd($sentinels[0], 'SENTINEL', 'replicas', $name);
    grep { my %h = @$_; $h{port} == $old->{port} && $h{flags} eq 'slave' }
        @$replicas }, 30);

failover_under_load('failover back', $old, sub {
    is(redis_cmd($sentinels[1], 'SENTINEL', 'FAILOVER', $name), 'OK',
       'the sentinels fail over');
});
workers_follow($old, 'failover back', 2);
WxLoad::no_crash($ng, 'failover back');

# --- the master demoted behind the sentinels' back ---------------------------------
#
# By hand, REPLICAOF makes the master a replica and the replica a master:
# writes fail READONLY, the workers ask the sentinels, who still name the
# old one; ROLE shows a replica there, and they ask again, with backoff,
# until the sentinels fail over (some 30 s: to them a master that claims to
# be a replica is down only after two of their INFO periods).

redis_cmd($replica, 'REPLICAOF', 'NO', 'ONE');
redis_cmd($old, 'REPLICAOF', '127.0.0.1', $replica->{port});
my $t0 = time;
my @slow;
my $back = eval { wait_until('a bind flow on the new master', sub {
    my $t = time;
    my $flow = bind_flow();
    push @slow, $flow if time - $t >= 5;
    $flow =~ /"bound"/ }, 90) };
ok($back, 'demoted: binds again once the sentinels fail over');
diag(sprintf 'demoted: binds again after %.1f s', time - $t0);
ok(!@slow, 'demoted: every flow answered within 5 s') or diag("@slow");
like($ng->log_text, qr/\[error\].*READONLY/, 'demoted: READONLY logged');
like($ng->log_text,
     qr/\[error\].*is not the master, asking the sentinels again/,
     'demoted: ROLE checked');
workers_follow($replica, 'demoted', 2);
WxLoad::no_crash($ng, 'demoted');

like(http_req('GET', $ng->url('/status'))->{content},
     qr/^wechat_redis_connected_workers $workers$/m, 'every worker connected');

done_testing;
