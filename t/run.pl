#!/usr/bin/env perl
# `make run`: Debian's nginx with the built module and conf-examples/bind.conf
# on 127.0.0.1:PORT, a redis-server without persistence, and a stand-in
# business app (a login that trusts the demo_user cookie, and a receiver that
# prints what nginx passes to it).  Prints the commands that walk the flow.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Path qw(make_path);
use Getopt::Long;
use IO::Socket::INET;
use WxTest;

my $port = 8080;
GetOptions('port=i' => \$port) or die "usage: $0 [--port N]\n";

my $dir = "$ROOT/build/run";
make_path("$dir/logs", "$dir/tmp", "$dir/redis");
chmod 0777, "$dir/tmp";

my $redis = WxTest::start_redis();
my $app_port = free_port();

# The stand-in business app.
my $app = fork // die "fork: $!";
if ($app == 0) {
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                       LocalPort => $app_port, Listen => 16,
                                       ReuseAddr => 1) or die $!;
    while (my $c = $listen->accept) {
        my $head = '';
        while (my $l = <$c>) { $head .= $l; last if $l eq "\r\n"; }
        my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
        my $body = '';
        read($c, $body, $len) if $len;
        if ($head =~ m{^GET /session}) {
            my ($user) = $head =~ /^Cookie:.*\bdemo_user=([^;\s]+)/mi;
            print $c $user
                ? "HTTP/1.1 200 OK\r\nX-User-Id: $user\r\n"
                  . "Content-Length: 0\r\nConnection: close\r\n\r\n"
                : "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n"
                  . "Connection: close\r\n\r\n";
        } else {
            my @h = grep { /^X-WeChat-/ } split /\r\n/, $head;
            print "\n[business app] received a push: @h\n$body\n";
            print $c "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n"
                   . "Connection: close\r\n\r\nsuccess";
        }
        close $c;
    }
    exit 0;
}

open my $in, '<', "$ROOT/conf-examples/bind.conf" or die $!;
my $conf = do { local $/; <$in> };
close $in;
$conf =~ s{load_module\s+\S+;}{load_module $MODULE;\npid $dir/logs/nginx.pid;\nerror_log $dir/logs/error.log info;};
$conf =~ s{listen 127\.0\.0\.1:8080;}{listen 127.0.0.1:$port;};
$conf =~ s{127\.0\.0\.1:8081}{127.0.0.1:$app_port};
$conf =~ s{127\.0\.0\.1:6379}{127.0.0.1:$redis->{port}};
$conf =~ s#http \{#http {\n    access_log off;\n    client_body_temp_path $dir/tmp/body;\n    proxy_temp_path $dir/tmp/proxy;#;
open my $out, '>', "$dir/nginx.conf" or die $!;
print $out $conf;
close $out;

my $base = "http://127.0.0.1:$port";
print <<"EOT";
ngx_http_wechat_module demo on $base (Redis on $redis->{port}, logs in
$dir/logs).  Ctrl-C stops it.

1. Ask for a bind scene as the logged-in user "alice":

   curl -s -b demo_user=alice $base/bind/qrcode

   and keep what it returns:

   SCENE=wxs_...; TOKEN=...

2. Poll as the page does:

   curl -s "$base/bind/poll?scene=\$SCENE&token=\$TOKEN"

3. Send the scan WeChat would push, signed with the account's token:

   ts=\$(date +%s); nonce=\$RANDOM; sig=\$(printf '%s\\n' exampletoken \$ts \$nonce | LC_ALL=C sort | tr -d '\\n' | sha1sum | cut -d' ' -f1); curl -s "$base/wechat?signature=\$sig&timestamp=\$ts&nonce=\$nonce" -d "<xml><ToUserName><![CDATA[gh_demo]]></ToUserName><FromUserName><![CDATA[oDemoOpenId]]></FromUserName><CreateTime>\$ts</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[SCAN]]></Event><EventKey><![CDATA[\$SCENE]]></EventKey></xml>"

   The answer is the reply WeChat shows the user: 绑定成功.  Poll again
   (step 2) to see "bound".  A push the module does not resolve (change
   SCAN to CLICK) is printed below by the stand-in business app.

4. Bind info:  curl -s "$base/internal/binding?user=alice"
   Unbind:     curl -s -X DELETE "$base/internal/binding?user=alice"

EOT

$SIG{INT} = $SIG{TERM} = sub { };
system('/usr/sbin/nginx', '-p', "$dir/", '-c', "$dir/nginx.conf",
       '-e', "$dir/logs/error.log", '-g', 'daemon off;');
kill 'TERM', $app;
waitpid $app, 0;
print "\nstopped\n";
