# OAuth web authorization (网页授权) at the edge, against the fake WeChat
# platform and a real redis-server: a protected location sends a browser
# without a session to the authorize page, the callback takes the state
# once (bound to the browser's state cookie), exchanges the code once and
# seals the session, which lets the browser through with $wechat_openid,
# $wechat_unionid, $wechat_user, and for the userinfo scope nickname and
# avatar.  The attacks: replayed codes and states, forged states, a foreign
# state cookie, off-site return paths, tampered, expired, foreign and
# rotated sessions, and WeChat's refusals.  Session MACs are computed here
# with Digest::SHA, not by the module.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw(hmac_sha256_hex sha256_hex);
use Encode ();
use JSON::PP;
use Test::More;
use WxOAuth;
use WxTest;
use WxTopology;

binmode Test::More->builder->$_, ':encoding(UTF-8)'
    for qw(output failure_output todo_output);

plan skip_all => 'node not installed'
    if system('command -v node >/dev/null') != 0;

my ($appid, $secret) = ('wxoauthapp', 'oauthSecret');
my $key = 'K' x 40;
my $old_key = 'O' x 32;
my $platform = 'open-platform-1';
my $redis = start_redis();
my $app = start_upstream(reply => 'site-page');
my $fake = start_fake_wechat(appid => $appid, secret => $secret,
                             token => 'oauthToken', open_platform => $platform);
my $port = free_port();
my $origin = "http://127.0.0.1:$port";

# What the sites below have in common: the account, its OAuth, WeChat's
# API (the fake), the callback; origin is the site's.
sub account_conf {
    my ($origin) = @_;
    return <<"EOF";
        wechat_appid $appid;
        wechat_secret $secret;
        wechat_api_pass /wechat-api-upstream;
        wechat_oauth_secret $key $old_key;
        wechat_oauth_redirect_uri $origin/oauth/callback;
        wechat_oauth_authorize_url $fake->{url}/connect/oauth2/authorize;

        location /wechat-api-upstream/ {
            internal;
            proxy_pass $fake->{url}/;
        }

        location = /oauth/callback {
            wechat_oauth_callback;
        }
EOF
}

my $ng = start_nginx(port => $port, http => <<"EOF");
    wechat_redis 127.0.0.1:$redis->{port};

    server {
        listen 127.0.0.1:PORT;

@{[ account_conf($origin) ]}
        # a callback inside a protected part of the site stays reachable
        location /protected/ {
            wechat_oauth base;

            location = /protected/callback {
                wechat_oauth_callback;
            }
        }

        location / {
            wechat_oauth base;
            proxy_pass http://127.0.0.1:$app->{port};
            proxy_set_header X-Openid \$wechat_openid;
            proxy_set_header X-Unionid \$wechat_unionid;
            proxy_set_header X-User \$wechat_user;
        }

        location /u/ {
            wechat_oauth userinfo;
            proxy_pass http://127.0.0.1:$app->{port};
            proxy_set_header X-Openid \$wechat_openid;
            proxy_set_header X-Nick \$wechat_nickname;
            proxy_set_header X-Avatar \$wechat_avatar;
        }

        location /anywhere/ {
            wechat_oauth base;
            wechat_oauth_outside authorize;
            proxy_pass http://127.0.0.1:$app->{port};
        }

        location = /open {
            proxy_pass http://127.0.0.1:$app->{port};
        }

        location = /binding {
            wechat_binding;
        }

        location /m1/ {
            wechat_qrcode_oauth on;
            wechat_qrcode_confirm off;

            location = /m1/bind {
                wechat_scene_user \$http_x_site_user;
                wechat_qrcode bind;
            }

            location = /m1/bind-confirm {
                wechat_scene_user \$http_x_site_user;
                wechat_qrcode_confirm on;
                wechat_qrcode bind;
            }

            location = /m1/login {
                wechat_qrcode login;
            }

            location = /m1/code {
                wechat_qrcode code;
            }

            location = /m1/image {
                wechat_qrcode_image;
            }
        }

        location = /poll {
            wechat_poll_timeout 0;
            wechat_poll;
        }

        location = /wx {
            wechat_callback_token oauthToken;
            wechat_callback;
            wechat_pass \@business;
        }

        location \@business {
            proxy_pass http://127.0.0.1:$app->{port};
            proxy_set_header X-Openid \$wechat_openid;
            proxy_set_header X-Unionid \$wechat_unionid;
            proxy_set_header X-User \$wechat_user;
        }
    }
EOF

my $P = "wx:{$appid}:";
my $UA = 'Mozilla/5.0 (iPhone) AppleWebKit MicroMessenger/8.0.47 NetType/WIFI';
my $http = oauth_site(ng => $ng, appid => $appid, key => $key, app => $app,
                      ua => $UA, platform => $platform);

# --- the flow ----------------------------------------------------------------

my $a = start_auth('/page?x=1');
is($a->{res}{status}, 302, 'no session: 302');
like($a->{location}, qr{^\Q$fake->{url}\E/connect/oauth2/authorize\?},
     'to the authorize URL');
like($a->{location}, qr/#wechat_redirect$/, 'with #wechat_redirect');
is($a->{q}{appid}, $appid, 'appid');
is($a->{q}{redirect_uri}, "$origin/oauth/callback", 'redirect_uri');
is($a->{q}{response_type}, 'code', 'response_type');
is($a->{q}{scope}, 'snsapi_base', 'scope snsapi_base');
like($a->{q}{state}, qr/^[0-9a-f]{32}$/, 'a state of 128 bits');
like($a->{browser}, qr/^[0-9a-f]{32}$/, 'a state cookie of 128 bits');
my $state_cookie = set_cookie($a->{res}, 'wechat_oauth_state');
like($state_cookie, qr/; Path=\/; Max-Age=300; HttpOnly; SameSite=Lax$/,
     'the state cookie: HttpOnly, SameSite=Lax, 5 minutes');
is(redis_cmd($redis, 'GET', "${P}oauth:$a->{q}{state}"),
   sha256_hex($a->{browser}) . ' base /page?x=1',
   'Redis keeps the state: the cookie\'s hash, the scope, the path');
my $ttl = redis_cmd($redis, 'TTL', "${P}oauth:$a->{q}{state}");
ok($ttl > 290 && $ttl <= 300, "the state lives 5 minutes ($ttl)");
$ng->check_log('redirect');

my $cb = authorize_as($a, 'oAlice');
like($cb, qr{^\Q$origin\E/oauth/callback\?code=\w+&state=$a->{q}{state}$},
     'WeChat sends the browser back with a code and the state');
my $res = callback($cb, $a->{browser});
is($res->{status}, 302, 'callback: 302') or diag($res->{content});
is($res->{headers}{location}, "$origin/page?x=1",
   'back to the page asked for');
my $session = cookie_of($res, 'wechat_session');
my $line = set_cookie($res, 'wechat_session');
like($line, qr/; Path=\/; Max-Age=7200; HttpOnly; SameSite=Lax$/,
     'session cookie: HttpOnly, SameSite=Lax, its expiry');
my $s = unseal($session);
ok($s, 'session: v1.hex.mac');
is($s->{mac}, hmac_sha256_hex($s->{sealed}, $key),
   'its MAC is HMAC-SHA256 under the current key');
my ($tag, $s_appid, $s_openid, $s_unionid, $s_scope, $s_expires) =
    @{ $s->{fields} };
is($tag, 'wechat-oauth-session/1', 'its tag');
is($s_appid, $appid, 'its appid');
is($s_openid, 'oAlice', 'its openid');
is($s_unionid, unionid_of('oAlice'), 'its unionid, from the code exchange');
is($s_scope, 'base', 'its scope');
ok(abs($s_expires - time - 7200) < 5, 'it expires in 2 hours');
$ng->check_log('callback');

$res = get($ng->url('/page?x=1'), cookies => { wechat_session => $session });
is($res->{status}, 200, 'with the session: through') or diag($res->{content});
is($res->{content}, 'site-page', 'the upstream answered');
my $req = last_request();
is(header_of($req, 'X-Openid'), 'oAlice', '$wechat_openid');
is(header_of($req, 'X-Unionid'), unionid_of('oAlice'), '$wechat_unionid');
is(header_of($req, 'X-User'), undef,
   '$wechat_user: not bound (empty: proxy leaves the header out)');

redis_cmd($redis, 'HSET', "${P}openids", 'oAlice', 'alice');
redis_cmd($redis, 'HSET', "${P}users", 'alice', 'oAlice');
get($ng->url('/page'), cookies => { wechat_session => $session });
is(header_of(last_request(), 'X-User'), 'alice',
   '$wechat_user: the bound site user');
is(($fake->counts->{'/sns/oauth2/access_token'} // {})->{calls}, 1,
   'one code exchange so far');
$ng->check_log('session');

# --- unionid: stored, looked up, on pushes -----------------------------------------

my $union = unionid_of('oAlice');
is(redis_cmd($redis, 'HGET', "${P}unionids", 'oAlice'), $union,
   'unionids: openid -> unionid');
is(redis_cmd($redis, 'HGET', "${P}unionids", "u:$union"), 'oAlice',
   'unionids: u:unionid -> openid');
my $stream = redis_cmd($redis, 'XRANGE', "${P}resolutions", '-', '+');
my ($entry) = grep { my %f = @{ $_->[1] }; ($f{kind} // '') eq 'unionid' }
              @$stream;
my %f = @{ $entry->[1] // [] };
is_deeply([ @f{qw(openid unionid)} ], [ 'oAlice', $union ],
          'the resolutions stream names the pair');

my $json = JSON::PP->new->utf8->canonical;
$res = http_req('GET', $ng->url("/binding?unionid=$union"));
is($res->{status}, 200, 'wechat_binding by unionid: 200');
is_deeply($json->decode($res->{content}),
          { unionid => $union, openid => 'oAlice', user => 'alice' },
          'its openid and bound user');
$res = http_req('GET', $ng->url('/binding?unionid=oUnknownUnion'));
is($res->{status}, 404, 'an unknown unionid: 404');
$res = http_req('GET', $ng->url('/binding?unionid=bad%0Aone'));
is($res->{status}, 400, 'a unionid that is no name: 400');

my $pushed = $fake->send(openid => 'oAlice', content => 'hi',
                         callback => $ng->url('/wx'));
is_deeply($pushed->{statuses}, [200], 'a push from oAlice: answered');
$req = last_request();
is(header_of($req, 'X-Openid'), 'oAlice', 'push: $wechat_openid');
is(header_of($req, 'X-Unionid'), $union, 'push: $wechat_unionid, known');
is(header_of($req, 'X-User'), 'alice', 'push: $wechat_user');
$fake->send(openid => 'oNobody', content => 'hi', callback => $ng->url('/wx'));
is(header_of(last_request(), 'X-Unionid'), undef,
   'push: no $wechat_unionid for an openid never seen');
$ng->check_log('unionid');

# --- method 1: scenes by OAuth link ------------------------------------------------

# A method-1 resolution by openid kept the unionid of the code exchange as
# the protected location's callback keeps it, in the Redis at r: both
# directions, one stream entry for the pair, and wechat_binding at site
# finds the user bound by it.
sub unionid_kept {
    my ($r, $site, $openid, $user, $name) = @_;
    my $union = unionid_of($openid);
    is(redis_cmd($r, 'HGET', "${P}unionids", $openid), $union,
       "$name: unionids: openid -> unionid");
    is(redis_cmd($r, 'HGET', "${P}unionids", "u:$union"), $openid,
       "$name: unionids: u:unionid -> openid");
    my @entries = grep {
        my %f = @{ $_->[1] };
        ($f{kind} // '') eq 'unionid' && ($f{openid} // '') eq $openid
    } @{ redis_cmd($r, 'XRANGE', "${P}resolutions", '-', '+') };
    is(scalar @entries, 1, "$name: one resolutions entry names the pair");
    my %f = @{ $entries[0][1] // [] };
    is($f{unionid}, $union, "$name: the entry's unionid");
    like($f{time} // '', qr/^\d+$/, "$name: and its time");
    my $res = http_req('GET', $site->url("/binding?unionid=$union"));
    is($res->{status}, 200, "$name: wechat_binding ?unionid=: 200");
    is_deeply(eval { $json->decode($res->{content}) },
              { unionid => $union, openid => $openid, user => $user },
              "$name: it finds the openid and the user");
}

# The PC asks for a scene; the phone opens its link in WeChat.
sub issue_m1 {
    my ($path, %h) = @_;
    my $res = http_req('POST', $ng->url($path), headers => \%h);
    is($res->{status}, 200, "$path issues a scene") or diag($res->{content});
    return $json->decode($res->{content});
}

sub poll_m1 {
    my ($q) = @_;
    my $res = http_req('GET', $ng->url('/poll'),
                       query => { scene => $q->{scene}, token => $q->{token} });
    return $json->decode($res->{content});
}

sub open_m1 {
    my ($q, $openid) = @_;
    my $cb = authorize_as({ location => $q->{url} }, $openid);
    return callback($cb, undef);
}

my $q = issue_m1('/m1/bind', 'X-Site-User' => 'henry');
my $m1q = query_of($q->{url});
like($q->{url}, qr{^\Q$fake->{url}\E/connect/oauth2/authorize\?.*#wechat_redirect$},
     'method 1: the scene is an authorize URL');
(my $hex = $q->{scene}) =~ s/^wxs_//;
is($m1q->{state}, "s$hex", 'its state names the scene');
is($m1q->{scope}, 'snsapi_base', 'silent: snsapi_base');
$res = http_req('GET', $ng->url("/m1/image?scene=$q->{scene}&token=$q->{token}"));
is($res->{status}, 200, 'wechat_qrcode_image draws it');
is($res->{headers}{'content-type'}, 'image/png', 'as a PNG');
is(poll_m1($q)->{status}, 'pending', 'the PC polls: pending');

$res = open_m1($q, 'oHenry');
is($res->{status}, 200, 'the phone opens the link: 200') or diag($res->{content});
like(Encode::decode_utf8($res->{content}), qr/绑定成功/, 'the phone page: bound');
is(poll_m1($q)->{status}, 'bound', 'the PC\'s poll sees it bound');
is(redis_cmd($redis, 'HGET', "${P}users", 'henry'), 'oHenry',
   'henry is bound to the phone\'s openid');
unionid_kept($redis, $ng, 'oHenry', 'henry', 'method 1 bind');

$res = open_m1($q, 'oHenry');
is($res->{status}, 200, 'the same link again, a new code: answered');
like(Encode::decode_utf8($res->{content}), qr/绑定成功/,
     'the first answer again (a scan\'s retry)');
unionid_kept($redis, $ng, 'oHenry', 'henry', 'method 1 again');
$ng->check_log('method 1 bind');

$q = issue_m1('/m1/bind', 'X-Site-User' => 'ivy');
my $code_url = authorize_as({ location => $q->{url} }, 'oIvy');
is(callback($code_url, undef)->{status}, 200, 'method 1: ivy binds');
$res = callback($code_url, undef);
is($res->{status}, 403, 'the same code again: 403');
$ng->check_log('method 1 replayed code', log => [qr/code used before/]);

$q = issue_m1('/m1/bind-confirm', 'X-Site-User' => 'jack');
$res = open_m1($q, 'oJack');
my ($shown) = Encode::decode_utf8($res->{content}) =~ /绑定验证码 (\d{6})/;
ok($shown, 'with the confirm: the phone page shows the code to type');
is(poll_m1($q)->{status}, 'scanned', 'and the PC\'s poll sees it scanned');
is(redis_cmd($redis, 'HGET', "${P}users", 'jack'), undef,
   'nothing bound before the PC sends the code');

$q = issue_m1('/m1/login');
$res = open_m1($q, 'oHenry');
like(Encode::decode_utf8($res->{content}), qr/登录成功/,
     'method 1 login: the phone page says logged in');
my $answer = poll_m1($q);
is($answer->{status}, 'confirmed', 'the PC\'s poll: confirmed');
ok($answer->{code}, 'with the login code to redeem');

$q = issue_m1('/m1/login');
open_m1($q, 'oStranger');
is(poll_m1($q)->{status}, 'unbound', 'method 1 login by an unbound openid');
unionid_kept($redis, $ng, 'oStranger', undef,
             'method 1 login, unbound: the unionid kept all the same');

$q = issue_m1('/m1/code');
$res = open_m1($q, 'oKate');
my ($vcode) = Encode::decode_utf8($res->{content}) =~ /验证码 (\d{6})/;
ok($vcode, 'method 1 code: the phone page shows the code');
is(poll_m1($q)->{status}, 'code_sent', 'the PC\'s poll: code_sent');

$code_url = authorize_as({ location => "$fake->{url}/connect/oauth2/authorize"
    . "?appid=$appid&redirect_uri=$origin/oauth/callback&response_type=code"
    . "&scope=snsapi_base&state=s" . ('f' x 32) }, 'oKate');
$res = callback($code_url, undef);
like(Encode::decode_utf8($res->{content}), qr/二维码已过期/,
     'a scene never issued: the page says expired');

$res = callback('/oauth/callback?code=abc&state=s' . ('z' x 32), undef);
is($res->{status}, 400, 'a scene state that is no scene of ours: 400');
$ng->check_log('method 1', log => [qr/no state of ours/]);

# --- replays and forgeries -------------------------------------------------------

$res = callback($cb, $a->{browser});
is($res->{status}, 403, 'the same callback again: 403');
like($res->{content}, qr/used or expired/, 'it says the state is used');
$ng->check_log('replayed state', log => [qr/state unknown, used or expired/]);

my $exchanges = $fake->counts->{'/sns/oauth2/access_token'}{calls};
my $b = start_auth('/other', cookies => { wechat_oauth_state => $a->{browser} });
is($b->{browser}, $a->{browser}, 'a second tab keeps the state cookie');
(my $replay = $cb) =~ s/state=\w+/state=$b->{q}{state}/;
$res = callback($replay, $a->{browser});
is($res->{status}, 403, 'a used code with a fresh state: 403');
like($res->{content}, qr/used/, 'it says the authorization is used');
is($fake->counts->{'/sns/oauth2/access_token'}{calls}, $exchanges,
   'the code was not exchanged twice');
$ng->check_log('replayed code', log => [qr/code used before/]);

$res = callback("/oauth/callback?code=abc123&state=" . ('0' x 32),
                $a->{browser});
is($res->{status}, 403, 'a forged state: 403');
$ng->check_log('forged state', log => [qr/state unknown/]);

$res = callback("/oauth/callback?code=abc123&state=nope", $a->{browser});
is($res->{status}, 400, 'a malformed state: 400');
$ng->check_log('malformed state', log => [qr/no state of ours/]);

$res = callback("/protected/callback?code=abc123&state=nope", $a->{browser});
is($res->{status}, 400,
   'a callback under an inherited wechat_oauth answers, never redirects');
$ng->check_log('callback not protected', log => [qr/no state of ours/]);

my $victim = start_auth('/victim');
my $attacker = start_auth('/attacker');
$cb = authorize_as($victim, 'oVictim');
$res = callback($cb, $attacker->{browser});
is($res->{status}, 403, 'a state with another browser\'s cookie: 403');
ok(!cookie_of($res, 'wechat_session'), 'no session for it');
$ng->check_log('foreign state cookie',
               log => [qr/the state belongs to another browser/]);
$res = callback($cb, $victim->{browser});
is($res->{status}, 302, 'the state is left to its own browser, which signs in')
    or diag($res->{content});
$ng->check_log('state left to its browser');

$res = callback($cb, undef);
is($res->{status}, 403, 'no state cookie: 403');
$ng->check_log('no state cookie', log => [qr/no state cookie/]);

# --- the way back: only this site's paths --------------------------------------

$a = start_auth('//evil.example/x');
is(redis_cmd($redis, 'GET', "${P}oauth:$a->{q}{state}"),
   sha256_hex($a->{browser}) . ' base /',
   'a path of another host ("//...") is kept as "/"');
$res = callback(authorize_as($a, 'oBob'), $a->{browser});
is($res->{headers}{location}, "$origin/", 'and the browser goes to "/"');

for my $evil ('//evil.example/x', "/\\evil.example", 'https://evil.example/',
              "/x\r\nSet-Cookie: a=b", '/x y')
{
    my $state = '1' x 31 . int rand 10;
    my $browser = 'b' x 32;
    redis_cmd($redis, 'SET', "${P}oauth:$state",
              sha256_hex($browser) . " base $evil");
    my $code_url = authorize_as({ location => "$fake->{url}/connect/oauth2/"
        . "authorize?appid=$appid&redirect_uri=$origin/oauth/callback"
        . "&response_type=code&scope=snsapi_base&state=$state" }, 'oBob');
    $res = callback($code_url, $browser);
    (my $shown = $evil) =~ s/[\r\n]/?/g;
    is($res->{headers}{location}, "$origin/", "return path \"$shown\": \"/\"");
}
$ng->check_log('return paths');

# --- sessions: tampered, expired, foreign, rotated -------------------------------

my $now = time;
my %sessions = (
    'tampered field' => do {
        (my $t = $session) =~ s/^(v1\.[0-9a-f]{20})([0-9a-f])/$1 . ($2 eq 'a' ? 'b' : 'a')/e;
        $t;
    },
    'tampered MAC' => do {
        (my $t = $session) =~ s/([0-9a-f])$/$1 eq '0' ? '1' : '0'/e;
        $t;
    },
    'unknown key' => seal(openid => 'oMallory', expires => $now + 600,
                          key => 'M' x 40),
    'expired' => seal(openid => 'oAlice', expires => $now - 1),
    'another account' => seal(openid => 'oAlice', expires => $now + 600,
                              appid => 'wxother'),
    'garbage' => 'v1.zz.' . ('0' x 64),
);
for my $name (sort keys %sessions) {
    $res = get($ng->url('/page'), cookies => { wechat_session => $sessions{$name} });
    is($res->{status}, 302, "session $name: 302 to authorize again");
}
$ng->check_log('bad sessions');

$res = get($ng->url('/page'),
           cookies => { wechat_session => seal(openid => 'oCarol',
                                               expires => $now + 600,
                                               key => $old_key) });
is($res->{status}, 200, 'a session under the previous key: through');
is(header_of(last_request(), 'X-Openid'), 'oCarol', 'its openid');

$res = get($ng->url('/page'),
           cookies => { wechat_session => seal(openid => "oEve\x01x",
                                               expires => $now + 600) });
is($res->{status}, 302, 'a session with a control character: refused');
$ng->check_log('rotated keys');

# --- outside WeChat --------------------------------------------------------------

$res = get($ng->url('/page?y=2'), ua => 'Mozilla/5.0 (X11; Linux x86_64)');
is($res->{status}, 403, 'outside WeChat: 403');
like($res->{content}, qr/Open this page in WeChat/, 'a page that says so');
like($res->{content}, qr/<svg/, 'with a QR code');
ok(!cookie_of($res, 'wechat_oauth_state'), 'no state issued');
$res = get($ng->url('/anywhere/p'), ua => 'curl/8');
is($res->{status}, 302, 'wechat_oauth_outside authorize: 302 anyway');
$res = get($ng->url('/open'), ua => 'curl/8');
is($res->{status}, 200, 'an unprotected location: through');
$ng->check_log('outside');

# --- userinfo ----------------------------------------------------------------------

$fake->user(openid => 'oDora', nickname => "Dora\x07<b>",
            headimgurl => 'https://thirdwx.qlogo.cn/mmopen/x/132');
$a = start_auth('/u/profile');
is($a->{q}{scope}, 'snsapi_userinfo', 'userinfo: scope snsapi_userinfo');
(my $consent = $a->{location}) =~ s/#.*//;
$res = $http->get($consent);
is($res->{status}, 200, 'the fake asks the user');
like($res->{content}, qr/nickname/, 'for the nickname and avatar');

$res = callback(authorize_as($a, 'oDora', 'deny'), $a->{browser});
is($res->{status}, 403, 'refused by the user: 403');
like($res->{content}, qr/did not allow/, 'it says so');
$ng->check_log('refused');

$a = start_auth('/u/profile');
$res = callback(authorize_as($a, 'oDora', 'allow'), $a->{browser});
is($res->{status}, 302, 'userinfo callback: 302') or diag($res->{content});
my ($dora) = cookie_of($res, 'wechat_session');
$res = get($ng->url('/u/profile'), cookies => { wechat_session => $dora });
is($res->{status}, 200, 'userinfo session: through');
$req = last_request();
is(header_of($req, 'X-Openid'), 'oDora', 'userinfo: $wechat_openid');
is(Encode::decode_utf8(header_of($req, 'X-Nick')), 'Dora?<b>',
   '$wechat_nickname, its control character replaced');
is(header_of($req, 'X-Avatar'), 'https://thirdwx.qlogo.cn/mmopen/x/132',
   '$wechat_avatar');
is(($fake->counts->{'/sns/userinfo'} // {})->{calls}, 1, 'one sns/userinfo');

$res = get($ng->url('/u/profile'), cookies => { wechat_session => $session });
is($res->{status}, 302, 'a base session at a userinfo location: 302');
is(query_of($res->{headers}{location})->{scope}, 'snsapi_userinfo',
   'for the userinfo scope');
$res = get($ng->url('/page'), cookies => { wechat_session => $dora });
is($res->{status}, 200, 'a userinfo session covers base');
$ng->check_log('userinfo');

# --- WeChat's refusals --------------------------------------------------------------

sub refused_by_wechat {
    my ($name, $setup, $status, $page, %log) = @_;
    my $a = start_auth('/page');
    my $cb = authorize_as($a, 'oFrank');
    $setup->($cb);
    my $res = callback($cb, $a->{browser});
    is($res->{status}, $status, "$name: $status") or diag($res->{content});
    like($res->{content}, $page, "$name: the page says what to do");
    ok(!cookie_of($res, 'wechat_session'), "$name: no session");
    $ng->check_log($name, %log);
}

refused_by_wechat('code used at WeChat (40163)', sub {
    my $q = query_of(shift);
    $fake->api('GET', '/sns/oauth2/access_token',
               query => { appid => $appid, secret => $secret, code => $q->{code},
                          grant_type => 'authorization_code' });
}, 403, qr/used/, log => [qr/errcode 40163/]);

refused_by_wechat('expired code (40029)', sub {
    $fake->control('POST', 'expire-codes');
}, 403, qr/invalid or expired/, log => [qr/errcode 40029/]);

refused_by_wechat('WeChat busy (-1)', sub {
    $fake->fail(endpoint => '/sns/oauth2/access_token', errcode => -1);
}, 503, qr/busy/, log => [qr/errcode -1/]);

refused_by_wechat('invalid credential (40001)', sub {
    $fake->fail(endpoint => '/sns/oauth2/access_token', errcode => 40001);
}, 502, qr/cannot reach WeChat/,
   log => [qr/\[error\].*credentials: check wechat_appid and wechat_secret/],
   errors_ok => 1);

refused_by_wechat('WeChat down (HTTP 500)', sub {
    $fake->fail(endpoint => '/sns/oauth2/access_token', errcode => -1,
                http_status => 500);
}, 502, qr/not usable/, log => [qr/answered HTTP 500/], errors_ok => 1);

# --- the fake's other OAuth calls ------------------------------------------------------

{
    my $a = start_auth('/page');
    my $code = query_of(authorize_as($a, 'oGrace'))->{code};
    my $t = $fake->api('GET', '/sns/oauth2/access_token',
                       query => { appid => $appid, secret => $secret,
                                  code => $code,
                                  grant_type => 'authorization_code' })->{json};
    is($t->{unionid}, unionid_of('oGrace'), 'fake: unionid in the exchange');
    is($fake->api('GET', '/sns/auth', query => {
           access_token => $t->{access_token}, openid => 'oGrace' })->{json}{errcode},
       0, 'fake: sns/auth of a live token');
    is($fake->api('GET', '/sns/auth', query => {
           access_token => $t->{access_token}, openid => 'oOther' })->{json}{errcode},
       40003, 'fake: sns/auth of another openid: 40003');
    is($fake->api('GET', '/sns/userinfo', query => {
           access_token => $t->{access_token}, openid => 'oGrace' })->{json}{errcode},
       48001, 'fake: sns/userinfo with a base token: 48001');
    my $r = $fake->api('GET', '/sns/oauth2/refresh_token', query => {
        appid => $appid, grant_type => 'refresh_token',
        refresh_token => $t->{refresh_token} })->{json};
    ok($r->{access_token} && $r->{access_token} ne $t->{access_token},
       'fake: refresh_token gives a new token');
    is($fake->api('GET', '/sns/oauth2/refresh_token', query => {
           appid => $appid, grant_type => 'refresh_token',
           refresh_token => 'nope' })->{json}{errcode},
       40030, 'fake: an unknown refresh_token: 40030');
    my $res = $http->get("$fake->{url}/connect/oauth2/authorize?appid=wxnobody"
                         . "&redirect_uri=http://x/&response_type=code"
                         . "&scope=snsapi_base&state=s");
    is($res->{status}, 400, 'fake: authorize with an unknown appid: 400');
}

# --- method 1 on a Redis Cluster --------------------------------------------------------

# The resolution and its unionid in one script, sent to the node of the
# account's slot, where the unionids hash lives too.  Last: the helpers
# are pointed at this site.
{
    my @nodes = start_cluster(count => 3);
    my $owner = cluster_owner(cluster_slot($nodes[0], "{$appid}"), @nodes);
    my $cport = free_port();
    my $cng = start_nginx(port => $cport, http => <<"EOF");
    wechat_redis cluster=127.0.0.1:$nodes[0]{port},127.0.0.1:$nodes[1]{port};

    server {
        listen 127.0.0.1:PORT;

@{[ account_conf("http://127.0.0.1:$cport") ]}
        location = /binding {
            wechat_binding;
        }

        location = /m1/bind {
            wechat_qrcode_oauth on;
            wechat_qrcode_confirm off;
            wechat_scene_user \$http_x_site_user;
            wechat_qrcode bind;
        }
    }
EOF
    oauth_site(ng => $cng, appid => $appid, key => $key, app => $app,
               ua => $UA, platform => $platform);
    wait_until('the slot map', sub {
        http_req('GET', $cng->url('/binding?user=nobody'))->{status} == 404 },
        20);

    my $res = http_req('POST', $cng->url('/m1/bind'),
                       headers => { 'X-Site-User' => 'lily' });
    is($res->{status}, 200, 'cluster: a method-1 scene') or diag($res->{content});
    my $cq = eval { $json->decode($res->{content}) } // {};
    $res = callback(authorize_as({ location => $cq->{url} }, 'oLily'), undef);
    like(Encode::decode_utf8($res->{content} // ''), qr/绑定成功/,
         'cluster: the phone opens the link: bound');
    is(redis_cmd($owner, 'HGET', "${P}users", 'lily'), 'oLily',
       'cluster: lily is bound on the slot\'s node');
    unionid_kept($owner, $cng, 'oLily', 'lily', 'cluster');
    $cng->check_log('method 1 on a cluster');
}

done_testing();
