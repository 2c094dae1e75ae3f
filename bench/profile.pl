#!/usr/bin/env perl
# make profile: instruction counts of the callback path.  nginx runs as one
# process under callgrind while N signed SCAN pushes, each resolving a fresh
# scene, are sent; the same N requests to `return 200` give the baseline.
# Safe mode's pushes (encrypted by t/lib/WxCrypt.pm, not by the module) are
# profiled the same way.  Callgrind counts instructions, not time: the
# figures repeat run to run.
# Writes bench/profile.md.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use Digest::SHA qw(sha1_hex sha256_hex);
use HTTP::Tiny;
use POSIX qw(strftime WNOHANG);
use WxCrypt;
use WxTest;

my $n = $ENV{PROFILE_REQUESTS} // 2000;
my $token = 'profileToken';
my $appid = 'wxprofile';
my $aes = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';
my $bench = $FindBin::Bin;

my $redis = start_redis();
sub pending_scenes {
    redis_cmd($redis, 'FLUSHALL');
    my @args = ($n, "wx:{$appid}:scene:", sha256_hex('x'));
    redis_cmd($redis, 'EVAL', <<'LUA', 0, @args);
for i = 0, tonumber(ARGV[1]) - 1 do
  redis.call('HSET', ARGV[2] .. string.format('wxs_%032x', i), 'kind', 'bind',
             'user', 'u' .. i, 'status', 'pending', 'token', ARGV[3])
end
LUA
}

# A push's query: a nonce of its own, for a signed query is good for one
# body only; in safe mode the Encrypt's msg_signature too.
sub query_of {
    my ($i, $body) = @_;
    my $ts = $^T;
    my $q = "signature=" . sha1_hex(join '', sort $token, $ts, "n$i")
          . "&timestamp=$ts&nonce=n$i";
    my ($encrypt) = $body =~ /<Encrypt><!\[CDATA\[([^\]]+)/ or return $q;
    return "$q&encrypt_type=aes&msg_signature="
           . msg_signature($token, $ts, "n$i", $encrypt);
}

sub profile {
    my ($path, $body_of, $method) = @_;
    $method //= 'POST';
    pending_scenes();
    my @bodies = map { $body_of ? $body_of->($_) : '' } 0 .. $n - 1;
    my $ng = WxTest::Nginx->new(log_level => 'warn', http => <<"EOF");
    wechat_redis 127.0.0.1:$redis->{port};
    server {
        listen 127.0.0.1:PORT;
        wechat_appid $appid;
        wechat_callback_token $token;
        wechat_timestamp_skew 1h;
        location = /wx { wechat_callback; }
        location = /safe {
            wechat_mode safe;
            wechat_aes_key $aes;
            wechat_callback;
        }
        location = /poll { wechat_poll_timeout 0; wechat_poll; }
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

    my $http = HTTP::Tiny->new(keep_alive => 1, timeout => 30);
    for my $i (0 .. $n - 1) {
        my $q = query_of($i, $bodies[$i]);
        my $res = $method eq 'GET'
            ? $http->get($ng->url($path))
            : $http->post($ng->url("$path?$q"), { content => $bodies[$i] });
        die "request failed: $res->{status}" unless $res->{status} == 200;
    }

    # nginx without a master checks for QUIT only between event waits: a
    # signal that lands while it handles an event can wait forever, so it
    # is sent again until nginx is gone
    until (waitpid($pid, WNOHANG) == $pid) {
        kill 'QUIT', $pid;
        sleep 1;
    }
    return $out;
}

sub scan_body {
    my ($i) = @_;
    return event_xml(to => 'gh_p', from => "o$i", event => 'SCAN',
                     key => sprintf('wxs_%032x', $i), time => 1700000000);
}

sub safe_body {
    my ($i) = @_;
    return encrypted_body(wx_encrypt($aes, $appid, scan_body($i)), 'gh_p');
}

sub total {
    my ($file) = @_;
    my ($ir) = `callgrind_annotate $file 2>/dev/null` =~ /([\d,]+)\s+\(100\.0%\)\s+PROGRAM TOTALS/;
    $ir =~ tr/,//d;
    return $ir;
}

print "profile: $n pushes under callgrind\n";
my $push = profile('/wx', \&scan_body);
print "profile: $n safe-mode pushes under callgrind\n";
my $safe = profile('/safe', \&safe_body);
print "profile: $n requests to return 200 under callgrind\n";
my $limit = profile('/limit', \&scan_body);

print "profile: $n polls under callgrind\n";
my $poll = profile('/poll?scene=wxs_' . ('0' x 32) . '&token=x', undef, 'GET');

my ($tp, $tl, $tpoll, $tsafe) = map { total($_) } $push, $limit, $poll, $safe;
my $top = `callgrind_annotate --inclusive=no $push 2>/dev/null`;
my @lines = grep { /^\s*[\d,]+\s+\(\s*[\d.]+%\)/ } split /\n/, $top;
splice @lines, 25 if @lines > 25;
# the module's own functions and the libraries' entry points, inclusive
sub ours {
    my ($file) = @_;
    my $inclusive = `callgrind_annotate --inclusive=yes $file 2>/dev/null`;
    my @ours = grep { /ngx_http_wechat_|wx_|xmlCtxtReadMemory|EVP_|redisAsync/ }
               grep { /^\s*[\d,]+\s+\(\s*[\d.]+%\)/ } split /\n/, $inclusive;
    splice @ours, 25 if @ours > 25;
    return join "\n", @ours;
}

my $md = "# Profile of the callback path\n\n"
    . "Written by `make profile` (bench/profile.pl) on "
    . strftime('%Y-%m-%d', gmtime) . ": nginx as one process under "
    . "callgrind, $n signed SCAN pushes each resolving a fresh scene (keep-"
    . "alive), plaintext and then in safe mode, and $n short polls of a "
    . "pending scene, against the same $n requests to `return 200`. "
    . "Instructions include startup and shutdown, which are the same in "
    . "every run.\n\n"
    . "| run | instructions | per request |\n| --- | ---: | ---: |\n"
    . sprintf("| SCAN push, resolved | %d | %d |\n", $tp, $tp / $n)
    . sprintf("| return 200 | %d | %d |\n", $tl, $tl / $n)
    . sprintf("| the module's own work | %d | %d |\n", $tp - $tl,
              ($tp - $tl) / $n)
    . sprintf("| safe-mode SCAN push, resolved | %d | %d |\n", $tsafe,
              $tsafe / $n)
    . sprintf("| the module's own work in safe mode | %d | %d |\n",
              $tsafe - $tl, ($tsafe - $tl) / $n)
    . sprintf("| poll (GET, one HMGET) | %d | %d |\n", $tpoll, $tpoll / $n)
    . sprintf("| the module's own work in a poll | %d | %d |\n\n",
              $tpoll - $tl, ($tpoll - $tl) / $n)
    . "## Top functions, self cost\n\n```\n" . join("\n", @lines)
    . "\n```\n\n## The module's functions and what they call, inclusive\n\n```\n"
    . ours($push) . "\n```\n\n## The same in safe mode\n\n```\n"
    . ours($safe) . "\n```\n";

my $notes = "$bench/profile-notes.md";
if (-f $notes) {
    open my $fh, '<', $notes or die;
    $md .= "\n" . do { local $/; <$fh> };
}

open my $out, '>', "$bench/profile.md" or die;
print $out $md;
close $out;
print $md;
