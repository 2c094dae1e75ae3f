# wechat_reply subscribe under attack: hostile senders, scenes that are and
# are not plain follows, retries and replays of a signed query, a bound
# follower, Redis down, safe mode, and links moved to another openid.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use WxCrypt;
use WxTest;

my ($appid, $token) = ('wxgreetapp', 'greetToken3');
my $key = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';
my $redis = start_redis();
my $app = start_upstream(reply => 'app-got-it');

my $ng = start_nginx(http => <<"EOF");
    wechat_redis 127.0.0.1:$redis->{port};
    wechat_redis_timeout 300ms;

    server {
        listen 127.0.0.1:PORT;

        wechat_appid $appid;
        wechat_callback_token $token;
        wechat_aes_key $key;
        wechat_link_secret ${\ ('S' x 40)};
        wechat_link_url https://example.com/register?src=wx;
        wechat_reply subscribe "Hi {link}";

        location = /g  { wechat_callback; }
        location = /gp { wechat_callback; wechat_pass \@app; }
        location = /gs { wechat_mode safe; wechat_callback; }

        location = /register {
            wechat_link_verify;
            proxy_pass http://127.0.0.1:$app->{port};
            proxy_set_header X-Link-Openid \$wechat_link_openid;
        }

        location \@app { proxy_pass http://127.0.0.1:$app->{port}; }
    }
EOF

my $LINK = qr{^Hi https://example\.com/register\?src=wx&openid=([\w-]+)&expires=\d+&nonce=[0-9a-f]{32}&sig=[0-9a-f]{64}$};

sub text { ($_[0]{content} // '') =~ /<Content><!\[CDATA\[(.*?)\]\]>/s ? $1 : '' }
sub sub_xml { event_xml(event => 'subscribe', @_) }

# greeted, with a link for that openid which verifies, and not for another
{
    my $t = text(send_push($ng, '/g', $token, sub_xml(from => 'oNew_1-x')));
    like($t, $LINK, 'plain subscribe greeted');
    my ($q) = $t =~ /\?(\S+)$/;
    like($q, qr/openid=oNew_1-x&/, 'link names the sender');
    is(http_req('GET', $ng->url("/register?$q"))->{status}, 200, 'link verifies');
    (my $moved = $q) =~ s/openid=oNew_1-x/openid=oEve/;
    is(http_req('GET', $ng->url("/register?$moved"))->{status}, 403,
       'link moved to another openid refused');
    $ng->check_log('greet', errors_ok => 1);
}

# hostile senders never reach the link
for my $from ('o&openid=oEve', "o\x01x", 'a' x 65, 'o&amp;x', 'o%26x', '') {
    my $res = send_push($ng, '/g', $token, sub_xml(from => $from));
    is($res->{status}, 400, "FromUserName '" . quotemeta($from) . "' refused");
    unlike($res->{content} // '', qr/register/, 'no link');
}
$ng->check_log('hostile senders', errors_ok => 1);

# which follows are plain
like(text(send_push($ng, '/g', $token, sub_xml(from => 'oK1', key => ''))),
     $LINK, 'empty EventKey greeted');
like(text(send_push($ng, '/g', $token, sub_xml(from => 'oK2', key => 'qrscene_'))),
     $LINK, 'empty qrscene_ greeted');
is(send_push($ng, '/g', $token, sub_xml(from => 'oK3', key => 'qrscene_x'))->{content},
   'success', 'follow by a foreign scene passed on');
is(send_push($ng, '/g', $token, event_xml(from => 'oK4', event => 'SUBSCRIBE'))->{content},
   'success', 'other spelling passed on');
is(send_push($ng, '/g', $token, text_xml(from => 'oK5'))->{content},
   'success', 'text message passed on');

# retries: three tries greeted, a fourth or another body refused
{
    my $q = signed_query($token);
    my $body = sub_xml(from => 'oRetry');
    for my $i (1 .. 3) {
        like(text(send_push($ng, '/g', $token, $body, query => {%$q})), $LINK,
             "try $i greeted");
    }
    is(send_push($ng, '/g', $token, $body, query => {%$q})->{status}, 403,
       'fourth use refused');
    my $q2 = signed_query($token);
    send_push($ng, '/g', $token, $body, query => {%$q2});
    is(send_push($ng, '/g', $token, sub_xml(from => 'oEve'), query => {%$q2})->{status},
       403, 'other body under a used query refused');
    $ng->check_log('replays', errors_ok => 1);
}

# a bound follower is passed on
redis_cmd($redis, 'HSET', "wx:{$appid}:openids", 'oBound', 'alice');
is(send_push($ng, '/gp', $token, sub_xml(from => 'oBound'))->{content},
   'app-got-it', 'bound follower passed on');
is(send_push($ng, '/g', $token, sub_xml(from => 'oBound'))->{content},
   'success', 'bound follower answered as any push');

# safe mode: the greeting goes encrypted
{
    my $enc = wx_encrypt($key, $appid, sub_xml(from => 'oSafe'));
    my $res = send_push($ng, '/gs', $token, encrypted_body($enc),
                        query => encrypted_push_query($token, $enc));
    my ($e) = ($res->{content} // '') =~ /<Encrypt><!\[CDATA\[(.*?)\]\]>/;
    unlike($res->{content} // '', qr/register/, 'no plaintext link');
    my ($msg) = $e ? wx_decrypt($key, $e) : ('');
    like($msg, qr/<ToUserName><!\[CDATA\[oSafe\]\]>/, 'encrypted reply to sender');
    like(text({ content => $msg }), $LINK, 'encrypted greeting');
}

# Redis hung, then down: passed on, never greeted
kill 'STOP', $redis->{pid};
is(send_push($ng, '/gp', $token, sub_xml(from => 'oHung'), timeout => 5)->{content},
   'app-got-it', 'Redis hung: passed on');
kill 'CONT', $redis->{pid};
stop_redis($redis);
is(send_push($ng, '/gp', $token, sub_xml(from => 'oDown'))->{content},
   'app-got-it', 'Redis down: passed on');
is(send_push($ng, '/g', $token, sub_xml(from => 'oDown2'))->{content},
   'success', 'Redis down: not greeted');
restart_redis($redis);

my $log = $ng->log_text;
unlike($log, qr/signal \d+|\[alert\]|\[crit\]/, 'no crash');

done_testing();
