# The demo's follower registration (tools/demo/app.js behind demo.conf)
# as an attacker tries it, without a browser: the signed link forged,
# changed or used twice; the registration cookie guessed or missing; a
# cross-site post; names with markup or control characters; a name or a
# WeChat that is bound already; one name from several offers at once; and
# the code page's "unbound" answer for a wrong code, a code redeemed twice
# or from another browser.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../tools/demo";
use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep);
use WxTest;
use WxDemo;

my $json = JSON::PP->new->utf8;
my $demo = WxDemo::start();
my $fake = $demo->{fake};
my $http = HTTP::Tiny->new(timeout => 10, max_redirect => 0);

# A browser: its own cookies; request(method, path, %opt) with json (a
# body: an object, or text as is), type (its Content-Type), form (a form's
# fields), cookie (more, by hand).
sub browser {
    my %jar;
    return sub {
        my ($method, $path, %opt) = @_;
        my %cookies = (%jar, %{ $opt{cookie} // {} });
        my %headers = (Cookie => join '; ', map { "$_=$cookies{$_}" }
                                            sort keys %cookies);
        my $body;
        if (exists $opt{json}) {
            $body = ref $opt{json} ? $json->encode($opt{json}) : $opt{json};
            $headers{'Content-Type'} = $opt{type} // 'application/json';
        } elsif ($opt{form}) {
            $body = $http->www_form_urlencode($opt{form});
            $headers{'Content-Type'} = 'application/x-www-form-urlencoded';
        }
        my $res = $http->request($method, "$demo->{url}$path", {
            headers => \%headers, defined $body ? (content => $body) : () });
        my $set = $res->{headers}{'set-cookie'} // [];
        for (ref $set ? @$set : $set) {
            $jar{$1} = $2 if /^([^=;\s]+)=([^;]*)/;
        }
        $res->{json} = eval { $json->decode($res->{content}) } // {};
        $res->{jar} = \%jar;
        return $res;
    };
}

# The signed link a follow of openid is greeted with, as a path.
sub register_link {
    my ($openid) = @_;
    my $reply = $fake->event(openid => $openid, event => 'subscribe');
    my ($path) = ($reply->{reply}{Content} // '')
                 =~ m{https?://[^/]+(/register\?\S+)};
    return $path;
}

# What POST /app/register answers browser for the name.
sub register_as {
    my ($browser, $name) = @_;
    return $browser->('POST', '/app/register', json => { name => $name })
           ->{status};
}

# --- the signed link ----------------------------------------------------------

my $link = register_link('oFollower1');
like($link // '', qr{^/register\?openid=oFollower1&},
     'a follow is greeted with a link');
$link //= '/register?none';

my $attacker = browser();
is($attacker->('GET', '/register')->{status}, 403, 'no link: refused');
my $forged = $link =~ s/sig=([0-9a-f])/'sig=' . ($1 eq '0' ? '1' : '0')/er;
is($attacker->('GET', $forged)->{status}, 403, 'a changed signature: refused');
(my $other = $link) =~ s/openid=oFollower1/openid=oVictim01/;
is($attacker->('GET', $other)->{status}, 403, 'another openid: refused');
is($attacker->('GET', "$link&openid=oVictim01")->{status}, 403,
   'another openid beside it: refused');
my $header = $http->get("$demo->{url}/register",
                        { headers => { 'X-WeChat-OpenID' => 'oVictim01' } });
is($header->{status}, 403, 'the openid as a header of the client: refused');
ok(!$attacker->('GET', '/app/register')->{jar}{demo_register},
   'and none of them offers a registration');

my $follower = browser();
my $landing = $follower->('GET', $link);
is($landing->{status}, 302, 'the link, once: to the registration page');
is($landing->{headers}{location}, '/register.html', 'on this site');
ok($landing->{jar}{demo_register}, 'the offer named in a cookie');
unlike($landing->{jar}{demo_register} // '', qr/oFollower1/,
       'the cookie names the offer, not the openid');
is(browser()->('GET', $link)->{status}, 403, 'the link used again: refused');
is($follower->('GET', '/app/register')->{json}{openid}, 'oFollower1',
   'the offer is for the link\'s openid');

# --- the registration ---------------------------------------------------------

is(register_as($attacker, 'mallory'), 404, 'no offer: no registration');
is($attacker->('POST', '/app/register', json => { name => 'mallory' },
               cookie => { demo_register => '0' x 32 })->{status},
   404, 'a guessed offer: none');
is($follower->('POST', '/app/register', json => '{"name":"csrf"}',
               type => 'text/plain')->{status},
   415, 'a cross-site form\'s body type: refused');
is($follower->('POST', '/app/register', json => 'name=csrf',
               type => 'application/x-www-form-urlencoded')->{status},
   415, 'a form\'s: refused');
for my $name ('<b>x</b>', "a\nb", "a\r\nSet-Cookie: x=1", "ab\x00", '',
              'x' x 33, [ 'list' ], { name => 'x' }) {
    my $shown = ref $name ? ref $name
                : $name =~ s/([^ -~])/sprintf '\x%02x', ord $1/ger;
    is(register_as($follower, $name), 400, "the name \"$shown\": refused");
}

# a name bound already: Alice's, bound by the bind flow
my $alice = browser();
$alice->('POST', '/app/login', json => { name => 'alice' });
my $scene = $alice->('POST', '/bind/qrcode')->{json};
my ($bind_code) = ($fake->scan(ticket => $scene->{ticket}, openid => 'oAlice01')
                   ->{user_sees} // '') =~ /(\d{6})/;
$alice->('POST', '/bind/poll', form => { scene => $scene->{scene},
          token => $scene->{token}, code => $bind_code // '' });
is($alice->('GET', '/app/me')->{json}{openid}, 'oAlice01', 'alice is bound');
is(register_as($follower, 'alice'), 409, 'a name bound already: refused');
is($alice->('GET', '/app/me')->{json}{openid}, 'oAlice01',
   'alice\'s binding stays');

my $again = browser();
$again->('GET', register_link('oFollower1') // '/register?none');
ok($again->('GET', '/app/register')->{json}{openid},
   'a second offer for the same WeChat');
is(register_as($follower, 'follower1'), 200, 'a free name: registered');
is($follower->('GET', '/app/me')->{json}{openid}, 'oFollower1',
   'bound to the link\'s openid');
is(register_as($follower, 'follower2'), 404, 'the offer is spent');

# the same WeChat's second offer (another follow, before it registered):
# bound already
is(register_as($again, 'follower3'), 409,
   'a WeChat bound already: no second account');

# --- one name, from several offers at once ------------------------------------

# Each racer's offer posts the same name while Redis is stopped, so that
# every look-up waits: the app then answers them all at once.
my @offers = map {
    my $racer = browser();
    $racer->('GET', register_link("oRacer$_") // '/register?none');
    $racer->('GET', '/app/register')->{jar}{demo_register} // '';
} 1 .. 6;
my ($port) = $demo->{url} =~ /:(\d+)$/;
my $body = $json->encode({ name => 'contested' });
kill 'STOP', $demo->{redis}{pid};
my @racing = map {
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port, Timeout => 5)
        or die "connect: $!";
    print $sock "POST /app/register HTTP/1.0\r\nHost: 127.0.0.1\r\n"
        . "Cookie: demo_register=$_\r\nContent-Type: application/json\r\n"
        . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
    $sock;
} @offers;
sleep 0.3;
kill 'CONT', $demo->{redis}{pid};
my @statuses = map { (scalar <$_> // '') =~ m{^HTTP/1\.\d (\d+)} ? $1 : 0 }
               @racing;
is(join(' ', sort @statuses), join(' ', 200, (409) x 5),
   'one name from six offers at once: one registers');
my $binding = "http://127.0.0.1:$port/internal/binding";
like($http->get("$binding?user=contested")->{content}, qr/"oRacer\d"/,
     'the name is bound to a racer');
is(scalar(grep { $http->get("$binding?openid=oRacer$_")->{status} == 404 }
                1 .. 6),
   5, 'and the other racers\' WeChats to nothing');

# --- the code page's "unbound" -----------------------------------------------

my $newcomer = browser();
my $code_scene = $newcomer->('POST', '/code/qrcode')->{json};
my ($code) = ($fake->scan(ticket => $code_scene->{ticket},
                          openid => 'oNewcomer1')->{user_sees} // '')
             =~ /(\d{6})/;
ok($code, 'a code scene scanned: the code in WeChat');
$code //= '000000';
my $wrong = $code =~ s/^(\d)/($1 + 1) % 10/er;
my %redeem = (scene => $code_scene->{scene}, code => $code);
my $guess = $attacker->('POST', '/app/redeem', json => \%redeem);
is($guess->{status}, 404, 'the right code from another browser: refused');
ok(!$guess->{jar}{demo_register}, 'and no offer');
my $miss = $newcomer->('POST', '/app/redeem',
                       json => { %redeem, code => $wrong });
is($miss->{status}, 404, 'a wrong code: refused');
ok(!$miss->{jar}{demo_register}, 'and no offer');
my $redeemed = $newcomer->('POST', '/app/redeem', json => \%redeem);
is($redeemed->{json}{status}, 'unbound', 'the right code: unbound');
ok($redeemed->{jar}{demo_register}, 'an offer');
my $twice = browser()->('POST', '/app/redeem', json => \%redeem,
    cookie => { wechat_poll => $code_scene->{poll_token} });
is($twice->{status}, 404, 'the code again, even with the poll token: spent');
ok(!$twice->{jar}{demo_register}, 'and no offer');
is(register_as($newcomer, 'newcomer'), 200, 'the offer registers');
is($newcomer->('GET', '/app/me')->{json}{openid}, 'oNewcomer1', 'that WeChat');

done_testing;
