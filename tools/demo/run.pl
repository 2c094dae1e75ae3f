#!/usr/bin/env perl
# `make run`: the demo site (conf-examples/demo.conf) on 127.0.0.1 with
# Redis, the fake WeChat platform and the stand-in business app, until
# Ctrl-C.  Ports: --port (nginx, 8080), --app-port (8081), --fake-port
# (8082), --redis-port (6380); 0 takes a free one.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/../../t/lib", $FindBin::Bin;
use Getopt::Long;
use IO::Socket::INET;
use WxTest;
use WxDemo;

binmode STDOUT, ':encoding(UTF-8)';

my %port = (nginx => 8080, app => 8081, fake => 8082, redis => 6380);
GetOptions('port=i' => \$port{nginx}, 'app-port=i' => \$port{app},
           'fake-port=i' => \$port{fake}, 'redis-port=i' => \$port{redis})
    or die "usage: $0 [--port N] [--app-port N] [--fake-port N] [--redis-port N]\n";

for my $role (sort keys %port) {
    next unless $port{$role};
    my $taken = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port{$role}, Timeout => 1);
    die "port $port{$role} ($role) is taken: choose another, e.g. "
        . "make run PORT=9000 APP_PORT=9001 FAKE_PORT=9002 REDIS_PORT=9003\n"
        if $taken;
}

my $demo = WxDemo::start(%port);
my $url = $demo->{url};
my %f = %{ $demo->{features} };
my $later = '(not in this build yet)';

print <<"EOT";

ngx_http_wechat_module demo: open $url/

  $url/bind.html    绑定微信  bind a WeChat account to a site user
  $url/login.html   扫码登录  sign in by scanning @{[ $f{login} ? '' : $later ]}
  $url/code.html    验证码    sign in with a code sent in WeChat @{[ $f{code} ? '' : $later ]}

Log in with any name, then scan the QR code with the "模拟扫码 / simulate
scan" panel beside it: the fake WeChat platform plays the phone and shows
the reply WeChat would show: the bind code to type into the page, or the
login's confirm link, which opens in a small window as it would in WeChat.

From a shell, as WeChat would push it (see README, wxsim):

  tools/wxsim scan --url $url/wechat --token $WxDemo::ACCOUNT{token} --scene wxs_...

Logs: nginx $demo->{nginx}{dir}/logs/error.log
      app   $demo->{app_log}
      fake  $demo->{fake}{log}
Redis on 127.0.0.1:$demo->{redis}{port}, the fake WeChat on $demo->{fake}{url}.

Ctrl-C stops everything.
EOT

# exit runs WxTest's END, which stops nginx, Redis, the fake and the app
my $stop = 0;
$SIG{INT} = $SIG{TERM} = $SIG{HUP} = sub { $stop = 1 };
sleep 1 until $stop;
print "\nstopping\n";
exit 0;
