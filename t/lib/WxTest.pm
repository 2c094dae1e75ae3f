package WxTest;

# Test harness: starts Debian's nginx with the freshly built module and a
# real redis-server (or the server WX_REDIS_SERVER names) on free loopback
# ports, a stand-in business upstream, and signs pushes itself
# (Digest::SHA), independently of the module's core.
#
# A case is a request and its expectations: status, body, and error-log
# lines.  Every case also fails when the error log shows [alert], [emerg],
# [crit], a sanitizer report, or an [error] the case did not expect.

use strict;
use warnings;

use Cwd qw(abs_path);
use Digest::SHA qw(sha1_hex);
use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use Test::More;
use Time::HiRes qw(sleep time);

use Exporter 'import';
our @EXPORT = qw(generated_scripts start_nginx start_redis start_upstream redis_cmd
                 http_req sign signed_query send_push run_case event_xml
                 stop_redis restart_redis start_fake_wechat
                 text_xml wait_until free_port start_process poll_start poll_read
                 posts_at_once sentinel_cmd redis_version
                 $ROOT $MODULE);

our $ROOT = abs_path(dirname(__FILE__) . '/../..');
# WECHAT_MODULE= (empty) with NGINX_BINARY runs the suite on a static build.
our $MODULE = $ENV{WECHAT_MODULE} // "$ROOT/build/ngx_http_wechat_module.so";
our $NGINX = $ENV{NGINX_BINARY} // '/usr/sbin/nginx';

# The Redis server every test starts: WX_REDIS_SERVER=valkey-server runs
# the suite on Valkey.  Its sentinel is the server with --sentinel, or the
# command WX_REDIS_SENTINEL names (valkey-sentinel: the file comes first);
# its cli is named after it (valkey-cli), or WX_REDIS_CLI.
our $REDIS_SERVER = $ENV{WX_REDIS_SERVER} || 'redis-server';
our $REDIS_SENTINEL = $ENV{WX_REDIS_SENTINEL};
our $REDIS_CLI = $ENV{WX_REDIS_CLI}
    || ($REDIS_SERVER =~ /-server$/ ? $REDIS_SERVER =~ s/-server$/-cli/r
                                    : 'redis-cli');

my @children;     # pids to stop at exit
my @nginxes;

END {
    my $rc = $?;
    $_->stop for my @running = @nginxes;
    for my $pid (@children) {
        # only a child still ours: one a test killed and reaped (a master
        # killed for a failover) is a number another process may have now
        next if waitpid($pid, WNOHANG) != 0;
        kill 'CONT', $pid;
        kill 'TERM', $pid;
        waitpid $pid, 0;
    }
    Test::More::diag("memcheck: $WxTest::Nginx::valgrind_errors errors in"
                     . " $WxTest::Nginx::valgrind_processes nginx processes")
        if $WxTest::Nginx::valgrind_processes;
    $rc ||= 1 if $WxTest::Nginx::valgrind_failed;
    $? = $rc;
}

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => 1, ReuseAddr => 1)
        or die "no free port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

sub wait_until {
    my ($what, $cond, $seconds) = @_;
    my $deadline = time + ($seconds // 10);
    while (time < $deadline) {
        return 1 if $cond->();
        sleep 0.05;
    }
    die "timed out waiting for $what\n";
}

sub port_open {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

# --- signatures, computed here and not by the module -----------------------

sub sign {
    return sha1_hex(join '', sort @_);
}

sub signed_query {
    my ($token, %opt) = @_;
    my $ts = $opt{timestamp} // time;
    $ts = int $ts;
    # unique per process too: forked clients share rand()'s seed
    my $nonce = $opt{nonce} // $$ . ++$WxTest::nonces . int(rand(1e6));
    my %q = (timestamp => $ts, nonce => $nonce,
             signature => sign($token, $ts, $nonce));
    $q{openid} = $opt{openid} if defined $opt{openid};
    return \%q;
}

# --- the Redis scripts as the module sends them -----------------------------

# { name => { text, sha } } from the C that src/lua/generate.sh wrote into
# the build: the string literals unescaped, and the SHA-1 it claims.
sub generated_scripts {
    my $file = "$ROOT/build/nginx/objs/addon/wechat/ngx_http_wechat_scripts.c";
    open my $fh, '<', $file or die "$file: $!";
    my $c = do { local $/; <$fh> };
    my %esc = (n => "\n", '"' => '"', '\\' => '\\');
    my %scripts;
    while ($c =~ m{/\*\s+(\w+)\.lua\s+\*/\s*\{\s*ngx_string\(\s*
                   ((?:"(?:[^"\\]|\\.)*"\s*)+)\),\s*
                   \(u_char\s*\*\)\s*"([0-9a-f]{40})"}gsx)
    {
        my ($name, $lits, $sha) = ($1, $2, $3);
        my $text = join '', map { s{\\(.)}{$esc{$1} // die "escape \\$1\n"}ger }
                            $lits =~ /"((?:[^"\\]|\\.)*)"/g;
        $scripts{$name} = { text => $text, sha => $sha };
    }
    return \%scripts;
}

# --- push bodies ----------------------------------------------------------

sub event_xml {
    my (%f) = @_;
    my $xml = "<xml>"
        . "<ToUserName><![CDATA[" . ($f{to} // 'gh_account') . "]]></ToUserName>"
        . "<FromUserName><![CDATA[" . ($f{from} // 'OPENID') . "]]></FromUserName>"
        . "<CreateTime>" . ($f{time} // int time) . "</CreateTime>"
        . "<MsgType><![CDATA[event]]></MsgType>"
        . "<Event><![CDATA[" . ($f{event} // 'SCAN') . "]]></Event>";
    $xml .= "<EventKey><![CDATA[$f{key}]]></EventKey>" if defined $f{key};
    $xml .= "<Ticket><![CDATA[TICKET]]></Ticket>" if $f{ticket};
    return $xml . "</xml>";
}

sub text_xml {
    my (%f) = @_;
    return "<xml>"
        . "<ToUserName><![CDATA[" . ($f{to} // 'gh_account') . "]]></ToUserName>"
        . "<FromUserName><![CDATA[" . ($f{from} // 'OPENID') . "]]></FromUserName>"
        . "<CreateTime>" . ($f{time} // int time) . "</CreateTime>"
        . "<MsgType><![CDATA[text]]></MsgType>"
        . "<Content><![CDATA[" . ($f{content} // 'hello') . "]]></Content>"
        . "<MsgId>" . ($f{msgid} // '1234567890123456') . "</MsgId>"
        . "</xml>";
}

# --- HTTP -----------------------------------------------------------------

sub http_req {
    my ($method, $url, %opt) = @_;
    my $http = HTTP::Tiny->new(timeout => $opt{timeout} // 10,
                               keep_alive => 0);
    if ($opt{query}) {
        my $q = $http->www_form_urlencode($opt{query});
        $url .= ($url =~ /\?/ ? '&' : '?') . $q;
    }
    my %args;
    $args{headers} = $opt{headers} if $opt{headers};
    $args{content} = $opt{body} if defined $opt{body};
    my $t0 = time;
    my $res = $http->request($method, $url, \%args);
    $res->{elapsed} = time - $t0;
    return $res;
}

# POST a push to an nginx location, signed with token.
sub send_push {
    my ($ng, $path, $token, $body, %opt) = @_;
    my $q = $opt{query} // signed_query($token, %opt);
    return http_req('POST', $ng->url($path), query => $q, body => $body,
                    headers => { 'Content-Type' => 'text/xml' },
                    timeout => $opt{timeout});
}

# --- nginx ----------------------------------------------------------------

package WxTest::Nginx;

use Test::More;
use Time::HiRes qw(sleep);

# WX_VALGRIND=1: nginx runs under memcheck with its master process; memcheck
# follows the workers (each process logs to valgrind.<pid>.log), and the
# test file fails if any process reports an error or a definite leak.
our $VALGRIND = $ENV{WX_VALGRIND};

# %opt: port, http (the http block's text), workers, log_level, and logs:
# a directory for error.log and an access.log (by default error.log is in
# nginx's own temporary directory, and nothing is access-logged).
sub new {
    my ($class, %opt) = @_;
    my $dir = File::Temp::tempdir('wechat-nginx-XXXXXX', TMPDIR => 1,
                                  CLEANUP => !$ENV{WX_KEEP});
    File::Path::make_path("$dir/logs", "$dir/tmp");
    # workers run as an unprivileged user when the tests run as root
    chmod 0755, $dir;
    chmod 0777, "$dir/tmp";
    my $self = bless { dir => $dir, port => $opt{port} // WxTest::free_port(),
                       log_offset => 0, %opt }, $class;
    $self->write_conf($opt{http});
    return $self;
}

sub conf_text {
    my ($self, $http) = @_;
    my $dir = $self->{dir};
    my $port = $self->{port};
    $http =~ s/\bPORT\b/$port/g;
    my $workers = $self->{workers} // 1;
    my $level = $self->{log_level} // 'info';
    my $logs = $self->logs;
    my $access = $self->{logs} ? "$logs/access.log" : 'off';
    my $load = $WxTest::MODULE ? "load_module $WxTest::MODULE;" : '';
    my $slow = $VALGRIND ? valgrind_timeouts(\$http) : '';
    return <<"EOF";
$load
worker_processes $workers;
error_log $logs/error.log $level;
pid $dir/logs/nginx.pid;
events { worker_connections 1024; }
http {
    access_log $access;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
$slow$http
}
EOF
}

# A worker freshly forked under memcheck runs each code path much slower
# the first time, and can miss the defaults for its first Redis connect,
# its first commands (the scripts' loading) and its first WeChat API calls;
# on two busy cores its start alone took 10 s.  Under valgrind the connect
# timeout is 30 s wherever it is set (no test depends on its value), and
# the other two are longer (Redis commands: the most nginx accepts) unless
# the test sets them in http{}: those that do test the timeout itself.
my %valgrind_timeouts = (wechat_redis_timeout => '4s',
                         wechat_api_timeout => '10s');

sub valgrind_timeouts {
    my ($http) = @_;
    my $connect = 'wechat_redis_connect_timeout 30s;';
    my $set = $$http =~ s/\bwechat_redis_connect_timeout\s[^;]*;/$connect/g;
    my ($main) = split /^\s*server\s*\{/m, $$http, 2;
    return join '', ($set ? () : "    $connect\n"),
                    map { "    $_ $valgrind_timeouts{$_};\n" }
                    grep { $main !~ /\b$_\b/ } sort keys %valgrind_timeouts;
}

# Where error.log is: the logs option (with access.log beside it), or the
# logs/ of nginx's own directory.
sub logs {
    my ($self) = @_;
    return $self->{logs} // "$self->{dir}/logs";
}

sub write_conf {
    my ($self, $http) = @_;
    my $text = $self->conf_text($http);
    # a test under `use utf8` writes its Chinese replies as characters
    utf8::encode($text) if utf8::is_utf8($text);
    open my $fh, '>', "$self->{dir}/nginx.conf" or die $!;
    print $fh $text;
    close $fh;
}

sub nginx_cmd {
    my ($self, @args) = @_;
    return ($WxTest::NGINX, '-p', "$self->{dir}/", '-c', "$self->{dir}/nginx.conf",
            '-e', $self->logs . '/error.log', @args);
}

sub start {
    my ($self) = @_;
    if ($VALGRIND) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            exec 'valgrind', '--tool=memcheck', '--trace-children=yes',
                 '--leak-check=full', '--show-leak-kinds=definite',
                 '--errors-for-leak-kinds=definite', '--num-callers=30',
                 "--suppressions=$WxTest::ROOT/t/valgrind.supp",
                 "--log-file=$self->{dir}/logs/valgrind.%p.log",
                 $self->nginx_cmd('-g', 'daemon off;');
            exit 127;
        }
        $self->{child} = $pid;
    } else {
        my @cmd = $self->nginx_cmd;
        system(@cmd) == 0 or die "nginx failed to start:\n" . $self->log_text;
    }
    push @nginxes, $self;
    # the pid file too: under memcheck the master writes it a while after
    # it listens, and stop and reload need it
    WxTest::wait_until("nginx on port $self->{port}",
                       sub { WxTest::port_open($self->{port}) && $self->pid },
                       $VALGRIND ? 60 : 10);
    return $self;
}

sub pid {
    my ($self) = @_;
    open my $fh, '<', "$self->{dir}/logs/nginx.pid" or return;
    my $pid = <$fh> // return;     # written a moment after it is made
    chomp $pid;
    return $pid;
}

# SIGKILLs one of nginx's processes; memcheck cannot sum it up.
sub kill_process {
    my ($self, $pid) = @_;
    $self->{killed}{$pid} = 1;
    kill 'KILL', $pid;
}

sub reload {
    my ($self) = @_;
    system($self->nginx_cmd('-s', 'reload')) == 0 or die "reload failed";
}

sub stop {
    my ($self) = @_;
    my $pid = $self->pid or return;
    # under valgrind nginx is our child: reap it, or it lingers as a zombie
    my $running = $self->{child}
        ? sub { waitpid($self->{child}, POSIX::WNOHANG()) == 0 }
        : sub { kill 0, $pid };
    for my $signal ('QUIT', 'TERM', 'KILL') {
        kill $signal, $pid;
        my $deadline = Time::HiRes::time() + ($VALGRIND ? 30 : 5);
        while ($running->() && Time::HiRes::time() < $deadline) {
            sleep 0.05;
        }
        last unless $running->();
        Test::More::diag("nginx $pid did not stop on SIG$signal");
    }
    unlink "$self->{dir}/logs/nginx.pid";
    @nginxes = grep { $_ != $self } @nginxes;
    if ($self->{child}) {
        delete $self->{child};
        $self->check_valgrind;
    }
}

# Reports memcheck's findings, one log per process (master, workers, and
# the workers a reload started); they fail the test file at its end.  A
# log without a summary is a process that died before memcheck could check
# it, and fails too.
our ($valgrind_failed, $valgrind_processes, $valgrind_errors) = (0, 0, 0);

sub check_valgrind {
    my ($self) = @_;
    my @files = glob "$self->{dir}/logs/valgrind.*.log";
    if (!@files) {
        $valgrind_failed = 1;
        Test::More::diag("valgrind: no log in $self->{dir}/logs");
    }
    for my $file (@files) {
        open my $fh, '<', $file or next;
        my $text = do { local $/; <$fh> };
        my ($pid) = $file =~ /valgrind\.(\d+)\.log$/;
        my ($errors) = $text =~ /ERROR SUMMARY: (\d+) errors/;
        # one the test killed has no summary: any error's stack counts
        $errors //= () = $text =~ /^==\d+== \S.*\n==\d+==    at 0x/mg
            if $self->{killed}{$pid};
        $valgrind_processes++;
        $valgrind_errors += $errors // 0;
        if (!defined $errors || $errors > 0) {
            $valgrind_failed = 1;
            Test::More::diag("valgrind: $file\n$text");
        }
    }
}

sub url {
    my ($self, $path) = @_;
    return "http://127.0.0.1:$self->{port}$path";
}

# A value of this node's wechat_status, at /status unless path says.
sub metric {
    my ($self, $name, $path) = @_;
    my $text = WxTest::http_req('GET', $self->url($path // '/status'))
               ->{content};
    return $text =~ /^\Q$name\E (\d+)$/m ? $1 : undef;
}

sub log_text {
    my ($self) = @_;
    open my $fh, '<', $self->logs . '/error.log' or return '';
    local $/;
    return <$fh> // '';
}

# Error-log lines written since the last call.
sub new_log {
    my ($self) = @_;
    my $text = $self->log_text;
    my $new = substr($text, $self->{log_offset});
    $self->{log_offset} = length $text;
    return $new;
}

# Fails on lines nobody expected: alert/emerg/crit, sanitizer reports, and
# [error] unless errors_ok; checks that each expected pattern is present.
sub check_log {
    my ($self, $name, %opt) = @_;
    my $log = $self->new_log;
    for my $re (@{ $opt{log} // [] }) {
        like($log, $re, "$name: error log has $re");
    }
    my @bad = grep { /\[(alert|emerg|crit)\]|AddressSanitizer|runtime error:/ }
              split /\n/, $log;
    push @bad, grep { /\[error\]/ } split /\n/, $log unless $opt{errors_ok};
    @bad = grep { my $l = $_; !grep { $l =~ $_ } @{ $opt{allow} // [] } } @bad;
    ok(!@bad, "$name: error log clean") or diag(join "\n", @bad);
}

package WxTest;

sub start_nginx {
    my (%opt) = @_;
    my $ng = WxTest::Nginx->new(%opt);
    return $ng->start;
}

# --- a test case ----------------------------------------------------------

sub run_case {
    my ($ng, $c) = @_;
    my $name = $c->{name};
    my $res;
    if ($c->{push}) {
        $res = send_push($ng, $c->{path}, $c->{token}, $c->{body}, %{ $c->{push} });
    } else {
        $res = http_req($c->{method} // 'GET', $ng->url($c->{path}),
                        query => $c->{query}, body => $c->{body},
                        headers => $c->{headers});
    }
    is($res->{status}, $c->{status}, "$name: status $c->{status}")
        or diag($res->{content});
    is($res->{content}, $c->{body_is}, "$name: body") if exists $c->{body_is};
    like($res->{content}, $c->{body_like}, "$name: body matches")
        if $c->{body_like};
    $ng->check_log($name, log => $c->{log}, errors_ok => $c->{errors_ok},
                   allow => $c->{allow});
    return $res;
}

# --- redis ----------------------------------------------------------------

# A redis-server on 127.0.0.1: %opt port (a free one), args (more of its
# options), log (the file of its output; by default in its directory).
sub start_redis {
    my (%opt) = @_;
    my $port = $opt{port} // free_port();
    my $dir = tempdir('wechat-redis-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $log = $opt{log} // "$dir/redis.log";
    my @args = ($REDIS_SERVER, '--port', $port, '--bind', '127.0.0.1',
                '--save', '', '--appendonly', 'no', '--dir', $dir,
                '--daemonize', 'no', '--loglevel', 'warning',
                @{ $opt{args} // [] });
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', $log;
        open STDERR, '>&', \*STDOUT;
        exec @args or exit 127;
    }
    push @children, $pid;
    wait_until("redis on port $port", sub { port_open($port) });
    return { port => $port, pid => $pid, dir => $dir, opt => \%opt };
}

# The command that runs a sentinel with the configuration file $conf.
sub sentinel_cmd {
    my ($conf) = @_;
    return $REDIS_SENTINEL ? ($REDIS_SENTINEL, $conf)
                           : ($REDIS_SERVER, $conf, '--sentinel');
}

# The server's name and version, as its --version prints them: "Redis
# 8.0.2", "Valkey 8.1.1".
sub redis_version {
    my $out = `$REDIS_SERVER --version 2>&1`;
    my ($name, $v) = $out =~ /^(\w+) server v=(\S+)/
        or die "$REDIS_SERVER --version: $out";
    return "$name $v";
}

sub stop_redis {
    my ($redis) = @_;
    kill 'CONT', $redis->{pid};
    kill 'TERM', $redis->{pid};
    waitpid $redis->{pid}, 0;
    @children = grep { $_ != $redis->{pid} } @children;
}

sub restart_redis {
    my ($redis) = @_;
    my $new = start_redis(port => $redis->{port}, %{ $redis->{opt} });
    %$redis = %$new;
    return $redis;
}

# A small RESP client, so tests inspect Redis without the module.
sub redis_cmd {
    my ($redis, @args) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $redis->{port}, Proto => 'tcp',
                                  Timeout => 5) or die "redis: $!";
    if (defined $redis->{password}) {
        print $s resp_command('AUTH', $redis->{password});
        read_resp($s);
    }
    print $s resp_command(@args);
    my $reply = read_resp($s);
    close $s;
    return $reply;
}

sub resp_command {
    my (@args) = @_;
    my $req = '*' . @args . "\r\n";
    $req .= '$' . length($_) . "\r\n$_\r\n" for @args;
    return $req;
}

sub read_resp {
    my ($s) = @_;
    my $line = <$s>;
    die "redis: connection closed\n" unless defined $line;
    $line =~ s/\r\n$//;
    my ($t, $v) = (substr($line, 0, 1), substr($line, 1));
    return $v if $t eq '+' || $t eq ':';
    die "redis error: $v\n" if $t eq '-';
    if ($t eq '$') {
        return undef if $v < 0;
        my $buf = '';
        read($s, $buf, $v + 2);
        return substr($buf, 0, $v);
    }
    if ($t eq '*') {
        return undef if $v < 0;
        return [ map { read_resp($s) } 1 .. $v ];
    }
    die "redis: bad reply $line\n";
}

# --- long polls ---------------------------------------------------------------

# A poll on its own socket, as HTTP/1.0 so that the answer ends with the
# connection: start it, then read it whole later.
sub poll_start {
    my ($node, $path, $q, %headers) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $node->{port}, Proto => 'tcp',
                                  Timeout => 5) or die "connect: $!";
    my $h = join '', map { "$_: $headers{$_}\r\n" } sort keys %headers;
    print $s "GET $path?scene=$q->{scene}&token=$q->{token} HTTP/1.0\r\n"
           . "Host: localhost\r\n$h\r\n";
    return { sock => $s, t0 => time, buf => '' };
}

# Reads what the poll has sent until it ends or the time runs out.
sub poll_read {
    my ($p, $seconds) = @_;
    my $deadline = time + $seconds;
    my $sel = IO::Select->new($p->{sock});
    while (!$p->{eof} && time < $deadline) {
        next unless $sel->can_read(0.05);
        my $n = sysread($p->{sock}, my $chunk, 65536);
        if (!$n) {
            $p->{eof} = 1;
            $p->{elapsed} = time - $p->{t0};
            last;
        }
        $p->{buf} .= $chunk;
    }
    my ($head, $body) = split /\r\n\r\n/, $p->{buf}, 2;
    $p->{status} = ($head // '') =~ m{^HTTP/1\.\d (\d+)} ? $1 : 0;
    $p->{body} = $body // '';
    return $p;
}

# Empty POSTs sent at once, each on its own socket as HTTP/1.0: pairs of
# [ node, path ], or [ node, path, method ] for another method.  Returns
# { status, head, body, elapsed } each, in order.
sub posts_at_once {
    my (@reqs) = @_;
    my (@socks, %buf, %t0, %elapsed);
    for my $r (@reqs) {
        my ($node, $path, $method) = @$r;
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $node->{port},
                                      Proto => 'tcp') or die "connect: $!";
        print $s ($method // 'POST') . " $path HTTP/1.0\r\n"
                 . "Host: localhost\r\nContent-Length: 0\r\n\r\n";
        $t0{$s} = time;
        push @socks, $s;
    }
    my $sel = IO::Select->new(@socks);
    my $deadline = time + 30;
    while ($sel->count && time < $deadline) {
        for my $s ($sel->can_read(1)) {
            my $n = sysread($s, my $chunk, 65536);
            if ($n) { $buf{$s} .= $chunk; next }
            $elapsed{$s} = time - $t0{$s};
            $sel->remove($s);
            close $s;
        }
    }
    return map {
        my ($head, $body) = split /\r\n\r\n/, $buf{$_} // '', 2;
        my ($status) = ($head // '') =~ m{^HTTP/1\.\d (\d+)};
        { status => $status // 0, head => $head // '', body => $body // '',
          elapsed => $elapsed{$_} // 99 }
    } @socks;
}

# --- the stand-in business upstream ---------------------------------------

# Records every request it receives as a file in its directory and answers
# with $opt{reply} (text/xml).  Returns { port, dir, requests => sub }.
sub start_upstream {
    my (%opt) = @_;
    my $port = free_port();
    my $dir = tempdir('wechat-upstream-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                       LocalPort => $port, Proto => 'tcp',
                                       Listen => 64, ReuseAddr => 1)
        or die "upstream: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $n = 0;
        while (my $c = $listen->accept) {
            my ($head, $body) = ('', '');
            while (my $l = <$c>) {
                $head .= $l;
                last if $l eq "\r\n";
            }
            my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
            read($c, $body, $len) if $len;
            $n++;
            open my $fh, '>', "$dir/$n.tmp";
            print $fh $head, $body;
            close $fh;
            rename "$dir/$n.tmp", sprintf("%s/%06d.req", $dir, $n);
            my $reply = $opt{reply} // 'upstream-reply';
            print $c "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n"
                   . "Content-Length: " . length($reply)
                   . "\r\nConnection: close\r\n\r\n$reply";
            close $c;
        }
        exit 0;
    }
    close $listen;
    push @children, $pid;
    return {
        port => $port, dir => $dir, pid => $pid,
        requests => sub {
            opendir(my $d, $dir) or die;
            my @f = sort grep { /\.req$/ } readdir $d;
            return map { local $/; open(my $fh, '<', "$dir/$_") or die; scalar <$fh> } @f;
        },
    };
}

# --- any other server ------------------------------------------------------

# Runs @{$opt{cmd}} with its output in $opt{log}, stopped at exit with the
# other children, and waits until it listens on $opt{port}; $opt{name} names
# it in errors.  Returns its pid.
sub start_process {
    my (%opt) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', $opt{log} or die "$opt{log}: $!";
        open STDERR, '>&', \*STDOUT;
        exec @{ $opt{cmd} } or exit 127;
    }
    push @children, $pid;
    wait_until("$opt{name} on port $opt{port}", sub {
        die "$opt{name} exited:\n" . `tail -5 $opt{log}` . "\n"
            if waitpid($pid, WNOHANG) == $pid;
        port_open($opt{port});
    });
    return $pid;
}

# --- the fake WeChat platform (tools/fake-wechat) ----------------------------

# Starts tools/fake-wechat/server.js on a free loopback port.  Accounts are
# accounts => [{ appid, secret, token, aes_key, mode, callback,
# original_id }], or one account's keys given directly; token_ttl and
# token_overlap are in seconds, push_timeout in milliseconds, ticket_quota
# the jsapi_ticket fetches an account may make, locked 'yes' for a control
# API that browsers reach (README); log the file of its output
# (by default in a temporary directory).  Returns a
# WxTest::Fake: { url, port, pid, log } with helpers for the control API.
sub start_fake_wechat {
    my (%opt) = @_;
    my $port = $opt{port} // free_port();
    my $dir = tempdir('wechat-fake-XXXXXX', TMPDIR => 1,
                      CLEANUP => !$ENV{WX_KEEP});
    my @accounts = @{ $opt{accounts} // [ \%opt ] };
    $_->{appid} //= 'wxfakeapp' for @accounts;
    my @args = ('--port', $port);
    for my $global (qw(token_ttl token_overlap push_timeout ticket_quota
                        locked)) {
        (my $flag = $global) =~ tr/_/-/;
        push @args, "--$flag", $opt{$global} if defined $opt{$global};
    }
    for my $a (@accounts) {
        push @args, '--appid', $a->{appid};
        for my $key (qw(secret token aes_key mode callback original_id
                        open_platform kind oauth_domain)) {
            (my $flag = $key) =~ tr/_/-/;
            push @args, "--$flag", $a->{$key} if defined $a->{$key};
        }
    }
    my $log = $opt{log} // "$dir/fake-wechat.log";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', $log;
        open STDERR, '>&', \*STDOUT;
        exec $ENV{NODE} // 'node', "$ROOT/tools/fake-wechat/server.js", @args
            or exit 127;
    }
    push @children, $pid;
    wait_until("fake WeChat on port $port", sub { port_open($port) });
    return bless { url => "http://127.0.0.1:$port", port => $port,
                   pid => $pid, log => $log, accounts => \@accounts },
                 'WxTest::Fake';
}

package WxTest::Fake;

use JSON::PP ();

my $json = JSON::PP->new->utf8->canonical;

sub url {
    my ($self, $path) = @_;
    return $self->{url} . ($path // '');
}

sub log_text {
    my ($self) = @_;
    open my $fh, '<', $self->{log} or return '';
    local $/;
    return <$fh> // '';
}

# A WeChat API call: returns { status, content, json, elapsed }; json is
# the decoded answer when it is JSON.
sub api {
    my ($self, $method, $path, %opt) = @_;
    my %req = (query => $opt{query}, timeout => $opt{timeout});
    $req{body} = ref $opt{json} ? $json->encode($opt{json}) : $opt{body};
    my $res = WxTest::http_req($method, $self->url($path), %req);
    $res->{json} = eval { $json->decode($res->{content}) }
        if ($res->{headers}{'content-type'} // '') =~ /json/;
    return $res;
}

# A control call: returns the decoded answer, with its HTTP status in
# http_status.
sub control {
    my ($self, $method, $path, $body) = @_;
    my $res = WxTest::http_req($method, $self->url("/_fake/$path"),
                               body => $body ? $json->encode($body) : undef,
                               timeout => 30);
    my $answer = eval { $json->decode($res->{content}) }
        // die "fake WeChat: $method $path: $res->{status} $res->{content}\n";
    $answer->{http_status} = $res->{status};
    return $answer;
}

sub counts       { $_[0]->control('GET', 'counts') }

# The calls of an API endpoint so far, or those answered errcode.
sub calls {
    my ($self, $endpoint, $errcode) = @_;
    my $c = $self->counts->{$endpoint} // {};
    return defined $errcode ? $c->{errcodes}{$errcode} // 0
                            : $c->{calls} // 0;
}
sub reset        { $_[0]->control('POST', 'reset') }
sub fail         { my ($s, %o) = @_; $s->control('POST', 'fail', \%o) }
sub delay        { my ($s, %o) = @_; $s->control('POST', 'delay', \%o) }
sub expire_token { my ($s, %o) = @_; $s->control('POST', 'expire-token', \%o) }
sub scan         { my ($s, %o) = @_; $s->control('POST', 'scan', \%o) }
sub send         { my ($s, %o) = @_; $s->control('POST', 'send', \%o) }
sub event        { my ($s, %o) = @_; $s->control('POST', 'event', \%o) }
sub verify       { my ($s, %o) = @_; $s->control('POST', 'verify', \%o) }
sub user         { my ($s, %o) = @_; $s->control('POST', 'user', \%o) }

# What WeChat's browser says of wx.config's parameters and the page's URL:
# { ok, errMsg }.
sub jssdk_config { my ($s, %o) = @_; $s->control('POST', 'jssdk/config', \%o) }

# The messages users received (custom, template, passive replies), oldest
# first; all of them, or those of one openid.
sub messages {
    my ($self, $openid) = @_;
    my $q = '';
    if (defined $openid) {
        $openid =~ s/([^A-Za-z0-9_.~-])/sprintf '%%%02X', ord $1/ge;
        $q = "?openid=$openid";
    }
    return $self->control('GET', "messages$q")->{messages};
}

sub tickets { $_[0]->control('GET', 'tickets')->{tickets} }

# Adds or changes an account; access_token knows its secret afterwards.
sub account {
    my ($self, %o) = @_;
    my $answer = $self->control('POST', 'account', \%o);
    my ($known) = grep { $_->{appid} eq $o{appid} } @{ $self->{accounts} };
    $known ? %$known = (%$known, %o) : push @{ $self->{accounts} }, { %o };
    return $answer;
}

# A fresh classic access_token of an account (the first by default); it
# counts as a /cgi-bin/token call.
sub access_token {
    my ($self, %o) = @_;
    my $appid = $o{appid} // $self->{accounts}[0]{appid};
    my ($account) = grep { $_->{appid} eq $appid } @{ $self->{accounts} };
    my $res = $self->api('GET', '/cgi-bin/token', query => {
        grant_type => 'client_credential', appid => $appid,
        secret => $o{secret} // ($account // {})->{secret} // 'secret' });
    return $res->{json}{access_token}
        // die "fake WeChat: no token: $res->{content}\n";
}

package WxTest;

1;
