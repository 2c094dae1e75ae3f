# Every file in conf-examples/ passes `nginx -t` with the built module, and
# bad directives are refused at configuration time with a clear message.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);
use Test::More;
use WxTest;

sub nginx_t {
    my ($text) = @_;
    my $dir = tempdir(CLEANUP => 1);
    mkdir "$dir/logs";
    $text =~ s{load_module\s+\S+;}{load_module $MODULE;};
    open my $fh, '>', "$dir/nginx.conf" or die;
    print $fh $text;
    close $fh;
    my $out = `/usr/sbin/nginx -t -p $dir/ -c $dir/nginx.conf -e $dir/logs/error.log 2>&1`;
    return ($? == 0, $out);
}

my @examples = glob("$ROOT/conf-examples/*.conf");
ok(@examples, 'conf-examples/ has configs');

for my $file (@examples) {
    open my $fh, '<', $file or die;
    my $text = do { local $/; <$fh> };
    my ($ok, $out) = nginx_t($text);
    my $name = (split m{/}, $file)[-1];
    ok($ok, "nginx -t accepts $name") or diag($out);

    # a scene may cost a qrcode/create call: each location that issues
    # them limits how fast one client may ask
    my @issuing = $text =~ /location [^{]*\{([^}]*wechat_qrcode (?:bind|login|code);[^}]*)\}/g;
    for my $body (@issuing) {
        like($body, qr/^\s*limit_req zone=\w+/m,
             "$name: a location issuing scenes carries a limit_req");
    }
}

my $head = "load_module x;\nevents {}\nhttp {\n";

my @bad = (
    [ 'callback without token',
      'server { location /w { wechat_callback; } }',
      qr/"wechat_callback" needs "wechat_callback_token"/ ],
    [ 'pass to a non-named location',
      'server { location /w { wechat_callback_token t; wechat_callback; '
      . 'wechat_pass /app; } }',
      qr/"wechat_pass" takes a named location, not "\/app"/ ],
    [ 'short EncodingAESKey',
      'wechat_aes_key abc;',
      qr/invalid EncodingAESKey "abc"/ ],
    [ 'safe mode without a key',
      'server { location /w { wechat_callback_token t; wechat_appid a; '
      . 'wechat_mode safe; wechat_callback; } }',
      qr/need "wechat_aes_key"/ ],
    [ 'unknown mode',
      'wechat_mode secret;',
      qr/invalid value "secret"/ ],
    [ 'qrcode without redis',
      'server { location /q { wechat_scene_user $remote_user; '
      . 'wechat_qrcode bind; } }',
      qr/need "wechat_redis"/ ],
    [ 'qrcode without user',
      'wechat_redis 127.0.0.1:6379; server { location /q { '
      . 'wechat_qrcode bind; } }',
      qr/"wechat_qrcode bind" needs "wechat_scene_user"/ ],
    [ 'unknown qrcode kind',
      'server { location /q { wechat_qrcode signup; } }',
      qr/invalid QR code kind "signup"/ ],
    [ 'short link secret',
      'wechat_link_secret 0123456789abcdef0123456789abcde;',
      qr/"wechat_link_secret" must have at least 32 bytes/ ],
    [ 'link verify without a secret',
      'wechat_redis 127.0.0.1:6379; server { location /l { '
      . 'wechat_link_verify; } }',
      qr/"wechat_link_verify" and "wechat_login_confirm" need "wechat_link_secret", "wechat_appid"/ ],
    [ 'link verify without an account',
      'wechat_redis 127.0.0.1:6379; server { location /l { '
      . 'wechat_link_secret ' . ('s' x 32) . '; wechat_link_verify; } }',
      qr/"wechat_login_confirm" need "wechat_link_secret", "wechat_appid"/ ],
    [ 'a link verify for the confirm page\'s purpose',
      'server { location /l { wechat_link_verify login-confirm; } }',
      qr/the purpose "login-confirm" is the confirm page's/ ],
    [ 'a link purpose that is no word',
      'server { location /l { wechat_link_verify "a b"; } }',
      qr/invalid purpose "a b"/ ],
    [ 'login confirm page without a secret',
      'wechat_redis 127.0.0.1:6379; server { wechat_appid wxa; '
      . 'location /c { wechat_login_confirm; } }',
      qr/need "wechat_link_secret"/ ],
    [ 'a login scene whose callback has no confirm page',
      'wechat_redis 127.0.0.1:6379; server { wechat_appid wxa; '
      . 'location /w { wechat_callback_token t; wechat_callback; } '
      . 'location /q { wechat_qrcode login; } }',
      qr/"wechat_qrcode login" of account "wxa" waits for the scanner's confirm: its callback needs "wechat_login_confirm_url"/ ],
    [ 'a poll without an account',
      'wechat_redis 127.0.0.1:6379; server { location /p { wechat_poll; } }',
      qr/"wechat_redeem" need "wechat_appid": the account/ ],
    [ 'a login scene without an account',
      'wechat_redis 127.0.0.1:6379; server { location /q { '
      . 'wechat_qrcode_confirm off; wechat_qrcode login; } }',
      qr/need "wechat_appid"/ ],
    [ 'a QR image without WeChat\'s API',
      'wechat_redis 127.0.0.1:6379; server { wechat_appid wxa; '
      . 'location /i { wechat_qrcode_image; } }',
      qr/"wechat_qrcode_image" needs "wechat_api_pass"/ ],
    [ 'a {confirm} without wechat_login_confirm_url',
      'server { location /w { wechat_callback_token t; '
      . 'wechat_reply login_confirm "tap {confirm}"; wechat_callback; } }',
      qr/"\{confirm\}" in "wechat_reply" needs "wechat_login_confirm_url"/ ],
    [ 'a {link} without wechat_link_url',
      'server { location /wx { wechat_callback_token t; '
      . 'wechat_reply subscribe "welcome: {link}"; wechat_callback; } }',
      qr/"\{link\}" in "wechat_reply" needs "wechat_link_url"/ ],
    [ 'code length',
      'wechat_code_length 3;',
      qr/must be between 4 and 12/ ],
    [ 'template field',
      'wechat_code_template TPL code;',
      qr/invalid template field "code"/ ],
    [ 'qrcode rate without /s',
      'wechat_qrcode_rate 10;',
      qr/invalid rate "10": it must be N\/s/ ],
    [ 'qrcode rate of 0',
      'wechat_qrcode_rate 0/s;',
      qr/invalid rate "0\/s"/ ],
    [ 'qrcode expire over 30 days',
      'wechat_qrcode_expire 31d;',
      qr/must be between 1s and 30d/ ],
    [ 'unknown reply outcome',
      'wechat_reply done "ok";',
      qr/invalid outcome "done"/ ],
    [ 'redis parameter',
      'wechat_redis 127.0.0.1:6379 timeout=1;',
      qr/invalid parameter "timeout=1"/ ],
    [ 'redis timeout over the push budget',
      'wechat_redis_timeout 5s;',
      qr/"wechat_redis_timeout" must not exceed 4s/ ],
    [ 'one token for two accounts',
      'server { location /a { wechat_callback_token t; wechat_appid wxa; '
      . 'wechat_callback; } location /b { wechat_callback_token t; '
      . 'wechat_appid wxb; wechat_callback; } }',
      qr/the same "wechat_callback_token" for the accounts "wxa" and "wxb"/ ],
    [ 'sentinels without a master name',
      'wechat_redis sentinel=127.0.0.1:26379;',
      qr/"wechat_redis" directive with "sentinel=" needs "master="/ ],
    [ 'a master name without sentinels',
      'wechat_redis 127.0.0.1:6379 master=mymaster;',
      qr/takes "sentinel=", "master=", "sentinel_password=" and "cluster=" in place of an address/ ],
    [ 'a cluster with a database',
      'wechat_redis cluster=127.0.0.1:7000 db=2;',
      qr/a Redis Cluster has database 0 only/ ],
    [ 'a cluster with sentinels',
      'wechat_redis sentinel=127.0.0.1:26379 master=m cluster=127.0.0.1:7000;',
      qr/needs "master=", and no "cluster="/ ],
    [ 'a cluster and an account without an AppID',
      'wechat_redis cluster=127.0.0.1:7000; server { location /w { '
      . 'wechat_callback_token t; wechat_callback; } }',
      qr/a Redis Cluster needs "wechat_appid": it is the hash tag/ ],
    [ 'a cluster and a prefix with a brace',
      'wechat_redis cluster=127.0.0.1:7000; server { wechat_appid wxa; '
      . 'wechat_redis_prefix "a{"; location /q { wechat_scene_user $arg_u; '
      . 'wechat_qrcode bind; } }',
      qr/"wechat_redis_prefix" may have no "\{"/ ],
    [ 'a master name with a space',
      'wechat_redis sentinel=127.0.0.1:26379 "master=my master";',
      qr/invalid master name "my master"/ ],
    [ 'a sentinel that is no address',
      'wechat_redis sentinel=127.0.0.1:26379,:x master=m;',
      qr/in ":x"/ ],
    [ 'a qrcode regex location without a cookie path',
      'wechat_redis 127.0.0.1:6379; server { wechat_appid wxa; '
      . 'location ~ ^/q$ { wechat_qrcode_confirm off; wechat_qrcode login; } }',
      qr/"wechat_qrcode" in a regex or named location needs "wechat_poll_cookie" with "path="/ ],
    [ 'cookie samesite=none without secure',
      'wechat_poll_cookie c samesite=none;',
      qr/with "samesite=none" needs "secure"/ ],
    [ 'an unknown cookie samesite',
      'wechat_poll_cookie c samesite=loose;',
      qr/invalid "samesite=loose"/ ],
    [ 'a cookie path not from the root',
      'wechat_poll_cookie c path=login/;',
      qr/invalid cookie path "login\/"/ ],
    [ 'a cookie path with ";"',
      'wechat_poll_cookie c "path=/a;Domain=evil";',
      qr/invalid cookie path/ ],
    [ 'a cookie name with a separator',
      'wechat_poll_cookie "a=b";',
      qr/invalid cookie name "a=b"/ ],
    [ 'an unknown cookie parameter',
      'wechat_poll_cookie c domain=example.com;',
      qr/invalid parameter "domain=example.com"/ ],
    [ 'duplicate redis',
      'wechat_redis 127.0.0.1:6379; wechat_redis 127.0.0.1:6380;',
      qr/is duplicate/ ],
    [ 'wechat_oauth without its secret',
      'wechat_redis 127.0.0.1:6379; server { wechat_appid a; '
      . 'location /m { wechat_oauth base; } }',
      qr/"wechat_oauth" and "wechat_oauth_callback" need "wechat_oauth_secret"/ ],
    [ 'a short wechat_oauth_secret',
      'wechat_oauth_secret short;',
      qr/"wechat_oauth_secret" needs at least 32 bytes: "short" is too short/ ],
    [ 'wechat_oauth without the redirect_uri',
      'wechat_redis 127.0.0.1:6379; server { wechat_appid a; '
      . 'wechat_oauth_secret ' . ('k' x 32) . '; '
      . 'location /m { wechat_oauth base; } }',
      qr/"wechat_oauth" needs "wechat_oauth_redirect_uri"/ ],
    [ 'a relative wechat_oauth_redirect_uri',
      'wechat_oauth_redirect_uri /oauth/callback;',
      qr/takes an absolute http:\/\/ or https:\/\/ URL with a path, not "\/oauth\/callback"/ ],
    [ 'wechat_oauth_callback without the secret to exchange codes',
      'wechat_redis 127.0.0.1:6379; server { wechat_appid a; '
      . 'wechat_oauth_secret ' . ('k' x 32) . '; '
      . 'location /cb { wechat_oauth_callback; } }',
      qr/"wechat_oauth_callback" needs "wechat_secret" and "wechat_api_pass"/ ],
    [ 'wechat_qrcode_oauth without the redirect_uri',
      'server { location /q { wechat_qrcode_oauth on; } }',
      qr/"wechat_qrcode_oauth" needs "wechat_oauth_redirect_uri"/ ],
    [ 'wechat_oauth login without the Website App',
      'wechat_redis 127.0.0.1:6379; server { wechat_appid a; '
      . 'wechat_oauth_secret ' . ('k' x 32) . '; '
      . 'wechat_oauth_redirect_uri http://a.example.com/cb; '
      . 'location /pc { wechat_oauth login; } }',
      qr/"wechat_oauth login" needs "wechat_oauth_website"/ ],
    [ 'a Website App appid with a space',
      'wechat_oauth_website "wx a" secret;',
      qr/"wechat_oauth_website" takes an appid and a secret of letters/ ],
    [ 'wechat_oauth_website without its secret',
      'wechat_oauth_website wxweb;',
      qr/invalid number of arguments in "wechat_oauth_website"/ ],
    [ 'a cookie name with a semicolon',
      'wechat_oauth_cookie "a;b";',
      qr/"wechat_oauth_cookie" takes a name of letters/ ],
    [ 'wechat_jssdk without its hosts',
      'wechat_redis 127.0.0.1:6379; server { wechat_appid wxa; '
      . 'wechat_secret s; wechat_api_pass /api; '
      . 'location /j { wechat_jssdk; } }',
      qr/"wechat_jssdk" needs "wechat_jssdk_hosts"/ ],
    [ 'wechat_jssdk without the API',
      'wechat_redis 127.0.0.1:6379; server { wechat_appid wxa; '
      . 'location /j { wechat_jssdk_hosts a.example.com; wechat_jssdk; } }',
      qr/WeChat's API needs "wechat_api_pass"/ ],
    [ 'a jssdk host with a scheme',
      'wechat_jssdk_hosts https://a.example.com;',
      qr/invalid host "https:\/\/a.example.com" in "wechat_jssdk_hosts"/ ],
    [ 'a jssdk host with userinfo',
      'wechat_jssdk_hosts a@b.example.com;',
      qr/invalid host "a\@b.example.com"/ ],
);

for my $b (@bad) {
    my ($name, $body, $re) = @$b;
    my ($ok, $out) = nginx_t("$head$body\n}\n");
    ok(!$ok, "refused: $name");
    like($out, $re, "message: $name");
}

my ($ok, $out) = nginx_t($head . 'wechat_aes_key '
    . 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG '
    . 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefg;'
    . "wechat_redis unix:/tmp/r.sock db=2 password=secret;\n}\n");
ok($ok, 'two AES keys, unix socket redis') or diag($out);

($ok, $out) = nginx_t($head . 'wechat_redis sentinel=127.0.0.1:26379,'
    . '127.0.0.2:26379,[::1]:26380 master=mymaster db=1 password=a '
    . "sentinel_password=b;\n}\n");
ok($ok, 'redis through sentinels') or diag($out);

($ok, $out) = nginx_t($head . 'wechat_redis cluster=127.0.0.1:7000,'
    . "127.0.0.1:7001 password=a;\nserver { wechat_appid wxa; "
    . "location /q { wechat_scene_user \$arg_u; wechat_qrcode bind; } }\n}\n");
ok($ok, 'a Redis Cluster') or diag($out);

($ok, $out) = nginx_t($head . "wechat_redis 127.0.0.1:6379;\n"
    . "server { wechat_appid wxa; location /w { wechat_callback_token t; "
    . "wechat_callback; } location /q { wechat_qrcode_confirm off; "
    . "wechat_qrcode login; } }\n}\n");
ok($ok, 'a login scene without confirm needs no confirm page') or diag($out);

# --- wechat_link_verify where a "return" answers first ----------------------

# "return" runs in the rewrite phase, the link's check in the access phase
my $links = "wechat_redis 127.0.0.1:6379;\n"
    . "server { wechat_appid wxa; wechat_link_secret " . ('s' x 32) . ";\n%s }\n}\n";
for my $case (
    [ 'location /r { wechat_link_verify; return 302 /app/register; }',
      'a return beside it' ],
    [ 'location /r { wechat_link_verify; if ($arg_x) { return 403; } '
      . 'proxy_pass http://127.0.0.1:1; }', 'a return inside an if' ],
) {
    my ($body, $what) = @$case;
    ($ok, $out) = nginx_t($head . sprintf($links, $body));
    ok($ok, "wechat_link_verify with $what: accepted") or diag($out);
    like($out, qr/\[warn\] "wechat_link_verify" in location "\/r" is never reached where its "return" answers/,
         "wechat_link_verify with $what: nginx -t warns");
}
($ok, $out) = nginx_t($head . sprintf($links, 'location /r { wechat_link_verify; '
                                      . 'set $x 1; proxy_pass http://127.0.0.1:1; }'));
ok($ok, 'wechat_link_verify with a rewrite-phase "set"') or diag($out);
unlike($out, qr/never reached/, 'no warning without a return');

# --- names: each says what it is; the old ones work one more release -------

my $renamed = "wechat_redis 127.0.0.1:6379;\n"
    . "server { wechat_appid wxa; wechat_secret s; wechat_api_pass /api;\n"
    . "location /w { %s t; wechat_callback; }\n"
    . "location /q { %s \$arg_u; wechat_qrcode bind; }\n"
    . "location /r { %s on; wechat_redeem; }\n"
    . "location /t { %s classic; wechat_api; } } }\n";
my @new = qw(wechat_callback_token wechat_scene_user wechat_redeem_poll_token
             wechat_access_token_api);
my @old = qw(wechat_token wechat_user wechat_redeem_token wechat_token_api);

($ok, $out) = nginx_t($head . sprintf($renamed, @new));
ok($ok, 'the new names') or diag($out);
unlike($out, qr/deprecated/, 'with no warning');

($ok, $out) = nginx_t($head . sprintf($renamed, @old));
ok($ok, 'the old names still set what the new ones do') or diag($out);
for my $i (0 .. $#old) {
    like($out, qr/\[warn\] the "$old[$i]" directive is deprecated, use the "$new[$i]" directive instead/,
         "$old[$i]: nginx -t warns, naming $new[$i]");
}

($ok, $out) = nginx_t($head . "server { location /w { wechat_appid a; "
    . "wechat_token t; wechat_callback_token t; wechat_callback; } }\n}\n");
ok(!$ok, 'an old name and its new one in one place: a duplicate');
like($out, qr/"wechat_callback_token" directive is duplicate/, 'named so');

# The README's server blocks, each in the README's http block (website
# login's and the JS-SDK's locations in the OAuth server they extend):
# what a newcomer copies must load.
{
    open my $fh, '<', "$ROOT/README.md" or die;
    my $readme = do { local $/; <$fh> };
    my @blocks = $readme =~ /^```nginx\n(.*?)^```/msg;
    my ($http) = grep { /^load_module / } @blocks;
    my @servers = grep { /^server \{/ } @blocks;
    my @fragments = grep { !/^load_module / && !/^server \{/ } @blocks;
    ok($http && @servers >= 4, 'the README has an http block and servers');
    for my $server (@servers) {
        my ($name) = $server =~ /location = (\/\w+\/\w+)/;
        $server =~ s/\}\s*\z/join('', @fragments) . "}\n"/e
            if $server =~ /wechat_oauth_redirect_uri/;
        (my $conf = $http) =~ s/^\s*# server \{ \.\.\. \} as below\n/$server/m;
        $conf =~ s/^http \{/events {}\nhttp {/m;
        my ($ok, $out) = nginx_t($conf);
        ok($ok, "nginx -t accepts the README's server of $name") or diag($out);
    }
}

done_testing;
