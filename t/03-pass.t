# wechat_pass: pushes the module does not resolve go to a named location,
# with their body, and the upstream's answer goes back to WeChat.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use WxTest;

my $token = 'passToken1';
my $reply = '<xml><ToUserName><![CDATA[OPENID]]></ToUserName>'
          . '<Content><![CDATA[from the app]]></Content></xml>';
my $app = start_upstream(reply => $reply);

my $ng = start_nginx(http => <<"EOF");
    server {
        listen 127.0.0.1:PORT;

        location = /wx {
            wechat_appid wxappid;
            wechat_callback_token $token;
            wechat_callback;
            wechat_pass \@business;
        }

        location \@business {
            proxy_pass http://127.0.0.1:$app->{port};
            proxy_set_header X-WeChat-OpenID \$wechat_openid;
            proxy_set_header X-WeChat-Event \$wechat_event;
            proxy_set_header X-WeChat-Key \$wechat_event_key;
            proxy_set_header X-WeChat-Type \$wechat_msg_type;
            proxy_set_header X-WeChat-Scene \$wechat_scene;
        }
    }
EOF

my %post = (path => '/wx', token => $token, push => {});

my $menu = event_xml(from => 'oMenuUser', event => 'CLICK', key => 'V1001');
run_case($ng, { %post, name => 'menu click passed', body => $menu,
                status => 200, body_is => $reply });

my @got = $app->{requests}->();
is(scalar @got, 1, 'upstream received one request');
like($got[0], qr/^POST \/wx\?/, 'same method and URI');
like($got[0], qr/^X-WeChat-OpenID: oMenuUser\r$/m, 'openid header');
like($got[0], qr/^X-WeChat-Event: CLICK\r$/m, 'event header');
like($got[0], qr/^X-WeChat-Key: V1001\r$/m, 'event key header');
like($got[0], qr/^X-WeChat-Type: event\r$/m, 'msg type header');
like($got[0], qr/^Content-Length: ${\ length $menu}\r$/m, 'body length');
like($got[0], qr/\r\n\r\n\Q$menu\E$/, 'body passed unchanged');

run_case($ng, { %post, name => 'text message passed',
                body => text_xml(from => 'oText', content => '你好'),
                status => 200, body_is => $reply });
@got = $app->{requests}->();
like($got[1], qr/^X-WeChat-OpenID: oText\r$/m, 'text: openid header');
like($got[1], qr/你好/, 'text: UTF-8 body');

run_case($ng, { %post, name => 'foreign scene passed',
                body => event_xml(event => 'subscribe', key => 'qrscene_promo'),
                status => 200, body_is => $reply });
@got = $app->{requests}->();
like($got[2], qr/^X-WeChat-Scene: promo\r$/m, 'scene header without prefix');

run_case($ng, { %post, name => 'bad signature is not passed', body => $menu,
                push => { query => signed_query('wrong') }, status => 403,
                log => [qr/signature mismatch/] });
is(scalar($app->{requests}->()), 3, 'upstream saw nothing more');

done_testing;
