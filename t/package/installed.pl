# The module installed in a clean root of its release, by the Debian
# package (make test-deb) or by make install (make test-install,
# WX_INSTALLED_BY=make): its files where Debian puts a module package's,
# enabled, nginx -t with Debian's nginx.conf and with each example as
# shipped, and one bind flow through the installed module with the shipped
# bind.conf, Debian's nginx and Redis.  Runs inside that root, in a network
# namespace of its own (the example's ports are fixed).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use IO::Socket::INET;
use JSON::PP;
use Test::More;
use WxTest;

my $by_package = ($ENV{WX_INSTALLED_BY} // 'package') eq 'package';
my $examples = $by_package ? '/usr/share/doc/libnginx-mod-http-wechat/examples'
                           : "$ROOT/conf-examples";
my $so = '/usr/lib/nginx/modules/ngx_http_wechat_module.so';

# --- the files ---------------------------------------------------------------

ok(-f $so, 'the module in nginx\'s module directory');
unlike(`readelf -S $so`, qr/\.debug_info/, 'stripped');
open my $fh, '<', '/usr/share/nginx/modules-available/mod-http-wechat.conf'
    or die "the snippet: $!";
like(scalar <$fh>, qr{^load_module (modules|/usr/lib/nginx/modules)/ngx_http_wechat_module\.so;\n\z},
     'modules-available/mod-http-wechat.conf loads it');
is(readlink('/etc/nginx/modules-enabled/50-mod-http-wechat.conf'),
   '/usr/share/nginx/modules-available/mod-http-wechat.conf',
   'enabled on install');
SKIP: {
    skip 'installed by make install', 3 unless $by_package;
    like(`dpkg-query -W -f='\${Depends}' libnginx-mod-http-wechat`,
         qr/\bnginx-abi-[\d.]+-\d+\b/,
         'depends on the nginx ABI it was built for');
    ok(-f '/usr/share/doc/libnginx-mod-http-wechat/copyright', 'the license');
    # the README's links lead into docs/: the reference ships beside it
    ok((grep { -f } map { "/usr/share/doc/libnginx-mod-http-wechat/docs/$_" }
                   'directives.md', 'directives.md.gz'),
       'the reference (docs/) beside the README');
}

# --- nginx -t ----------------------------------------------------------------

my $out = `nginx -t 2>&1`;
is($?, 0, "nginx -t with Debian's nginx.conf and the module enabled")
    or diag($out);

my @examples = glob "$examples/*.conf";
ok(@examples >= 8, scalar(@examples) . ' examples shipped');
for my $conf (@examples) {
    $out = `nginx -t -c $conf 2>&1`;
    is($?, 0, "nginx -t -c $conf, as shipped") or diag($out);
}

# --- one bind flow through the shipped bind.conf ---------------------------

# bind.conf's Redis, and its business app: the site's session check answers
# every request as the logged-in user alice.
my $redis = start_redis(port => 6379);

my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 8081,
                                   Proto => 'tcp', Listen => 16,
                                   ReuseAddr => 1) or die "app: $!";
my $app = fork // die "fork: $!";
if ($app == 0) {
    while (my $c = $listen->accept) {
        my $head = '';
        while (my $l = <$c>) { $head .= $l; last if $l eq "\r\n"; }
        my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
        read($c, my $body, $len) if $len;
        print $c "HTTP/1.1 200 OK\r\nX-User-Id: alice\r\n"
               . "Content-Length: 7\r\nConnection: close\r\n\r\nsuccess";
        close $c;
    }
    exit 0;
}
close $listen;
END { kill 'TERM', $app if $app; }

my $log = "/tmp/nginx-bind.log";
WxTest::start_process(name => 'nginx', port => 8080, log => $log,
                      cmd => [ 'nginx', '-c', "$examples/bind.conf",
                               '-g', 'daemon off;' ]);
my $ng = bless { port => 8080 }, 'WxTest::Nginx';

my $json = JSON::PP->new;
my $res = http_req('POST', $ng->url('/bind/qrcode'));
is($res->{status}, 200, 'a bind scene for alice') or diag($res->{content});
my $q = $json->decode($res->{content});
like($q->{scene}, qr/^wxs_[0-9a-f]{32}$/, "scene $q->{scene}");

# the example's Token; the scan signed here, not by the module
$res = send_push($ng, '/wechat', 'exampletoken',
                 event_xml(from => 'oPackageTest', event => 'SCAN',
                           key => $q->{scene}, ticket => 1));
is($res->{status}, 200, 'the scan answered');
my ($code) = $res->{content} =~ /绑定验证码 (\d{6})/;
ok($code, 'with the code the page must send back') or diag($res->{content});

$res = http_req('GET', $ng->url('/bind/poll'),
                query => { scene => $q->{scene}, token => $q->{token} });
is($res->{content}, '{"status":"scanned"}', 'polled: scanned');

# the page sends the code, with its token: the binding is made
$res = http_req('POST', $ng->url('/bind/poll'),
                body => "scene=$q->{scene}&code=" . ($code // '')
                        . "&token=$q->{token}",
                headers => { 'Content-Type' =>
                                 'application/x-www-form-urlencoded' });
is($res->{content}, '{"status":"bound","openid":"oPackageTest"}',
   'confirmed: bound');

$res = http_req('GET', $ng->url('/internal/binding'),
                query => { user => 'alice' });
like($res->{content}, qr/"openid":"oPackageTest"/, 'alice is bound in Redis')
    or diag($res->{content});

unlike(`cat /var/log/nginx/error.log $log 2>/dev/null`,
       qr/\[(alert|emerg|crit)\]/, 'no alert in the error log');

done_testing;
