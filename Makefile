# ngx_http_wechat_module: build, test and run against Debian's nginx.
#
#   make deps     install the Debian packages the project needs
#   make build    build/ngx_http_wechat_module.so for Debian's nginx
#   make install  the module, stripped, into nginx's module directory, and
#                 enabled (DESTDIR honoured); its debug symbols apart
#   make test     deps, build, unit tests (CTest) and integration tests (t/)
#   make test-debian13  the whole of make test inside a Debian 13 root,
#                 its integration suite on Redis 8 and on Valkey 8
#   make test-ci  make test and make test-debian13, as CI runs them
#   make test-compat    the module built with --with-compat from nginx's
#                 own source of Debian 13's nginx, in Debian 13's nginx
#   make deb      the Debian package libnginx-mod-http-wechat for Debian 12
#                 and 13, in build/deb/RELEASE/
#   make test-deb the packages installed in clean roots, nginx -t with the
#                 examples as shipped, and one bind flow
#   make test-install   the same after make install in clean roots
#   make run      the demo site on http://127.0.0.1:$(PORT)/ until Ctrl-C
#                 (HOST=0.0.0.0 for other machines too; its logs stay in
#                 build/run/logs/)
#   make screenshots  the browser tests, saving their screenshots in docs/

SHELL       := /bin/bash
# make run's ports: nginx, the demo app, the fake WeChat, Redis (0: any free)
PORT        ?= 8080
APP_PORT    ?= 8081
FAKE_PORT   ?= 8082
REDIS_PORT  ?= 6380
# where make run's nginx listens besides 127.0.0.1, and the host browsers
# reach it by (tools/demo/run.pl); from make's command line only, as tcsh
# and others export HOST as the machine's name
HOST        := 127.0.0.1
URL_HOST    :=
BUILD       := $(CURDIR)/build
NGINX_SRC   := /usr/share/nginx/src
NGINX_BUILD := $(BUILD)/nginx
MODULE      := $(BUILD)/ngx_http_wechat_module.so
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian's release (12, 13): a few package names carry a version.
DEBIAN_VERSION := $(shell . /etc/os-release 2>/dev/null; echo $$VERSION_ID)

# What building the module needs, what the demo (make run) needs besides
# to run (tools/demo, tools/fake-wechat: node's own modules, and perl's
# that the perl package brings), and what the tests need besides.
BUILD_PACKAGES := nginx nginx-dev make g++ pkg-config binutils \
                  libhiredis-dev libxml2-dev libssl-dev libqrencode-dev \
                  nlohmann-json3-dev libpcre2-dev zlib1g-dev
DEMO_PACKAGES := redis-server nodejs perl
TEST_PACKAGES_12 := libclang-rt-14-dev
TEST_PACKAGES_13 := libclang-rt-19-dev npm
TEST_PACKAGES := $(DEMO_PACKAGES) cmake libcmocka-dev \
                 libdigest-sha-perl openssl clang valgrind \
                 libpng-dev libzbar-dev qrencode zbar-tools \
                 chromium fonts-wqy-microhei \
                 $(TEST_PACKAGES_$(DEBIAN_VERSION))
PACKAGES := $(BUILD_PACKAGES) $(TEST_PACKAGES)

FUZZ_SECONDS ?= 60
FUZZ_TARGETS := event decrypt query redis_reply api import_line

SOURCES := $(wildcard src/*.c src/*.h src/core/*.cpp src/core/*.hpp \
                      src/core/*.h src/lua/*.lua src/lua/lib/*.lua) \
           src/lua/generate.sh

.PHONY: all deps build-deps build install core unit integration test \
        test-before-suite test-static fuzz run test-ci \
        test-debian13-before-suite \
        demo-deps screenshots test-valgrind test-reliability bench \
        bench-longpoll bench-import profile test-debian13 test-compat deb \
        test-deb test-install \
        clean FORCE

all: build

# Installs those of the Debian packages $(1) that are not installed yet;
# apt's output goes to the file $(2) if given, its end shown if apt fails.
define install_missing
	missing=$$(for p in $(1); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	        | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing$(if $(2), (apt's output in $(2))):" $$missing; \
	    $(if $(2),mkdir -p $(dir $(2)) && {) \
	    $(SUDO) apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q \
	        $$missing $(if $(2),; } >$(2) 2>&1 \
	    || { tail -20 $(2); echo "apt failed: its output is in $(2)"; \
	         exit 1; }); \
	fi
endef

deps:
	@$(call install_missing,$(PACKAGES))

build-deps:
	@$(call install_missing,$(BUILD_PACKAGES))

core:
	cmake -S . -B $(BUILD)/core -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD)/core -j2

# The names of the sources, rewritten only when a file comes or goes: config
# lists the files when configure runs, so a new one needs configure again.
$(BUILD)/source-names: FORCE
	@mkdir -p $(BUILD)
	@echo $(SOURCES) | cmp -s - $@ || echo $(SOURCES) > $@

# Debian's configure writes objs/Makefile; nginx's own build compiles the
# core too, with nginx's flags.
$(NGINX_BUILD)/objs/Makefile: config $(BUILD)/source-names
	rm -rf $(NGINX_BUILD) && mkdir -p $(BUILD)
	cp -r $(NGINX_SRC) $(NGINX_BUILD)
	cd $(NGINX_BUILD) && source ./conf_flags && \
	    ./configure "$${NGX_CONF_FLAGS[@]}" \
	        --add-dynamic-module=$(CURDIR) >$(BUILD)/configure.log 2>&1 \
	    || { tail -20 $(BUILD)/configure.log; exit 1; }

$(MODULE): $(NGINX_BUILD)/objs/Makefile $(SOURCES)
	sh src/lua/generate.sh $(NGINX_BUILD)/objs/addon/wechat
	$(MAKE) -C $(NGINX_BUILD) -f objs/Makefile modules
	cp $(NGINX_BUILD)/objs/ngx_http_wechat_module.so $@

build: $(MODULE)

# make install: where nginx loads modules from (its --modules-path), and the
# snippet that loads this one, named as Debian's packages name theirs.
NGINX_MODULES = $(or $(shell nginx -V 2>&1 \
                    | sed -n 's/.*--modules-path=\([^ ]*\).*/\1/p'), \
                    /usr/lib/nginx/modules)
MODULE_SNIPPET := mod-http-wechat.conf
STRIPPED       := $(BUILD)/stripped/ngx_http_wechat_module.so
DEBUG_SYMBOLS  := $(BUILD)/stripped/ngx_http_wechat_module.debug

# The module without its debug symbols, which go to a file of their own
# that gdb finds by the build id.
$(STRIPPED): $(MODULE)
	mkdir -p $(@D)
	objcopy --only-keep-debug $< $(DEBUG_SYMBOLS)
	objcopy --strip-unneeded --remove-section=.comment \
	    --add-gnu-debuglink=$(DEBUG_SYMBOLS) $< $@

# Enabled as Debian's postinst enables a module package's: a link in
# /etc/nginx/modules-enabled, which Debian's nginx.conf includes.
install: build-deps
	$(MAKE) $(STRIPPED)
	install -D -m 644 $(STRIPPED) \
	    $(DESTDIR)$(NGINX_MODULES)/ngx_http_wechat_module.so
	id=$$(readelf -n $(STRIPPED) | sed -n 's/.*Build ID: *//p'); \
	install -D -m 644 $(DEBUG_SYMBOLS) \
	    $(DESTDIR)/usr/lib/debug/.build-id/$${id:0:2}/$${id:2}.debug
	mkdir -p $(DESTDIR)/usr/share/nginx/modules-available \
	    $(DESTDIR)/etc/nginx/modules-enabled
	echo "load_module $(NGINX_MODULES)/ngx_http_wechat_module.so;" \
	    > $(DESTDIR)/usr/share/nginx/modules-available/$(MODULE_SNIPPET)
	ln -sf /usr/share/nginx/modules-available/$(MODULE_SNIPPET) \
	    $(DESTDIR)/etc/nginx/modules-enabled/50-$(MODULE_SNIPPET)

unit: core
	cd $(BUILD)/core && ctest --output-on-failure

# playwright-core for the browser tests (t/50-browser.t), from the lock file
DEMO_MODULES := tools/demo/node_modules/.package-lock.json

$(DEMO_MODULES): tools/demo/package.json tools/demo/package-lock.json
	cd tools/demo && npm ci --no-audit --no-fund

demo-deps: $(DEMO_MODULES)

integration: build demo-deps
	prove -r t/

# The reliability suite at full length: the fuzzers a minute each, the
# integration suite under valgrind, and faults under load with 20 s phases
# and 50 reloads, and the Redis topologies' failovers at that length.
test-reliability: deps build
	$(MAKE) fuzz FUZZ_SECONDS=60
	$(MAKE) test-valgrind
	WX_LOAD_SECONDS=20 WX_RELOADS=50 prove -v t/40-reliability.t \
	    t/60-sentinel.t t/61-cluster.t
	prove t/11-redis-faults.t t/30-status.t

# The integration suite with nginx under memcheck, master and every worker
# (t/lib/WxTest.pm); a memcheck error or a definite leak in any of them
# fails the test file.  Too slow for make test (docs/development.md: Tests).
test-valgrind: deps build demo-deps
	WX_VALGRIND=1 prove -r t/

test: test-before-suite
	$(MAKE) integration

# make test up to the integration suite: the build, the unit tests and the
# fuzzers; the demo's modules and the installed module made too, so that
# suites run at once on this tree only read build/.
test-before-suite: deps
	$(MAKE) build
	$(MAKE) unit
	$(MAKE) fuzz FUZZ_SECONDS=10
	$(MAKE) demo-deps $(STRIPPED)

# Debian roots (tools/debian-root) made from the mirror apt uses here, kept
# under build/roots/ (or ROOTS) so a second run only syncs the tree and
# builds.
ROOTS         ?= $(BUILD)/roots
ROOT_PACKAGES := mmdebstrap rsync

# The whole of make test on Debian 13, in a root of its own: the tree is
# copied in (its build/ stays there, so a second run builds incrementally)
# and make test installs what Debian 13 needs.  Built once, the suite runs
# on each of Debian 13's servers, Redis 8 and Valkey 8, both at once: each
# in a network namespace of its own, so their free ports cannot meet.
# Each suite's output is shown whole when it ends.
DEBIAN13_SERVERS := redis-server valkey-server
DEBIAN13_SUITES  := $(DEBIAN13_SERVERS:%=integration-debian13-%)

test-debian13: test-debian13-before-suite
	$(MAKE) -j2 --output-sync=target $(DEBIAN13_SUITES)

test-debian13-before-suite:
	@$(call install_missing,$(ROOT_PACKAGES))
	tools/debian-root create trixie $(ROOTS)/trixie make \
	    $(filter-out redis-server,$(DEBIAN13_SERVERS))
	tools/debian-root sync $(ROOTS)/trixie
	tools/debian-root run $(ROOTS)/trixie make -C /src test-before-suite

# The integration suite on Debian 13 on one server (WX_REDIS_SERVER).
integration-debian13-%:
	@echo "== the suite on Debian 13's $*:" \
	    "$$(tools/debian-root run $(ROOTS)/trixie $* --version)"
	tools/debian-root run --loopback-only $(ROOTS)/trixie env \
	    WX_REDIS_SERVER=$* WX_SCREENSHOT_DIR=/src/build/browser-$* \
	    make -C /src integration

# CI (.ci/run): make test and make test-debian13, in the order that takes
# least time on two cores: the builds, unit tests and fuzzers one after
# the other (each uses both cores), then the three integration suites at
# once (they mostly wait on timers and on one another's processes).
test-ci: test-before-suite test-debian13-before-suite
	$(MAKE) -j3 --output-sync=target integration $(DEBIAN13_SUITES)

# The recipe for an nginx that is not Debian's (README: Building for another
# nginx), checked against the upstream source of Debian 13's nginx version
# (from trixie's deb-src) and loaded into Debian 13's nginx.
test-compat:
	@$(call install_missing,$(ROOT_PACKAGES))
	tools/debian-root create trixie $(ROOTS)/trixie make dpkg-dev
	tools/debian-root sync $(ROOTS)/trixie
	tools/debian-root run $(ROOTS)/trixie /src/tools/test-compat /src \
	    /compat

# Debian 12 and 13 by their names; a package is built in the release's root
# (tools/debian-package: debian/changelog from the version header, the
# build dependencies from debian/control) and tested in a clean one.
DEB_RELEASES := bookworm trixie
DEB_SRC      := /deb/libnginx-mod-http-wechat

deb: $(DEB_RELEASES:%=deb-%)

deb-%:
	@$(call install_missing,$(ROOT_PACKAGES))
	@mkdir -p $(BUILD)
	tools/debian-root create $* $(ROOTS)/$* dpkg-dev
	tools/debian-root sync $(ROOTS)/$* $(DEB_SRC)
	tools/debian-root run $(ROOTS)/$* $(DEB_SRC)/tools/debian-package \
	    $(DEB_SRC) >$(BUILD)/deb-$*.log 2>&1 \
	    || { tail -30 $(BUILD)/deb-$*.log; exit 1; }
	rm -rf $(BUILD)/deb/$* && mkdir -p $(BUILD)/deb/$*
	cp $(ROOTS)/$*/deb/*.deb $(BUILD)/deb/$*/
	@ls -l $(BUILD)/deb/$*/

test-deb: $(DEB_RELEASES:%=test-deb-%)

test-deb-%: deb-%
	tools/debian-root fresh $* $(ROOTS)/$*-clean
	tools/debian-root sync $(ROOTS)/$*-clean
	cp $(BUILD)/deb/$*/libnginx-mod-http-wechat_*.deb $(ROOTS)/$*-clean/tmp/
	tools/debian-root run $(ROOTS)/$*-clean /bin/sh -c \
	    'apt-get update -q && DEBIAN_FRONTEND=noninteractive \
	     apt-get install -y -q --no-install-recommends \
	         /tmp/libnginx-mod-http-wechat_*.deb redis-server perl binutils' \
	    >$(BUILD)/test-deb-$*.log 2>&1 \
	    || { tail -30 $(BUILD)/test-deb-$*.log; exit 1; }
	tools/debian-root run --loopback-only $(ROOTS)/$*-clean \
	    prove -v /src/t/package/installed.pl

# The README's two commands on a clean root of each release: make install
# (which installs what the build needs first), and nginx runs with the
# module, checked as the package is (t/package/installed.pl).
test-install: $(DEB_RELEASES:%=test-install-%)

test-install-%:
	@$(call install_missing,$(ROOT_PACKAGES))
	@mkdir -p $(BUILD)
	tools/debian-root fresh $* $(ROOTS)/$*-install
	tools/debian-root sync $(ROOTS)/$*-install
	tools/debian-root run $(ROOTS)/$*-install /bin/sh -c \
	    'apt-get update -q && DEBIAN_FRONTEND=noninteractive \
	     apt-get install -y -q make redis-server perl && \
	     make -C /src install' \
	    >$(BUILD)/test-install-$*.log 2>&1 \
	    || { tail -30 $(BUILD)/test-install-$*.log; exit 1; }
	tools/debian-root run --loopback-only $(ROOTS)/$*-install \
	    env WX_INSTALLED_BY=make prove -v /src/t/package/installed.pl

# libFuzzer targets with ASan and UBSan, seeded with real pushes from
# t/fuzz/corpus/ (copied: the run's findings stay in build/fuzz/).
fuzz:
	cmake -S . -B $(BUILD)/fuzz -DCMAKE_C_COMPILER=clang \
	    -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DWX_FUZZ=ON -DWX_BUILD_TESTS=OFF >/dev/null
	cmake --build $(BUILD)/fuzz -j2
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(BUILD)/fuzz/corpus/$$t $(BUILD)/fuzz/findings; \
	    cp -n t/fuzz/corpus/$$t/* $(BUILD)/fuzz/corpus/$$t/; \
	    echo "fuzz_$$t: $(FUZZ_SECONDS)s"; \
	    $(BUILD)/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
	        -artifact_prefix=$(BUILD)/fuzz/findings/$$t- \
	        -print_final_stats=1 $(BUILD)/fuzz/corpus/$$t \
	        >$(BUILD)/fuzz/$$t.log 2>&1 \
	        || { tail -40 $(BUILD)/fuzz/$$t.log; exit 1; }; \
	    grep -E 'stat::number_of_executed_units' $(BUILD)/fuzz/$$t.log; \
	done

# A static build (--add-module) from upstream nginx sources in NGINX_SOURCE,
# and the integration suite against it.
test-static:
	@test -x "$(NGINX_SOURCE)/configure" || \
	    { echo "set NGINX_SOURCE to an upstream nginx source tree"; exit 1; }
	cd $(NGINX_SOURCE) && ./configure --with-compat \
	    --with-http_auth_request_module \
	    --add-module=$(CURDIR) >$(BUILD)/static-configure.log && \
	    $(MAKE) -j2 >$(BUILD)/static-make.log
	NGINX_BINARY=$(NGINX_SOURCE)/objs/nginx WECHAT_MODULE= \
	    prove $(filter-out t/01-config.t,$(wildcard t/*.t))

# The module against nginx's own limit, an app-server peer (node) and an
# edge peer in OpenResty style (Debian's lua module for nginx); writes
# bench/results.md.  BENCH_SECONDS sets the length of each measurement.
BENCH_PACKAGES := wrk libnginx-mod-http-lua lua-nginx-redis \
                  lua-nginx-string lua-cjson

bench: deps build
	@$(call install_missing,$(BENCH_PACKAGES))
	cd bench/peers/node-webot && npm ci --no-audit --no-fund
	perl bench/run.pl
	@{ printf '\n## Long polls: 10,000 waiting on one worker (make bench-longpoll)\n\n```\n'; \
	   perl bench/longpoll.pl; printf '```\n'; } >> bench/results.md
	@{ printf '\n## Bulk import of bindings (make bench-import)\n\n'; \
	   perl bench/import.pl; } >> bench/results.md

# Instruction counts of the callback path under callgrind; writes
# bench/profile.md.
# 10,000 waiting polls on one worker: memory, wake-up latency, commands
bench-longpoll: deps build
	perl bench/longpoll.pl

# wechat_bindings' import against redis-cli --pipe of the same HSETs
bench-import: deps build
	perl bench/import.pl

profile: deps build
	perl bench/profile.pl

# The demo, saying what it does in a few lines: what it installs (the
# build's packages and the demo's only), the build (its output in
# build/run/build.log, shown when it fails), then the site's address.
# The build's make goes through a variable of its own so that make -n
# lists it rather than running it into the log.
RUN_PACKAGES := $(BUILD_PACKAGES) $(DEMO_PACKAGES)
RUN_DIR      := $(patsubst $(CURDIR)/%,%,$(BUILD)/run)
RUN_BUILD     = $(MAKE) --no-print-directory build

run:
	@$(call install_missing,$(RUN_PACKAGES),$(RUN_DIR)/apt.log)
	@echo "building the module (about 2 minutes the first time)..."
	@mkdir -p $(RUN_DIR) && $(RUN_BUILD) >$(RUN_DIR)/build.log 2>&1 \
	    || { tail -30 $(RUN_DIR)/build.log; \
	         echo "the build failed: its output is in $(RUN_DIR)/build.log"; \
	         exit 1; }
	@perl tools/demo/run.pl --host '$(HOST)' \
	    $(if $(URL_HOST),--url-host '$(URL_HOST)') --port $(PORT) \
	    --app-port $(APP_PORT) --fake-port $(FAKE_PORT) \
	    --redis-port $(REDIS_PORT) --logs $(RUN_DIR)/logs

# The README's pictures of the demo pages, as the browser tests see them.
screenshots: deps build demo-deps
	WX_SCREENSHOT_DIR=$(CURDIR)/docs/screenshots prove -v t/50-browser.t

clean:
	rm -rf $(BUILD)
