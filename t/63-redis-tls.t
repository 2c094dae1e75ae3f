# Redis over TLS: a test CA made here with the openssl CLI, redis-server
# (or WX_REDIS_SERVER, t/lib/WxTest.pm) with --tls-port and client certificates required, a sentinel on TLS too.
# Binds, polls and long polls work over TLS, again after a reconnect, and
# as an ACL user; a wrong CA, a wrong name and a plaintext Redis (which
# waits for a line that never comes) are refused with a clear error line;
# the certificate files are read at nginx -t.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);
use JSON::PP;
use Test::More;
use WxTest;

my $pki = tempdir('wechat-tls-XXXXXX', TMPDIR => 1, CLEANUP => 1);

sub openssl {
    my $cmd = join ' ', 'openssl', @_, '2>/dev/null';
    system("cd $pki && $cmd") == 0 or die "openssl @_ failed\n";
}

# a CA, and certificates it signs: $name.crt and $name.key
sub ca {
    my ($ca) = @_;
    openssl('req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1',
            "-nodes -keyout $ca.key -out $ca.crt -days 2 -subj /CN=$ca");
}

sub issue {
    my ($ca, $name, $san) = @_;
    openssl('req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes',
            "-keyout $name.key -out $name.csr -subj /CN=$name");
    open my $fh, '>', "$pki/$name.ext" or die;
    print $fh "subjectAltName=$san\n";
    close $fh;
    openssl("x509 -req -in $name.csr -CA $ca.crt -CAkey $ca.key",
            "-CAcreateserial -out $name.crt -days 2 -extfile $name.ext");
}

ca('test-ca');
ca('other-ca');
issue('test-ca', 'redis', 'DNS:redis.test,IP:127.0.0.1');
issue('test-ca', 'client', 'DNS:nginx.test');

my @tls = ('--tls-cert-file', "$pki/redis.crt",
           '--tls-key-file', "$pki/redis.key",
           '--tls-ca-cert-file', "$pki/test-ca.crt",
           '--tls-auth-clients', 'yes');
my $tls_port = free_port();
# the plain port is the test's own, to look inside
my $redis = start_redis(args => [ '--tls-port', $tls_port, @tls ]);

# a handshake under memcheck takes its time, the first one more than that
my $connect_timeout = $WxTest::Nginx::VALGRIND ? '5s' : '1s';
my @slow = $WxTest::Nginx::VALGRIND
           ? (allow => [qr/timed out|did not answer in time/]) : ();

my $token = 'tlsToken1';
my $appid = 'wxtls';

sub conf {
    my (%o) = @_;
    my $name = $o{name} ? "wechat_redis_ssl_name $o{name};" : '';
    my $ca = $o{ca} // 'test-ca';
    return <<"EOF";
    $o{redis}
    wechat_redis_ssl_trusted_certificate $pki/$ca.crt;
    wechat_redis_ssl_certificate $pki/client.crt;
    wechat_redis_ssl_certificate_key $pki/client.key;
    $name
    wechat_redis_timeout 500ms;
    wechat_redis_connect_timeout $connect_timeout;

    server {
        listen 127.0.0.1:PORT;

        wechat_appid $appid;
        wechat_callback_token $token;

        location = /wx { wechat_callback; }
        location = /qrcode {
            wechat_qrcode_confirm off;  # binds at once; t/21 confirms
            wechat_scene_user \$arg_user;
            wechat_qrcode bind;
        }
        location = /poll { wechat_poll_timeout 0; wechat_poll; }
        location = /wait { wechat_poll_timeout 5s; wechat_poll; }
    }
EOF
}

my $json = JSON::PP->new->utf8;

sub qrcode {
    my ($ng, $user) = @_;
    return http_req('POST', $ng->url("/qrcode?user=$user"));
}

sub bind_flow {
    my ($ng, $name, $user) = @_;
    wait_until("$name: connected",
               sub { qrcode($ng, 'probe')->{status} == 200 }, 15);
    my $q = $json->decode(qrcode($ng, $user)->{content});
    my $p = poll_start($ng, '/wait', $q);
    wait_until("$name: the poll waits", sub {
        (redis_cmd($redis, 'PUBSUB', 'NUMSUB',
                   "wx:{$appid}:resolved:$q->{scene}")->[1] // 0) == 1 }, 10);
    my $res = send_push($ng, '/wx', $token,
                        event_xml(from => "o$user", event => 'SCAN',
                                  key => $q->{scene}));
    like($res->{content}, qr/绑定成功/, "$name: the scan binds");
    poll_read($p, 5);
    is($p->{body}, qq({"status":"bound","openid":"o$user"}),
       "$name: the long poll is woken");
    $res = http_req('GET', $ng->url('/poll'), query => $q);
    is($res->{content}, qq({"status":"bound","openid":"o$user"}),
       "$name: and a poll sees it");
}

# --- binds and polls over TLS ------------------------------------------------

my $ng = start_nginx(http => conf(
    redis => "wechat_redis 127.0.0.1:$tls_port tls;"));
bind_flow($ng, 'tls', 'alice');
is(redis_cmd($redis, 'HGET', "wx:{$appid}:users", 'alice'), 'oalice',
   'tls: bound in Redis');
$ng->check_log('tls', @slow);

# connections killed: they are made again, over TLS
redis_cmd($redis, 'CLIENT', 'KILL', 'TYPE', 'normal');
redis_cmd($redis, 'CLIENT', 'KILL', 'TYPE', 'pubsub');
bind_flow($ng, 'tls reconnect', 'bob');
$ng->check_log('tls reconnect', errors_ok => 1);
$ng->stop;

# the name, checked against the certificate's DNS name
$ng = start_nginx(http => conf(
    redis => "wechat_redis 127.0.0.1:$tls_port tls;", name => 'redis.test'));
bind_flow($ng, 'tls by name', 'carol');
$ng->check_log('tls by name', @slow);
$ng->stop;

# an ACL user with its password, over TLS
redis_cmd($redis, 'ACL', 'SETUSER', 'wechat', 'on', '>wechat-pw', '~*', '&*',
          '+@all');
$ng = start_nginx(http => conf(
    redis => "wechat_redis 127.0.0.1:$tls_port user=wechat "
             . "password=wechat-pw tls;"));
bind_flow($ng, 'tls as an ACL user', 'erin');
like(redis_cmd($redis, 'CLIENT', 'LIST'), qr/ user=wechat /,
     'tls as an ACL user: connected as that user');
$ng->check_log('tls as an ACL user', @slow);
$ng->stop;

# --- refused ---------------------------------------------------------------

sub refused {
    my ($name, $log, %o) = @_;
    my $ng = start_nginx(http => conf(%o));
    my $res;
    # under memcheck the harness gives connects 30 s
    wait_until("$name: refused", sub {
        $ng->log_text =~ $log }, $WxTest::Nginx::VALGRIND ? 60 : 10);
    $res = qrcode($ng, 'nobody');
    is($res->{status}, 503, "$name: qrcode 503");
    $ng->check_log($name, errors_ok => 1, log => [$log]);
    $ng->stop;
}

refused('wrong CA',
        qr/\[error\].*wechat redis: the certificate of "127\.0\.0\.1:$tls_port" is not trusted/,
        redis => "wechat_redis 127.0.0.1:$tls_port tls;", ca => 'other-ca');
refused('wrong name',
        qr/\[error\].*wechat redis: the certificate of "127\.0\.0\.1:$tls_port" is not for "other\.test"/,
        redis => "wechat_redis 127.0.0.1:$tls_port tls;", name => 'other.test');
refused('plaintext Redis',
        qr/\[error\].*wechat redis: TLS handshake with "127\.0\.0\.1:$redis->{port}" timed out/,
        redis => "wechat_redis 127.0.0.1:$redis->{port} tls;");

# --- Sentinel over TLS -------------------------------------------------------

my $sdir = tempdir('wechat-sentinel-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $sport = free_port();
open my $fh, '>', "$sdir/sentinel.conf" or die;
print $fh <<"EOF";
port 0
tls-port $sport
tls-cert-file $pki/redis.crt
tls-key-file $pki/redis.key
tls-ca-cert-file $pki/test-ca.crt
tls-auth-clients yes
tls-replication yes
dir $sdir
sentinel monitor m1 127.0.0.1 $tls_port 1
EOF
close $fh;
start_process(name => 'a TLS sentinel', port => $sport,
              log => "$sdir/sentinel.log",
              cmd => [ sentinel_cmd("$sdir/sentinel.conf") ]);

$ng = start_nginx(http => conf(
    redis => "wechat_redis sentinel=127.0.0.1:$sport master=m1 tls;"));
bind_flow($ng, 'sentinel over tls', 'dave');
like($ng->log_text, qr/wechat sentinel: the master is "m1 \(127\.0\.0\.1:$tls_port\)"/,
     'sentinel over tls: the master named');
$ng->check_log('sentinel over tls', @slow);
$ng->stop;

# --- nginx -t reads the files --------------------------------------------------

for my $case (['a missing CA file', { ca => 'missing-ca' },
               qr/missing-ca\.crt/],
              ['no CA at all', { ca => undef },
               qr/needs "wechat_redis_ssl_trusted_certificate"/])
{
    my ($name, $o, $err) = @$case;
    my $text = conf(redis => "wechat_redis 127.0.0.1:$tls_port tls;",
                    %$o);
    $text =~ s/^\s*wechat_redis_ssl_trusted_certificate \S+;\n//m
        unless defined $o->{ca};
    my $t = WxTest::Nginx->new(http => $text);
    my $out = `@{[ join ' ', $t->nginx_cmd('-t') ]} 2>&1`;
    isnt($?, 0, "nginx -t: $name fails");
    like($out, $err, "nginx -t: $name is named");
}

done_testing;
