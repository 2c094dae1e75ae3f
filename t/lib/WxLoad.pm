package WxLoad;

# Load for the fault tests: clients that mix bind flows, menu clicks and
# polls against one nginx while a fault runs, and the invariants every phase
# must keep.  Used by t/40-reliability.t and the Redis topology tests.

use strict;
use warnings;

use File::Temp ();
use JSON::PP;
use POSIX ();
use Test::More;
use Time::HiRes qw(time);
use WxTest;

my $json = JSON::PP->new;

# One client: a mix of bind flows, menu clicks and polls, each request
# recorded as "kind status elapsed answer" in $file.
sub client {
    my ($ng, $token, $file, $until, $id) = @_;
    open my $out, '>', $file or die;
    my $n = 0;
    while (time < $until) {
        $n++;
        my $user = "u$id-$n";
        my $q = http_req('POST', $ng->url("/qrcode?user=$user"), timeout => 6);
        my $scene = $q->{status} == 200
                  ? $json->decode($q->{content})->{scene}
                  : 'wxs_' . ('f' x 32);
        my %req = (
            scan => event_xml(from => "o$id-$n", event => 'SCAN',
                              key => $scene),
            click => event_xml(from => "o$id-$n", event => 'CLICK',
                               key => 'MENU'),
        );
        for my $kind (qw(scan click)) {
            my $res = send_push($ng, '/wx', $token, $req{$kind}, timeout => 6);
            my $answer = $res->{content} eq 'app-answer' ? 'passed'
                       : $res->{content} =~ /<MsgType><!\[CDATA\[text\]\]>/
                         ? 'resolved' : 'other';
            printf $out "%s %d %.3f %s\n", $kind, $res->{status},
                   $res->{elapsed}, $answer;
        }
        my $p = http_req('GET', $ng->url('/poll'),
                         query => { scene => $scene, token => 'x' x 32 },
                         timeout => 6);
        printf $out "poll %d %.3f -\n", $p->{status}, $p->{elapsed};
    }
    close $out;
}

# Runs $clients clients (4, 1 under valgrind) for $secs seconds while
# $fault runs; returns the records.
sub under_load {
    my ($ng, $token, $secs, $fault, $clients) = @_;
    $clients //= $WxTest::Nginx::VALGRIND ? 1 : 4;
    my $dir = File::Temp::tempdir(CLEANUP => 1);
    my $until = time + $secs;
    my @pids;
    for my $i (1 .. $clients) {
        my $pid = fork // die;
        if ($pid == 0) {
            client($ng, $token, "$dir/$i", $until, $i);
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    $fault->() if $fault;
    waitpid $_, 0 for @pids;
    my @records;
    for my $i (1 .. $clients) {
        open my $fh, '<', "$dir/$i" or next;
        push @records, map { chomp; [ split / / ] } <$fh>;
    }
    return @records;
}

# The invariants every phase must keep; $app is the business upstream,
# which had $before receipts.
sub check_phase {
    my ($app, $name, $before, @records) = @_;
    my @pushes = grep { $_->[0] ne 'poll' } @records;
    ok(@pushes > 0, "$name: pushes sent (" . scalar(@pushes) . ")");
    my @bad = grep { $_->[1] != 200 } @pushes;
    ok(!@bad, "$name: every push answered 200")
        or diag(join "\n", map { "@$_" } @bad[0 .. ($#bad > 9 ? 9 : $#bad)]);
    my @slow = grep { $_->[2] >= 5 } @pushes;
    ok(!@slow, "$name: every push answered within 5 s");
    my @lost = grep { $_->[3] eq 'other' } @pushes;
    ok(!@lost, "$name: every push resolved or passed");
    my $passed = grep { $_->[3] eq 'passed' } @pushes;
    my $receipts = sub { scalar($app->{requests}->()) - $before };
    wait_until('upstream receipts', sub { $receipts->() >= $passed }, 10);
    is($receipts->(), $passed,
       "$name: the upstream received every passed push ($passed)");
    my @polls = grep { $_->[0] eq 'poll' } @records;
    my ($max) = sort { $b <=> $a } map { $_->[2] } @pushes;
    my $resolved = grep { $_->[3] eq 'resolved' } @pushes;
    my $unavailable = grep { $_->[1] == 503 } @polls;
    diag(sprintf "%-16s pushes %6d  resolved %6d  passed %6d  slowest %.2fs"
                 . "  polls %6d (503: %d)", $name, scalar @pushes, $resolved,
                 $passed, $max // 0, scalar @polls, $unavailable);
    ok(!grep({ $_->[1] != 200 && $_->[1] != 503 } @polls),
       "$name: polls answered 200 or 503");
    ok(!grep({ $_->[2] >= 5 } @polls), "$name: polls answered within 5 s");
}

# The http block the load tests run, after `wechat_redis $redis`: the
# account $appid, pushes passed to the upstream $app with their
# resolution, bind QR codes, polls (/longpoll waits 30 s), bindings, status.
sub http_conf {
    my ($redis, $appid, $token, $app) = @_;
    return <<"EOF";
    wechat_redis $redis;
    wechat_qrcode_confirm off;
    wechat_redis_timeout 500ms;
    wechat_redis_connect_timeout 500ms;

    server {
        listen 127.0.0.1:PORT;
        wechat_appid $appid;
        wechat_callback_token $token;

        location = /wx { wechat_callback; wechat_pass \@app; }
        location = /qrcode {
            wechat_qrcode_rate 10000/s;      # the load, not the limit
            wechat_scene_user \$arg_user;
            wechat_qrcode bind;
        }
        location = /poll { wechat_poll; }
        location = /longpoll { wechat_poll_timeout 30s; wechat_poll; }
        location = /binding { wechat_binding; }
        location = /status { wechat_status; }
        location \@app {
            proxy_pass http://127.0.0.1:$app->{port};
            proxy_set_header X-WeChat-Resolution \$wechat_resolution;
        }
    }
EOF
}

# A QR scene for $user, or undef.
sub qrcode {
    my ($ng, $user) = @_;
    my $res = http_req('POST', $ng->url("/qrcode?user=$user"), timeout => 3);
    return $res->{status} == 200 ? $json->decode($res->{content}) : undef;
}

# A signed scan of $scene by $openid: what nginx answered.
sub scan {
    my ($ng, $token, $scene, $openid) = @_;
    return send_push($ng, '/wx', $token,
                     event_xml(from => $openid, event => 'SCAN',
                               key => $scene), timeout => 6)->{content};
}

# A whole bind flow of $user (openid "o$user"): what the poll answers at
# its end, or what failed.  A scan that went upstream is added to @$passed
# as a record, so that check_phase counts it.
sub bind_flow {
    my ($ng, $token, $user, $passed) = @_;
    my $q = qrcode($ng, $user) or return 'no QR code';
    my $scan = scan($ng, $token, $q->{scene}, "o$user");
    push @$passed, [ 'scan', 200, 0, 'passed' ]
        if $passed && $scan eq 'app-answer';
    return "scan: $scan" unless $scan =~ /<MsgType><!\[CDATA\[text\]\]>/;
    return http_req('GET', $ng->url('/poll'), timeout => 3,
                    query => { scene => $q->{scene}, token => $q->{token} })
        ->{content};
}

sub no_crash {
    my ($ng, $name) = @_;
    unlike($ng->log_text, qr/exited on signal|\[alert\]|\[emerg\]|\[crit\]/,
           "$name: no worker crashed, no alert");
}

# Numbered bind flows a test runs itself (users flow1, flow2, ...): last
# is the latest user, own the records of their scans that went upstream.
package WxLoad::Flows;

sub new {
    my ($class, $ng, $token) = @_;
    return bless { ng => $ng, token => $token, n => 0, own => [] }, $class;
}

sub bind_flow {
    my ($self) = @_;
    $self->{last} = 'flow' . ++$self->{n};
    return WxLoad::bind_flow($self->{ng}, $self->{token}, $self->{last},
                             $self->{own});
}

# The records of the scans since the last call.
sub own {
    my ($self) = @_;
    my @own = @{ $self->{own} };
    @{ $self->{own} } = ();
    return @own;
}

package WxLoad;

1;
