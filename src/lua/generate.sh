#!/bin/sh
# Turns the Redis scripts in this directory into C, with their SHA-1s, so
# that a worker sends EVALSHA without hashing anything.  Each NAME.lua
# becomes NGX_HTTP_WECHAT_SCRIPT_NAME; a first line "-- uses: a b" puts
# lib/a.lua and lib/b.lua in front of it.  Full-line comments are left out
# of what Redis gets.
#
#   generate.sh OUTDIR    writes OUTDIR/ngx_http_wechat_scripts.{h,c}

set -eu

src=$(cd "$(dirname "$0")" && pwd)
out=$1
tmp=$out/ngx_http_wechat_scripts.lua.tmp

mkdir -p "$out"

h=$out/ngx_http_wechat_scripts.h.tmp
c=$out/ngx_http_wechat_scripts.c.tmp

cat > "$h" <<END
/* Generated from the scripts in src/lua/ by generate.sh: do not edit. */

#ifndef _NGX_HTTP_WECHAT_SCRIPTS_H_INCLUDED_
#define _NGX_HTTP_WECHAT_SCRIPTS_H_INCLUDED_

END

cat > "$c" <<END
/* Generated from the scripts in src/lua/ by generate.sh: do not edit. */


#include "ngx_http_wechat_store.h"


ngx_http_wechat_script_t  ngx_http_wechat_scripts[] = {
END

n=0

for file in "$src"/*.lua; do
    name=$(basename "$file" .lua)
    uses=$(sed -n '1s/^-- uses: *//p' "$file")

    for lib in $uses; do
        grep -v '^ *--' "$src/lib/$lib.lua"
    done > "$tmp"
    grep -v '^ *--' "$file" >> "$tmp"

    sha=$(sha1sum < "$tmp" | cut -c1-40)
    macro=$(echo "$name" | tr 'a-z' 'A-Z')

    echo "#define NGX_HTTP_WECHAT_SCRIPT_$macro  $n" >> "$h"

    {
        echo ""
        echo "    /* $name.lua */"
        echo "    { ngx_string("
        sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/      "/' -e 's/$/\\n"/' \
            "$tmp"
        echo "      ),"
        echo "      (u_char *) \"$sha\" },"
    } >> "$c"

    n=$((n + 1))
done

cat >> "$h" <<END
#define NGX_HTTP_WECHAT_SCRIPTS  $n

#endif /* _NGX_HTTP_WECHAT_SCRIPTS_H_INCLUDED_ */
END

echo "};" >> "$c"

rm -f "$tmp"

# rewritten only when changed, so that nothing recompiles for nothing
for f in ngx_http_wechat_scripts.h ngx_http_wechat_scripts.c; do
    if cmp -s "$out/$f.tmp" "$out/$f"; then
        rm -f "$out/$f.tmp"
    else
        mv "$out/$f.tmp" "$out/$f"
    fi
done
