# The JSON endpoints answer JSON when nginx refuses a request itself: 400,
# 405 and 413 (from a handler, or from nginx's core before the handler runs)
# are {"error":"..."} with Cache-Control: no-store, not nginx's HTML page;
# where the site sets an error_page, that page is used.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP;
use Test::More;
use WxTest;

my $redis = start_redis();
my $closed = free_port();

my $ng = start_nginx(http => <<"EOF2");
    wechat_redis 127.0.0.1:$redis->{port};

    server {
        listen 127.0.0.1:PORT;
        client_max_body_size 1k;

        wechat_appid wxjsonerr;

        location /wechat-api-upstream/ {
            internal;
            proxy_pass http://127.0.0.1:$closed/;
        }

        location = /qrcode { wechat_scene_user \$arg_user; wechat_qrcode bind; }
        location = /poll { wechat_poll_timeout 0; wechat_poll; }
        location = /binding { wechat_binding; }
        location = /bindings { wechat_bindings; }
        location = /redeem { wechat_redeem; }
        location /api/ {
            wechat_secret jsonErrSecret;
            wechat_api_pass /wechat-api-upstream;
            wechat_api;
        }

        location = /redeem-page {
            error_page 405 = /site-405;
            wechat_redeem;
        }
        location = /site-405 { return 200 "the site's own page\\n"; }
    }
EOF2

my $json = JSON::PP->new;
my $big = 'x' x 2048;

my @cases = (
    # [ what, method, path, body, status, error ]
    [ 'qrcode: a user over the longest name', 'POST', '/qrcode?user=' . ('u' x 300),
      undef, 400, 'bad request' ],
    [ 'qrcode: DELETE', 'DELETE', '/qrcode?user=u', undef, 405, 'method' ],
    [ 'qrcode: a body over client_max_body_size', 'POST', '/qrcode?user=u',
      $big, 413, 'too large' ],
    [ 'poll: no scene', 'GET', '/poll', undef, 400, 'bad request' ],
    [ 'poll: DELETE', 'DELETE', '/poll?scene=s&token=t', undef, 405,
      'method' ],
    [ 'poll: a confirm over client_max_body_size', 'POST', '/poll', $big, 413,
      'too large' ],
    [ 'binding: no user or openid', 'GET', '/binding', undef, 400,
      'bad request' ],
    [ 'binding: POST', 'POST', '/binding?user=u', undef, 405, 'method' ],
    [ 'binding: a body over client_max_body_size', 'PUT',
      '/binding?user=u&openid=o', $big, 413, 'too large' ],
    [ 'bindings: an unknown format', 'GET', '/bindings?format=xml', undef,
      400, 'bad request' ],
    [ 'bindings: DELETE', 'DELETE', '/bindings', undef, 405, 'method' ],
    [ 'bindings: a body over client_max_body_size', 'POST', '/bindings',
      $big, 413, 'too large' ],
    [ 'redeem: GET', 'GET', '/redeem', undef, 405, 'method' ],
    [ 'redeem: a body over client_max_body_size', 'POST', '/redeem', $big, 413,
      'too large' ],
    [ 'api: the app\'s own access_token', 'GET',
      '/api/cgi-bin/user/info?openid=o&access_token=A', undef, 400,
      'bad request' ],
    [ 'api: DELETE', 'DELETE', '/api/cgi-bin/user/info', undef, 405,
      'method' ],
    [ 'api: a body over client_max_body_size', 'POST',
      '/api/cgi-bin/message/custom/send', $big, 413, 'too large' ],
);

for my $c (@cases) {
    my ($what, $method, $path, $body, $status, $error) = @$c;
    my $res = http_req($method, $ng->url($path),
                       defined $body ? (body => $body) : ());
    is($res->{status}, $status, "$what: $status");
    like($res->{headers}{'content-type'} // '', qr{^application/json},
         "$what: JSON");
    is($res->{headers}{'cache-control'}, 'no-store', "$what: no-store");
    my $answer = eval { $json->decode($res->{content}) } // {};
    is_deeply($answer, { error => $error }, "$what: {\"error\":\"$error\"}")
        or diag($res->{content});
}

# A HEAD gets the JSON's headers, with no body.
my $res = http_req('HEAD', $ng->url('/redeem'));
is($res->{status}, 405, 'redeem: HEAD: 405');
like($res->{headers}{'content-type'} // '', qr{^application/json},
     'redeem: HEAD: JSON headers');
is($res->{content} // '', '', 'redeem: HEAD: no body');

# The site's error_page wins over the module's JSON.
$res = http_req('GET', $ng->url('/redeem-page'));
is($res->{content}, "the site's own page\n", 'an error_page of the site wins');

$ng->check_log('errors',
               allow => [ qr/client intended to send too large body/ ]);

done_testing;
