package WxTopology;

# Redis topologies from Debian's redis-server (or the server the harness
# runs, WxTest.pm) on loopback ports, for the high-availability tests: a
# master with a replica and sentinels (redis-server --sentinel, the binary
# Debian's redis-sentinel links to), and a cluster of masters (redis-cli
# --cluster create), whose slots the tests move as redis-cli --cluster
# reshard does, one slot at a time.

use strict;
use warnings;

use File::Temp qw(tempdir);
use Time::HiRes ();
use Test::More;
use WxTest;

use Exporter 'import';
our @EXPORT = qw(start_replicated start_sentinels sentinel_master
                 start_cluster cluster_slot cluster_owner move_slot);

# A master and a replica of it, both with $opt{password} (or none).
# Returns ($master, $replica), each as start_redis returns them.
sub start_replicated {
    my (%opt) = @_;
    my @auth = defined $opt{password}
             ? ('--requirepass', $opt{password}, '--masterauth', $opt{password})
             : ();
    my $master = start_redis(args => [ @auth ]);
    my $replica = start_redis(args => [ @auth, '--replicaof', '127.0.0.1',
                                        $master->{port} ]);
    $_->{password} = $opt{password} for $master, $replica;
    wait_until('the replica in sync', sub {
        redis_cmd($replica, 'INFO', 'replication')
            =~ /master_link_status:up/ }, 20);
    return ($master, $replica);
}

# $opt{count} sentinels (3) watching $opt{master} as $opt{name}, with a
# quorum of 2, which call the master down after down_after ms (1000).
# password: the master's; sentinel_password: their own.  Returns them,
# each { port, pid, password }, once they know one another and the
# replica.
sub start_sentinels {
    my (%opt) = @_;
    my $count = $opt{count} // 3;
    my $name = $opt{name};
    my $down_after = $opt{down_after} // 1000;
    my @sentinels;
    for (1 .. $count) {
        my $port = free_port();
        my $dir = tempdir('wechat-sentinel-XXXXXX', TMPDIR => 1, CLEANUP => 1);
        open my $fh, '>', "$dir/sentinel.conf" or die;
        print $fh <<"EOF";
port $port
bind 127.0.0.1
daemonize no
dir $dir
loglevel notice
sentinel monitor $name 127.0.0.1 $opt{master}{port} 2
sentinel down-after-milliseconds $name $down_after
sentinel failover-timeout $name 5000
sentinel parallel-syncs $name 1
EOF
        print $fh "sentinel auth-pass $name $opt{password}\n"
            if defined $opt{password};
        print $fh "requirepass $opt{sentinel_password}\n",
                  "sentinel sentinel-pass $opt{sentinel_password}\n"
            if defined $opt{sentinel_password};
        close $fh;
        my $pid = start_process(name => 'redis sentinel', port => $port,
                                log => "$dir/sentinel.log",
                                cmd => [ sentinel_cmd("$dir/sentinel.conf") ]);
        push @sentinels, { port => $port, pid => $pid, dir => $dir,
                           password => $opt{sentinel_password} };
    }
    for my $s (@sentinels) {
        wait_until('the sentinels know one another and the replica', sub {
            my $known = redis_cmd($s, 'SENTINEL', 'sentinels', $name);
            my $replicas = redis_cmd($s, 'SENTINEL', 'replicas', $name);
            @$known == $count - 1 && @$replicas >= 1 }, 30);
    }
    return @sentinels;
}

# The master's port as $sentinel names it.
sub sentinel_master {
    my ($sentinel, $name) = @_;
    my $addr = redis_cmd($sentinel, 'SENTINEL', 'get-master-addr-by-name',
                         $name);
    return $addr ? $addr->[1] : undef;
}

# A cluster of $opt{count} masters (3), each with $opt{replicas} replicas
# (0), all with $opt{password} (or none), every slot served.  Returns the
# masters then the replicas, each as start_redis returns them with its
# cluster id.
sub start_cluster {
    my (%opt) = @_;
    my $count = ($opt{count} // 3) * (1 + ($opt{replicas} // 0));
    my @auth = defined $opt{password}
             ? ('--requirepass', $opt{password}, '--masterauth', $opt{password})
             : ();
    my @nodes = map {
        start_redis(args => [ @auth, '--cluster-enabled', 'yes',
                              '--cluster-config-file', 'nodes.conf',
                              '--cluster-node-timeout', '2000' ])
    } 1 .. $count;
    $_->{password} = $opt{password} for @nodes;
    my @cli = ($WxTest::REDIS_CLI, defined $opt{password}
                            ? ('-a', $opt{password}, '--no-auth-warning') : ());
    my $replicas = $opt{replicas} // 0;
    my $out = `@cli --cluster create @{[ map { "127.0.0.1:$_->{port}" } @nodes ]} --cluster-replicas $replicas --cluster-yes 2>&1`;
    die "$cli[0] --cluster create failed:\n$out" if $?;
    for my $node (@nodes) {
        wait_until('the cluster up', sub {
            redis_cmd($node, 'CLUSTER', 'INFO') =~ /cluster_state:ok/ }, 30);
        $node->{id} = redis_cmd($node, 'CLUSTER', 'MYID');
    }
    wait_until('the replicas in sync', sub {
        !grep { redis_cmd($_, 'INFO', 'replication') =~ /role:slave/
                && redis_cmd($_, 'INFO', 'replication')
                   !~ /master_link_status:up/ } @nodes }, 30);
    # masters first
    my %replica = map { $_->{port} => redis_cmd($_, 'INFO', 'replication')
                                      =~ /role:slave/ ? 1 : 0 } @nodes;
    return sort { $replica{$a->{port}} <=> $replica{$b->{port}} } @nodes;
}

# The slot of a key, as the cluster computes it.
sub cluster_slot {
    my ($node, $key) = @_;
    return redis_cmd($node, 'CLUSTER', 'KEYSLOT', $key);
}

# The node of @nodes that serves $slot, as $nodes[0] sees it.
sub cluster_owner {
    my ($slot, @nodes) = @_;
    for my $range (@{ redis_cmd($nodes[0], 'CLUSTER', 'SLOTS') }) {
        next unless $range->[0] <= $slot && $slot <= $range->[1];
        my ($owner) = grep { $_->{port} == $range->[2][1] } @nodes;
        return $owner;
    }
    return undef;
}

# Moves $slot from node $from to node $to as resharding does: IMPORTING and
# MIGRATING, its keys MIGRATEd $batch at a time with a pause between,
# then the slot given to $to on every node.  Returns the keys moved.
sub move_slot {
    my (%opt) = @_;
    my ($slot, $from, $to) = @opt{qw(slot from to)};
    my @nodes = @{ $opt{nodes} };
    my $batch = $opt{batch} // 10;
    redis_cmd($to, 'CLUSTER', 'SETSLOT', $slot, 'IMPORTING', $from->{id});
    redis_cmd($from, 'CLUSTER', 'SETSLOT', $slot, 'MIGRATING', $to->{id});
    my $moved = 0;
    while (1) {
        my $keys = redis_cmd($from, 'CLUSTER', 'GETKEYSINSLOT', $slot, $batch);
        last unless @$keys;
        redis_cmd($from, 'MIGRATE', '127.0.0.1', $to->{port}, '', 0, 5000,
                  defined $from->{password} ? ('AUTH', $from->{password}) : (),
                  'KEYS', @$keys);
        $moved += @$keys;
        Time::HiRes::sleep($opt{pause} // 0.01);
    }
    redis_cmd($_, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $to->{id}) for @nodes;
    return $moved;
}

1;
