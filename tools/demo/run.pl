#!/usr/bin/env perl
# `make run`: the demo site (conf-examples/demo.conf) with Redis, the fake
# WeChat platform and the stand-in business app, until Ctrl-C.
#
#   --host ADDR      where nginx listens besides 127.0.0.1 (127.0.0.1; 0.0.0.0
#                    for every address); the rest stays on 127.0.0.1, the
#                    browser reaching the fake platform through nginx
#   --url-host NAME  the host browsers reach nginx by: the site's own links
#                    (confirm, OAuth) use it (--host, or for 0.0.0.0 this
#                    machine's first address)
#   --port N         nginx (8080), --app-port (8081), --fake-port (8082),
#                    --redis-port (6380); 0 takes a free one
#   --logs DIR       the logs of the run, replaced by the next one
#                    (build/run/logs)

use strict;
use warnings;
use utf8;
use Cwd qw(abs_path);
use File::Path qw(make_path);
use FindBin;
use lib "$FindBin::Bin/../../t/lib", $FindBin::Bin;
use Getopt::Long;
use IO::Socket::INET;
use WxTest;
use WxDemo;

binmode STDOUT, ':encoding(UTF-8)';
$| = 1;

my %port = (nginx => 8080, app => 8081, fake => 8082, redis => 6380);
my $host = '127.0.0.1';
my $url_host;
my $logs = "$ROOT/build/run/logs";
GetOptions('port=i' => \$port{nginx}, 'app-port=i' => \$port{app},
           'fake-port=i' => \$port{fake}, 'redis-port=i' => \$port{redis},
           'host=s' => \$host, 'url-host=s' => \$url_host,
           'logs=s' => \$logs)
    or die "usage: $0 [--host ADDR] [--url-host NAME] [--port N]"
         . " [--app-port N] [--fake-port N] [--redis-port N] [--logs DIR]\n";

for my $role (sort keys %port) {
    next unless $port{$role};
    my $at = $role eq 'nginx' && !WxDemo::loopback($host)
             && $host ne '0.0.0.0' && $host ne '::' ? $host : '127.0.0.1';
    my $taken = IO::Socket::INET->new(PeerAddr => $at,
                                      PeerPort => $port{$role}, Timeout => 1);
    die "port $port{$role} ($role) is taken: choose another, e.g. "
        . "make run PORT=9000 APP_PORT=9001 FAKE_PORT=9002 REDIS_PORT=9003\n"
        if $taken;
}

# the last run's logs make way for this one's
make_path($logs);
unlink map { "$logs/$_" } @WxDemo::LOG_FILES;
my $shown = $logs =~ m{/$} ? $logs : "$logs/";

print "starting nginx, Redis, the fake WeChat platform and the demo app...\n";
my $demo = eval {
    WxDemo::start(%port, host => $host, url_host => $url_host,
                  logs => abs_path($logs));
} or die "the demo did not start: $@(its logs: $shown)\n";
my $url = $demo->{url};

if (!WxDemo::loopback($host)) {
    print <<"EOT";
warning: the demo listens on $host and has no real authentication: anyone
  who reaches it can log in as any user and scan as any WeChat user.
EOT
    print "  (a browser that knows this machine by another name: add"
        . " URL_HOST=that-name)\n"
        if !defined $url_host && ($host eq '0.0.0.0' || $host eq '::');
}

print <<"EOT";

ngx_http_wechat_module demo: open $url/
  log in with any name, open a page and press 模拟扫码 Scan beside its QR
  code: the fake WeChat platform plays the phone, no phone or internet needed.
logs of this run: $shown (nginx: error.log, access.log; app.log,
  fake-wechat.log, redis.log), kept until the next run
Redis on 127.0.0.1:$demo->{redis}{port}, the fake WeChat on $demo->{fake}{url}.
Ctrl-C stops everything.
EOT

# exit runs WxTest's END, which stops nginx, Redis, the fake and the app
my $stop = 0;
$SIG{INT} = $SIG{TERM} = $SIG{HUP} = sub { $stop = 1 };
sleep 1 until $stop;
print "\nstopping; the logs stay in $shown\n";
exit 0;
