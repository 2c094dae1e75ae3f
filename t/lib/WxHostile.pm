package WxHostile;

# A hostile Redis for the transport tests: a protocol peer, not a mock of
# Redis's logic.  It stands between nginx and a real redis-server, passes
# commands and replies through in order, and on cue plays a reply of a
# shape the module must survive: one nobody asked for, a short SUBSCRIBE
# answer, a malformed message, an endless bulk string, replies split at
# every byte, silence.  With master => port it also plays a sentinel that
# names that master.
#
#   my $h = WxHostile->start(upstream => $redis->{port});
#   $h->play('short_subscribe');   # once, at the next SUBSCRIBE answer
#   $h->wait_played;               # until it has been played
#   $h->set('split'); $h->clear;   # the lasting ones

use strict;
use warnings;

use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(sleep time);

use WxTest qw(wait_until free_port);

my @servers;

END {
    my $rc = $?;
    $_->stop for my @running = @servers;
    $? = $rc;
}

# the cues played once, and what is played for each
my %inject = (
    unsolicited   => "+OK\r\n",
    bad_message   => "*3\r\n\$7\r\nmessage\r\n:1\r\n\$1\r\nx\r\n",
    short_message => "*1\r\n\$7\r\nmessage\r\n",
    nil_message   => "*3\r\n\$7\r\nmessage\r\n\$-1\r\n\$1\r\nx\r\n",
    big_message   => "*3\r\n\$7\r\nmessage\r\n\$3\r\nabc\r\n"
                     . "\$2000000000\r\n",
);

sub start {
    my ($class, %opt) = @_;
    my $port = $opt{port} // free_port();
    my $dir = tempdir('wechat-hostile-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $SIG{PIPE} = 'IGNORE';
        serve($port, $dir, %opt);
        exit 0;
    }
    my $self = bless { port => $port, pid => $pid, dir => $dir }, $class;
    push @servers, $self;
    wait_until("hostile redis on $port", sub { WxTest::port_open($port) });
    return $self;
}

sub stop {
    my ($self) = @_;
    kill 'TERM', $self->{pid};
    waitpid $self->{pid}, 0;
    @servers = grep { $_ != $self } @servers;
}

# a cue played once; wait_played waits until it was
sub play {
    my ($self, $cue) = @_;
    unlink "$self->{dir}/played";
    write_file("$self->{dir}/cue.tmp", $cue);
    rename "$self->{dir}/cue.tmp", "$self->{dir}/cue";
}

sub wait_played {
    my ($self) = @_;
    wait_until('the hostile reply', sub { -e "$self->{dir}/played" }, 10);
}

# a mode that lasts: split, silent
sub set {
    my ($self, $mode) = @_;
    write_file("$self->{dir}/mode.tmp", $mode);
    rename "$self->{dir}/mode.tmp", "$self->{dir}/mode";
}

sub clear { unlink "$_[0]->{dir}/mode" }

sub write_file {
    my ($file, $text) = @_;
    open my $fh, '>', $file or die "$file: $!";
    print $fh $text;
    close $fh;
}

sub read_file {
    my ($file) = @_;
    open my $fh, '<', $file or return '';
    local $/;
    return <$fh> // '';
}

# --- the server ---------------------------------------------------------------

# The length of the first whole RESP value in $buf from $at, or undef.
sub resp_len {
    my ($buf, $at) = @_;
    $at //= 0;
    my $nl = index($buf, "\r\n", $at);
    return undef if $nl < 0;
    my ($t, $v) = (substr($buf, $at, 1), substr($buf, $at + 1, $nl - $at - 1));
    my $end = $nl + 2;
    if ($t eq '$') {
        return $end - $at if $v < 0;
        return undef if length($buf) < $end + $v + 2;
        return $end + $v + 2 - $at;
    }
    if ($t eq '*') {
        for (1 .. ($v < 0 ? 0 : $v)) {
            my $n = resp_len($buf, $end);
            return undef unless defined $n;
            $end += $n;
        }
    }
    return $end - $at;
}

# The bulk strings of a RESP array: a command's arguments.
sub resp_args {
    my ($raw) = @_;
    my @args;
    while ($raw =~ /\$(\d+)\r\n/g) {
        push @args, substr($raw, pos($raw), $1);
        pos($raw) += $1 + 2;
    }
    return @args;
}

sub serve {
    my ($port, $dir, %opt) = @_;
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                       LocalPort => $port, Listen => 64,
                                       ReuseAddr => 1, Proto => 'tcp')
        or die "listen: $!";
    my $sel = IO::Select->new($listen);
    my (%peer, @clients);
    my $played = sub { write_file("$dir/played", 1); unlink "$dir/cue" };

    # what a client is sent: byte by byte in split mode, nothing if silent
    my $send = sub {
        my ($cl, $bytes) = @_;

        my $mode = read_file("$dir/mode");
        return if $mode eq 'silent';
        if ($mode eq 'split') {
            for my $b (split //, $bytes) {
                syswrite $cl->{c}, $b;
                sleep 0.0005;
            }
            return;
        }
        syswrite $cl->{c}, $bytes;
    };

    # replies in the order their commands came, whether passed or played
    my $flush = sub {
        my ($cl) = @_;
        while (@{ $cl->{queue} } && defined $cl->{queue}[0]{reply}) {
            my $e = shift @{ $cl->{queue} };
            $send->($cl, $e->{reply});
            if ($e->{name} eq 'HMGET' && read_file("$dir/cue") eq 'extra_after_hmget') {
                $send->($cl, "+OK\r\n");
                $played->();
            }
        }
    };

    while (1) {
        my $cue = read_file("$dir/cue");
        if ($inject{$cue}) {
            my $subscribed = $cue =~ /message/;
            for my $cl (grep { !!$_->{subscribed} == $subscribed } @clients) {
                $send->($cl, $inject{$cue});
                $cl->{stream} = 1 if $cue eq 'big_message';
                $played->();
            }
        }

        # an endless bulk string: as fast as the client takes it
        for my $cl (grep { $_->{stream} } @clients) {
            my $n = syswrite $cl->{c}, 'x' x 65536;
            $cl->{stream} = 0 unless defined $n || $!{EAGAIN};
        }

        for my $s ($sel->can_read(0.01)) {
            if ($s == $listen) {
                my $c = $listen->accept or next;
                $c->blocking(0);
                # each reply leaves at once: a reply nobody asked for is
                # not held back until the next command is on its way
                setsockopt($c, IPPROTO_TCP, TCP_NODELAY, 1);
                my $u = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                              PeerPort => $opt{upstream},
                                              Proto => 'tcp');
                my $cl = { c => $c, u => $u, cin => '', uin => '',
                           queue => [] };
                push @clients, $cl;
                $peer{$c} = $cl;
                $peer{$u} = $cl;
                $sel->add($c, $u);
                next;
            }

            my $cl = $peer{$s};
            my $n = sysread $s, my $buf, 65536;
            if (!$n) {
                next if !defined $n && $!{EAGAIN};
                $sel->remove($cl->{c}, $cl->{u});
                delete @peer{ $cl->{c}, $cl->{u} };
                close $cl->{c};
                close $cl->{u};
                @clients = grep { $_ != $cl } @clients;
                next;
            }

            if ($s == $cl->{c}) {
                $cl->{cin} .= $buf;
                while (defined(my $len = resp_len($cl->{cin}))) {
                    my $raw = substr($cl->{cin}, 0, $len, '');
                    my ($name, @args) = resp_args($raw);
                    $name = uc $name;

                    my $e = { name => $name };
                    my $cue = read_file("$dir/cue");
                    if ($name eq 'SENTINEL' && $opt{master}) {
                        $e->{reply} = "*2\r\n\$9\r\n127.0.0.1\r\n\$"
                            . length($opt{master}) . "\r\n$opt{master}\r\n";
                    } elsif ($name =~ /^EVAL/ && $cue eq 'error_eval') {
                        $e->{reply} = "-ERR hostile\r\n";
                        $played->();
                    } elsif ($name =~ /^EVAL/ && $cue eq 'nil_eval') {
                        $e->{reply} = "\$-1\r\n";
                        $played->();
                    } elsif ($name eq 'HMGET' && $cue eq 'endless_hmget') {
                        $e->{reply} = "*3\r\n\$100000000\r\n";
                        $cl->{stream} = 1;
                        $played->();
                    } else {
                        syswrite $cl->{u}, $raw;
                    }
                    $cl->{subscribed} = 1 if $name eq 'SUBSCRIBE';
                    push @{ $cl->{queue} }, $e unless $cl->{subscribed};
                }
                $flush->($cl);
                next;
            }

            # from Redis: to the oldest command waiting, or as it comes
            $cl->{uin} .= $buf;
            while (defined(my $len = resp_len($cl->{uin}))) {
                my $reply = substr($cl->{uin}, 0, $len, '');
                if ($cl->{subscribed}) {
                    my $cue = read_file("$dir/cue");
                    if ($reply =~ /^\*3\r\n\$9\r\nsubscribe\r\n/
                        && $cue =~ /^(short|error)_subscribe$/)
                    {
                        $reply = $1 eq 'short' ? "*1\r\n\$9\r\nsubscribe\r\n"
                                               : "-ERR hostile\r\n";
                        $played->();
                    }
                    $send->($cl, $reply);
                    next;
                }
                my ($e) = grep { !defined $_->{reply} } @{ $cl->{queue} };
                $e->{reply} = $reply if $e;
            }
            $flush->($cl) unless $cl->{subscribed};
        }
    }
}

1;
