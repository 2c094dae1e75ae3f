package WxDemo;

# The demo stack, for `make run` (tools/demo/run.pl) and the browser tests
# (t/50-browser.t): a redis-server, the fake WeChat platform, the stand-in
# business app (tools/demo/app.js) and Debian's nginx with the built module
# and conf-examples/demo.conf, all on 127.0.0.1, nginx on another address
# too if asked.  Every process is stopped when the calling program exits
# (WxTest's END).

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

# The log files of a run, in the logs directory start is given.
our @LOG_FILES = qw(error.log access.log app.log fake-wechat.log redis.log);

# demo.conf's http block for the ports $port (by role) and this checkout.
# nginx listens on $opt{host} too (127.0.0.1 by default); the site's own
# URLs, those a browser opens (confirm links, OAuth's redirects, the fake's
# authorize pages), are on $opt{origin}, as http://HOST:PORT.
sub http_block {
    my ($port, %opt) = @_;
    my $host = $opt{host} // '127.0.0.1';
    my $origin = $opt{origin} // "http://127.0.0.1:$port->{nginx}";
    my $conf = slurp("$ROOT/conf-examples/demo.conf");
    my ($http) = $conf =~ /^http \{\n(.*)^\}/ms
        or die "demo.conf: no http block\n";
    for my $role (keys %CONF_PORT) {
        $http =~ s/\b127\.0\.0\.1:$CONF_PORT{$role}\b
                  /127.0.0.1:$port->{$role}/gx;
    }
    $http =~ s{^(\s*)root html;}{$1root $ROOT/conf-examples/html;}m
        or die "demo.conf: no 'root html;'\n";
    $http =~ s{http://127\.0\.0\.1:$port->{nginx}\b}{$origin}g;

    # on $host for the browsers, and on 127.0.0.1 still for the app and
    # the fake, whose calls the internal locations allow
    my @listen = ("127.0.0.1:$port->{nginx}");
    unshift @listen, ($host =~ /:/ ? "[$host]" : $host) . ":$port->{nginx}"
        unless $host eq '127.0.0.1' || $host eq 'localhost';
    $http =~ s{^(\s*)listen 127\.0\.0\.1:$port->{nginx};\n}
              {my $in = $1; join '', map { "${in}listen $_;\n" } @listen}me
        or die "demo.conf: no 'listen 127.0.0.1:...;'\n";

    # the simulated phone for every browser that reaches the demo
    if (!loopback($host)) {
        $http =~ s{(location\ \~\ \^/_fake/\S*\ \{\n)
                   \s*allow\ 127\.0\.0\.1;\n\s*deny\ all;\n}{$1}x
            or die "demo.conf: /_fake/ is not for 127.0.0.1 alone\n";
    }

    # wx.config's signatures for the share page wherever it is opened
    my ($name) = $origin =~ m{^https?://(\[[^\]]+\]|[^:/]+)}
        or die "not an http URL: $origin\n";
    $http =~ s{^(\s*wechat_jssdk_hosts\b[^;]*?)(;)}{$1 $name$2}m
        unless $http =~ /^\s*wechat_jssdk_hosts\b[^;]*\s\Q$name\E[\s;]/m;
    return ($http, { login => 1, code => 1, longpoll => 1 });
}

sub loopback {
    my ($host) = @_;
    return $host =~ /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;
}

# This machine's IPv4 addresses other than loopback, from the kernel's
# table of local addresses (Linux).
sub local_addresses {
    open my $fh, '<', '/proc/net/fib_trie' or return;
    my ($last, %seen, @found);
    while (my $line = <$fh>) {
        if ($line =~ /^[\s|+-]+-- (\d+\.\d+\.\d+\.\d+)$/) {
            $last = $1;
        } elsif ($line =~ m{^\s+/32 host LOCAL$} && defined $last) {
            push @found, $last unless $seen{$last}++ || loopback($last);
        }
    }
    return @found;
}

# The host a browser reaches nginx by when it listens on $host: the host
# itself, or for any address (0.0.0.0, ::) this machine's first address.
sub browser_host {
    my ($host) = @_;
    return $host unless $host eq '0.0.0.0' || $host eq '::';
    return (local_addresses())[0] // '127.0.0.1';
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<:raw', $file or die "$file: $!\n";
    local $/;
    return scalar <$fh>;
}

# Starts the stack.  %opt: the ports nginx, app, fake, redis (a free one
# for each left out or 0); host, the address nginx listens on besides
# 127.0.0.1; url_host, the host browsers reach it by (browser_host's by
# default); logs, the directory of the logs (@LOG_FILES; by default
# temporary ones).  Returns { url (the site, for browsers), nginx, fake,
# redis, app_log, features }.
sub start {
    my (%opt) = @_;
    my %port = map { $_ => $opt{$_} || free_port() } keys %CONF_PORT;
    my $host = $opt{host} // '127.0.0.1';
    my $url_host = $opt{url_host} // browser_host($host);
    $url_host = "[$url_host]" if $url_host =~ /:/ && $url_host !~ /^\[/;
    my $logs = $opt{logs} // tempdir('wechat-demo-XXXXXX', TMPDIR => 1,
                                     CLEANUP => !$ENV{WX_KEEP});
    chmod 0755, $logs;
    my $url = "http://$url_host:$port{nginx}";
    my $local_url = "http://127.0.0.1:$port{nginx}";

    my $redis = start_redis(port => $port{redis},
                            $opt{logs} ? (log => "$logs/redis.log") : ());
    # locked: browsers reach its control API through nginx (/_fake/)
    my $fake = start_fake_wechat(port => $port{fake}, locked => 'yes',
        $opt{logs} ? (log => "$logs/fake-wechat.log") : (), accounts => [
        # its authorize pages send browsers back to this site only
        { %ACCOUNT, callback => "$local_url/wechat",
          oauth_domain => $url_host },
        { %WEBSITE, oauth_domain => $url_host } ]);
    start_process(name => 'demo app', port => $port{app},
                  log => "$logs/app.log",
                  cmd => [ $ENV{NODE} // 'node', "$ROOT/tools/demo/app.js",
                           '--port', $port{app}, '--nginx', $local_url ]);
    my ($http, $features) = http_block(\%port, host => $host,
                                       origin => $url);
    my $nginx = WxTest::Nginx->new(port => $port{nginx}, http => $http,
                                   log_level => 'notice',
                                   $opt{logs} ? (logs => $logs) : ());
    $nginx->start;
    return { url => $url, nginx => $nginx, fake => $fake, redis => $redis,
             app_log => "$logs/app.log", features => $features };
}

1;
