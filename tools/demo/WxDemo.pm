package WxDemo;

# The demo stack, for `make run` (tools/demo/run.pl) and the browser tests
# (t/50-browser.t): a redis-server, the fake WeChat platform, the stand-in
# business app (tools/demo/app.js) and Debian's nginx with the built module
# and conf-examples/demo.conf, all on 127.0.0.1.  Every process is stopped
# when the calling program exits (WxTest's END).

use strict;
use warnings;
use File::Temp qw(tempdir);
use WxTest;

# The account demo.conf configures; the fake platform plays it.
# It starts in plain mode; the demo pages switch it to safe mode and back
# (demo.conf's wechat_mode compatible takes both).
our %ACCOUNT = (appid => 'wx1234567890abcdef', token => 'exampletoken',
                secret => '0123456789abcdef0123456789abcdef',
                aes_key => 'KZtF3vUqTTMZHA8mkQF6sCakpWHXeJJTWipvXcUhIFk',
                mode => 'plain', open_platform => 'demo-open-platform');

# demo.conf's Website App, of the same Open Platform account.
our %WEBSITE = (appid => 'wxdemowebsite0001', kind => 'website',
                secret => 'demoWebsiteSecret0123456789',
                open_platform => 'demo-open-platform');

# The addresses demo.conf is written with, by role.
my %CONF_PORT = (nginx => 8080, app => 8081, fake => 8082, redis => 6380);

# demo.conf's http block for these ports and this checkout.
sub http_block {
    my (%port) = @_;
    my $conf = slurp("$ROOT/conf-examples/demo.conf");
    my ($http) = $conf =~ /^http \{\n(.*)^\}/ms
        or die "demo.conf: no http block\n";
    for my $role (keys %CONF_PORT) {
        $http =~ s/\b127\.0\.0\.1:$CONF_PORT{$role}\b/127.0.0.1:$port{$role}/g;
    }
    $http =~ s{^(\s*)root html;}{$1root $ROOT/conf-examples/html;}m
        or die "demo.conf: no 'root html;'\n";
    return ($http, { login => 1, code => 1, longpoll => 1 });
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<:raw', $file or die "$file: $!\n";
    local $/;
    return scalar <$fh>;
}

# Starts the stack.  %opt: the ports nginx, app, fake, redis (a free one
# for each left out or 0).  Returns { url, nginx, fake, redis, app_log,
# features }.
sub start {
    my (%opt) = @_;
    my %port = map { $_ => $opt{$_} || free_port() } keys %CONF_PORT;
    my $logs = tempdir('wechat-demo-XXXXXX', TMPDIR => 1,
                       CLEANUP => !$ENV{WX_KEEP});
    chmod 0755, $logs;
    my $url = "http://127.0.0.1:$port{nginx}";

    my $redis = start_redis(port => $port{redis});
    my $fake = start_fake_wechat(port => $port{fake}, accounts => [
        { %ACCOUNT, callback => "$url/wechat" }, \%WEBSITE ]);
    start_process(name => 'demo app', port => $port{app},
                  log => "$logs/app.log",
                  cmd => [ $ENV{NODE} // 'node', "$ROOT/tools/demo/app.js",
                           '--port', $port{app}, '--nginx', $url ]);
    my ($http, $features) = http_block(%port);
    my $nginx = WxTest::Nginx->new(port => $port{nginx}, http => $http,
                                   log_level => 'notice');
    $nginx->start;
    return { url => $url, nginx => $nginx, fake => $fake, redis => $redis,
             app_log => "$logs/app.log", features => $features };
}

1;
