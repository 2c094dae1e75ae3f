# Safe and compatible mode: encrypted pushes verified and decrypted, the
# bind flow on them, encrypted replies (the module's and the upstream's),
# key rotation, and every malformed ciphertext refused.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP;
use Test::More;
use WxCrypt;
use WxTest;

my $token = 'safeToken5';
my $appid = 'wxsafeapp';
my $key = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';
my $old = 'ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut';
my $redis = start_redis();
my $app = start_upstream(reply => '<xml><Content><![CDATA[app says hi]]>'
                                . '</Content></xml>');
my $quiet = start_upstream(reply => 'success');

my $ng = start_nginx(http => <<"EOF");
    wechat_redis 127.0.0.1:$redis->{port};
    wechat_qrcode_confirm off;     # scans resolve at once; t/21 confirms

    server {
        listen 127.0.0.1:PORT;

        wechat_appid $appid;
        wechat_callback_token $token;
        wechat_aes_key $key $old;

        location = /safe {
            wechat_mode safe;
            wechat_callback;
            wechat_pass \@app;
        }

        location = /safe-quiet {
            wechat_mode safe;
            wechat_callback;
            wechat_pass \@quiet;
        }

        location = /compat {
            wechat_mode compatible;
            wechat_callback;
        }

        location = /qrcode {
            wechat_scene_user \$arg_user;
            wechat_qrcode bind;
        }

        location = /poll {
            wechat_poll;
        }

        location \@app {
            proxy_pass http://127.0.0.1:$app->{port};
            proxy_set_header X-WeChat-OpenID \$wechat_openid;
            proxy_set_header X-Body-Length \$content_length;
        }

        location \@quiet {
            proxy_pass http://127.0.0.1:$quiet->{port};
        }

        # WeChat's published decrypt sample, dated 2014
        location = /sample {
            wechat_appid wx2c2769f8efd9abc2;
            wechat_callback_token spamtest;
            wechat_aes_key abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG;
            wechat_mode safe;
            wechat_timestamp_skew 10000d;
            wechat_callback;
            wechat_pass \@app;
        }
    }
EOF

my $json = JSON::PP->new;

sub encrypted_push {
    my ($path, $xml, %opt) = @_;
    my $enc = $opt{encrypt} // wx_encrypt($opt{key} // $key,
                                          $opt{appid} // $appid, $xml);
    my $q = encrypted_push_query($token, $enc);
    $q->{msg_signature} = $opt{msg_signature} if $opt{msg_signature};
    return send_push($ng, $path, $token, encrypted_body($enc), query => $q);
}

# Checks the reply's MsgSignature and decrypts it with the given key.
sub open_reply {
    my ($name, $xml, $with) = @_;
    my ($enc) = $xml =~ /<Encrypt><!\[CDATA\[(.*?)\]\]><\/Encrypt>/;
    my ($sig) = $xml =~ /<MsgSignature><!\[CDATA\[(.*?)\]\]>/;
    my ($ts) = $xml =~ /<TimeStamp>(\d+)<\/TimeStamp>/;
    my ($nonce) = $xml =~ /<Nonce><!\[CDATA\[(.*?)\]\]>/;
    ok(defined $enc && defined $sig && defined $ts && defined $nonce,
       "$name: encrypted reply form") or return '';
    is($sig, msg_signature($token, $ts, $nonce, $enc), "$name: MsgSignature");
    cmp_ok(abs($ts - time), '<', 5, "$name: fresh timestamp");
    my ($msg, $trailer) = wx_decrypt($with // $key, $enc);
    is($trailer, $appid, "$name: AppID trailer");
    return $msg;
}

# --- the bind flow, end to end, encrypted ------------------------------------

my $q = $json->decode(http_req('POST', $ng->url('/qrcode?user=sam'))->{content});
my $res = encrypted_push('/safe', event_xml(from => 'oSam', event => 'subscribe',
                                            key => "qrscene_$q->{scene}"));
is($res->{status}, 200, 'encrypted scan answered');
my $msg = open_reply('bind reply', $res->{content});
like($msg, qr/<Content><!\[CDATA\[绑定成功\]\]><\/Content>/, 'decrypted reply');
like($msg, qr/<ToUserName><!\[CDATA\[oSam\]\]>/, 'reply to the scanner');
is(http_req('GET', $ng->url('/poll'), query => $q)->{content},
   '{"status":"bound","openid":"oSam"}', 'poll sees the encrypted scan');
$ng->check_log('safe bind');

# --- the upstream gets plaintext, WeChat gets its reply encrypted ------------

my $text = text_xml(from => 'oSam', content => 'menu?');
$res = encrypted_push('/safe', $text);
is($res->{status}, 200, 'encrypted message passed');
my @req = $app->{requests}->();
like($req[-1], qr/\r\n\r\n\Q$text\E$/, 'upstream received the decrypted XML');
like($req[-1], qr/^Content-Length: ${\ length $text}\r$/m,
     'with its own Content-Length');
like($req[-1], qr/^X-WeChat-OpenID: oSam\r$/m, 'and the openid header');
like($req[-1], qr/^X-Body-Length: ${\ length $text}\r$/m,
     '$content_length is the decrypted length');
$msg = open_reply('upstream reply', $res->{content});
is($msg, '<xml><Content><![CDATA[app says hi]]></Content></xml>',
   'the upstream reply, encrypted by the module');
is($res->{headers}{'content-length'}, length $res->{content},
   'Content-Length of the encrypted reply');

$res = encrypted_push('/safe-quiet', $text);
is($res->{content}, 'success', '"success" from the upstream stays as it is');
$ng->check_log('safe pass');

# --- key rotation --------------------------------------------------------------

$res = encrypted_push('/safe', $text, key => $old);
is($res->{status}, 200, 'push under the previous key accepted');
$msg = open_reply('previous key', $res->{content}, $old);
like($msg, qr/app says hi/, 'reply encrypted with the key that worked');

# --- refusals ------------------------------------------------------------------

run_case($ng, { name => 'plaintext in safe mode', path => '/safe',
                token => $token, push => {}, body => $text, status => 403,
                log => [qr/plaintext push refused in safe mode/] });

my $enc = wx_encrypt($key, $appid, $text);
run_case($ng, { name => 'bad msg_signature', path => '/safe', token => $token,
                body => encrypted_body($enc),
                push => { query => { %{ encrypted_push_query($token, $enc) },
                                     msg_signature => 'f' x 40 } },
                status => 403, log => [qr/msg_signature mismatch/] });

my $q2 = encrypted_push_query($token, $enc);
delete $q2->{msg_signature};
run_case($ng, { name => 'no msg_signature', path => '/safe', token => $token,
                body => encrypted_body($enc), push => { query => $q2 },
                status => 403, log => [qr/without "msg_signature"/] });

my %bad = (
    'invalid base64' => [ 'not*base64', qr/invalid base64/ ],
    'not a block multiple' => [ 'QUFBQUFBQUFBQUFBQUFB', qr/bad ciphertext/ ],
    'wrong AppID' => [ wx_encrypt($key, 'wxother', $text), qr/AppID mismatch/ ],
    'msg_len beyond the buffer' =>
        [ wx_encrypt($key, $appid, $text, msg_len => 100000),
          qr/bad message length/ ],
    'padding 0' => [ wx_encrypt($key, $appid, $text, pad_value => 0),
                     qr/bad padding|bad message length/ ],
    'unknown key' => [ wx_encrypt('Q' x 43, $appid, $text),
                       qr/bad padding|bad message length|AppID mismatch/ ],
);

for my $name (sort keys %bad) {
    my ($e, $re) = @{ $bad{$name} };
    run_case($ng, { name => $name, path => '/safe', token => $token,
                    body => encrypted_body($e),
                    push => { query => encrypted_push_query($token, $e) },
                    status => 400, log => [qr/encrypted push rejected: .*/, $re] });
}

# --- compatible mode answers in the form it received ---------------------------

my $qc = $json->decode(http_req('POST', $ng->url('/qrcode?user=cat'))->{content});
$res = send_push($ng, '/compat', $token,
                 event_xml(from => 'oCat', event => 'SCAN', key => $qc->{scene}));
like($res->{content}, qr/^<xml><ToUserName><!\[CDATA\[oCat\]\]>.*绑定成功/s,
     'compatible: plaintext push, plaintext reply');

my $qd = $json->decode(http_req('POST', $ng->url('/qrcode?user=dog'))->{content});
$res = encrypted_push('/compat', event_xml(from => 'oDog', event => 'SCAN',
                                           key => $qd->{scene}));
like(open_reply('compatible', $res->{content}), qr/绑定成功/,
     'compatible: encrypted push, encrypted reply');
$ng->check_log('compatible');

# --- WeChat's published sample, verbatim -----------------------------------------

my $sample_body = '<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName><CreateTime>1409735668</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[abcdteT]]></Content><MsgId>6054768590064713728</MsgId><Encrypt><![CDATA[hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=]]></Encrypt></xml>';
$res = http_req('POST', $ng->url('/sample'),
                body => $sample_body,
                query => { timestamp => '1409735669', nonce => '1320562132',
                           encrypt_type => 'aes',
                           signature => sign('spamtest', '1409735669',
                                             '1320562132'),
                           msg_signature =>
                               '5d197aaffba7e9b25a30732f161a50dee96bd5fa' });
is($res->{status}, 200, 'official sample accepted');
@req = $app->{requests}->();
like($req[-1], qr/^X-WeChat-OpenID: oyORnuP8q7ou2gfYjqLzSIWZf0rs\r$/m,
     'official sample: openid');
like($req[-1], qr/<Content><!\[CDATA\[abcdteT\]\]><\/Content>/,
     'official sample: decrypted content upstream');
unlike($req[-1], qr/<Encrypt>/, 'official sample: upstream sees no ciphertext');
$ng->check_log('official sample');

done_testing;
