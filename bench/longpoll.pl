#!/usr/bin/env perl
# make bench-longpoll: LONGPOLL_N waiting polls (default 10,000) against one
# nginx worker.  Reports the worker's memory per waiting poll, the wake-up
# latency from a resolution's PUBLISH to the poll's answer (LONGPOLL_WAKES
# of them, one at a time), and the Redis commands per completed poll
# against 1 s short polling.  Everything is bounded: the polls time out
# after 60 s, the run takes well under a minute.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use Digest::SHA qw(sha256_hex);
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use WxTest;

my $n = $ENV{LONGPOLL_N} // 10_000;
my $wakes = $ENV{LONGPOLL_WAKES} // 500;
my $appid = 'wxlongbench';
my $P = "wx:{$appid}:";
my $token = 'benchpolltoken';

my $redis = start_redis();
my $ng = WxTest::Nginx->new(log_level => 'warn', http => <<"EOF");
    wechat_redis 127.0.0.1:$redis->{port};
    server {
        listen 127.0.0.1:PORT backlog=4096;
        wechat_appid $appid;
        location = /poll { wechat_poll_timeout 60s; wechat_poll; }
        location = /status { wechat_status; }
    }
EOF
# one worker, with connections for the polls
{
    my $file = "$ng->{dir}/nginx.conf";
    open my $fh, '<', $file or die;
    my $conf = do { local $/; <$fh> };
    my $wc = $n + 1000;
    $conf =~ s/worker_connections \d+;/worker_connections $wc;/;
    $conf = 'worker_rlimit_nofile ' . ($n + 2000) . ";\n$conf";
    open $fh, '>', $file or die;
    print $fh $conf;
    close $fh;
    $ng->start;
}

sub scene { sprintf 'wxs_%032x', $_[0] }

# the scenes, pending, in one round trip
redis_cmd($redis, 'EVAL', <<'LUA', 0, $P, $n, sha256_hex($token));
for i = 0, tonumber(ARGV[2]) - 1 do
  local k = ARGV[1] .. 'scene:' .. string.format('wxs_%032x', i)
  redis.call('HSET', k, 'kind', 'bind', 'user', 'u' .. i,
             'status', 'pending', 'token', ARGV[3])
  redis.call('EXPIRE', k, 300)
end
return 1
LUA

sub metric {
    my ($name) = @_;
    my $text = WxTest::http_req('GET', $ng->url('/status'))->{content};
    return $text =~ /^\Q$name\E (\d+)$/m ? $1 : 0;
}

sub worker_rss_kb {
    my $master = $ng->pid;
    my ($pid) = grep { /^\d+$/ } map { s/\s+//gr } `ps -o pid= --ppid $master`;
    open my $fh, '<', "/proc/$pid/status" or die;
    my ($kb) = join('', <$fh>) =~ /^VmRSS:\s+(\d+)/m;
    return $kb;
}

# Redis's calls of each command, and its microseconds as "NAME usec"
sub commands {
    my $info = redis_cmd($redis, 'INFO', 'commandstats');
    my %c;
    while ($info =~ /^cmdstat_(\w+):calls=(\d+),usec=(\d+)/mg) {
        $c{$1} = $2;
        $c{"$1 usec"} = $3;
    }
    return \%c;
}

sleep 0.5;
my $rss0 = worker_rss_kb();
my $cmd0 = commands();

print "longpoll: opening $n polls\n";
my @socks;
for my $i (0 .. $n - 1) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $ng->{port}, Proto => 'tcp')
        or die "connect $i: $!";
    print $s "GET /poll?scene=" . scene($i) . "&token=$token HTTP/1.0\r\n"
           . "Host: x\r\n\r\n";
    push @socks, $s;
}
wait_until("$n waiting polls", sub { metric('wechat_polls_waiting') == $n },
           60);
sleep 0.5;
my $rss1 = worker_rss_kb();
my $cmd_open = commands();

# wake-ups, one at a time: PUBLISH as resolve.lua does, time the answer
print "longpoll: $wakes wake-ups\n";
my $pub = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                PeerPort => $redis->{port}, Proto => 'tcp')
    or die;
my @lat;
for my $i (0 .. $wakes - 1) {
    my $k = "${P}scene:" . scene($i);
    my $req = resp('HSET', $k, 'status', 'bound', 'openid', "o$i")
            . resp('PUBLISH', "${P}resolved:" . scene($i), 'bound');
    my $t0 = time;
    print $pub $req;
    WxTest::read_resp($pub) for 1 .. 2;
    my $sel = IO::Select->new($socks[$i]);
    $sel->can_read(5) or die "poll $i not woken\n";
    push @lat, (time - $t0) * 1000;
    my $answer = '';
    1 while sysread($socks[$i], $answer, 4096, length $answer);
    $answer =~ /"bound"/ or die "poll $i: $answer\n";
    close $socks[$i];
}
my $cmd1 = commands();

sub resp {
    my $r = '*' . @_ . "\r\n";
    $r .= '$' . length($_) . "\r\n$_\r\n" for @_;
    return $r;
}

@lat = sort { $a <=> $b } @lat;
my $pct = sub { $lat[int($_[0] * $#lat)] };
my $delta = sub {
    my ($from, $to) = @_;
    my %d = map { $_ => ($to->{$_} // 0) - ($from->{$_} // 0) }
            map { ($_, "$_ usec") } qw(hmget subscribe unsubscribe);
    return \%d;
};
my $open = $delta->($cmd0, $cmd_open);
my $woken = $delta->($cmd_open, $cmd1);
my $sum = sub { my $d = shift; $d->{hmget} + $d->{subscribe}
                               + $d->{unsubscribe} };

printf "polls waiting: %d, worker RSS %d -> %d KB: %.2f KB per poll\n",
       $n, $rss0, $rss1, ($rss1 - $rss0) / $n;
printf "wake-up latency over %d: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
       scalar @lat, $pct->(0.5), $pct->(0.99), $lat[-1];
printf "Redis commands to open %d polls: HMGET %d SUBSCRIBE %d; "
       . "to wake %d: HMGET %d UNSUBSCRIBE %d\n",
       $n, $open->{hmget}, $open->{subscribe}, $wakes, $woken->{hmget},
       $woken->{unsubscribe};
printf "Redis CPU per wait: SUBSCRIBE %.2f us, UNSUBSCRIBE %.2f us, "
       . "HMGET %.2f us\n",
       $open->{'subscribe usec'} / ($open->{subscribe} || 1),
       $woken->{'unsubscribe usec'} / ($woken->{unsubscribe} || 1),
       ($open->{'hmget usec'} + $woken->{'hmget usec'})
           / (($open->{hmget} + $woken->{hmget}) || 1);
printf "per completed poll: %.2f commands, whatever the wait; "
       . "1 s short polling: 1 per second waited\n",
       $sum->($open) / $n + $sum->($woken) / $wakes;

close $_ for grep { defined } @socks[$wakes .. $n - 1];
$ng->stop;
