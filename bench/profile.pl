#!/usr/bin/env perl
# make profile: instruction counts of the callback path.  nginx runs as one
# process under callgrind while N signed SCAN pushes, each resolving a fresh
# scene, are sent; the same N requests to `return 200` give the baseline.
# Callgrind counts instructions, not time: the figures repeat run to run.
# Writes bench/profile.md.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use Digest::SHA qw(sha1_hex);
use HTTP::Tiny;
use POSIX qw(strftime);
use WxTest;

my $n = $ENV{PROFILE_REQUESTS} // 2000;
my $token = 'profileToken';
my $appid = 'wxprofile';
my $bench = $FindBin::Bin;

my $redis = start_redis();
redis_cmd($redis, 'EVAL', <<'LUA', 0, $n, "wx:{$appid}:scene:");
for i = 0, tonumber(ARGV[1]) - 1 do
  redis.call('HSET', ARGV[2] .. string.format('wxs_%032x', i), 'kind', 'bind',
             'user', 'u' .. i, 'status', 'pending', 'token', 'x')
end
LUA

sub profile {
    my ($path, $body_of, $method) = @_;
    $method //= 'POST';
    my $ng = WxTest::Nginx->new(log_level => 'warn', http => <<"EOF");
    wechat_redis 127.0.0.1:$redis->{port};
    server {
        listen 127.0.0.1:PORT;
        wechat_appid $appid;
        wechat_token $token;
        location = /wx { wechat_callback; }
        location = /poll { wechat_poll; }
        location = /limit { return 200 "success"; }
    }
EOF
    my $out = "$ng->{dir}/callgrind.out";
    my $pid = fork // die;
    if ($pid == 0) {
        exec 'valgrind', '--tool=callgrind', "--callgrind-out-file=$out",
             $ng->nginx_cmd('-g', 'daemon off; master_process off;');
        exit 127;
    }
    wait_until('nginx under callgrind', sub { WxTest::port_open($ng->{port}) },
               60);

    my $ts = time;
    my $http = HTTP::Tiny->new(keep_alive => 1, timeout => 30);
    for my $i (0 .. $n - 1) {
        # a query of its own: a signed query is good for one body only
        my $q = "signature=" . sha1_hex(join '', sort $token, $ts, "n$i")
              . "&timestamp=$ts&nonce=n$i";
        my $res = $method eq 'GET'
            ? $http->get($ng->url($path))
            : $http->post($ng->url("$path?$q"), { content => $body_of->($i) });
        die "request failed: $res->{status}" unless $res->{status} == 200;
    }

    kill 'QUIT', $pid;
    waitpid $pid, 0;
    return $out;
}

sub scan_body {
    my ($i) = @_;
    return event_xml(to => 'gh_p', from => "o$i", event => 'SCAN',
                     key => sprintf('wxs_%032x', $i), time => 1700000000);
}

sub total {
    my ($file) = @_;
    my ($ir) = `callgrind_annotate $file 2>/dev/null` =~ /([\d,]+)\s+\(100\.0%\)\s+PROGRAM TOTALS/;
    $ir =~ tr/,//d;
    return $ir;
}

print "profile: $n pushes under callgrind\n";
my $push = profile('/wx', \&scan_body);
print "profile: $n requests to return 200 under callgrind\n";
my $limit = profile('/limit', \&scan_body);

print "profile: $n polls under callgrind\n";
my $poll = profile('/poll?scene=wxs_' . ('0' x 32) . '&token=x', undef, 'GET');

my ($tp, $tl, $tpoll) = (total($push), total($limit), total($poll));
my $top = `callgrind_annotate --inclusive=no $push 2>/dev/null`;
my @lines = grep { /^\s*[\d,]+\s+\(\s*[\d.]+%\)/ } split /\n/, $top;
splice @lines, 25 if @lines > 25;
my $inclusive = `callgrind_annotate --inclusive=yes $push 2>/dev/null`;
my @ours = grep { /ngx_http_wechat_|wx_|xmlCtxtReadMemory|EVP_|redisAsync/ }
           grep { /^\s*[\d,]+\s+\(\s*[\d.]+%\)/ } split /\n/, $inclusive;
splice @ours, 25 if @ours > 25;

my $md = "# Profile of the callback path\n\n"
    . "Written by `make profile` (bench/profile.pl) on "
    . strftime('%Y-%m-%d', gmtime) . ": nginx as one process under "
    . "callgrind, $n signed SCAN pushes each resolving a fresh scene (keep-"
    . "alive), against the same $n requests to `return 200`. Instructions "
    . "include startup and shutdown, which are the same in both runs.\n\n"
    . "| run | instructions | per request |\n| --- | ---: | ---: |\n"
    . sprintf("| SCAN push, resolved | %d | %d |\n", $tp, $tp / $n)
    . sprintf("| return 200 | %d | %d |\n", $tl, $tl / $n)
    . sprintf("| the module's own work | %d | %d |\n", $tp - $tl,
              ($tp - $tl) / $n)
    . sprintf("| poll (GET, one HMGET) | %d | %d |\n", $tpoll, $tpoll / $n)
    . sprintf("| the module's own work in a poll | %d | %d |\n\n",
              $tpoll - $tl, ($tpoll - $tl) / $n)
    . "## Top functions, self cost\n\n```\n" . join("\n", @lines)
    . "\n```\n\n## The module's functions and what they call, inclusive\n\n```\n"
    . join("\n", @ours) . "\n```\n";

my $notes = "$bench/profile-notes.md";
if (-f $notes) {
    open my $fh, '<', $notes or die;
    $md .= "\n" . do { local $/; <$fh> };
}

open my $out, '>', "$bench/profile.md" or die;
print $out $md;
close $out;
print $md;
