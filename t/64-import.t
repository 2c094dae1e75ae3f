# wechat_bindings: an account's bindings in bulk, against a real
# redis-server and then a Redis Cluster.  100,000 bindings imported as
# streamed CSV and checked; the same file again changes nothing;
# conflicts are reported and left alone, or replaced when asked; the
# export (CSV and NDJSON, through HSCAN) is what was imported; a resync
# removes what the file does not name, its dry run nothing; invalid lines
# are reported by number; a body cut inside a line is refused, with no
# batch applied beyond the lines the answer (or the log) names, and the
# log counts every line the client sent, even when it went away while a
# batch was in Redis.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);
use WxTest;
use WxTopology;

my $json = JSON::PP->new->utf8->canonical;
# under memcheck (make test-valgrind) a tenth, for time
my $N = $WxTest::Nginx::VALGRIND ? 10_000 : 100_000;

sub conf {
    my ($redis) = @_;
    return <<"EOF";
    wechat_redis $redis;

    server {
        listen 127.0.0.1:PORT;
        client_max_body_size 0;

        location = /bindings {
            wechat_appid wximporta;
            wechat_bindings;
        }

        location = /bindings-b {
            wechat_appid wximportb;
            wechat_bindings;
        }

        location = /binding {
            wechat_appid wximporta;
            wechat_binding;
        }
    }
EOF
}

sub import_body {
    my ($ng, $path, $body, %query) = @_;
    my $res = http_req('POST', $ng->url($path), body => $body,
                       query => \%query, timeout => 60,
                       headers => { 'Content-Type' => 'text/csv' });
    my $answer = eval { $json->decode($res->{content}) } // {};
    $answer->{http} = $res->{status};
    return $answer;
}

sub counts {
    my ($a) = @_;
    return join ' ', map { "$_=" . ($a->{$_} // '?') }
        qw(http lines applied_through added unchanged replaced conflict
           invalid removed);
}

# Sends $body with a Content-Length of $length, then closes: a client that
# stops inside a line.
sub cut_body {
    my ($ng, $path, $body, $length) = @_;
    my ($port) = $ng->url('/') =~ /:(\d+)/;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 10) or die $!;
    print $s "POST $path HTTP/1.1\r\nHost: x\r\nContent-Length: $length\r\n"
             . "Connection: close\r\n\r\n$body";
    sleep 0.5;
    close $s;
}

sub suite {
    my ($label, $ng, $db) = @_;     # $db->('a' or 'b') is the node to ask
    my $Pa = 'wx:{wximporta}:';
    my $Pb = 'wx:{wximportb}:';
    my $A = $db->('a');
    my $B = $db->('b');

    # --- 100,000 bindings -----------------------------------------------------

    my $file = "user,openid\n" . join '', map { "u$_,o$_\n" } 1 .. $N;
    my $t0 = time;
    my $r = import_body($ng, '/bindings', $file);
    my $took = time - $t0;
    is(counts($r), "http=200 lines=@{[$N + 1]} applied_through=@{[$N + 1]} "
                   . "added=$N unchanged=0 replaced=0 conflict=0 invalid=0 "
                   . "removed=0", "$label: $N bindings imported")
        or diag(substr(join(' ', %$r), 0, 500));
    diag(sprintf '%s: %d bindings in %.2f s', $label, $N, $took);
    is(redis_cmd($A, 'HLEN', "${Pa}users"), $N, "$label: $N users");
    is(redis_cmd($A, 'HLEN', "${Pa}openids"), $N, "$label: $N openids");
    for my $i (1, 2, 999, 1000, 1001, int($N / 2) + 7, $N) {
        is(redis_cmd($A, 'HGET', "${Pa}users", "u$i"), "o$i",
           "$label: u$i is bound to o$i");
        is(redis_cmd($A, 'HGET', "${Pa}openids", "o$i"), "u$i",
           "$label: o$i to u$i");
    }
    is(redis_cmd($A, 'EXISTS', "${Pa}resolutions"), 0,
       "$label: no stream entry for an import");
    like(http_req('GET', $ng->url('/binding?user=u777'))->{content},
         qr/"openid":"o777"/, "$label: wechat_binding reads an imported one");

    # --- the same file again --------------------------------------------------

    $r = import_body($ng, '/bindings', $file);
    is(counts($r), "http=200 lines=@{[$N + 1]} applied_through=@{[$N + 1]} "
                   . "added=0 unchanged=$N replaced=0 conflict=0 invalid=0 "
                   . "removed=0", "$label: a re-import is a no-op");
    is(redis_cmd($A, 'HLEN', "${Pa}users"), $N, "$label: still $N users");

    # --- export ---------------------------------------------------------------

    my $res = http_req('GET', $ng->url('/bindings'), timeout => 60);
    is($res->{status}, 200, "$label: export");
    is($res->{headers}{'content-type'}, 'text/csv', "$label: export is CSV");
    my @sent = sort map { "u$_,o$_" } 1 .. $N;
    my @got = sort split /\n/, $res->{content};
    is(scalar @got, $N, "$label: export has $N lines");
    ok(join("\n", @got) eq join("\n", @sent),
       "$label: export equals the import");

    $res = http_req('GET', $ng->url('/bindings?format=ndjson'),
                    timeout => 60);
    is($res->{headers}{'content-type'}, 'application/x-ndjson',
       "$label: NDJSON export");
    my %nd = map { my $o = $json->decode($_); ($o->{user} => $o->{openid}) }
             split /\n/, $res->{content};
    is(scalar keys %nd, $N, "$label: NDJSON export has $N bindings");
    ok(!grep({ $nd{"u$_"} ne "o$_" } 1 .. $N),
       "$label: NDJSON export equals the import");

    # --- conflicts, then replace ----------------------------------------------

    my $clash = "u1,oX1\nuX2,o2\nu3,o3\n";
    $r = import_body($ng, '/bindings', $clash);
    is(counts($r), 'http=200 lines=3 applied_through=3 added=0 unchanged=1 '
                   . 'replaced=0 conflict=2 invalid=0 removed=0',
       "$label: conflicts reported");
    is_deeply($r->{details},
              [ { line => 1, status => 'conflict', user => 'u1',
                  openid => 'oX1', user_openid => 'o1' },
                { line => 2, status => 'conflict', user => 'uX2',
                  openid => 'o2', openid_user => 'u2' } ],
              "$label: each conflict with its line and what holds it");
    is(redis_cmd($A, 'HGET', "${Pa}users", 'u1'), 'o1',
       "$label: a conflict is left alone");
    is(redis_cmd($A, 'HEXISTS', "${Pa}users", 'uX2'), 0,
       "$label: nor bound when its openid is another's");

    $r = import_body($ng, '/bindings', $clash, replace => 1);
    is(counts($r), 'http=200 lines=3 applied_through=3 added=0 unchanged=1 '
                   . 'replaced=2 conflict=0 invalid=0 removed=0',
       "$label: replace");
    is(redis_cmd($A, 'HGET', "${Pa}users", 'u1'), 'oX1',
       "$label: u1 rebound");
    is(redis_cmd($A, 'HEXISTS', "${Pa}openids", 'o1'), 0,
       "$label: its old openid released");
    is(redis_cmd($A, 'HGET', "${Pa}openids", 'o2'), 'uX2',
       "$label: o2 to its new user");
    is(redis_cmd($A, 'HEXISTS', "${Pa}users", 'u2'), 0,
       "$label: its old user unbound");
    is(redis_cmd($A, 'HLEN', "${Pa}users"),
       redis_cmd($A, 'HLEN', "${Pa}openids"), "$label: both hashes agree");

    # --- resync ---------------------------------------------------------------

    redis_cmd($A, 'HSET', "${Pa}openids", 'oOrphan', 'uNobody');
    my $resync = join '', "u1,oX1\n", "uX2,o2\n",
                          (map { "u$_,o$_\n" } 3 .. $N - 10), "un1,on1\n";
    my @before = map { redis_cmd($A, 'HLEN', "$Pa$_") } qw(users openids);
    $r = import_body($ng, '/bindings', $resync, resync => 1, dry_run => 1);
    is(counts($r), "http=200 lines=@{[$N - 9]} applied_through=@{[$N - 9]} "
                   . "added=1 unchanged=@{[$N - 10]} replaced=0 conflict=0 "
                   . "invalid=0 removed=11", "$label: resync dry run")
        or diag(substr($json->encode($r), 0, 600));
    is_deeply([ sort map { $_->{user} } grep { $_->{status} eq 'removed' }
                @{ $r->{details} } ],
              [ sort('uNobody', map { "u$_" } $N - 9 .. $N) ],
              "$label: the dry run names what it would remove");
    is_deeply([ map { redis_cmd($A, 'HLEN', "$Pa$_") } qw(users openids) ],
              \@before, "$label: the dry run changed nothing");
    is(redis_cmd($A, 'HEXISTS', "${Pa}users", 'un1'), 0,
       "$label: nor added anything");
    is_deeply(redis_cmd($A, 'KEYS', "${Pa}import:*"), [],
              "$label: its mark is gone");

    $r = import_body($ng, '/bindings', "u5,o5\nnot a line\n", resync => 1);
    is(counts($r), 'http=409 lines=2 applied_through=2 added=0 unchanged=1 '
                   . 'replaced=0 conflict=0 invalid=1 removed=0',
       "$label: a resync of a file with invalid lines removes nothing");
    is(redis_cmd($A, 'HLEN', "${Pa}users"), $before[0],
       "$label: nothing removed");

    $r = import_body($ng, '/bindings', $resync, resync => 1);
    is(counts($r), "http=200 lines=@{[$N - 9]} applied_through=@{[$N - 9]} "
                   . "added=1 unchanged=@{[$N - 10]} replaced=0 conflict=0 "
                   . "invalid=0 removed=11", "$label: resync");
    is(redis_cmd($A, 'HLEN', "${Pa}users"), $N - 9,
       "$label: Redis holds the file's users");
    is(redis_cmd($A, 'HLEN', "${Pa}openids"), $N - 9,
       "$label: and its openids");
    is(redis_cmd($A, 'HEXISTS', "${Pa}users", "u$N"), 0,
       "$label: a user not in the file unbound");
    is(redis_cmd($A, 'HEXISTS', "${Pa}openids", "o$N"), 0,
       "$label: its openid too");
    is(redis_cmd($A, 'HEXISTS', "${Pa}openids", 'oOrphan'), 0,
       "$label: a left-over openid removed");
    is(redis_cmd($A, 'HGET', "${Pa}users", 'un1'), 'on1',
       "$label: the file's new binding added");
    is_deeply(redis_cmd($A, 'KEYS', "${Pa}import:*"), [],
              "$label: the run's mark is gone");
    my @after = sort split /\n/,
        http_req('GET', $ng->url('/bindings'), timeout => 60)->{content};
    ok(join("\n", @after) eq join("\n", sort split /\n/, $resync),
       "$label: the export after a resync is the file");

    # --- invalid lines, NDJSON, the stream ------------------------------------

    my $long = 'l' x 2000;
    my $mixed = join "\n",
        'bad line',                                          # 1
        "u\x01x,ob1",                                        # 2
        'ub3,o b3',                                          # 3
        '{"user":"j1","openid":"oj1","unionid":null}',       # 4
        '',                                                  # 5
        '{"user":1}',                                        # 6
        '"a,""b""",oq1',                                     # 7
        "$long,o8",                                          # 8
        '{"user":"j\u00e9","openid":"oj2","extra":3}',       # 9
        '{"user":"j3","openid":"oj3"',                       # 10
        'ub11,ob11,bad unionid',                             # 11
        "u12,o12\r",                                         # 12
        '';
    $r = import_body($ng, '/bindings-b', $mixed, stream => 1);
    is(counts($r), 'http=200 lines=12 applied_through=12 added=4 '
                   . 'unchanged=0 replaced=0 conflict=0 invalid=7 removed=0',
       "$label: invalid lines reported, the others added");
    is_deeply([ map { "$_->{line}: $_->{reason}" } @{ $r->{details} } ],
              [ '1: not 2 or 3 fields', '2: the user is not a name',
                '3: the openid is not an openid', '6: no openid',
                '8: the line is too long', '10: not a JSON object',
                '11: the unionid is not an id' ],
              "$label: each by its line number");
    is(redis_cmd($B, 'HGET', "${Pb}users", 'j1'), 'oj1',
       "$label: an NDJSON line");
    is(redis_cmd($B, 'HGET', "${Pb}users", 'a,"b"'), 'oq1',
       "$label: a quoted CSV field");
    is(redis_cmd($B, 'HGET', "${Pb}openids", 'oj2'), "j\xc3\xa9",
       "$label: a JSON escape, as UTF-8");
    is(redis_cmd($B, 'HGET', "${Pb}users", 'u12'), 'o12',
       "$label: a CRLF line");
    is(redis_cmd($B, 'XLEN', "${Pb}resolutions"), 4,
       "$label: stream=1: an entry per binding added");
    $res = http_req('GET', $ng->url('/bindings-b'));
    like($res->{content}, qr/^"a,""b""",oq1$/m,
         "$label: the export quotes what needs it");

    # --- a chunked body, in pieces that split lines ------------------------------

    my @pieces = unpack '(a7)*', join '', map { "k$_,ok$_\n" } 1 .. 3000;
    my $chunked = HTTP::Tiny->new(timeout => 30)->request('POST',
        $ng->url('/bindings-b'), { content => sub { shift @pieces } });
    $r = eval { $json->decode($chunked->{content}) } // {};
    $r->{http} = $chunked->{status};
    is(counts($r),
       'http=200 lines=3000 applied_through=3000 added=3000 unchanged=0 '
       . 'replaced=0 conflict=0 invalid=0 removed=0',
       "$label: a chunked body, its lines split across chunks");
    is(redis_cmd($B, 'HGET', "${Pb}users", 'k2999'), 'ok2999',
       "$label: each line whole");

    # --- a body cut inside a line ---------------------------------------------

    my $lines = join '', map { "c$_,oc$_\n" } 1 .. 2500;
    $r = import_body($ng, '/bindings-b', $lines . 'cut1,oc');
    is(counts($r), 'http=400 lines=2500 applied_through=2000 added=2000 '
                   . 'unchanged=0 replaced=0 conflict=0 invalid=0 removed=0',
       "$label: a body that ends inside a line is refused");
    is($r->{error}, 'the body ends inside a line', "$label: and says so");
    is(redis_cmd($B, 'HGET', "${Pb}users", 'c2000'), 'oc2000',
       "$label: the batches it reports are applied");
    is(redis_cmd($B, 'HEXISTS', "${Pb}users", 'c2001'), 0,
       "$label: none beyond them");
    is(redis_cmd($B, 'HEXISTS', "${Pb}users", 'cut1'), 0,
       "$label: nor the cut line");

    $lines = join '', map { "d$_,od$_\n" } 1 .. 3500;
    $ng->new_log;
    cut_body($ng, '/bindings-b', $lines . 'dcut,o', length($lines) + 100);
    my $log = '';
    wait_until('the cut logged', sub {
        ($log .= $ng->new_log) =~ /body was cut after line \d+, applied/ }, 10);
    my ($seen, $applied) =
        $log =~ /cut after line (\d+), applied through line (\d+)/;
    is($seen, 3500, "$label: a client gone inside a line: its lines read");
    is(redis_cmd($B, 'HEXISTS', "${Pb}users", "d$applied"), 1,
       "$label: the lines logged as applied are ($applied)");
    is(redis_cmd($B, 'HEXISTS', "${Pb}users", 'd' . ($applied + 1)), 0,
       "$label: none beyond them");
    is(redis_cmd($B, 'HEXISTS', "${Pb}users", 'dcut'), 0,
       "$label: nor the cut line");

    $ng->check_log($label);
}

# --- one redis-server --------------------------------------------------------

{
    my $redis = start_redis();
    my $ng = start_nginx(http => conf("127.0.0.1:$redis->{port}"));
    suite('redis', $ng, sub { $redis });

    # the rest of a body and the close come while a batch is in Redis:
    # nginx reads them in one go with the close, and their lines count
    {
        my $slow = start_nginx(http => "    wechat_redis_timeout 4s;\n"
                                       . conf("127.0.0.1:$redis->{port}"));
        my $lines = join '', map { "e$_,oe$_\n" } 1 .. 3500;
        my $batch = index($lines, 'e1001,');    # the first batch's lines
        my ($port) = $slow->url('/') =~ /:(\d+)/;
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp',
                                      Timeout => 10) or die $!;
        print $s "POST /bindings-b HTTP/1.1\r\nHost: x\r\nContent-Length: "
                 . (length($lines) + 100) . "\r\nConnection: close\r\n\r\n"
                 . substr($lines, 0, $batch);
        sleep 0.3;
        kill 'STOP', $redis->{pid};
        print $s substr($lines, $batch) . 'ecut,o';
        sleep 0.3;
        close $s;
        sleep 0.3;
        kill 'CONT', $redis->{pid};
        my $log = '';
        wait_until('the cut logged', sub {
            ($log .= $slow->new_log) =~ /body was cut after line \d+/ }, 10);
        my ($seen) = $log =~ /cut after line (\d+)/;
        is($seen, 3500, 'a client gone while a batch is in Redis: its lines '
                        . 'read');
        $slow->check_log('gone during a batch');
        $slow->stop;
    }

    stop_redis($redis);
    wait_until('Redis gone', sub {
        http_req('GET', $ng->url('/binding?user=u5'))->{status} == 503 }, 10);
    # answered while the client still sends
    my $r = import_body($ng, '/bindings',
                        join '', map { "down$_,odown$_\n" } 1 .. 50_000);
    is($r->{http}, 503, 'Redis down: an import answers 503');
    is($r->{applied_through}, 0, 'nothing applied');
    is($r->{error}, 'Redis is unavailable', 'and says so');
    is(http_req('GET', $ng->url('/bindings'))->{status}, 503,
       'Redis down: an export answers 503');
    $ng->check_log('Redis down', errors_ok => 1);
    $ng->stop;
}

# --- a cluster ---------------------------------------------------------------

{
    my @nodes = start_cluster(count => 3);
    my $ng = start_nginx(http => conf(
        "cluster=127.0.0.1:$nodes[0]{port},127.0.0.1:$nodes[1]{port}"));
    my %owner = map {
        my $slot = cluster_slot($nodes[0], "{wximport$_}");
        ($_ => cluster_owner($slot, @nodes))
    } qw(a b);
    wait_until('the slot map', sub {
        http_req('GET', $ng->url('/binding?user=nobody'))->{status} == 404 },
        20);
    suite('cluster', $ng, sub { $owner{ $_[0] } });
}

done_testing;
