# Website login (网站应用微信登录) through a Website App of WeChat's Open
# Platform, against the fake platform and a real redis-server: "wechat_oauth
# login" sends a PC browser without a session to the qrconnect page with the
# Website App's appid, the callback takes the state once (bound to the
# browser's state cookie), exchanges the code once with the Website App's
# secret and seals the session; the session's unionid finds the openid the
# official account has for the same person (P unionids), so $wechat_user is
# the site user bound through the official account.  The refusals are
# OAuth's: replayed codes and states, foreign state cookies, forged states,
# a refusal on the phone, and a code of one app presented for the other.
# Unionids and the Website App's openids are computed here, by the fake's
# documented rule, and sessions are opened here with Digest::SHA.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw(sha1);
use MIME::Base64 qw(encode_base64url);
use Test::More;
use WxOAuth;
use WxTest;

plan skip_all => 'node not installed'
    if system('command -v node >/dev/null') != 0;

my ($appid, $secret) = ('wxofficialapp', 'officialSecret');
my ($web_appid, $web_secret) = ('wxwebsiteapp', 'websiteSecret');
my $key = 'W' x 40;
my $platform = 'open-platform-27';
my $redis = start_redis();
my $app = start_upstream(reply => 'site-page');
my $fake = start_fake_wechat(accounts => [
    { appid => $appid, secret => $secret, token => 'webToken',
      open_platform => $platform },
    { appid => $web_appid, secret => $web_secret, kind => 'website',
      open_platform => $platform },
]);
my $port = free_port();
my $origin = "http://127.0.0.1:$port";

my $ng = start_nginx(port => $port, http => <<"EOF");
    wechat_redis 127.0.0.1:$redis->{port};

    server {
        listen 127.0.0.1:PORT;

        wechat_appid $appid;
        wechat_secret $secret;
        wechat_api_pass /wechat-api-upstream;
        wechat_oauth_secret $key;
        wechat_oauth_redirect_uri $origin/oauth/callback;
        wechat_oauth_authorize_url $fake->{url}/connect/oauth2/authorize;
        wechat_oauth_qrconnect_url $fake->{url}/connect/qrconnect;
        wechat_oauth_website $web_appid $web_secret;

        location /wechat-api-upstream/ {
            internal;
            proxy_pass $fake->{url}/;
        }

        location = /oauth/callback {
            wechat_oauth_callback;
        }

        location /m/ {
            wechat_oauth base;
            proxy_pass http://127.0.0.1:$app->{port};
        }

        location /pc/ {
            wechat_oauth login;
            proxy_pass http://127.0.0.1:$app->{port};
            proxy_set_header X-Openid \$wechat_openid;
            proxy_set_header X-Unionid \$wechat_unionid;
            proxy_set_header X-User \$wechat_user;
        }
    }
EOF

my $P = "wx:{$appid}:";
my $PC = 'Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0';
my $PHONE = 'Mozilla/5.0 (iPhone) AppleWebKit MicroMessenger/8.0.47';
my $http = oauth_site(ng => $ng, appid => $appid, key => $key, app => $app,
                      ua => $PC, platform => $platform);

sub website_openid_of {
    my ($person) = @_;
    return 'oW' . substr(encode_base64url(sha1("$web_appid\n$person")), 0, 26);
}

# --- the redirect to qrconnect ---------------------------------------------

my $start = start_auth('/pc/orders?tab=2');
is($start->{res}{status}, 302, 'no session on a PC: 302')
    or diag($start->{res}{content});
like($start->{location}, qr{^\Q$fake->{url}\E/connect/qrconnect\?},
     'to the qrconnect page, not the authorize page');
like($start->{location}, qr/#wechat_redirect$/, 'ends in #wechat_redirect');
is($start->{q}{appid}, $web_appid, "the Website App's appid");
is($start->{q}{scope}, 'snsapi_login', 'scope snsapi_login');
is($start->{q}{response_type}, 'code', 'response_type code');
is($start->{q}{redirect_uri}, "$origin/oauth/callback", 'redirect_uri');
like($start->{q}{state}, qr/^[0-9a-f]{32}$/, 'state: 128 random bits');
like($start->{browser}, qr/^[0-9a-f]{32}$/, 'a state cookie');
like(redis_cmd($redis, 'GET', "${P}oauth:$start->{q}{state}"),
     qr{^[0-9a-f]{64} login /pc/orders\?tab=2$},
     'the state holds the cookie hash, "login" and the path');

my $phone = start_auth('/pc/', ua => $PHONE);
is($phone->{res}{status}, 302,
   "in WeChat's browser too: website login needs no \"open in WeChat\" page");

# --- the official account knows the person, bound to a site user --------

my $m = start_auth('/m/', ua => $PHONE);
like($m->{location}, qr{/connect/oauth2/authorize\?appid=$appid&},
     "the official account's page for wechat_oauth base");
my $res = callback(authorize_as($m, 'oAlicePerson'), $m->{browser});
is($res->{status}, 302, 'signed in through the official account');
my $union = unionid_of('oAlicePerson');
is(redis_cmd($redis, 'HGET', "${P}unionids", "u:$union"), 'oAlicePerson',
   'P unionids: the unionid finds the official account\'s openid');
my $oa_session = cookie_of($res, 'wechat_session');
redis_cmd($redis, 'HSET', "${P}openids", 'oAlicePerson', 'alice');
redis_cmd($redis, 'HSET', "${P}users", 'alice', 'oAlicePerson');

# --- website login: the same site user ----------------------------------

my $back = authorize_as($start, 'oAlicePerson');
my $cq = query_of($back);
like($back, qr{^\Q$origin\E/oauth/callback\?}, 'back to the callback');
is($cq->{state}, $start->{q}{state}, 'with our state');
$res = callback($back, $start->{browser});
is($res->{status}, 302, 'the callback signs the PC in')
    or diag($res->{content});
like($res->{headers}{location}, qr{^(\Q$origin\E)?/pc/orders\?tab=2$},
     'back where it started');
my $session = cookie_of($res, 'wechat_session');
my $s = unseal($session);
ok($s, 'a session sealed with the key');
is($s->{scope}, 'login', 'scope login');
is($s->{appid}, $appid, "sealed for the site's account");
is($s->{openid}, website_openid_of('oAlicePerson'),
   "the Website App's openid for the person");
is($s->{unionid}, $union, 'the unionid the official account shares');
# the fake logs a request once it has answered it: the line may lag
ok(eval {
       wait_until('the exchange in the fake platform\'s log', sub {
           $fake->log_text
               =~ qr{/sns/oauth2/access_token\?appid=$web_appid&secret=\*\*\*}
       }, 5);
       1 },
   "the code exchanged with the Website App's appid (and its secret)");
is(redis_cmd($redis, 'HGET', "${P}unionids", "u:$union"), 'oAlicePerson',
   "the Website App's openid does not replace the official account's");

$res = get($ng->url('/pc/orders'), cookies => { wechat_session => $session });
is($res->{status}, 200, 'the session lets the PC through');
my $req = last_request();
is(header_of($req, 'X-User'), 'alice',
   '$wechat_user: the site user bound through the official account');
is(header_of($req, 'X-Unionid'), $union, '$wechat_unionid');
is(header_of($req, 'X-Openid'), website_openid_of('oAlicePerson'),
   "\$wechat_openid: the Website App's");

$res = get($ng->url('/pc/'), cookies => { wechat_session => $oa_session });
is($res->{status}, 200, "an official account's session opens a login page");
is(header_of(last_request(), 'X-User'), 'alice', 'the same site user');

$res = get($ng->url('/m/'), ua => $PHONE,
           cookies => { wechat_session => $session });
is($res->{status}, 302,
   "a login session is not the official account's: /m/ asks WeChat");

# a person the official account never saw: signed in, no site user
my $bob = start_auth('/pc/');
$res = callback(authorize_as($bob, 'oBobPerson'), $bob->{browser});
is($res->{status}, 302, 'a person unknown to the official account signs in');
$res = get($ng->url('/pc/'),
           cookies => { wechat_session => cookie_of($res, 'wechat_session') });
is($res->{status}, 200, 'and is let through');
is(header_of(last_request(), 'X-User'), undef, 'with no $wechat_user');

# --- refusals, as OAuth's -----------------------------------------------

$res = callback($back, $start->{browser});
is($res->{status}, 403, 'the same state and code again: 403');

my $other = start_auth('/pc/');
my $url = authorize_as($other, 'oAlicePerson');
$res = callback($url, 'f' x 32);
is($res->{status}, 403, "another browser's state cookie: 403");
$res = callback($url, undef);
is($res->{status}, 403, 'no state cookie: 403');
# a foreign cookie spends neither the state nor the code: the browser the
# state belongs to still signs in
$res = callback($url, $other->{browser});
is($res->{status}, 302, "refused elsewhere, the state's own browser: 302");

my $forged = start_auth('/pc/');
$url = authorize_as($forged, 'oAlicePerson');
$url =~ s/state=[0-9a-f]+/state=${\('0' x 32)}/;
$res = callback($url, $forged->{browser});
is($res->{status}, 403, 'a state we never issued: 403');
$res = callback("$origin/oauth/callback?code=abc&state=x%0Ay",
                $forged->{browser});
is($res->{status}, 400, 'a malformed state: 400');

# the path to return to is only a local one: "//host" would be another site
my $offsite = start_auth('//pc/evil.example');
like(redis_cmd($redis, 'GET', "${P}oauth:$offsite->{q}{state}"),
     qr{^[0-9a-f]{64} login /$}, 'a "//" path: the state returns to "/"');
$res = callback(authorize_as($offsite, 'oAlicePerson'), $offsite->{browser});
like($res->{headers}{location} // '', qr{^(\Q$origin\E)?/$},
     'and the callback sends the browser to "/", not off-site');

my $deny = start_auth('/pc/');
$res = callback(authorize_as($deny, 'oAlicePerson', 'deny'), $deny->{browser});
is($res->{status}, 403, 'refused on the phone (no code): 403');

# a Website App's code on an official account's state: exchanged with the
# official account's appid, which WeChat refuses (codes are per app)
my $web = start_auth('/pc/');
my $web_code = query_of(authorize_as($web, 'oAlicePerson'))->{code};
my $oa = start_auth('/m/', ua => $PHONE);
$res = callback("$origin/oauth/callback?code=$web_code&state=$oa->{q}{state}",
                $oa->{browser});
is($res->{status}, 403, "a Website App's code on an official account's state");

# the qrconnect page refuses what WeChat refuses
$res = $http->get("$fake->{url}/connect/qrconnect?appid=$appid"
                  . "&redirect_uri=$origin/cb&response_type=code"
                  . '&scope=snsapi_login&state=s');
is($res->{status}, 400, "the fake's qrconnect: an official account's appid");
$res = $http->get("$fake->{url}/connect/qrconnect?appid=$web_appid"
                  . "&redirect_uri=$origin/cb&response_type=code"
                  . '&scope=snsapi_base&state=s');
is($res->{status}, 400, "the fake's qrconnect: a scope but snsapi_login");

like($ng->log_text,
     qr/wechat oauth: refused: the state belongs to another browser/,
     'refusals logged');
unlike($ng->log_text, qr/\[(alert|crit|emerg)\]/, 'no alert in the error log');

done_testing();
