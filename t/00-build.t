# The build itself: a second build compiles nothing; the Redis scripts
# generated from src/lua/ carry their true SHA-1s; and the glue's files call
# and include one way only, down the layers the module file lists, with no
# circle.

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

# The table at the top of the module file: a layer per block of lines,
# each with its files and its headers.
my $module = slurp("$ROOT/src/ngx_http_wechat_module.c");
my ($table) = $module =~ /The files form layers.*?\n((?: \*.*\n)+?) \*\s*\n/s;
my (%layer, $rank);
for my $line (split /\n/, $table // '') {
    $rank++ if $line =~ /^ \*   \w/;
    $layer{"ngx_http_wechat$_"} = $rank for $line =~ /(_\w+\.[ch])\b/g;
}
ok($rank && $rank > 5, 'the module file has the table of layers');

ok(!-e "$ROOT/src/ngx_http_wechat_module.h",
   'no module header: each layer has its own');

for my $h (map { m{([^/]+)$} } glob "$ROOT/src/*.h") {
    ok(defined $layer{$h}, "$h is in the table of layers");
}

# What each header declares, and where it is included: a file includes
# headers of its own layer or lower, and only those whose names it uses.
my %declares;
for my $h (map { m{([^/]+)$} } glob "$ROOT/src/*.h") {
    (my $code = slurp("$ROOT/src/$h")) =~ s{/\*.*?\*/}{}gs;
    my @names = ($code =~ /#define\s+(\w+)/g,
                 $code =~ /\b(ngx_http_wechat_\w+_p?t)\b/g,
                 $code =~ /\b(ngx_http_wechat_\w+)\s*[\(\[;]/g);
    $declares{$h} = { map { $_ => 1 } grep { !/_INCLUDED_$/ } @names };
}

my %includes;
for my $f (map { m{([^/]+)$} } glob "$ROOT/src/*.[ch]") {
    (my $code = slurp("$ROOT/src/$f")) =~ s{/\*.*?\*/}{}gs;
    for my $h ($code =~ /^#include\s+"(ngx_http_wechat_\w+\.h)"/mg) {
        $includes{$f}{$h} = 1;
        ok(defined $layer{$h} && defined $layer{$f}
           && $layer{$h} >= $layer{$f},
           "$f includes $h: not upward");
        next if $h eq 'ngx_http_wechat_scripts.h';
        my @used = grep { $declares{$h}{$_} }
                   $code =~ /\b((?:ngx_http_wechat|NGX_HTTP_WECHAT)_\w+)/g;
        ok(@used, "$f uses what $h declares");
    }
}
ok(!grep({ $includes{$_}{'ngx_http_wechat_module.h'} } keys %includes),
   'nothing includes a module header');

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

sub slurp {
    my ($path) = @_;
    open my $in, '<', $path or die "$path: $!";
    local $/;
    return <$in>;
}
