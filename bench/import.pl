#!/usr/bin/env perl
# make bench-import: the rate of wechat_bindings' import, in bindings a
# second, against redis-cli --pipe of the equivalent HSETs (HSET users U O
# and HSET openids O U per binding) into the same Redis, in the same run.
# The import streams a CSV file in chunks (Transfer-Encoding: chunked), as
# a migration script would; each side starts from an empty Redis, best of
# BENCH_ROUNDS.  Prints a markdown section for bench/results.md.
#
#   BENCH_IMPORT    bindings (default 500000)
#   BENCH_ROUNDS    rounds (default 3)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use File::Temp qw(tempdir);
use HTTP::Tiny;
use JSON::PP;
use POSIX qw(strftime);
use Time::HiRes qw(time);
use WxTest;

my $n = $ENV{BENCH_IMPORT} // 500_000;
my $rounds = $ENV{BENCH_ROUNDS} // 3;
my $tmp = tempdir(CLEANUP => 1);
my $P = 'wx:{wxbench}:';

open my $csv, '>', "$tmp/bindings.csv" or die $!;
open my $pipe, '>', "$tmp/bindings.resp" or die $!;
for my $i (1 .. $n) {
    my ($u, $o) = ("user$i", sprintf 'oBench%022d', $i);
    print $csv "$u,$o\n";
    print $pipe WxTest::resp_command('HSET', "${P}users", $u, $o),
                WxTest::resp_command('HSET', "${P}openids", $o, $u);
}
close $csv;
close $pipe;

my $redis = start_redis();
my $ng = start_nginx(log_level => 'warn', http => <<"EOF");
    wechat_redis 127.0.0.1:$redis->{port};

    server {
        listen 127.0.0.1:PORT;
        client_max_body_size 0;

        location = /bindings {
            wechat_appid wxbench;
            wechat_bindings;
        }
    }
EOF

# the worker's peak resident memory, kB: the import holds no whole body
sub worker_peak {
    my ($worker) = split /\n/, `pgrep -P @{[$ng->pid]}`;
    my ($hwm) = `cat /proc/$worker/status` =~ /VmHWM:\s+(\d+)/;
    return $hwm;
}

sub fresh {
    redis_cmd($redis, 'FLUSHALL');
}

sub pipe_rate {
    fresh();
    my $t0 = time;
    my $out = `redis-cli -p $redis->{port} --pipe < $tmp/bindings.resp 2>&1`;
    my $t = time - $t0;
    die "redis-cli --pipe: $out"
        if $? || $out !~ /errors: 0, replies: @{[2 * $n]}/;
    die 'pipe: not all bound' if redis_cmd($redis, 'HLEN', "${P}users") != $n;
    return $n / $t;
}

sub import_rate {
    my ($expect) = @_;
    open my $fh, '<', "$tmp/bindings.csv" or die $!;
    my $http = HTTP::Tiny->new(timeout => 600, keep_alive => 0);
    my $t0 = time;
    my $res = $http->request('POST', $ng->url('/bindings'), {
        headers => { 'Content-Type' => 'text/csv' },
        content => sub { my $buf; read($fh, $buf, 65536) ? $buf : undef },
    });
    my $t = time - $t0;
    my $a = eval { decode_json($res->{content}) } // {};
    die "import: $res->{status} $res->{content}"
        if $res->{status} != 200 || ($a->{$expect} // 0) != $n;
    return $n / $t;
}

my (@pipe, @import, @again);
my $peak_before = worker_peak();
for (1 .. $rounds) {
    push @pipe, pipe_rate();
    fresh();
    push @import, import_rate('added');
    push @again, import_rate('unchanged');
}

my $peak_after = worker_peak();
my $export = HTTP::Tiny->new(timeout => 600)->get($ng->url('/bindings'));
my $exported = () = $export->{content} =~ /\n/g;
die "export: $export->{status}" if $export->{status} != 200 || $exported != $n;
my $peak_export = worker_peak();

my ($best_pipe) = sort { $b <=> $a } @pipe;
my ($best_import) = sort { $b <=> $a } @import;
my ($best_again) = sort { $b <=> $a } @again;
my $cores = () = `cat /proc/cpuinfo` =~ /^processor/mg;
my ($redis_version) = `redis-server --version` =~ /v=(\S+)/;
my ($nginx_version) = `nginx -v 2>&1` =~ m{nginx/(\S+)};

printf "Written by `make bench-import` (bench/import.pl) on %s. Machine: "
       . "%d cores; nginx %s with one worker, Redis %s, on loopback. "
       . "%d bindings, best of %d rounds, each from an empty Redis.\n\n",
       strftime('%Y-%m-%d %H:%M UTC', gmtime), $cores, $nginx_version,
       $redis_version, $n, $rounds;
print "| how | bindings/s | against the pipe |\n| --- | ---: | ---: |\n";
printf "| redis-cli --pipe, 2 HSETs a binding | %.0f | 1.00 |\n", $best_pipe;
printf "| wechat_bindings import, all new | %.0f | %.2f |\n", $best_import,
       $best_import / $best_pipe;
printf "| wechat_bindings import, the same file again (all unchanged) "
       . "| %.0f | %.2f |\n", $best_again, $best_again / $best_pipe;
printf "\nTarget: the import at least half as fast as the pipe: %s "
       . "(%.2f).\n", $best_import >= $best_pipe / 2 ? 'met' : 'NOT met',
       $best_import / $best_pipe;
printf "Every round: pipe %s; import %s; again %s.\n",
       join(', ', map { sprintf '%.0f', $_ } @pipe),
       join(', ', map { sprintf '%.0f', $_ } @import),
       join(', ', map { sprintf '%.0f', $_ } @again);

printf "The worker's peak resident memory (VmHWM): %d kB before, %d kB after "
       . "the %d imports of %.1f MB each, %d kB after an export of the %d "
       . "bindings.\n", $peak_before, $peak_after, 2 * $rounds,
       (-s "$tmp/bindings.csv") / 1e6, $peak_export, $n;

$ng->stop;
stop_redis($redis);
