package WxCrypt;

# WeChat message encryption for the tests, written here from the protocol
# (AES-256-CBC by the openssl command line, PKCS#7 to 32 bytes, base64 by
# MIME::Base64), independent of the module's core.

use strict;
use warnings;

use Digest::SHA qw(sha1_hex);
use File::Temp qw(tempfile);
use MIME::Base64 qw(encode_base64 decode_base64);

use Exporter 'import';
our @EXPORT = qw(aes_key wx_encrypt wx_decrypt encrypted_push_query
                 encrypted_body msg_signature);

sub aes_key {
    my ($encoding_key) = @_;
    return decode_base64($encoding_key . '=');
}

sub openssl_aes {
    my ($mode, $key, $in) = @_;
    my ($fh, $file) = tempfile(UNLINK => 1);
    binmode $fh;
    print $fh $in;
    close $fh;
    my $hex = unpack 'H*', $key;
    my $iv = unpack 'H*', substr($key, 0, 16);
    my $out = `openssl enc $mode -aes-256-cbc -nopad -K $hex -iv $iv -in $file`;
    die "openssl enc failed" if $?;
    return $out;
}

# Returns base64 of AES(random16 || len || msg || appid || pad).
sub wx_encrypt {
    my ($encoding_key, $appid, $msg, %opt) = @_;
    my $random = $opt{random} // join '', map { chr int rand 256 } 1 .. 16;
    my $plain = $random . pack('N', $opt{msg_len} // length $msg) . $msg . $appid;
    my $pad = 32 - length($plain) % 32;
    $plain .= chr($opt{pad_value} // $pad) x $pad;
    return encode_base64(openssl_aes('-e', aes_key($encoding_key), $plain), '');
}

# Returns (msg, appid) or dies.
sub wx_decrypt {
    my ($encoding_key, $b64) = @_;
    my $plain = openssl_aes('-d', aes_key($encoding_key), decode_base64($b64));
    my $pad = ord substr($plain, -1);
    die "bad pad $pad" if $pad < 1 || $pad > 32;
    $plain = substr($plain, 0, length($plain) - $pad);
    my $len = unpack 'N', substr($plain, 16, 4);
    return (substr($plain, 20, $len), substr($plain, 20 + $len));
}

sub msg_signature {
    return sha1_hex(join '', sort @_);
}

sub encrypted_body {
    my ($encrypt, $to) = @_;
    return '<xml><ToUserName><![CDATA[' . ($to // 'gh_account')
         . ']]></ToUserName><Encrypt><![CDATA[' . $encrypt
         . ']]></Encrypt></xml>';
}

# The query WeChat sends with an encrypted push.
sub encrypted_push_query {
    my ($token, $encrypt, %opt) = @_;
    my $ts = $opt{timestamp} // time;
    $ts = int $ts;
    my $nonce = $opt{nonce} // int rand 1e9;
    return { timestamp => $ts, nonce => $nonce, encrypt_type => 'aes',
             signature => sha1_hex(join '', sort $token, $ts, $nonce),
             msg_signature => msg_signature($token, $ts, $nonce, $encrypt) };
}

1;
