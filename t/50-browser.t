# The demo site in a real browser: the stack of `make run` (tools/demo/
# WxDemo.pm), and headless Chromium (Debian's chromium, driven by
# playwright-core from tools/demo/node_modules) walking the flows with their
# confirm steps (tools/demo/browser-test.js): bind with the code the scan
# sent to the phone (a wrong one first, and too many), login with Confirm
# and with Cancel on the page the scan's link opens, verification codes
# (also of a WeChat user with no account, who is offered to register),
# registration through the signed link (of a follow, of a confirmed login),
# the OAuth pages, website login, the share page's wx.config (signed by
# wechat_jssdk, checked by the fake platform), the metrics page, and safe
# mode switched on the fake platform.  Screenshots go to build/browser/, or
# to WX_SCREENSHOT_DIR (make screenshots: docs/screenshots/); a failed
# check saves one of the page.
#
# Skips only when Chromium cannot start.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../tools/demo";
use JSON::PP;
use Test::More;
use WxTest;
use WxDemo;

binmode Test::More->builder->$_, ':encoding(UTF-8)'
    for qw(output failure_output todo_output);

my $chromium = $ENV{CHROMIUM} // '/usr/bin/chromium';
plan skip_all => "no Chromium at $chromium (make deps installs Debian's chromium)"
    unless -x $chromium;

unless (-d "$ROOT/tools/demo/node_modules/playwright-core") {
    fail('playwright-core is installed in tools/demo/node_modules');
    diag('make demo-deps (part of make test) installs it with npm ci');
    done_testing;
    exit;
}

my $demo = WxDemo::start();
my $out = $ENV{WX_SCREENSHOT_DIR} // "$ROOT/build/browser";
my $features = join ',', grep { $demo->{features}{$_} } sort keys %{ $demo->{features} };

my @results;
my $json = JSON::PP->new->utf8;
open my $run, '-|', $ENV{NODE} // 'node', "$ROOT/tools/demo/browser-test.js",
    '--url', $demo->{url}, '--out', $out, '--features', $features
    or die "node: $!";
while (my $line = <$run>) {
    push @results, eval { $json->decode($line) } // { ok => 0,
        name => 'browser-test.js prints only results', diag => $line };
}
close $run;
my $exit = $? >> 8;

if (my ($down) = grep { $_->{no_browser} } @results) {
    plan skip_all => "Chromium did not start: $down->{no_browser}";
}

for my $r (@results) {
    if ($r->{skip}) {
        SKIP: { skip "$r->{skip}: $r->{reason}", 1 }
        next;
    }
    ok($r->{ok}, $r->{name}) or diag($r->{diag} // '');
}
ok(@results > 1, 'the browser tests ran');

# what the stack said, for a failure seen only in CI's output
if (grep { !$_->{ok} && !$_->{skip} } @results) {
    my $tail = sub {
        my @lines = split /\n/, shift // '';
        splice @lines, 0, @lines - 40 if @lines > 40;
        return join "\n", @lines;
    };
    diag("nginx error log (last lines):\n" . $tail->($demo->{nginx}->log_text));
    diag("fake WeChat log (last lines):\n" . $tail->($demo->{fake}->log_text));
    diag("demo app log (last lines):\n" . $tail->(WxDemo::slurp($demo->{app_log})));
}
is($exit, 0, 'browser-test.js exited 0');
$demo->{nginx}->check_log('the demo', errors_ok => 0);

done_testing;
