# make install: the module stripped into nginx's module directory under
# DESTDIR, its debug symbols apart where gdb finds them by build id, the
# snippet that loads it enabled as Debian's packages enable theirs; and the
# conf-examples load it from exactly there, so they pass `nginx -t` as
# shipped once it is installed.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);
use Test::More;
use WxTest;

plan skip_all => 'a static build (NGINX_BINARY) installs no module'
    if $ENV{NGINX_BINARY};

my $dest = tempdir(CLEANUP => 1);
my $out = `make -C $ROOT install DESTDIR=$dest 2>&1`;
is($?, 0, 'make install DESTDIR=...') or diag($out);

my ($modules) = `/usr/sbin/nginx -V 2>&1` =~ /--modules-path=(\S+)/;
ok($modules, "nginx's module directory: $modules");
my $so = "$dest$modules/ngx_http_wechat_module.so";
ok(-f $so, 'the module is in it');

my $sections = `readelf -S $so`;
unlike($sections, qr/\.debug_info/, 'stripped of its debug symbols');
cmp_ok(-s $so, '<', (-s $MODULE) / 4, 'a fraction of the build\'s size');

my ($id) = `readelf -n $so` =~ /Build ID: *([0-9a-f]+)/;
ok($id, "a build id ($id)");
my $debug = "$dest/usr/lib/debug/.build-id/" . substr($id, 0, 2) . '/'
            . substr($id, 2) . '.debug';
ok(-f $debug, 'its debug symbols under /usr/lib/debug/.build-id');
like(`readelf -S $debug`, qr/\.debug_info/, 'which hold the debug info');

my $snippet = "$dest/usr/share/nginx/modules-available/mod-http-wechat.conf";
open my $fh, '<', $snippet or die "$snippet: $!";
is(scalar <$fh>, "load_module $modules/ngx_http_wechat_module.so;\n",
   'the snippet loads the installed module');
is(readlink("$dest/etc/nginx/modules-enabled/50-mod-http-wechat.conf"),
   '/usr/share/nginx/modules-available/mod-http-wechat.conf',
   'and is enabled');

# The installed module loads, and each example names where it is.
my $conf = "$dest/nginx.conf";
open my $c, '>', $conf or die;
print $c "load_module $so;\nevents {}\n";
close $c;
my $t = `/usr/sbin/nginx -t -p $dest/ -c $conf -e $dest/error.log 2>&1`;
is($?, 0, 'nginx -t loads the installed module') or diag($t);

for my $file (glob "$ROOT/conf-examples/*.conf") {
    open my $in, '<', $file or die;
    my @load = grep { /^\s*load_module\b/ } <$in>;
    is_deeply(\@load, [ "load_module $modules/ngx_http_wechat_module.so;\n" ],
              (split m{/}, $file)[-1] . ' loads the module from there');
}

done_testing;
