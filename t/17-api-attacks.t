# Attacks on WeChat's API at the edge, from a review of it.  Run alone:
#
#   prove -v t/91-attack-api.t
#
# Two platforms: the project's fake WeChat (tools/fake-wechat) with failure
# injection, and an "odd WeChat" forked here that answers what the fake
# cannot: big bodies, chunked and slow bodies, HTML, redirects, 500s, and an
# echo of the request line as it reached WeChat.
#
# Each subtest was a finding of the review (F1..F7) or a thing that held,
# and stays as its regression: F1 no access_token or AppSecret in log
# lines; F2 a refresh answered after the deadline is stored and its lock let
# go; F3 one deadline for the whole call; F4 no refresh after refresh; F5
# large and chunked answers proxied whole, none closing the app's
# connection; F6 no spelling of access_token from the app; F7 a reload
# answers the requests waiting for the token lock.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw(sha256_hex);
use IO::Socket::INET;
use JSON::PP;
use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);
use WxTest;

for my $tool (qw(node)) {
    plan skip_all => "$tool not installed"
        if system("command -v $tool >/dev/null") != 0;
}

my $json = JSON::PP->new->utf8->canonical;

# --- the odd WeChat ---------------------------------------------------------

my $odd_token = 'ODDTOKEN-0123456789abcdef';

sub start_odd_wechat {
    my $port = free_port();
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                       LocalPort => $port, Proto => 'tcp',
                                       Listen => 64, ReuseAddr => 1)
        or die "odd wechat: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $SIG{CHLD} = 'IGNORE';
        while (my $c = $listen->accept) {
            my $kid = fork;
            if (!defined $kid || $kid) { close $c; next }
            alarm 20;
            my $head = '';
            while (my $l = <$c>) { $head .= $l; last if $l eq "\r\n" }
            my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
            read($c, my $body, $len) if $len;
            my ($line) = $head =~ /^([^\r\n]*)/;
            my ($path) = $line =~ m{^\S+ (/[^? ]*)};
            $c->autoflush(1);
            my $send = sub {
                my ($status, $type, $b, @h) = @_;
                print $c "HTTP/1.1 $status\r\nContent-Type: $type\r\n"
                       . join('', map { "$_\r\n" } @h)
                       . "Content-Length: " . length($b)
                       . "\r\nConnection: close\r\n\r\n$b";
            };
            if ($path eq '/cgi-bin/stable_token' || $path eq '/cgi-bin/token') {
                $send->('200 OK', 'application/json',
                        qq({"access_token":"$odd_token","expires_in":7200}));
            } elsif ($path eq '/cgi-bin/echo') {
                $send->('200 OK', 'application/json',
                        $json->encode({ errcode => 0, line => $line }));
            } elsif ($path eq '/cgi-bin/big') {
                # e.g. user/get: up to 10000 openids, ~300 KB
                my $ids = join ',', map { '"o' . $_ . ('x' x 26) . '"' } 1 .. 2000;
                $send->('200 OK', 'application/json',
                        qq({"total":2000,"count":2000,"data":{"openid":[$ids]}}));
            } elsif ($path eq '/cgi-bin/chunked') {
                print $c "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                       . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
                for my $part ('{"errcode":0,', '"a":"' . ('y' x 3000) . '",',
                              '"b":"end"}') {
                    printf $c "%x\r\n%s\r\n", length $part, $part;
                    sleep 0.2;
                }
                print $c "0\r\n\r\n";
            } elsif ($path eq '/cgi-bin/split') {
                # one answer with Content-Length, in two TCP writes
                my $b = '{"errcode":0,"a":"' . ('z' x 2000) . '","b":"end"}';
                print $c "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                       . "Content-Length: " . length($b)
                       . "\r\nConnection: close\r\n\r\n" . substr($b, 0, 1000);
                sleep 0.3;
                print $c substr($b, 1000);
            } elsif ($path eq '/cgi-bin/mid') {
                # 10 KB: over subrequest_output_buffer_size, under proxy_buffer_size
                $send->('200 OK', 'application/json',
                        '{"errcode":0,"a":"' . ('m' x 10000) . '"}');
            } elsif ($path eq '/cgi-bin/chunked1') {
                # chunked, all of it in one write
                my $out = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
                $out .= sprintf "%x\r\n%s\r\n", length $_, $_
                    for '{"errcode":0,', '"b":"end"}';
                print $c $out . "0\r\n\r\n";
            } elsif ($path eq '/cgi-bin/html') {
                $send->('200 OK', 'text/html', '<html>busy</html>');
            } elsif ($path eq '/cgi-bin/redirect') {
                $send->('302 Found', 'text/html', '',
                        'Location: http://127.0.0.1:1/elsewhere');
            } elsif ($path eq '/cgi-bin/five') {
                $send->('500 Internal Server Error', 'application/json',
                        '{"errcode":-1,"errmsg":"system error"}');
            } elsif ($path eq '/cgi-bin/slow') {
                sleep 1.5;
                $send->('200 OK', 'application/json', '{"errcode":0}');
            } else {
                $send->('200 OK', 'application/json', '{"errcode":0}');
            }
            close $c;
            exit 0;
        }
        exit 0;
    }
    close $listen;
    return { port => $port, pid => $pid };
}

my $odd = start_odd_wechat();
END {
    local $?;
    if ($odd) { kill 'TERM', $odd->{pid}; waitpid $odd->{pid}, 0 }
}

my ($appid, $secret, $token) = ('wxattack', 'attackSecret', 'attackTok');
my ($classic_id, $classic_secret) = ('wxattackcl', 'classicSecret1');
my $redis = start_redis();
my $fake = start_fake_wechat(accounts => [
    { appid => $appid, secret => $secret, token => $token },
    { appid => $classic_id, secret => $classic_secret, token => 'clTok' },
]);

# A worker runs each code path much slower the first time under memcheck,
# and the F2, F3 and "held" cases run on workers fresh from a reload: under
# valgrind the short deadline, WeChat's read timeout, and the delays and
# waits set against them, are four times longer.
my $slow = $WxTest::Nginx::VALGRIND ? 4 : 1;
my $deadline = 0.5 * $slow;     # s, wechat_api_timeout of the -fast locations
my $deadline_ms = 1000 * $deadline;
my $read_timeout_ms = 2 * $deadline_ms;     # proxy_read_timeout to WeChat
my $api_timeout = 6 * $deadline;    # s, the other locations' (the default)

my $http = <<"EOF";
    wechat_redis 127.0.0.1:$redis->{port};
    wechat_qrcode_confirm off;     # scans resolve at once; t/21 confirms

    server {
        listen 127.0.0.1:PORT;

        wechat_appid $appid;
        wechat_callback_token $token;
        wechat_secret $secret;
        wechat_api_pass /wechat-api-upstream;
        wechat_api_timeout ${api_timeout}s;

        location /wechat-api-upstream/ {
            internal;
            proxy_pass $fake->{url}/;
            proxy_read_timeout ${read_timeout_ms}ms;
        }

        location = /qrcode {
            wechat_scene_user \$arg_user;
            wechat_qrcode bind;
        }

        location = /qrcode-fast {
            wechat_api_timeout ${deadline_ms}ms;
            wechat_scene_user \$arg_user;
            wechat_qrcode bind;
        }

        location = /qrcode-classic {
            wechat_appid $classic_id;
            wechat_secret $classic_secret;
            wechat_access_token_api classic;
            wechat_api_timeout ${deadline_ms}ms;
            wechat_scene_user \$arg_user;
            wechat_qrcode bind;
        }

        location = /qrimage {
            wechat_qrcode_image;
        }

        location /wechat-api/ {
            wechat_api;
        }

        location /wechat-api-fast/ {
            wechat_api_timeout ${deadline_ms}ms;
            wechat_api;
        }
    }

    # the same module in front of the odd WeChat
    server {
        listen 127.0.0.1:ODDPORT;

        wechat_appid wxodd;
        wechat_callback_token oddTok;
        wechat_secret oddSecret;
        wechat_api_pass /wechat-api-upstream;
        wechat_api_timeout 3s;

        location /wechat-api-upstream/ {
            internal;
            proxy_pass http://127.0.0.1:$odd->{port}/;
            proxy_buffer_size 16k;
            proxy_buffers 4 16k;
            subrequest_output_buffer_size 128k;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 5s;
        }

        location /wechat-api/ {
            wechat_api;
        }
    }
EOF

# two ports, told apart: free_port can name the same one twice
my $port = free_port();
my $oddport = free_port();
$oddport = free_port() while $oddport == $port;
$http =~ s/ODDPORT/$oddport/g;
my $ng = start_nginx(port => $port, workers => 2, http => $http);
my $P = "wx:{$appid}:";

sub calls { $fake->counts->{ $_[0] }{calls} // 0 }

# A reload; under valgrind its workers, cold (see $slow), then run the API
# path first: eight calls at once on the odd WeChat's account, whose token
# no case looks at.
sub reload_nginx {
    $ng->reload;
    sleep 1;
    return unless $WxTest::Nginx::VALGRIND;
    my @calls = map {
        IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $oddport)
            or die "connect: $!"
    } 1 .. 8;
    print $_ "GET /wechat-api/cgi-bin/echo?openid=warm HTTP/1.0\r\n\r\n"
        for @calls;
    () = <$_> for @calls;                   # each answer, to its end
}

# the client waits longer than the server's longest deadline
sub get { my ($path, %o) = @_;
          http_req('GET', $ng->url($path), timeout => 10 * $slow, %o) }
sub post { my ($path, %o) = @_;
           http_req('POST', $ng->url($path), timeout => 10 * $slow, %o) }
sub odd { my ($path, %o) = @_;
          http_req('GET', "http://127.0.0.1:$oddport$path", %o) }

# warm up: one token in Redis
is(post('/qrcode?user=warm')->{status}, 200, 'warm-up QR code');
my $shared = redis_cmd($redis, 'HGET', "${P}token", 'value');
ok($shared, 'the shared token is in Redis');
$ng->new_log;

# --- F1: the access_token (and, classic, the AppSecret) in error logs --------

subtest 'F1: upstream errors write the access_token into the error log' => sub {
    # WeChat slower than proxy_read_timeout: nginx logs the upstream URL
    $fake->delay(endpoint => '/cgi-bin/qrcode/create',
                 ms => 5 * $deadline_ms, times => 1);
    my $res = post('/qrcode?user=slowlog');
    ok($res->{status} == 504 || $res->{status} == 502,
       "no answer in time: $res->{status}");
    sleep 3 * $deadline;    # the background subrequest times out
    my $log = $ng->new_log;
    my @leaks = grep { /access_token=\Q$shared\E/ } split /\n/, $log;
    diag("leaking line: $_") for @leaks;
    ok(!@leaks, 'no error-log line holds the shared access_token')
        or diag('expected: the query of the subrequest masked or absent');
};

subtest 'F1b: classic token refresh errors write the AppSecret into the log' => sub {
    $fake->delay(endpoint => '/cgi-bin/token', ms => 5 * $deadline_ms,
                 times => 1);
    my $res = post('/qrcode-classic?user=secretlog');
    ok($res->{status} == 504 || $res->{status} == 503, "answered $res->{status}");
    sleep 3 * $deadline;
    my $log = $ng->new_log;
    my @leaks = grep { /\Q$classic_secret\E/ } split /\n/, $log;
    diag("leaking line: $_") for @leaks;
    ok(!@leaks, 'no error-log line holds the AppSecret');
};

# --- F2: a token refresh that misses the deadline is thrown away ------------

subtest 'F2: a refresh answered after the deadline is wasted, the lock stays' => sub {
    my $cP = "wx:{$classic_id}:";
    # a clean start for the classic account, as after its token expired
    redis_cmd($redis, 'DEL', "${cP}token", "${cP}token:lock");
    sleep 1.1;                              # earlier lock, worker caches
    reload_nginx();
    my $before = calls('/cgi-bin/token');
    $fake->delay(endpoint => '/cgi-bin/token', ms => 1.6 * $deadline_ms,
                 times => 1);
    my $res = post('/qrcode-classic?user=late1');
    is($res->{status}, 504, 'the refresh took longer than the deadline: 504');
    sleep 2 * $deadline;                    # WeChat has answered by now
    is(calls('/cgi-bin/token'), $before + 1, 'WeChat issued a new token');
    my $stored = redis_cmd($redis, 'HGET', "${cP}token", 'value');
    ok($stored, 'and the module kept it (in Redis)')
        or diag('the new token was discarded; in classic mode it has also '
                . 'invalidated the previous one');
    my $t0 = time;
    $res = post('/qrcode-classic?user=late2');
    is($res->{status}, 200, 'the next page gets its QR code')
        or diag("got $res->{status} $res->{content} after "
                . sprintf('%.2f', time - $t0) . ' s; lock PTTL '
                . redis_cmd($redis, 'PTTL', "${cP}token:lock") . ' ms');
    $ng->new_log;
};

# --- F3: the deadline is per subrequest, not per call ------------------------

subtest 'F3: wechat_api_timeout does not bound refresh + call + retry' => sub {
    redis_cmd($redis, 'DEL', "${P}token");
    reload_nginx();                         # no worker holds a cached token
    # refresh, call (refused), refresh, call: each step within the
    # deadline, all four together more than three times over it
    my $step = 0.8 * $deadline_ms;
    $fake->delay(endpoint => '/cgi-bin/stable_token', ms => $step, times => 2);
    $fake->delay(endpoint => '/cgi-bin/qrcode/create', ms => $step, times => 2);
    $fake->fail(endpoint => '/cgi-bin/qrcode/create', errcode => 40001, times => 1);
    $fake->expire_token(appid => $appid);   # so that stable_token renews
    my $res = post('/qrcode-fast?user=deadline');
    note("answered $res->{status} after $res->{elapsed} s");
    is($res->{status}, 504, 'the call as a whole missed its deadline: 504')
        or diag($res->{content});
    cmp_ok($res->{elapsed}, '<', 1.8 * $deadline,
           'answered by the deadline (docs/directives.md: "the token\'s refresh '
           . 'and the retry included")');
    $ng->new_log;
};

# --- F4: one refresh per refused call, sequentially: a storm ----------------

subtest 'F4: a steady 40001 on one API path refreshes the token every call' => sub {
    my $settle = post('/qrcode?user=settle');
    is($settle->{status}, 200, 'a token to refuse')
        or diag("$settle->{content} after $settle->{elapsed} s");
    my $before = calls('/cgi-bin/stable_token');
    my $asked = calls('/cgi-bin/getcallbackip');
    $fake->fail(endpoint => '/cgi-bin/getcallbackip', errcode => 40001,
                times => 20);
    my @refused = grep {
        $_->{status} == 200 && $_->{content} =~ /^\{"errcode":40001,/
    } map { get('/wechat-api/cgi-bin/getcallbackip') } 1 .. 10;
    is(scalar @refused, 10, 'each call gets WeChat\'s refusal (200, 40001)');
    cmp_ok(calls('/cgi-bin/getcallbackip') - $asked, '>=', 10,
           'each call reached WeChat');
    my $refreshes = calls('/cgi-bin/stable_token') - $before;
    note("10 app calls refused with 40001: $refreshes token refreshes");
    cmp_ok($refreshes, '<=', 2,
           'a buggy app hammering a refused path does not refresh the '
           . 'account\'s token on every call');
    $fake->reset;
    redis_cmd($redis, 'DEL', "${P}token");
    $ng->new_log;
};

# --- F5: answers over proxy_buffer_size: [alert] and 502 --------------------

subtest 'F5: a big WeChat answer (user/get) through wechat_api' => sub {
    my $res = odd('/wechat-api/cgi-bin/big');
    note("status $res->{status}: " . substr($res->{content}, 0, 60));
    isnt($res->{status}, 599, 'the app gets an HTTP answer, not a closed '
         . 'connection (HTTP::Tiny 599)');
    is($res->{status}, 200, 'user/get with 2000 openids (~50 KB) is proxied')
        or diag('the answer must fit subrequest_output_buffer_size (4k), '
                . 'not only proxy_buffer_size as docs/directives.md says');
    $ng->new_log;
};

subtest 'F5b: answers that arrive in two reads, or are over 4 KB' => sub {
    my $res = odd('/wechat-api/cgi-bin/split');
    note("split: $res->{status} " . substr($res->{content}, 0, 80));
    is($res->{status}, 200, 'a 2 KB answer in two TCP writes is proxied');
    my $j = eval { $json->decode($res->{content}) };
    is($j && $j->{b}, 'end', 'whole');
    $res = odd('/wechat-api/cgi-bin/mid');
    note("mid: $res->{status} " . substr($res->{content}, 0, 80));
    is($res->{status}, 200, 'a 10 KB answer (< proxy_buffer_size 16k) is proxied')
        or diag('nginx collects in-memory subrequests in '
                . 'subrequest_output_buffer_size (4k/8k by default)');
    $ng->new_log;
};

# --- what the odd WeChat's answers become ----------------------------------

subtest 'odd answers: chunked, HTML, 302, 500' => sub {
    my $res = odd('/wechat-api/cgi-bin/chunked');
    is($res->{status}, 200, 'chunked answer in 3 slow chunks');
    my $j = eval { $json->decode($res->{content}) };
    is($j && $j->{b}, 'end', 'whole body, no chunk framing');
    is(length($j && $j->{a} // ''), 3000, 'middle chunk intact');
    $res = odd('/wechat-api/cgi-bin/chunked1');
    is($res->{status}, 200, 'chunked answer in one write');
    is(eval { $json->decode($res->{content})->{b} }, 'end', 'whole')
        or diag("got: $res->{content}");
    is(odd('/wechat-api/cgi-bin/html')->{status}, 502, 'HTML: 502');
    is(odd('/wechat-api/cgi-bin/redirect')->{status}, 502, '302: 502, not followed');
    is(odd('/wechat-api/cgi-bin/five')->{status}, 502, '500: 502');
    $ng->check_log('odd answers', errors_ok => 1);
};

# --- F6: access_token variants the app sends reach WeChat -------------------

subtest 'F6: no spelling of access_token from the app reaches WeChat' => sub {
    for my $arg ('access_token=A1', 'access%5Ftoken=A2', 'ACCESS_TOKEN=A3',
                 '%61ccess_token=A6', 'access_token') {
        my $res = odd("/wechat-api/cgi-bin/echo?openid=o1&$arg");
        is($res->{status}, 400, "$arg: refused");
    }
    my $res = odd('/wechat-api/cgi-bin/echo?openid=o1&access_token%3D=A4'
                  . '&access_token[]=A5&access_token;x=A7');
    is($res->{status}, 200, 'names that are no access_token pass');
    my $line = eval { $json->decode($res->{content})->{line} } // '';
    note("WeChat received: $line");
    like($line, qr/^GET \/cgi-bin\/echo\?access_token=\Q$odd_token\E&openid=o1/,
         'the shared token first, then the app\'s args');
};

subtest 'path tricks held: the app reaches only the API location' => sub {
    for my $p ('/wechat-api/cgi-bin/echo%3Faccess_token=X',
               '/wechat-api/cgi-bin%2F..%2F..%2Fecho',
               '/wechat-api/..%2Fwechat-api-upstream/cgi-bin/echo',
               '/wechat-api/cgi-bin/echo%23frag',
               '/wechat-api/cgi-bin/echo%0d%0aX-Evil:%201') {
        my $res = odd($p);
        my $line = eval { $json->decode($res->{content})->{line} } // '';
        note("$p -> $res->{status} $line");
        unlike($line, qr/^GET [^?]*\?(?!access_token=\Q$odd_token\E)/,
               "$p: no smuggled query");
        unlike($line, qr/[\r\n]/, "$p: no header injection");
    }
    $ng->check_log('path tricks', errors_ok => 1);
};

# --- F7: reload while a request waits for another's refresh ------------------

subtest 'F7: reload while waiting for the token lock' => sub {
    redis_cmd($redis, 'DEL', "${P}token");
    # held longer than the page waits for it (its wechat_api_timeout)
    redis_cmd($redis, 'SET', "${P}token:lock", 'someone-else', 'PX',
              3.5 * $api_timeout * 1000);
    reload_nginx();
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ng->{port})
        or die;
    print $s "POST /qrcode?user=reload HTTP/1.0\r\nHost: x\r\n"
           . "Content-Length: 0\r\n\r\n";
    sleep $deadline;                        # waiting for the lock
    $ng->reload;
    my $t0 = time;
    my $answer = '';
    while (time - $t0 < 2 * $api_timeout) {
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $answer .= $buf;
    }
    my ($status) = $answer =~ m{^HTTP/1\.\d (\d+)};
    is($status // 'no answer', 503,
       'the waiting page still gets its 503 after a reload')
        or diag('the wait timer is cancelable: the old worker exits and '
                . 'drops the request');
    redis_cmd($redis, 'DEL', "${P}token:lock");
    sleep 0.5;
    unlike($ng->new_log, qr/\[alert\].*open socket/,
           'no "[alert] open socket ... left in connection" from the old worker');
};

# --- client disconnects at every stage ---------------------------------------

subtest 'held: clients that go away mid-call' => sub {
    my @cases = (
        [ 'during the subrequest',
          sub { $fake->delay(endpoint => '/cgi-bin/qrcode/create', ms => 300) },
          '/qrcode?user=gone1', 0.1 ],
        [ 'after the deadline',
          sub { $fake->delay(endpoint => '/cgi-bin/qrcode/create',
                             ms => 1.8 * $deadline_ms) },
          '/qrcode-fast?user=gone2', 1.4 * $deadline ],
        [ 'during the token refresh',
          sub { redis_cmd($redis, 'DEL', "${P}token"); reload_nginx();
                $fake->delay(endpoint => '/cgi-bin/stable_token', ms => 300) },
          '/qrcode?user=gone3', 0.1 ],
        [ 'waiting for the lock',
          sub { redis_cmd($redis, 'DEL', "${P}token");
                redis_cmd($redis, 'SET', "${P}token:lock", 'x', 'PX', 1500);
                reload_nginx() },
          '/qrcode?user=gone4', 0.3 ],
    );
    for my $c (@cases) {
        my ($name, $setup, $path, $after) = @$c;
        $setup->();
        for (1 .. 5) {
            my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                          PeerPort => $ng->{port}) or die;
            print $s "POST $path HTTP/1.1\r\nHost: x\r\n"
                     . "Content-Length: 0\r\n\r\n";
            sleep $after;
            close $s;    # RST or FIN mid-flight
        }
        sleep 1.5;
        my $log = $ng->new_log;
        unlike($log, qr/\[alert\]|\[crit\]|exited on signal/, "$name: no crash");
    }
    is(post('/qrcode?user=after')->{status}, 200, 'still serving');
    $fake->reset;
};

# --- QR image: CPU per request -----------------------------------------------

subtest 'QR image: cost of the largest image' => sub {
    redis_cmd($redis, 'DEL', "${P}token");
    reload_nginx();
    my $made = post('/qrcode?user=img');
    is($made->{status}, 200, 'a QR code') or diag($made->{content});
    my $q = $json->decode($made->{content});
    my ($t0, $n) = (time, 20);
    for (1 .. $n) {
        my $r = get('/qrimage', query => { scene => $q->{scene},
                                           token => $q->{token}, size => 32 });
        die "image: $r->{status}" unless $r->{status} == 200;
    }
    my $per = (time - $t0) / $n;
    note(sprintf 'size=32 PNG of a WeChat url: %.1f ms a request', $per * 1000);
    # a WeChat answer with a url of WX_API_URL_MAX (1024) bytes
    my $long = 'http://weixin.qq.com/q/' . ('A' x 1000);
    redis_cmd($redis, 'HSET', "${P}scene:$q->{scene}", 'url', $long);
    $t0 = time;
    my $r;
    for (1 .. 5) {
        $r = get('/qrimage', query => { scene => $q->{scene},
                                        token => $q->{token}, size => 32 });
    }
    $per = (time - $t0) / 5;
    note(sprintf 'size=32 PNG of a 1024-byte url: %.1f ms a request, %d bytes',
         $per * 1000, length $r->{content});
    is(get('/qrimage', query => { scene => $q->{scene}, token => 'f' x 32,
                                  size => 32 })->{status}, 404, 'wrong token: 404');
    is(get('/qrimage', query => { scene => $q->{scene}, token => $q->{token},
                                  size => '32abc' })->{status}, 400, 'size=32abc: 400');
    is(get('/qrimage', query => { scene => $q->{scene}, token => $q->{token},
                                  size => '' })->{status}, 400, 'size= : 400');
};

unlike($ng->log_text, qr/\[crit\]|exited on signal|double free/,
       'no worker crashed over the whole run');

done_testing;
