#!/usr/bin/env perl
# make bench: the module against its limit (nginx `return 200` on the same
# config) and against an app-server peer (node-webot's wechat middleware,
# express and node redis, bench/peers/node-webot), measured with wrk in one
# run on one machine.  Writes bench/results.md.
#
#   BENCH_SECONDS   length of each measurement (default 10)
#   BENCH_CONNS     wrk connections (default 16, one wrk thread)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use Digest::SHA qw(sha1_hex sha256_hex);
use File::Temp qw(tempdir);
use POSIX qw(strftime);
use WxTest;

my $seconds = $ENV{BENCH_SECONDS} // 5;
my $conns = $ENV{BENCH_CONNS} // 16;
my $token = 'benchToken';
my $appid = 'wxbench';
my $aes = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';
my $poll_token = 'benchpolltoken';
my $bench = $FindBin::Bin;
my $tmp = tempdir(CLEANUP => 1);

# Scenes: a range for each measurement that resolves scans, so that every
# request binds a fresh pending scene and de-dup never short-circuits.
my $per_range = 150_000;
my %range = (nginx_scan => 0, peer_scan => 1, nginx_safe => 2, peer_safe => 3,
             warm => 4);
my $poll_scene = sprintf 'wxs_%032x', 5 * $per_range;

print "bench: starting Redis, nginx, the upstream and the peer\n";
my $redis = start_redis();
create_scenes(0, 5 * $per_range + 1);

my $upstream = start_nginx(log_level => 'warn', http => <<'EOF');
    server {
        listen 127.0.0.1:PORT;
        location / { return 200 "success"; }
    }
EOF

my $ng = start_nginx(log_level => 'warn', http => <<"EOF");
    wechat_redis 127.0.0.1:$redis->{port};

    upstream app {
        server 127.0.0.1:$upstream->{port};
        keepalive 16;
    }

    server {
        listen 127.0.0.1:PORT;
        wechat_appid $appid;
        wechat_token $token;
        wechat_aes_key $aes;
        wechat_timestamp_skew 1h;

        location = /wx { wechat_callback; }
        location = /safe { wechat_mode safe; wechat_callback; }
        location = /pass { wechat_callback; wechat_pass \@app; }
        location = /poll { wechat_poll; }
        location = /limit { return 200 "success"; }

        location \@app {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
EOF

my $peer_port = free_port();
my $peer = fork // die;
if ($peer == 0) {
    chdir "$bench/peers/node-webot" or die;
    $ENV{PORT} = $peer_port;
    $ENV{REDIS_PORT} = $redis->{port};
    $ENV{WECHAT_TOKEN} = $token;
    $ENV{WECHAT_APPID} = $appid;
    $ENV{WECHAT_AES_KEY} = $aes;
    open STDOUT, '>', "$tmp/peer.log";
    exec 'node', 'server.js' or exit 127;
}
wait_until('the peer', sub { WxTest::port_open($peer_port) }, 30);

# the processes whose CPU is measured: nginx's worker, Redis, the peer
my $worker = (split ' ', `pgrep -P ${\ $ng->pid}`)[0];
my %pids = (nginx => $worker, redis => $redis->{pid}, peer => $peer);

my $ts = time;
my $query = "signature=" . sha1_hex(join '', sort $token, $ts, 'n1')
          . "&timestamp=$ts&nonce=n1";

# Signed pushes, each with its own query (a signed query that came back
# with another body would be refused as a replay) and a fresh scene.
print "bench: signing and encrypting pushes\n";
my %lines = (nginx_scan => 120_000, peer_scan => 40_000,
             nginx_safe => 120_000, peer_safe => 40_000);
for my $set (sort keys %lines) {
    my $mode = $set =~ /safe/ ? 'safe' : 'plain';
    pushes($mode, $range{$set} * $per_range, $lines{$set}, "$tmp/$set.txt");
}
pushes('plain', $range{warm} * $per_range, 50_000, "$tmp/warm-nginx.txt");
pushes('plain', $range{warm} * $per_range + 75_000, 15_000,
       "$tmp/warm-peer.txt");

sub pushes {
    my ($mode, $first, $n, $file) = @_;
    system("node $bench/peers/node-webot/gen-pushes.js $mode $token $aes "
           . "$appid $first $n > $file") == 0 or die "gen-pushes failed";
}

my $click = event_xml(to => 'gh_bench', from => 'oClick', event => 'CLICK',
                      key => 'MENU_1');
my $scan_like = event_xml(to => 'gh_bench', from => 'o123456',
                          event => 'SCAN', key => $poll_scene);
my $safe_like = do {
    open my $fh, '<', "$tmp/nginx_safe.txt" or die;
    my $l = <$fh>;
    chomp $l;
    (split /\t/, $l)[1];
};

my $peer_url = "http://127.0.0.1:$peer_port";
my $poll_q = "scene=$poll_scene&token=$poll_token";

my @cases = (
    { name => 'SCAN push resolved in Redis, with its reply',
      module => [ $ng->url('/wx'), 'lines', "$tmp/nginx_scan.txt" ],
      limit => [ $ng->url('/limit'), 'fixed', $query, $scan_like ],
      peer => [ "$peer_url/wx", 'lines', "$tmp/peer_scan.txt" ],
      target_limit => 0.40, target_peer => 10, resolves => 1 },
    { name => 'short poll',
      module => [ $ng->url("/poll?$poll_q") ],
      limit => [ $ng->url("/limit?$poll_q") ],
      peer => [ "$peer_url/poll?$poll_q" ],
      target_limit => 0.50 },
    { name => 'safe-mode SCAN push, resolved, reply encrypted',
      module => [ $ng->url('/safe'), 'lines', "$tmp/nginx_safe.txt" ],
      limit => [ $ng->url('/limit'), 'fixed', $query, $safe_like ],
      peer => [ "$peer_url/safe", 'lines', "$tmp/peer_safe.txt" ],
      target_limit => 0.30, resolves => 1 },
    { name => 'menu click passed to the upstream',
      module => [ $ng->url('/pass'), 'fixed', $query, $click ],
      limit => [ $ng->url('/limit'), 'fixed', $query, $click ],
      peer => [ "$peer_url/wx", 'fixed', $query, $click ] },
);

# warm both servers up once
wrk([ $ng->url('/wx'), 'lines', "$tmp/warm-nginx.txt" ], 2);
wrk([ "$peer_url/wx", 'lines', "$tmp/warm-peer.txt" ], 2);

for my $c (@cases) {
    for my $who (qw(limit module peer)) {
        my $before = resolved_keys();
        my %cpu = map { $_ => cpu_seconds($pids{$_}) } keys %pids;
        print "bench: $c->{name}: $who\n";
        my $r = $c->{$who . '_result'} = wrk($c->{$who}, $seconds);
        $r->{resolutions} = int((resolved_keys() - $before) / 2)
            if $c->{resolves};
        $r->{cpu}{$_} = (cpu_seconds($pids{$_}) - $cpu{$_}) / $seconds
            for keys %pids;
    }
}

kill 'TERM', $peer;
waitpid $peer, 0;

write_results();

# --- helpers ------------------------------------------------------------------

sub create_scenes {
    my ($first, $n) = @_;
    my $hash = sha256_hex($poll_token);
    my $script = <<'LUA';
for i = tonumber(ARGV[1]), tonumber(ARGV[2]) - 1 do
  local scene = string.format('wxs_%032x', i)
  redis.call('HSET', ARGV[3] .. scene, 'kind', 'bind', 'user', 'u' .. i,
             'status', 'pending', 'token', ARGV[4])
end
return 1
LUA
    for (my $i = $first; $i < $first + $n; $i += 100_000) {
        my $end = $i + 100_000 < $first + $n ? $i + 100_000 : $first + $n;
        redis_cmd($redis, 'EVAL', $script, 0, $i, $end,
                  "wx:{$appid}:scene:", $hash);
    }
}

# Each resolved scan adds two keys without a lifetime (user and openid), in
# the module's schema and in the peer's alike; de-dup records expire.
sub resolved_keys {
    my ($keys, $expires) = redis_cmd($redis, 'INFO', 'keyspace')
                           =~ /keys=(\d+),expires=(\d+)/;
    return ($keys // 0) - ($expires // 0);
}

# CPU seconds (user + system) a process has used so far.
sub cpu_seconds {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my @f = split ' ', (<$fh> =~ s/^.*\) //r);
    return ($f[11] + $f[12]) / 100;
}

sub wrk {
    my ($spec, $secs) = @_;
    my ($url, @args) = @$spec;
    my @cmd = ('wrk', '-t1', "-c$conns", "-d${secs}s", '--latency',
               '--timeout', '5s');
    push @cmd, '-s', "$bench/wrk/push.lua" if @args;
    push @cmd, $url;
    push @cmd, '--', @args if @args;
    open my $fh, '-|', @cmd or die "wrk: $!";
    my $out = do { local $/; <$fh> };
    close $fh;
    my %r = (raw => $out);
    ($r{rps}) = $out =~ /Requests\/sec:\s+([\d.]+)/;
    ($r{requests}) = $out =~ /(\d+) requests in/;
    $r{p50} = ms($out =~ /^\s+50%\s+([\d.]+\w+)/m);
    $r{p99} = ms($out =~ /^\s+99%\s+([\d.]+\w+)/m);
    ($r{errors}) = $out =~ /Non-2xx or 3xx responses: (\d+)/;
    $r{errors} //= 0;
    my ($sock) = $out =~ /Socket errors: (.*)/;
    $r{errors} .= " (socket: $sock)" if $sock;
    die "wrk failed:\n$out" unless $r{rps};
    return \%r;
}

sub ms {
    my ($v) = @_;
    return undef unless defined $v;
    my ($n, $unit) = $v =~ /([\d.]+)(\w+)/;
    return $n / 1000 if $unit eq 'us';
    return $n * 1000 if $unit eq 's';
    return $n;
}

sub write_results {
    my $cpu = `grep -m1 'model name' /proc/cpuinfo` =~ s/.*:\s*//r;
    chomp $cpu;
    my $nginx_v = (`nginx -v 2>&1` =~ /nginx\/(\S+)/)[0];
    my $node_v = `node --version`;
    chomp $node_v;
    my $redis_v = (`redis-server --version` =~ /v=(\S+)/)[0];

    my $md = "# Benchmark results\n\n"
        . "Written by `make bench` (bench/run.pl) on "
        . strftime('%Y-%m-%d %H:%M UTC', gmtime) . ". Machine: "
        . `nproc` =~ s/\n//r . " cores ($cpu). nginx $nginx_v with one "
        . "worker, Redis $redis_v, node $node_v; wrk with one thread and "
        . "$conns connections, ${seconds} s a measurement, all on loopback "
        . "on the same machine and in the same run.\n\n"
        . "* **limit**: nginx `return 200` on the same server, for the same "
        . "request (method and body).\n"
        . "* **module**: this module.\n"
        . "* **peer**: the same job in an app server: node-webot's `wechat` "
        . "middleware, express and the node `redis` client, with one Lua "
        . "script per scan as the module has (bench/peers/node-webot).\n\n"
        . "CPU columns are the share of one core each process used during "
        . "the measurement (wrk itself used the rest).\n\n"
        . "| case | who | req/s | p50 ms | p99 ms | non-2xx | scans resolved "
        . "| CPU nginx worker | CPU Redis | CPU node |\n"
        . "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";

    for my $c (@cases) {
        for my $who (qw(limit module peer)) {
            my $r = $c->{$who . '_result'};
            $md .= sprintf "| %s | %s | %.0f | %.2f | %.2f | %s | %s "
                           . "| %.0f%% | %.0f%% | %.0f%% |\n",
                $c->{name}, $who, $r->{rps}, $r->{p50} // 0, $r->{p99} // 0,
                $r->{errors}, $r->{resolutions} // '',
                map { 100 * ($r->{cpu}{$_} // 0) } qw(nginx redis peer);
        }
    }

    $md .= "\n## CPU per request\n\n"
        . "Microseconds of CPU per request: in the process that answers "
        . "(nginx's worker, or node for the peer) and in Redis. The edge "
        . "process's cost is what this module moves out of the app server; "
        . "Redis's is the same work for both.\n\n"
        . "| case | limit: nginx | module: nginx | module: Redis | peer: node "
        . "| peer: Redis | node / nginx |\n"
        . "| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n";
    for my $c (@cases) {
        my %us;
        for my $who (qw(limit module peer)) {
            my $r = $c->{$who . '_result'};
            for my $p (qw(nginx redis peer)) {
                $us{$who}{$p} = 1e6 * ($r->{cpu}{$p} // 0) / $r->{rps};
            }
        }
        $md .= sprintf "| %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f× |\n",
            $c->{name}, $us{limit}{nginx}, $us{module}{nginx},
            $us{module}{redis}, $us{peer}{peer}, $us{peer}{redis},
            $us{module}{nginx} ? $us{peer}{peer} / $us{module}{nginx} : 0;
    }

    $md .= "\n## Ratios and targets\n\n"
        . "| case | module / limit | target | module / peer | target |\n"
        . "| --- | ---: | ---: | ---: | ---: |\n";
    my @missed;
    for my $c (@cases) {
        my $m = $c->{module_result}{rps};
        my $vs_limit = $m / $c->{limit_result}{rps};
        my $vs_peer = $m / $c->{peer_result}{rps};
        my $tl = $c->{target_limit};
        my $tp = $c->{target_peer};
        $md .= sprintf "| %s | %.0f%% | %s | %.1f× | %s |\n", $c->{name},
            100 * $vs_limit,
            defined $tl ? sprintf('≥ %.0f%% %s', 100 * $tl,
                                  $vs_limit >= $tl ? 'met' : '**missed**')
                        : '—',
            $vs_peer,
            defined $tp ? sprintf('≥ %d× %s', $tp,
                                  $vs_peer >= $tp ? 'met' : '**missed**')
                        : '—';
        push @missed, $c->{name} if (defined $tl && $vs_limit < $tl)
                                    || (defined $tp && $vs_peer < $tp);
    }

    $md .= "\n" . (@missed ? "Missed: " . join('; ', @missed) . ". See "
                             . "the notes below.\n"
                           : "All targets met in this run.\n");

    my $notes = "$bench/notes.md";
    if (-f $notes) {
        open my $fh, '<', $notes or die;
        $md .= "\n" . do { local $/; <$fh> };
    }

    open my $out, '>', "$bench/results.md" or die;
    print $out $md;
    close $out;
    print $md;
}
