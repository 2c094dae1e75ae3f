package WxOAuth;

# A browser for the OAuth tests (t/70-oauth.t, t/71-website-login.t,
# t/72-oauth-attacks.t): requests with cookies and a user agent, the
# redirect to WeChat, the fake platform's authorize and consent pages
# answered as a user, the callback, and sessions sealed and opened here
# with Digest::SHA, independently of the module's core.
#
# A test calls oauth_site once, after its nginx has started, with what the
# helpers need to know about it; the helpers are then plain functions, as
# the tests' own were.

use strict;
use warnings;

use Digest::SHA qw(hmac_sha256_hex sha1);
use Encode ();
use HTTP::Tiny;
use MIME::Base64 qw(encode_base64url);
use Test::More;

use Exporter 'import';
our @EXPORT = qw(oauth_site get set_cookie cookie_of query_of start_auth
                 authorize_as callback sign_in seal unseal unionid_of
                 last_request header_of);

# The site under test: ng (its WxTest::Nginx), appid and key (the
# account and the wechat_oauth_secret its sessions are sealed for), app
# (the upstream behind it), ua (the browser's default User-Agent),
# platform (the open platform the fake derives unionids from), timeout.
my %site;
my $http;

# Sets up the site; returns the HTTP::Tiny that follows no redirect.
sub oauth_site {
    my (%opt) = @_;
    %site = (timeout => 10, %opt);
    $site{origin} = "http://127.0.0.1:$site{ng}{port}";
    $http = HTTP::Tiny->new(max_redirect => 0, timeout => $site{timeout});
    return $http;
}

# One request, no redirect followed; cookies given as { name => value },
# the User-Agent as ua (the site's by default), other headers as headers.
sub get {
    my ($url, %opt) = @_;
    my %h = (%{ $opt{headers} // {} });
    $h{'User-Agent'} = $opt{ua} // $site{ua};
    $h{Cookie} = join '; ', map { "$_=$opt{cookies}{$_}" }
                            sort keys %{ $opt{cookies} }
        if $opt{cookies};
    return $http->get($url, { headers => \%h });
}

# The whole Set-Cookie line of the cookie name in an answer.
sub set_cookie {
    my ($res, $name) = @_;
    my $h = $res->{headers}{'set-cookie'} // [];
    for (ref $h ? @$h : ($h)) {
        return $_ if /^\Q$name\E=/;
    }
    return undef;
}

# The value of the cookie name an answer sets.
sub cookie_of {
    my ($res, $name) = @_;
    my $line = set_cookie($res, $name) // return undef;
    return $line =~ /^\Q$name\E=([^;]*)/ ? $1 : undef;
}

sub query_of {
    my ($url) = @_;
    my ($q) = ($url // '') =~ /\?([^#]*)/;
    my %q;
    for (split /&/, $q // '') {
        my ($k, $v) = split /=/, $_, 2;
        $v //= '';
        s/%([0-9A-Fa-f]{2})/chr hex $1/ge for $k, $v;
        $q{$k} = $v;
    }
    return \%q;
}

# The protected path asked for without a session: where it sends the
# browser (location, its query q) and the browser's state cookie (the one
# it was given, or the one it sent).
sub start_auth {
    my ($path, %opt) = @_;
    my $res = get($site{ng}->url($path), %opt);
    my $loc = $res->{headers}{location} // '';
    return { res => $res, location => $loc, q => query_of($loc),
             browser => cookie_of($res, 'wechat_oauth_state')
                        // $opt{cookies}{wechat_oauth_state} };
}

# The fake's authorize (or qrconnect) page as the user openid answers it
# on the phone (action: allow by default, or deny): the callback URL.
sub authorize_as {
    my ($start, $openid, $action) = @_;
    (my $url = $start->{location}) =~ s/#.*//;
    $url .= "&openid=$openid&action=" . ($action // 'allow');
    my $res = $http->get($url);
    is($res->{status}, 302, "the fake's page redirects for $openid")
        or diag($res->{content});
    return $res->{headers}{location} // '';
}

# The callback URL (or its path) asked for with the state cookie browser.
sub callback {
    my ($url, $browser) = @_;
    $url =~ s{^\Q$site{origin}\E}{};
    return get($site{ng}->url($url),
               cookies => defined $browser
                          ? { wechat_oauth_state => $browser } : undef);
}

# The whole flow for path and openid: the callback's answer.
sub sign_in {
    my ($path, $openid) = @_;
    my $start = start_auth($path);
    return callback(authorize_as($start, $openid), $start->{browser});
}

# A session as the module seals it: "v1." hex(fields, each "length:") "."
# HMAC-SHA256 hex; the site's appid and key unless given.
sub seal {
    my (%f) = @_;
    my $fields = join '', map { length($_) . ":$_" } map {
        Encode::encode_utf8($_)
    } 'wechat-oauth-session/1', $f{appid} // $site{appid}, $f{openid},
      $f{unionid} // '', $f{scope} // 'base', $f{expires},
      $f{nickname} // '', $f{avatar} // '';
    my $sealed = 'v1.' . unpack('H*', $fields);
    return "$sealed." . hmac_sha256_hex($sealed, $f{key} // $site{key});
}

# A session's fields, by name and in order (fields), with its sealed part
# and MAC; undef unless its form is right and its MAC is the site key's.
sub unseal {
    my ($value) = @_;
    my ($sealed, $mac) = ($value // '') =~ /^(v1\.[0-9a-f]+)\.([0-9a-f]{64})$/
        or return undef;
    return undef unless hmac_sha256_hex($sealed, $site{key}) eq $mac;
    my $bytes = pack 'H*', substr($sealed, 3);
    my @f;
    while (length $bytes) {
        $bytes =~ s/^(\d+)://s or return undef;
        push @f, Encode::decode_utf8(substr($bytes, 0, $1, ''));
    }
    my %s = (mac => $mac, sealed => $sealed, fields => \@f);
    @s{qw(version appid openid unionid scope expires nickname avatar)} = @f;
    return \%s;
}

# The fake's unionid of openid, as its README defines it.
sub unionid_of {
    my ($openid) = @_;
    return 'oU' . substr(encode_base64url(sha1("$site{platform}\n$openid")),
                         0, 26);
}

# The last request the site's upstream saw.
sub last_request {
    my @r = $site{app}{requests}->();
    return $r[-1] // '';
}

sub header_of {
    my ($req, $name) = @_;
    return $req =~ /^\Q$name\E: ([^\r\n]*)/mi ? $1 : undef;
}

1;
