# The reference tells the truth: every directive and variable the module
# has is documented the nginx way, and the docs name none it does not have.
# The reference is README.md and, where it moved, docs/*.md.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use WxTest;

sub slurp {
    my ($file) = @_;
    open my $fh, '<:encoding(UTF-8)', $file or die "$file: $!";
    local $/;
    return <$fh>;
}

# What the module has: the names of its command and variable tables.
my (%directives, %variables);
for my $file (glob "$ROOT/src/*.c") {
    my $text = slurp($file);
    my $table = $file =~ /_variables\.c$/ ? \%variables : \%directives;
    $table->{$1} = 1 while $text =~ /^\s*\{ ngx_string\("(wechat_\w+)"\),/mg;
}
ok(keys %directives > 20, 'the module has directives');
ok(keys %variables > 5, 'the module has variables');

my $docs = join "\n", map { slurp($_) } "$ROOT/README.md",
                                         glob("$ROOT/docs/*.md");

# Each directive: a heading, then syntax, default and context lines.
my %documented;
my $entry = qr/^### (wechat_\w+)\n\n\*\*syntax:\*\* `([^`]*)`<br>\n(?:`[^`]*`<br>\n)*/m;
my $rest = qr/\*\*default:\*\*[^\n]*(?:\n[^\n*][^\n]*)*<br>\n\*\*context:\*\* [a-z, ]+/;
while ($docs =~ /$entry$rest/g)
{
    my ($name, $syntax) = ($1, $2);
    $documented{$name} = 1;
    like($syntax, qr/^\Q$name\E[ ;]/, "$name: its syntax names it");
}
for my $name (sort keys %directives) {
    ok($documented{$name},
       "directive $name: syntax, default and context are documented");
}
my %headings = map { $_ => 1 } $docs =~ /^### (wechat_\w+)$/mg;
for my $name (sort keys %headings) {
    ok($directives{$name}, "the docs' directive $name exists");
}

# Each variable: a row of the variables table; every $wechat_ the docs
# name, outside an example's own set, exists.
my %rows = map { $_ => 1 } $docs =~ /^\| `\$(wechat_\w+)` \|/mg;
for my $name (sort keys %variables) {
    ok($rows{$name}, "variable \$$name is in the variables table");
}
my %set_by_examples = map { $_ => 1 } $docs =~ /\bset \$(wechat_\w+)/g;
my %named = map { $_ => 1 } $docs =~ /\$(wechat_\w+)/g;
for my $name (sort keys %named) {
    next if $set_by_examples{$name};
    ok($variables{$name}, "the docs' variable \$$name exists");
}

# The poll cookie is called what the module calls it by default.
my ($default) = slurp("$ROOT/src/ngx_http_wechat_module.c")
                =~ /merge_str_value\(conf->poll_cookie,\s*prev->poll_cookie,\s*"(\w+)"/;
ok($default, 'the module has a default poll cookie');
like($docs, qr/`wechat_poll_cookie \Q$default\E;`/,
     "the docs give the cookie's default, $default");
my @others = $docs =~ /(cookie `(?!\Q$default\E`)\w+` set)/g;
is_deeply(\@others, [], 'and call it by no other name');

done_testing;
