#!/usr/bin/env perl
# make bench: the module against its limit (nginx `return 200` on the same
# config), against an app-server peer (node-webot's wechat middleware,
# express and node redis, bench/peers/node-webot) and against an edge peer
# in OpenResty style (Debian's lua module for nginx and lua-resty-redis,
# bench/peers/openresty), measured with wrk in one run on one machine, at
# each load in BENCH_CONNS.  Writes bench/results.md.
#
#   BENCH_SECONDS   length of each measurement (default 5)
#   BENCH_CONNS     wrk connections, a comma-separated list (default 16,64;
#                   one wrk thread)
#   BENCH_ONLY      a pattern: only the cases whose name matches it, with
#                   only the servers named in BENCH_WHO (default all); the
#                   figures go to standard output, not to bench/results.md

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use Digest::SHA qw(hmac_sha256_hex sha1_hex sha256_hex);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use POSIX qw(strftime);
use WxTest;

my $seconds = $ENV{BENCH_SECONDS} // 5;
my @conns = split /,/, $ENV{BENCH_CONNS} // '16,64';
my $only = $ENV{BENCH_ONLY};
my $token = 'benchToken';
my $appid = 'wxbench';
my $aes = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';
my $poll_token = 'benchpolltoken';
my $skew = 3600;
my $oauth_key = 'B' x 40;
my $bench = $FindBin::Bin;
my $tmp = tempdir(CLEANUP => 1);

# Every measurement that resolves scans starts from a Redis holding only
# pending scenes 0 .. N-1 (and the polled scene N), so that each push binds
# a fresh scene and neither de-dup nor single-use queries short-circuit.
# N covers the fastest resolving server for the whole measurement (near
# 40,000 scans a second here); a run that went through all of them shows
# "wrapped" and fewer scans resolved than requests.
my $n_scenes = $ENV{BENCH_SCENES} // ($seconds * 60_000 > 30_000
                                      ? $seconds * 60_000 : 30_000);
my $poll_scene = sprintf 'wxs_%032x', $n_scenes;

# The Lua peer runs the module's own RESOLVE script, taken from the source.
my $resolve = generated_scripts()->{resolve}{text};
my $resolve_sha = sha1_hex($resolve);
open my $rfh, '>', "$tmp/resolve.lua" or die;
print $rfh $resolve;
close $rfh;

print "bench: starting Redis, nginx, the upstream and the peers\n";
my $redis = start_redis();       # the module's and the node peer's
my $lua_redis = start_redis();   # the Lua peer's
reset_redis($_) for $redis, $lua_redis;

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
        wechat_callback_token $token;
        wechat_aes_key $aes;
        wechat_timestamp_skew ${skew}s;
        wechat_oauth_secret $oauth_key;
        wechat_oauth_redirect_uri http://127.0.0.1/oauth/callback;

        location = /wx { wechat_callback; }
        location = /safe { wechat_mode safe; wechat_callback; }
        location = /pass { wechat_callback; wechat_pass \@app; }
        location = /poll { wechat_poll_timeout 0; wechat_poll; }
        location = /limit { return 200 "success"; }

        # a content handler that runs after the access phase, unlike
        # return: the limit of a page behind wechat_oauth
        location = /gif { empty_gif; }
        location = /oauth { wechat_oauth base; empty_gif; }

        location \@app {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
EOF

my $lua_cpath = join ';', map { s/cjson\.so$/?.so/r }
                          glob('/usr/lib/*/lua/5.1/cjson.so');
my $lua = LuaPeer->new(log_level => 'warn', http => <<"EOF")->start;
    lua_package_path "$bench/peers/openresty/?.lua;/usr/share/lua/5.1/?.lua;;";
    lua_package_cpath "$lua_cpath;;";

    init_by_lua_block {
        require("wechat_edge").init {
            token = "$token", appid = "$appid", skew = $skew,
            redis_port = $lua_redis->{port},
            resolve_script = "$tmp/resolve.lua",
        }
    }
    init_worker_by_lua_block { require("wechat_edge").init_worker() }

    server {
        listen 127.0.0.1:PORT;

        location = /wx { content_by_lua_block { require("wechat_edge").push() } }
        location = /poll { content_by_lua_block { require("wechat_edge").poll() } }
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

# the processes whose CPU is measured: the one that answers, and its Redis
my %server = (limit => worker_of($ng), gif => worker_of($ng),
              module => worker_of($ng),
              node => $peer, lua => worker_of($lua));
my %redis_of = (limit => $redis, gif => $redis, module => $redis,
                node => $redis,
                lua => $lua_redis);

my $ts = time;
my $query = "signature=" . sha1_hex(join '', sort $token, $ts, 'n1')
          . "&timestamp=$ts&nonce=n1";

# Signed pushes, each with its own query (a signed query that came back
# with another body would be refused as a replay) and a fresh scene; every
# resolving measurement replays the same file against a reset Redis.
print "bench: signing and encrypting $n_scenes pushes of each kind\n";
pushes('plain', "$tmp/scan.txt");
pushes('safe', "$tmp/safe.txt");

# menu clicks: fresh ones for each server and load, so that none is a retry
my %clicks;
for my $i (0 .. $#conns) {
    for my $who (qw(module node)) {
        my $file = $clicks{$who}{$conns[$i]} = "$tmp/click-$who-$i.txt";
        pushes('click', $file, $i * $n_scenes);
    }
}

sub pushes {
    my ($mode, $file, $first) = @_;
    $first //= 0;
    system("node $bench/peers/node-webot/gen-pushes.js $mode $token $aes "
           . "$appid $first $n_scenes > $file") == 0
        or die "gen-pushes failed";
}

my $click = event_xml(to => 'gh_bench', from => 'oClick', event => 'CLICK',
                      key => 'MENU_1');
my $scan_like = event_xml(to => 'gh_bench', from => 'o123456',
                          event => 'SCAN', key => $poll_scene);
my $safe_like = do {
    open my $fh, '<', "$tmp/safe.txt" or die;
    my $l = <$fh>;
    chomp $l;
    (split /\t/, $l)[1];
};

my $peer_url = "http://127.0.0.1:$peer_port";
my $poll_q = "scene=$poll_scene&token=$poll_token";
my %c_url = (module => $ng->url(''), lua => $lua->url(''));

# A valid session of the kind wechat_oauth seals (docs/oauth.md), made
# here with Digest::SHA: "v1." hex(framed fields) "." HMAC-SHA256.
my $session = do {
    my $fields = join '', map { length($_) . ":$_" }
        'wechat-oauth-session/1', $appid, 'oBenchUser0123456789abcdefgh',
        '', 'base', time + 86400, '', '';
    my $sealed = 'v1.' . unpack('H*', $fields);
    "$sealed." . hmac_sha256_hex($sealed, $oauth_key);
};
my $ua = 'User-Agent: Mozilla/5.0 MicroMessenger/8.0';

# Targets: a ratio of the module's req/s to another's, at the loads listed
# (all loads when none are).
my @cases = (
    { name => 'SCAN push resolved in Redis, with its reply',
      limit => [ $ng->url('/limit'), 'fixed', $query, $scan_like ],
      module => [ $ng->url('/wx'), 'lines', "$tmp/scan.txt" ],
      node => [ "$peer_url/wx", 'lines', "$tmp/scan.txt" ],
      lua => [ $lua->url('/wx'), 'lines', "$tmp/scan.txt" ],
      targets => { limit => [ 0.40, 64 ], node => [ 10, 64 ],
                   lua => [ 2 ] },
      resolves => 1 },
    { name => 'short poll',
      limit => [ $ng->url("/limit?$poll_q") ],
      module => [ $ng->url("/poll?$poll_q") ],
      node => [ "$peer_url/poll?$poll_q" ],
      lua => [ $lua->url("/poll?$poll_q") ],
      targets => { limit => [ 0.70, 16 ], lua => [ 2 ] } },
    { name => 'safe-mode SCAN push, resolved, reply encrypted',
      limit => [ $ng->url('/limit'), 'fixed', $query, $safe_like ],
      module => [ $ng->url('/safe'), 'lines', "$tmp/safe.txt" ],
      node => [ "$peer_url/safe", 'lines', "$tmp/safe.txt" ],
      targets => { limit => [ 0.30 ] },
      resolves => 1 },
    { name => 'menu click passed to the upstream',
      limit => [ $ng->url('/limit'), 'fixed', $query, $click ],
      module => sub { [ $ng->url('/pass'), 'lines', $clicks{module}{$_[0]} ] },
      node => sub { [ "$peer_url/wx", 'lines', $clicks{node}{$_[0]} ] },
      targets => {} },
    { name => 'request with a valid OAuth session',
      limit => [ $ng->url('/limit'), 'header', $ua ],
      gif => [ $ng->url('/gif'), 'header', $ua ],
      module => [ $ng->url('/oauth'), 'header',
                  "Cookie: wechat_session=$session", $ua ],
      targets => { limit => [ 0.80 ] } },
);
# gif (empty_gif: the content handler behind the OAuth case) only when
# BENCH_WHO names it
my @who = split /,/, $ENV{BENCH_WHO} // 'limit,module,node,lua';
@cases = grep { $_->{name} =~ /$only/ } @cases if defined $only;

# warm every server up once, and check that the module and the Lua peer
# run the same script
wrk([ $ng->url('/wx'), 'lines', "$tmp/scan.txt" ], 2, $conns[0]);
wrk([ "$peer_url/wx", 'lines', "$tmp/scan.txt" ], 2, $conns[0]);
wrk([ $lua->url('/wx'), 'lines', "$tmp/scan.txt" ], 2, $conns[0]);
for my $r ($redis, $lua_redis) {
    my $e = redis_cmd($r, 'SCRIPT', 'EXISTS', $resolve_sha);
    die "bench: the RESOLVE script taken from the build "
        . "is not the one the module loaded\n" unless $e->[0];
}
same_answers();

for my $c (@cases) {
    for my $n (@conns) {
        for my $who (grep { $c->{$_} } @who) {
            my $r = $redis_of{$who};
            reset_redis($r) if $c->{resolves} && $who ne 'limit';
            redis_cmd($r, 'CONFIG', 'RESETSTAT');
            my $before = resolved_keys($r);
            my %cpu = (server => cpu_seconds($server{$who}),
                       redis => cpu_seconds($r->{pid}));
            print "bench: $c->{name}: $who, $n connections\n";
            my $spec = ref $c->{$who} eq 'CODE' ? $c->{$who}->($n)
                                                 : $c->{$who};
            my $res = $c->{result}{$n}{$who} = wrk($spec, $seconds, $n);
            if ($c->{resolves}) {
                $res->{resolutions} = int((resolved_keys($r) - $before) / 2);
                $res->{commands} = commandstats($r) if $who ne 'limit';
            }
            ($res->{redis_conns}) = redis_cmd($r, 'INFO', 'stats')
                =~ /total_connections_received:(\d+)/;
            $res->{cpu}{server} = (cpu_seconds($server{$who}) - $cpu{server})
                                  / $seconds;
            $res->{cpu}{redis} = (cpu_seconds($r->{pid}) - $cpu{redis})
                                 / $seconds;
            printf "bench:   %.0f req/s, p50 %s ms, p99 %s ms, CPU per "
                   . "request %.1f us, Redis %.1f us, non-2xx %s\n",
                   @$res{qw(rps p50 p99)},
                   (map { $res->{cpu}{$_} / $res->{rps} * 1e6 }
                        qw(server redis)), $res->{errors}
                if defined $only;
        }
    }
}

kill 'TERM', $peer;
waitpid $peer, 0;

write_results() unless defined $only;

# --- helpers ------------------------------------------------------------------

# The module and the Lua peer answer the same push and the same poll with
# the same bytes (but for the reply's time), and bind the same way.
sub same_answers {
    open my $fh, '<', "$tmp/scan.txt" or die;
    my ($q, $body) = split /\t/, scalar <$fh>;
    chomp $body;
    my $http = HTTP::Tiny->new(timeout => 10);
    my %got;
    for my $who (qw(module lua)) {
        my $r = $redis_of{$who};
        reset_redis($r);
        my $res = $http->post("$c_url{$who}/wx?$q",
                              { content => $body,
                                headers => { 'Content-Type' => 'text/xml' } });
        my $poll = $http->get("$c_url{$who}/poll?$poll_q");
        my $bound = redis_cmd($r, 'HGET', "wx:{$appid}:scene:"
                                          . sprintf('wxs_%032x', 0), 'status');
        $got{$who} = join "\n", $res->{status}, $res->{headers}{'content-type'},
            $res->{content} =~ s{<CreateTime>\d+</CreateTime>}{}r,
            $poll->{status}, $poll->{content}, $bound;
    }
    die "bench: the module and the Lua peer answer differently:\n"
        . "module:\n$got{module}\nlua:\n$got{lua}\n"
        unless $got{module} eq $got{lua} && $got{module} =~ /bound$/;
}

sub worker_of {
    my ($nginx) = @_;
    return (split ' ', `pgrep -P ${\ $nginx->pid}`)[0];
}

# Only pending scenes 0 .. N: the pushes' and the polled one.
sub reset_redis {
    my ($r) = @_;
    redis_cmd($r, 'FLUSHALL');
    my $hash = sha256_hex($poll_token);
    my $script = <<'LUA';
for i = tonumber(ARGV[1]), tonumber(ARGV[2]) - 1 do
  local scene = string.format('wxs_%032x', i)
  redis.call('HSET', ARGV[3] .. scene, 'kind', 'bind', 'user', 'u' .. i,
             'status', 'pending', 'token', ARGV[4])
end
return 1
LUA
    for (my $i = 0; $i <= $n_scenes; $i += 100_000) {
        my $end = $i + 100_000 < $n_scenes + 1 ? $i + 100_000 : $n_scenes + 1;
        redis_cmd($r, 'EVAL', $script, 0, $i, $end, "wx:{$appid}:scene:",
                  $hash);
    }
}

# Each resolved scan adds two keys without a lifetime (user and openid), in
# the module's schema and in the peers' alike; de-dup records expire.
# Two per binding: keys without a TTL (node's user: and openid: strings)
# and the fields of the module's two hashes (and the Lua peer's, which runs
# the module's script).
sub resolved_keys {
    my ($r) = @_;
    my ($keys, $expires) = redis_cmd($r, 'INFO', 'keyspace')
                           =~ /keys=(\d+),expires=(\d+)/;
    return ($keys // 0) - ($expires // 0)
           + redis_cmd($r, 'HLEN', "wx:{$appid}:users")
           + redis_cmd($r, 'HLEN', "wx:{$appid}:openids");
}

# Redis's own count of commands since CONFIG RESETSTAT, those run inside
# scripts included: { command => [ calls, usec ] }.
sub commandstats {
    my ($r) = @_;
    my %s;
    for (split /\r?\n/, redis_cmd($r, 'INFO', 'commandstats')) {
        next unless /^cmdstat_([\w|]+):calls=(\d+),usec=(\d+)/;
        next if $1 =~ /^(config|info|hlen)\b/;    # the bench's own
        $s{$1} = [ $2, $3 ];
    }
    return \%s;
}

# CPU seconds (user + system) a process has used so far.
sub cpu_seconds {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my @f = split ' ', (<$fh> =~ s/^.*\) //r);
    return ($f[11] + $f[12]) / 100;
}

sub wrk {
    my ($spec, $secs, $n) = @_;
    my ($url, @args) = @$spec;
    my @cmd = ('wrk', '-t1', "-c$n", "-d${secs}s", '--latency',
               '--timeout', '5s');

    # [ url, 'header', lines... ]: a GET with those headers
    if (@args && $args[0] eq 'header') {
        (undef, @args) = @args;
        push @cmd, map { ('-H', $_) } @args;
        @args = ();
    }

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
    my $redis_v = redis_version();
    my $lua_v = `dpkg-query -W -f='\${Version}' libnginx-mod-http-lua`
                =~ s/^\d+://r;
    my $resty_v = `dpkg-query -W -f='\${Version}' lua-nginx-redis`;
    my $loads = join ' and ', @conns;

    my $md = "# Benchmark results\n\n"
        . "Written by `make bench` (bench/run.pl) on "
        . strftime('%Y-%m-%d %H:%M UTC', gmtime) . ". Machine: "
        . `nproc` =~ s/\n//r . " cores ($cpu). nginx $nginx_v with one "
        . "worker, $redis_v, node $node_v, Debian's lua module for "
        . "nginx $lua_v with lua-resty-redis $resty_v; wrk with one thread "
        . "and $loads connections, ${seconds} s a measurement, all on "
        . "loopback on the same machine and in the same run.\n\n"
        . "* **limit**: nginx `return 200` on the same server, for the same "
        . "request (method and body).\n"
        . "* **module**: this module.\n"
        . "* **node**: the same job in an app server: node-webot's `wechat` "
        . "middleware, express and the node `redis` client, with one Lua "
        . "script per scan as the module has (bench/peers/node-webot).\n"
        . "* **lua**: the same job at the edge in OpenResty style: Debian's "
        . "nginx with its lua module, lua-resty-redis over a cosocket "
        . "keepalive pool, one EVALSHA of the module's own RESOLVE script "
        . "per scan, in its own nginx with its own Redis "
        . "(bench/peers/openresty).\n\n"
        . "Each measurement that resolves scans starts from a Redis holding "
        . "only pending scenes. CPU columns are the share of one core used "
        . "during the measurement by the process that answers (nginx's "
        . "worker, or node) and by its Redis; wrk used the rest.\n\n"
        . "| case | conns | who | req/s | p50 ms | p99 ms | non-2xx "
        . "| scans resolved | CPU server | CPU Redis |\n"
        . "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: "
        . "| ---: |\n";

    for my $c (@cases) {
        for my $n (@conns) {
            for my $who (grep { $c->{$_} } @who) {
                my $r = $c->{result}{$n}{$who};
                my $resolved = $r->{resolutions} // '';
                $resolved .= ' (wrapped)' if $c->{resolves} && $who ne 'limit'
                                             && $r->{requests} > $n_scenes;
                $md .= sprintf "| %s | %d | %s | %.0f | %.2f | %.2f | %s "
                               . "| %s | %.0f%% | %.0f%% |\n",
                    $c->{name}, $n, $who, $r->{rps}, $r->{p50} // 0,
                    $r->{p99} // 0, $r->{errors}, $resolved,
                    100 * $r->{cpu}{server}, 100 * $r->{cpu}{redis};
            }
        }
    }

    $md .= "\n## CPU per request\n\n"
        . "Microseconds of CPU per request: in the process that answers "
        . "(nginx's worker for limit, module and lua; node for node) and in "
        . "its Redis. The edge process's cost is what the module moves out "
        . "of the app server.\n\n"
        . "| case | conns | limit | module | module: Redis | node "
        . "| node: Redis | lua | lua: Redis |\n"
        . "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
    for my $c (@cases) {
        for my $n (@conns) {
            my @cells;
            for my $who (@who) {
                my $r = $c->{result}{$n}{$who};
                my @p = $who eq 'limit' ? ('server') : ('server', 'redis');
                push @cells, map {
                    $r ? sprintf('%.1f', 1e6 * $r->{cpu}{$_} / $r->{rps})
                       : '—' } @p;
            }
            $md .= "| $c->{name} | $n | " . join(' | ', @cells) . " |\n";
        }
    }

    $md .= "\n## Redis commands per resolved push\n\n"
        . "Redis's own `INFO commandstats`, reset before each measurement, "
        . "divided by the scans resolved: calls per push and, in brackets, "
        . "microseconds per push. Commands run by a script are counted on "
        . "their own and again inside the script's EVALSHA. *Redis "
        . "connections* is how many the server opened during the "
        . "measurement (the bench's own INFO included).\n\n"
        . "| case | conns | who | EVALSHA µs | commands: calls (µs) "
        . "| Redis connections |\n"
        . "| --- | ---: | --- | ---: | --- | ---: |\n";
    for my $c (grep { $_->{resolves} } @cases) {
        for my $n (@conns) {
            for my $who (grep { $c->{$_} && $_ ne 'limit' } @who) {
                my $r = $c->{result}{$n}{$who};
                my $k = $r->{resolutions} or next;
                my $s = $r->{commands};
                my @cmds = sort { $s->{$b}[0] <=> $s->{$a}[0] || $a cmp $b }
                           keys %$s;
                $md .= sprintf "| %s | %d | %s | %.1f | %s | %s |\n",
                    $c->{name}, $n, $who,
                    ($s->{evalsha} // [ 0, 0 ])->[1] / $k,
                    (join ', ', map { sprintf '%s %.2f (%.1f)', uc $_,
                                      $s->{$_}[0] / $k, $s->{$_}[1] / $k }
                                @cmds),
                    $r->{redis_conns} // '?';
            }
        }
    }

    $md .= "\n## Ratios and targets\n\n"
        . "The module's req/s over the others', at each load; a target "
        . "applies at the loads the table gives it.\n\n"
        . "| case | conns | module / limit | target | module / node | target "
        . "| module / lua | target |\n"
        . "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
    my @missed;
    for my $c (@cases) {
        for my $n (@conns) {
            my $res = $c->{result}{$n};
            my $m = $res->{module}{rps};
            my @cells;
            for my $who (qw(limit node lua)) {
                unless ($res->{$who}) {
                    push @cells, '—', '—';
                    next;
                }
                my $ratio = $m / $res->{$who}{rps};
                my ($t, @at) = @{ $c->{targets}{$who} // [] };
                $t = undef if @at && !grep { $_ == $n } @at;
                my $fmt = $who eq 'limit'
                    ? sub { sprintf '%.0f%%', 100 * $_[0] }
                    : sub { sprintf '%.1f×', $_[0] };
                my $tfmt = $who eq 'limit'
                    ? sub { sprintf '%.0f%%', 100 * $_[0] }
                    : sub { sprintf '%g×', $_[0] };
                push @cells, $fmt->($ratio),
                    defined $t ? '≥ ' . $tfmt->($t) . ' '
                                 . ($ratio >= $t ? 'met' : '**missed**')
                               : '—';
                push @missed, "$c->{name} at $n connections against $who"
                    if defined $t && $ratio < $t;
            }
            $md .= "| $c->{name} | $n | " . join(' | ', @cells) . " |\n";
        }
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

# The Lua peer's nginx: Debian's nginx with the lua module and its NDK
# dependency loaded as Debian's own snippets load them, and not this module.
package LuaPeer;

use parent -norequire, 'WxTest::Nginx';

sub conf_text {
    my ($self, $http) = @_;
    my $load = '';
    for my $m (qw(ndk lua)) {
        my $f = "/usr/share/nginx/modules-available/mod-http-$m.conf";
        open my $fh, '<', $f or die "$f: $!; is libnginx-mod-http-lua "
                                    . "installed?\n";
        $load .= join '', map { s{\bmodules/}{/usr/lib/nginx/modules/}r }
                          grep { /^\s*load_module/ } <$fh>;
    }
    my $conf = $self->SUPER::conf_text($http);
    $conf =~ s/^load_module .*\n//m;
    return $load . $conf;
}
