# make run: tools/demo/run.pl on free ports, listening on one of this
# machine's addresses other than loopback (127.0.0.1 where it has none):
# what it prints (a few lines, the URL, the warning), the demo's flows
# through that address as a browser on another machine walks them (the
# simulated phone, the login confirm link, OAuth through the fake's
# authorize page), the logs left in the log directory after Ctrl-C, and
# the packages make run installs.  The apt and build part of make run is
# checked with make -n only.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../tools/demo";
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Test::More;
use Time::HiRes qw(time sleep);
use WxTest;
use WxDemo;

binmode Test::More->builder->$_, ':encoding(UTF-8)'
    for qw(output failure_output todo_output);

my $json = JSON::PP->new->utf8;

# --- the packages: the build's and the demo's, none of the tests' --------

{
    local @ENV{qw(MAKEFLAGS MFLAGS MAKELEVEL)};
    my $dry = `make -n -C $ROOT run 2>&1`;
    is($?, 0, 'make -n run') or diag($dry);
    my ($list) = $dry =~ /for p in ([^;]*); do/;
    my %installs = map { $_ => 1 } split ' ', $list // '';
    ok($installs{$_}, "make run installs $_")
        for qw(nginx nginx-dev g++ libhiredis-dev redis-server nodejs perl);
    my @test_only = grep { $installs{$_} }
        qw(chromium clang valgrind cmake libcmocka-dev libzbar-dev zbar-tools
           qrencode npm fonts-wqy-microhei libpng-dev
           libclang-rt-14-dev libclang-rt-19-dev);
    is("@test_only", '', 'make run installs none of the tests\' packages');
    like($dry, qr{--logs build/run/logs\b}, 'the logs go to build/run/logs');
    unlike($dry, qr{\bnpm\b}, 'no npm');
}

# --- the conf of a demo on another address --------------------------------

{
    my %port = (nginx => 9000, app => 9001, fake => 9002, redis => 9003);
    my ($http) = WxDemo::http_block(\%port, host => '198.51.100.7',
                                    origin => 'http://demo.example:9000');
    like($http, qr{^\s*listen\ 198\.51\.100\.7:9000;\n
                   \s*listen\ 127\.0\.0\.1:9000;}mx,
         'nginx listens on the host, and on 127.0.0.1 for the app, the fake');
    for my $directive (qw(wechat_login_confirm_url wechat_oauth_redirect_uri
                          wechat_oauth_authorize_url
                          wechat_oauth_qrconnect_url)) {
        like($http, qr{^\s*$directive http://demo\.example:9000/}m,
             "$directive: on the browser's host");
    }
    unlike($http, qr{http://127\.0\.0\.1:9002},
           'the browser meets no URL of the fake\'s own');
    like($http, qr{^\s*wechat_jssdk_hosts [^;]*\bdemo\.example;}m,
         'wx.config is signed for the browser\'s host');
    my ($fake) = $http =~ m{(location ~ \^/_fake/\S* \{.*?\})}s;
    unlike($fake, qr{deny all}, 'the simulated phone answers other machines');
    unlike($http, qr{location /_fake/ },
           'the rest of the fake\'s control calls do not');
    unlike($http, qr{location /connect/ },
           'nor its API, through the authorize pages');
    my ($redeem) = $http =~ m{(location = /internal/redeem \{.*?\})}s;
    like($redeem, qr{allow 127\.0\.0\.1;\s*deny all;},
         'the internal locations stay local');

    my ($local) = WxDemo::http_block(\%port);
    like($local,
         qr{location ~ \^/_fake/\S* \{\s*allow 127\.0\.0\.1;\s*deny all;},
         'on loopback, the simulated phone stays local');
    is(() = $local =~ /^\s*listen /mg, 1, 'on loopback, one listen');
}

# --- run.pl on this machine's address -------------------------------------

my ($host) = WxDemo::local_addresses();
$host //= '127.0.0.1';
my $remote = !WxDemo::loopback($host);
diag("the demo on $host");

my $logs = tempdir('wechat-run-logs-XXXXXX', TMPDIR => 1, CLEANUP => 1);
open my $stale, '>', "$logs/error.log" or die;
print $stale "a line of the run before\n";
close $stale;

my %port = map { $_ => free_port() } qw(nginx app fake redis);
pipe my $out, my $in or die "pipe: $!";
my $pid = fork // die "fork: $!";
if ($pid == 0) {
    close $out;
    open STDOUT, '>&', $in or die;
    open STDERR, '>&', $in or die;
    exec $^X, "$ROOT/tools/demo/run.pl", '--host', $host,
         '--port', $port{nginx}, '--app-port', $port{app},
         '--fake-port', $port{fake}, '--redis-port', $port{redis},
         '--logs', $logs;
    exit 127;
}
close $in;
END { if ($pid) { kill 'TERM', $pid; waitpid $pid, 0 } }

# its lines until "Ctrl-C stops", or 20 s
sub read_lines {
    my ($until, $seconds) = @_;
    my ($text, $sel) = ('', IO::Select->new($out));
    my $deadline = time + $seconds;
    while (time < $deadline && $text !~ $until) {
        next unless $sel->can_read(0.2);
        sysread($out, my $chunk, 4096) or last;
        $text .= $chunk;
    }
    utf8::decode($text);
    return $text;
}

my $printed = read_lines(qr/^Ctrl-C stops/m, 20);
my @lines = split /\n/, $printed;
like($printed, qr/^Ctrl-C stops everything\.$/m, 'the demo started') or do {
    diag($printed);
    done_testing;
    exit;
};
# make run adds two: "installing: ..." when it does, and "building ..."
cmp_ok(@lines + 2, '<', 20, 'make run says it all in under 20 lines')
    or diag($printed);
my $starting = 'starting nginx, Redis, the fake WeChat platform and the demo'
               . ' app...';
is($lines[0], $starting, 'says what it starts');
my $url = "http://$host:$port{nginx}";
like($printed, qr{^ngx_http_wechat_module demo: open \Q$url\E/$}m, 'the URL');
like($printed, qr{^logs of this run: \Q$logs\E/ }m, 'where the logs are');
if ($remote) {
    my $warning = "warning: the demo listens on $host and has no real"
                  . ' authentication';
    like($printed, qr/^\Q$warning\E/m,
         'the warning for an address other machines reach');
} else {
    unlike($printed, qr/warning/, 'no warning on loopback');
}

# --- the flows through that address ----------------------------------------

my $http = HTTP::Tiny->new(timeout => 10, max_redirect => 0);
my %jar;
my $in_wechat = 'Mozilla/5.0 (iPhone) MicroMessenger/8.0.47';

# A browser's request, on this site unless the target is a URL: %opt json
# (a body), form (a body), wechat (in WeChat's browser); the cookies kept.
sub request {
    my ($method, $target, %opt) = @_;
    my %headers;
    $headers{Cookie} = join '; ', map { "$_=$jar{$_}" } sort keys %jar;
    $headers{'User-Agent'} = $in_wechat if $opt{wechat};
    my $body;
    if ($opt{json}) {
        $headers{'Content-Type'} = 'application/json';
        $body = $json->encode($opt{json});
    } elsif ($opt{form}) {
        $headers{'Content-Type'} = 'application/x-www-form-urlencoded';
        $body = $http->www_form_urlencode($opt{form});
    }
    $target = "$url$target" unless $target =~ m{^http};
    my $res = $http->request($method, $target, { headers => \%headers,
        defined $body ? (content => $body) : () });
    my $set = $res->{headers}{'set-cookie'} // [];
    for (ref $set ? @$set : $set) {
        $jar{$1} = $2 if /^([^=;\s]+)=([^;]*)/;
    }
    $res->{json} = eval { $json->decode($res->{content}) } // {};
    return $res;
}

# The simulated phone scans a scene's code: what the WeChat user sees.
sub scan {
    my ($scene) = @_;
    my $res = request('POST', '/_fake/scan', json => {
        ticket => $scene->{ticket}, openid => 'oRemotePhone' });
    is($res->{status}, 200, 'the simulated phone scans from this address');
    return $res->{json}{user_sees} // '';
}

is(request('GET', '/')->{status}, 200, 'the index page');
is(request('POST', '/app/login', json => { name => 'remote' })->{status},
   200, 'logged in by name');
my $scene = request('POST', '/bind/qrcode')->{json};
ok($scene->{ticket}, 'a bind scene');
my $image = request('GET', "/bind/image?scene=$scene->{scene}"
                           . "&token=$scene->{token}");
is($image->{headers}{'content-type'}, 'image/png', 'its QR image');
my ($code) = scan($scene) =~ /绑定验证码 (\d{6})/;
ok($code, 'the phone sees the bind code');
my $bound = request('POST', '/bind/poll', form => {
    scene => $scene->{scene}, token => $scene->{token}, code => $code // '' });
is(request('GET', '/app/me')->{json}{openid}, 'oRemotePhone',
   'the code typed on the page binds') or diag($bound->{content});

my ($link) = scan(request('POST', '/login/qrcode')->{json})
             =~ m{(http://\S+)};
like($link // '', qr{^\Q$url\E/login/confirm\?},
     'the login\'s confirm link is on this address');
is(request('GET', $link // "$url/none")->{status}, 200, 'and opens');

# OAuth in WeChat's browser: the authorize page through nginx, and back
my $to_wechat = request('GET', '/m/', wechat => 1);
is($to_wechat->{status}, 302, 'the mobile page sends the browser to WeChat');
my $authorize = ($to_wechat->{headers}{location} // '')
                =~ s/#wechat_redirect$//r;
like($authorize, qr{^\Q$url\E/connect/oauth2/authorize\?},
     'to the fake\'s authorize page, on this address');
my $consent = request('GET', "$authorize&openid=oRemotePhone", wechat => 1);
is($consent->{status}, 302, 'which answers through nginx');
my $callback = $consent->{headers}{location} // "$url/none";
like($callback, qr{^\Q$url\E/oauth/callback\?code=},
     'and sends the browser back to this address');
my $back = request('GET', $callback, wechat => 1)->{headers}{location};
like(request('GET', $back // "$url/none", wechat => 1)->{content},
     qr{id="m-openid">oRemotePhone<}, 'the mobile page knows the WeChat user');

# --- what another machine does not reach ------------------------------------

# The status line of a request sent as written: no client tidies its path.
sub raw_status {
    my ($method, $path) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => $host,
                                     PeerPort => $port{nginx}, Timeout => 5)
        or return 0;
    print $sock "$method $path HTTP/1.0\r\nHost: $host\r\n\r\n";
    my ($status) = (scalar <$sock> // '') =~ m{^HTTP/1\.\d (\d+)};
    return $status // 0;
}

SKIP: {
    skip 'this machine has no address but loopback', 1 unless $remote;
    for my $path ('/internal/binding?user=remote',
                  '/internal/binding?openid=oRemotePhone',
                  '/internal/redeem', '/metrics/wechat') {
        is(request('GET', $path)->{status}, 403, "GET $path: 127.0.0.1's only");
    }
    is(request('DELETE', '/internal/binding?user=remote')->{status}, 403,
       'nor an unbind');
    is(request('POST', '/internal/redeem',
               form => { scene => 'x', code => '1' })->{status},
       403, 'nor a redeem');
    is(raw_status('GET', '/wechat-api-upstream/cgi-bin/getcallbackip'), 404,
       'nor the module\'s way to WeChat\'s API');
    for my $call (['GET', 'counts'], ['GET', 'messages'], ['GET', 'tickets'],
                  ['POST', 'reset'], ['POST', 'verify'], ['POST', 'fail'],
                  ['POST', 'send'], ['POST', 'user']) {
        my ($method, $name) = @$call;
        is(raw_status($method, "/_fake/$name"), 404,
           "$method /_fake/$name: not a call the pages make");
    }
    for my $path ('/connect/%2e%2e/_fake/counts', '/connect/..\\_fake/counts',
                  '/connect/oauth2/authorize/..\\..\\..\\_fake/messages',
                  '/connect/..\\cgi-bin/getcallbackip',
                  '/_fake/account/..\\counts', '/_fake/%2e%2e/_fake/messages') {
        isnt(raw_status('GET', $path), 200,
             "GET $path: not through to the fake");
    }
    my $appid = $WxDemo::ACCOUNT{appid};
    my $switch = request('POST', '/_fake/account',
                         json => { appid => $appid, mode => 'plain' });
    is($switch->{json}{account}{mode}, 'plain', 'the safe-mode switch');
    for my $secret (@WxDemo::ACCOUNT{qw(secret token aes_key)}) {
        unlike($switch->{content} . request('GET', '/_fake/account')->{content},
               qr/\Q$secret\E/, 'no secret of the account in what it answers');
    }
    is(request('POST', '/_fake/account', json => {
           appid => $appid, callback => 'http://127.0.0.1:1/' })->{status},
       403, 'the account\'s callback stays');
    is(request('POST', '/_fake/scan', json => {
           scene => 'x', openid => 'oRemotePhone',
           callback => "http://127.0.0.1:$port{nginx}/metrics/wechat" })
       ->{status}, 403, 'a scan pushes to the account\'s callback only');
    my $away = request('GET', "/connect/oauth2/authorize?appid=$appid"
        . '&redirect_uri=https%3A%2F%2Fevil.example%2F&response_type=code'
        . '&scope=snsapi_base&openid=oRemotePhone');
    ok($away->{status} == 400 && !$away->{headers}{location},
       'the authorize page sends browsers back to this site only');
}

# --- Ctrl-C: everything stops, the logs stay --------------------------------

kill 'INT', $pid;
my $rest = read_lines(qr/^stopping/m, 15);
waitpid $pid, 0;
is($? >> 8, 0, 'Ctrl-C: run.pl ends');
undef $pid;
like($rest, qr{^stopping; the logs stay in \Q$logs\E/$}m,
     'says where the logs stay');
ok(!IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port{nginx},
                          Timeout => 1), 'nginx stopped');
for my $file (@WxDemo::LOG_FILES) {
    ok(-e "$logs/$file", "after Ctrl-C, $file is in the log directory");
}
my %log = map { $_ => WxDemo::slurp("$logs/$_") } @WxDemo::LOG_FILES;
unlike($log{'error.log'}, qr/a line of the run before/,
       'the run before\'s log was replaced');
# but the refusals of what another machine does not reach
my $bad = join '', grep {
    !m{access\ forbidden\ by\ rule
       |open\(\)\ "[^"]*/html/(_fake|connect)/[^"]*"\ failed}x
} split /^/, $log{'error.log'};
unlike($bad, qr/\[(alert|emerg|crit|error)\]/, 'nginx logged nothing bad');
like($log{'access.log'}, qr{"GET /m/ HTTP/1\.1" 302}, 'nginx\'s access log');
like($log{'app.log'}, qr/session for remote/, 'the app\'s log');
like($log{'fake-wechat.log'}, qr{POST /_fake/scan 200}, 'the fake\'s log');

done_testing;
