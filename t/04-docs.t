# The reference tells the truth: every directive, variable and endpoint the
# module has is documented in docs/, the nginx way for directives, and the
# README and docs name none it does not have.  The README stays a guide
# (short), links every page of docs/, and no link in the README or docs/
# leads nowhere.

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

# What the module has: the names of its command and variable tables, and
# which commands make a location an endpoint (their post is an endpoint,
# or their handler sets the location's content handler).
my (%directives, %variables, %endpoints);
for my $file (glob "$ROOT/src/*.c") {
    my $text = slurp($file);
    if ($file =~ /_variables\.c$/) {
        $variables{$1} = 1 while $text =~ /^\s*\{ ngx_string\("(wechat_\w+)"\),/mg;
        next;
    }
    while ($text =~ /^\s*\{ ngx_string\("(wechat_\w+)"\),\s*\n\s*[^\n]*\n\s*(\w+),(.*?)\}/msg) {
        my ($name, $set, $rest) = ($1, $2, $3);
        $directives{$name} = 1;
        my ($body) = $text =~ /^\Q$set\E\(ngx_conf_t.*?^\}/ms ? ($&) : ('');
        $endpoints{$name} = 1
            if $rest =~ /&ngx_http_wechat_\w+_endpoint\b/
               || $body =~ /clcf->handler = /;
    }
}
ok(keys %directives > 20, 'the module has directives');
ok(keys %variables > 5, 'the module has variables');
ok(keys %endpoints > 5, 'the module has endpoints');
ok($endpoints{wechat_poll} && $endpoints{wechat_oauth_callback}
   && !$endpoints{wechat_appid}, 'and tells endpoints from the rest');

my @docs = sort glob "$ROOT/docs/*.md";
my %text = map { $_ => slurp($_) } "$ROOT/README.md", @docs;
my $reference = join "\n", map { $text{$_} } @docs;
my $all = join "\n", map { $text{$_} } sort keys %text;

# Each directive: a heading in docs/, then syntax, default and context.
my %documented;
my $entry = qr/^### (wechat_\w+)\n\n\*\*syntax:\*\* `([^`]*)`<br>\n(?:`[^`]*`<br>\n)*/m;
my $rest = qr/\*\*default:\*\*[^\n]*(?:\n[^\n*][^\n]*)*<br>\n\*\*context:\*\* [a-z, ]+/;
while ($reference =~ /$entry$rest/g)
{
    my ($name, $syntax) = ($1, $2);
    $documented{$name} = 1;
    like($syntax, qr/^\Q$name\E[ ;]/, "$name: its syntax names it");
}
for my $name (sort keys %directives) {
    ok($documented{$name},
       "directive $name: syntax, default and context are documented in docs/");
}
my %headings = map { $_ => 1 } $all =~ /^### (wechat_\w+)$/mg;
for my $name (sort keys %headings) {
    ok($directives{$name}, "the docs' directive $name exists");
}

# Each variable: a row of the table in docs/variables.md; every $wechat_
# the README and docs name, outside an example's own set, exists.
my %rows = map { $_ => 1 }
           $text{"$ROOT/docs/variables.md"} =~ /^\| `\$(wechat_\w+)` \|/mg;
for my $name (sort keys %variables) {
    ok($rows{$name}, "variable \$$name is in docs/variables.md");
}
my %set_by_examples = map { $_ => 1 } $all =~ /\bset \$(wechat_\w+)/g;
my %named = map { $_ => 1 } $all =~ /\$(wechat_\w+)/g;
for my $name (sort keys %named) {
    next if $set_by_examples{$name};
    ok($variables{$name}, "the docs' variable \$$name exists");
}

# Each endpoint: a section of its own in docs/endpoints.md.
my %sections = map { $_ => 1 }
               $text{"$ROOT/docs/endpoints.md"} =~ /^## (wechat_\w+)$/mg;
for my $name (sort keys %endpoints) {
    ok($sections{$name}, "endpoint $name has its section in docs/endpoints.md");
}
for my $name (sort keys %sections) {
    ok($endpoints{$name}, "the endpoint $name of docs/endpoints.md exists");
}

# The cookies are called what the module calls them by default.
my ($default) = slurp("$ROOT/src/ngx_http_wechat_module.c")
                =~ /merge_str_value\(conf->poll_cookie,\s*prev->poll_cookie,\s*"(\w+)"/;
ok($default, 'the module has a default poll cookie');
like($all, qr/`wechat_poll_cookie \Q$default\E;`/,
     "the docs give the cookie's default, $default");
my @others = $all =~ /(cookie `(?!\Q$default\E`)\w+` set)/g;
is_deeply(\@others, [], 'and call it by no other name');

my $oauth = slurp("$ROOT/src/ngx_http_wechat_oauth.c");
my ($session) = $oauth =~ /merge_str_value\(conf->cookie,\s*prev->cookie,\s*"(\w+)"/;
my ($state) = $oauth =~ /oauth_state_cookie =\s*ngx_string\("(\w+)"\)/;
ok($session && $state, "the OAuth module's cookies: $session, $state");

# Every `wechat_…` name in the README and docs is a directive, a variable
# (named without its $ in prose), a metric of wechat_status or a cookie.
my $status = slurp("$ROOT/src/ngx_http_wechat_status.c");
my %metrics = map { $_ => 1 } $status =~ /\b(wechat_[a-z_]+)/g;
my %known = (%directives, %variables, %metrics,
             $default => 1, $session => 1, $state => 1);
my %unknown;
for my $name ($all =~ /`(wechat_\w+)(?!\*)/g) {
    next if $known{$name} || grep { /^\Q$name\E_/ } keys %metrics;
    $unknown{$name} = 1;
}
is_deeply([sort keys %unknown], [],
          'the docs name only directives, variables, metrics and cookies');

# The README is a guide, not the reference.
my $lines = () = $text{"$ROOT/README.md"} =~ /\n/g;
cmp_ok($lines, '<=', 550, "README.md is short ($lines lines)");

# The README leads to every page of docs/.
my %linked = map { $_ => 1 } $text{"$ROOT/README.md"} =~ /\]\((docs\/[\w.-]+\.md)[)#]/g;
for my $file (@docs) {
    (my $short = $file) =~ s{^\Q$ROOT\E/}{};
    ok($linked{$short}, "README.md links $short");
}

# Every relative link of the README and docs/ leads to a file that exists,
# and to a heading of it when it names one (GitHub's anchors).
sub anchors {
    my ($markdown) = @_;
    (my $prose = $markdown) =~ s/^```.*?^```//msg;
    my (%anchors, %seen);
    for my $heading ($prose =~ /^#{1,6} (.+)$/mg) {
        (my $slug = lc $heading) =~ s/[^\w\- ]//g;
        $slug =~ tr/ /-/;
        my $n = $seen{$slug}++;
        $anchors{$n ? "$slug-$n" : $slug} = 1;
    }
    return \%anchors;
}
for my $file (sort keys %text) {
    (my $dir = $file) =~ s{/[^/]+$}{};
    (my $short = $file) =~ s{^\Q$ROOT\E/}{};
    my $anchors = anchors($text{$file});
    for my $link ($text{$file} =~ /\]\(([^)\s]+)\)/g) {
        next if $link =~ /^[a-z]+:/;
        my ($path, $fragment) = split /#/, $link, 2;
        my $target = length $path ? "$dir/$path" : $file;
        ok(-e $target, "$short: the link $link leads to a file");
        next unless defined $fragment && $target =~ /\.md$/ && -f $target;
        my $there = length $path ? anchors(slurp($target)) : $anchors;
        ok($there->{$fragment}, "$short: the link $link leads to a heading");
    }
}

done_testing;
