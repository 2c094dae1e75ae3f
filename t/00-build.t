# The build itself: a second build compiles nothing; the Redis scripts
# generated from src/lua/ carry their true SHA-1s; and the glue's files call
# one way only, down the layers the module header lists, with no circle.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw(sha1_hex);
use Test::More;
use WxTest;

plan skip_all => 'a static build (NGINX_BINARY) has no build/nginx'
    if $ENV{NGINX_BINARY};

# --- nothing to do twice -------------------------------------------------

my $out = `make -C $ROOT build 2>&1`;
is($?, 0, 'make build') or diag($out);
$out = `make -C $ROOT build 2>&1`;
is($?, 0, 'make build again');
unlike($out, qr/^\s*(cc|c\+\+|g\+\+)\s.*-c\b/m, 'a second build compiles nothing')
    or diag($out);
unlike($out, qr/configure/, 'and configures nothing');

# --- scripts ---------------------------------------------------------------

my $scripts = generated_scripts();
my @lua = map { m{/(\w+)\.lua$} } glob "$ROOT/src/lua/*.lua";
ok(@lua, 'src/lua has scripts');
is_deeply([ sort keys %$scripts ], [ sort @lua ],
          'every script in src/lua is generated');
for my $name (sort keys %$scripts) {
    is($scripts->{$name}{sha}, sha1_hex($scripts->{$name}{text}),
       "$name: the SHA-1 the module sends is the script's");
    unlike($scripts->{$name}{text}, qr/^\s*--/m, "$name: no comment lines");
}

# --- layers ----------------------------------------------------------------

# The table at the top of the module header: a layer per block of lines.
open my $fh, '<', "$ROOT/src/ngx_http_wechat_module.h" or die $!;
my $header = do { local $/; <$fh> };
my ($table) = $header =~ /The files form layers.*?\n((?: \*.*\n)+?) \*\s*\n/s;
my (%layer, $rank);
for my $line (split /\n/, $table // '') {
    $rank++ if $line =~ /^ \*   \w/;
    $layer{"ngx_http_wechat$_.c"} = $rank for $line =~ /(_\w+)\.c/g;
}

my @files = map { m{([^/]+)$} } glob "$ROOT/src/*.c";
for my $f (@files) {
    ok(defined $layer{$f}, "$f is in the header's table of layers");
}

# Which file defines each function that other files may call.
my (%defined_in, %text);
for my $f (@files) {
    open my $in, '<', "$ROOT/src/$f" or die $!;
    $text{$f} = do { local $/; <$in> };
    $defined_in{$1} = $f
        while $text{$f} =~ /^(?!static)[a-z][\w \*]*\n(ngx_http_wechat_\w+)\(/mg;
}

my %edges;
for my $f (@files) {
    for my $called ($text{$f} =~ /\b(ngx_http_wechat_\w+)\s*\(/g) {
        my $to = $defined_in{$called};
        next if !$to || $to eq $f;
        $edges{$f}{$to} = $called;
    }
}

for my $from (sort keys %edges) {
    for my $to (sort keys %{ $edges{$from} }) {
        ok($layer{$to} >= $layer{$from},
           "$from calls $edges{$from}{$to} in $to: not upward");
    }
}

# no circle, even within a layer
my %state;
my @cycle;
sub visit {
    my ($f, @path) = @_;
    return if ($state{$f} // 0) == 2;
    if (($state{$f} // 0) == 1) {
        @cycle = (@path, $f) unless @cycle;
        return;
    }
    $state{$f} = 1;
    visit($_, @path, $f) for sort keys %{ $edges{$f} // {} };
    $state{$f} = 2;
}
visit($_) for sort @files;
ok(!@cycle, 'the files call each other with no circle')
    or diag(join ' -> ', @cycle);

done_testing;
