package WxTopology;

# Redis topologies from Debian's redis-server on loopback ports, for the
# high-availability tests: a master with a replica and sentinels
# (redis-server --sentinel, the binary Debian's redis-sentinel links to).

use strict;
use warnings;

use File::Temp qw(tempdir);
use Test::More;
use WxTest;

use Exporter 'import';
our @EXPORT = qw(start_replicated start_sentinels sentinel_master);

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
                                cmd => [ 'redis-server', "$dir/sentinel.conf",
                                         '--sentinel' ]);
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

1;
