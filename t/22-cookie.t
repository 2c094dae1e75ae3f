# wechat_poll_cookie: the poll cookie's Path is the qrcode location's
# directory unless path= says otherwise (not "/", every page of the site);
# samesite= and secure (Secure also where TLS ends before nginx).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use WxTest;

my $redis = start_redis();

my $ng = start_nginx(http => <<"EOF");
    wechat_redis 127.0.0.1:$redis->{port};

    server {
        listen 127.0.0.1:PORT;
        wechat_appid wxcookie;

        location = /login/qrcode { wechat_qrcode login; }
        location = /login/poll { wechat_poll_timeout 0; wechat_poll; }
        location = /a/b/qrcode { wechat_qrcode code; }
        location = /qrcode { wechat_qrcode login; }
        location /prefix/ { wechat_qrcode login; }

        location = /lb/qrcode {
            wechat_poll_cookie wx_lb path=/lb/ samesite=strict secure;
            wechat_qrcode login;
        }

        location = /embed/qrcode {
            wechat_poll_cookie wx_embed samesite=none secure;
            wechat_qrcode login;
        }

        location ~ ^/re/(login)/qrcode\$ {
            wechat_poll_cookie wx_re path=/re/;
            wechat_qrcode login;
        }
    }
EOF

sub cookie_of {
    my ($path) = @_;
    my $res = http_req('POST', $ng->url($path));
    is($res->{status}, 200, "$path issued");
    my $c = $res->{headers}{'set-cookie'} // '';
    $c =~ s/=[0-9a-f]{32};/=T;/;
    $c =~ s/Max-Age=\d+/Max-Age=N/;
    return $c;
}

is(cookie_of('/login/qrcode'),
   'wechat_poll=T; Path=/login/; Max-Age=N; HttpOnly; SameSite=Lax',
   'default: the qrcode location\'s directory, Lax, no Secure on http');
is(cookie_of('/a/b/qrcode'),
   'wechat_poll=T; Path=/a/b/; Max-Age=N; HttpOnly; SameSite=Lax',
   'a deeper location: its directory');
is(cookie_of('/qrcode'),
   'wechat_poll=T; Path=/; Max-Age=N; HttpOnly; SameSite=Lax',
   'a location at the root: /');
is(cookie_of('/prefix/any'),
   'wechat_poll=T; Path=/prefix/; Max-Age=N; HttpOnly; SameSite=Lax',
   'a prefix location: its directory');
is(cookie_of('/lb/qrcode'),
   'wx_lb=T; Path=/lb/; Max-Age=N; HttpOnly; SameSite=Strict; Secure',
   'path=, samesite=strict, and secure over plain http (TLS offloaded)');
is(cookie_of('/embed/qrcode'),
   'wx_embed=T; Path=/embed/; Max-Age=N; HttpOnly; SameSite=None; Secure',
   'samesite=none with secure');
is(cookie_of('/re/login/qrcode'),
   'wx_re=T; Path=/re/; Max-Age=N; HttpOnly; SameSite=Lax',
   'a regex location with path=');

# the poll beside the qrcode location takes the token from the cookie
my $res = http_req('POST', $ng->url('/login/qrcode'));
my ($tok) = $res->{headers}{'set-cookie'} =~ /^wechat_poll=([0-9a-f]{32});/;
my ($scene) = $res->{content} =~ /"scene":"(wxs_[0-9a-f]+)"/;
is(http_req('GET', $ng->url("/login/poll?scene=$scene"),
            headers => { Cookie => "wechat_poll=$tok" })->{content},
   '{"status":"pending"}', 'the poll beside it reads the cookie');

# the poll token is called so in the answer and the query; "token", its
# name of one release ago, still works
my ($answered) = $res->{content} =~ /"poll_token":"([0-9a-f]{32})"/;
is($answered, $tok, 'the answer names the poll token poll_token');
like($res->{content}, qr/"token":"\Q$tok\E"/, 'and token, as before');
is(http_req('GET', $ng->url("/login/poll?scene=$scene&poll_token=$tok"))
   ->{content}, '{"status":"pending"}', 'a poll with poll_token=');
is(http_req('GET', $ng->url("/login/poll?scene=$scene&token=$tok"))
   ->{content}, '{"status":"pending"}', 'a poll with token=, as before');
is(http_req('GET', $ng->url("/login/poll?scene=$scene&poll_token="
                            . ('0' x 32)))->{content},
   '{"status":"expired"}', 'a wrong poll_token: expired, as a wrong token');

$ng->check_log('cookies');

# the configuration errors of wechat_poll_cookie are in 01-config.t

done_testing;
