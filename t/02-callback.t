# The callback URL: GET verification and signed POST pushes, with no Redis.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use WxTest;

my $token = 'wechatToken123';

my $ng = start_nginx(http => <<"EOF");
    server {
        listen 127.0.0.1:PORT;

        location = /wx {
            wechat_appid wxappid;
            wechat_callback_token $token;
            wechat_callback;
            client_max_body_size 128k;
        }

        location = /small {
            wechat_callback_token $token;
            wechat_callback;
            client_max_body_size 1k;
        }

        location = /strict {
            wechat_callback_token $token;
            wechat_timestamp_skew 10s;
            wechat_callback;
        }

        location = /other {
            wechat_callback_token anotherToken9;
            wechat_callback;
        }
    }
EOF

# --- GET verification ------------------------------------------------------

my $q = signed_query($token);
run_case($ng, { name => 'GET good signature', path => '/wx',
                query => { %$q, echostr => 'hello 123+%' },
                status => 200, body_is => 'hello 123+%' });

run_case($ng, { name => 'GET wrong signature', path => '/wx',
                query => { %$q, signature => sign('wrong', $q->{timestamp},
                                                  $q->{nonce}),
                           echostr => 'x' },
                status => 403, log => [qr/\[warn\].*signature mismatch/] });

for my $missing (qw(signature timestamp nonce)) {
    my %m = (%$q, echostr => 'x');
    delete $m{$missing};
    run_case($ng, { name => "GET without $missing", path => '/wx',
                    query => \%m, status => 403,
                    log => [qr/no "$missing" in the query/] });
}

run_case($ng, { name => 'GET without echostr', path => '/wx', query => $q,
                status => 403, log => [qr/without "echostr"/] });

run_case($ng, { name => 'GET signed for another account', path => '/other',
                query => { %$q, echostr => 'x' }, status => 403,
                log => [qr/signature mismatch/] });

# --- POST pushes -----------------------------------------------------------

# The subscribe sample of ../shared/wechat-protocol.md, verbatim.
my $subscribe = <<'XML';
<xml>
<ToUserName><![CDATA[gh_account]]></ToUserName>
<FromUserName><![CDATA[OPENID]]></FromUserName>
<CreateTime>1700000000</CreateTime>
<MsgType><![CDATA[event]]></MsgType>
<Event><![CDATA[subscribe]]></Event>
<EventKey><![CDATA[qrscene_SCENE]]></EventKey>
<Ticket><![CDATA[TICKET]]></Ticket>
</xml>
XML

my %post = (path => '/wx', token => $token, push => {});

run_case($ng, { %post, name => 'subscribe sample', body => $subscribe,
                status => 200, body_is => 'success' });

run_case($ng, { %post, name => 'SCAN', body => event_xml(event => 'SCAN',
                key => 'promo'), status => 200, body_is => 'success' });

run_case($ng, { %post, name => 'text message', body => text_xml(),
                status => 200, body_is => 'success' });

run_case($ng, { %post, name => 'bad signature', body => $subscribe,
                push => { query => { %{ signed_query('nope') } } },
                status => 403, log => [qr/signature mismatch/] });

run_case($ng, { %post, name => 'stale timestamp', body => $subscribe,
                push => { timestamp => time - 301 }, status => 403,
                log => [qr/stale timestamp/] });

run_case($ng, { %post, name => 'future timestamp', body => $subscribe,
                push => { timestamp => time + 400 }, status => 403,
                log => [qr/stale timestamp/] });

run_case($ng, { %post, path => '/strict', name => 'custom skew',
                body => $subscribe, push => { timestamp => time - 20 },
                status => 403, log => [qr/stale timestamp/] });

run_case($ng, { %post, name => 'timestamp not a number', body => $subscribe,
                push => { query => { timestamp => 'abc', nonce => 'n1',
                                     signature => sign($token, 'abc', 'n1') } },
                status => 403, log => [qr/stale timestamp "abc"/] });

run_case($ng, { %post, path => '/small', name => 'over client_max_body_size',
                body => text_xml(content => 'x' x 2000), status => 413,
                errors_ok => 1,
                log => [qr/client intended to send too large body/] });

run_case($ng, { %post, name => 'over the XML cap', body =>
                text_xml(content => 'x' x 70000), status => 413,
                log => [qr/is over 65536/] });

run_case($ng, { %post, name => 'empty body', body => '', status => 400,
                log => [qr/empty push body/] });

my %hostile = (
    'XXE file' => '<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                  . '<xml><Content>&x;</Content></xml>',
    'XXE http' => '<!DOCTYPE xml [<!ENTITY x SYSTEM "http://127.0.0.1:1/">]>'
                  . '<xml><Content>&x;</Content></xml>',
    'billion laughs' => '<!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b '
                  . '"&a;&a;&a;&a;&a;&a;&a;&a;">]><xml><C>&b;</C></xml>',
    'doctype' => '<!DOCTYPE xml><xml></xml>',
    'deep' => '<xml>' . ('<a>' x 10000) . '</xml>',
    'GBK' => '<?xml version="1.0" encoding="GBK"?><xml></xml>',
    'NUL byte' => "<xml><Content>a\0b</Content></xml>",
);

for my $name (sort keys %hostile) {
    run_case($ng, { %post, name => "hostile: $name", body => $hostile{$name},
                    status => 400,
                    log => [qr/\[warn\].*push rejected: hostile XML/] });
}

run_case($ng, { %post, name => 'malformed', body => '<xml><Event>SCAN',
                status => 400, log => [qr/push rejected: malformed XML/] });

run_case($ng, { %post, name => 'duplicate EventKey',
                body => '<xml><EventKey>a</EventKey><EventKey>b</EventKey></xml>',
                status => 400, log => [qr/duplicate XML field/] });

run_case($ng, { name => 'PUT not allowed', method => 'PUT', path => '/wx',
                body => 'x', status => 405,
                log => [qr/\[info\].*method "PUT" not allowed/] });

# A large but acceptable push goes through the temp file path.
run_case($ng, { %post, name => 'push buffered to a file',
                body => text_xml(content => 'y' x 30000), status => 200,
                body_is => 'success' });

done_testing;
