# ngx_http_eventbridge: build, test, demo.
#
#   make            build the dynamic module, ebd (the dispatcher) and
#                   the unit tests
#   make test       install missing packages, build, run the whole suite
#   make test-asan  the same suite, module built with ASan + UBSan
#   make node-deps  the webhook senders' npm libraries for
#                   t/013-signatures.t and the receiver's for
#                   t/074-ebd-signing.t (t/node; run by test and check)
#   make demo       run nginx + redis + MariaDB + ebd from conf/ on 127.0.0.1
#   make console-screenshots  the console's pages in headless Chromium
#                   (t/046-console-browser.t), saved in docs/console/
#   make bench      wrk benchmark (bench/ingest)
#   make bench-dispatch  ebd's drain rates and CPU per event beside a
#                   Node.js peer's (bench/dispatch-peer, its npm packages
#                   installed by the bench), end-to-end latency
#   make bench-instructions  ebd's instructions per delivery (callgrind)
#   make bench-clients  one HTTP request's CPU in libcurl and in evhttp
#   make bench-cluster  ingest with a 3-primary Redis Cluster vs one node
#   make bench-replay  ebd replay's events/s with 1,000 rules, beside a
#                   plain read of the same window (bench/replay)
#   make test-newest  fetch the nginx source of NGX_NEWEST, build that
#                   nginx and the module as a .so, run the suite against them
#   make test-static  the same tree, nginx built with the module compiled
#                   in, and the suite against it
#   make fuzz       build the libFuzzer harnesses of fuzz/ (clang) and run
#                   each for FUZZ_SECONDS (default 30) from its corpus
#   make fuzz-campaign  FUZZ_RUNS (default 10M) executions of each harness,
#                   a table row each for docs/testing.md
#   make fuzz-coverage  line/function/region coverage of src/core (and of
#                   ebd's --metrics request reader) by the fuzzing
#                   corpora (llvm-cov)
#   make deb        Debian packages (packaging/debian) in build-deb/,
#                   checked by lintian
#   make test-deb   install them here (root), run the seed walkthrough
#                   through them, purge them (t/095-deb-install.t)
#
# NGX_SRC: an nginx tree with `configure`: Debian's nginx-dev headers by
# default, or a full nginx source tree. NGX_STATIC=1 (full tree only)
# builds an nginx binary with the module compiled in instead of a .so.
# NGX_BINARY=1 (full tree only) builds the .so and that tree's nginx, and
# tests run with that nginx instead of the installed one.
# NGX_NEWEST: the Debian release whose nginx test-newest and test-static
# build: Debian's next release (trixie: nginx 1.26; the machine's own,
# Debian 12, has 1.22, which `make test` covers), fetched by
# .ci/nginx-source from the archive apt already uses.

NGX_SRC     ?= /usr/share/nginx/src
NGX_STATIC  ?=
NGX_BINARY  ?=
NGX_NEWEST  ?= trixie
SAN         ?=
BUILD       ?= build$(if $(SAN),-$(SAN))

CC          ?= cc
WARN        := -Wall -Wextra -Werror -Wno-unused-parameter
comma       := ,
SAN_FLAGS   := $(if $(SAN),-fsanitize=address$(comma)undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
OPT         ?= -O2 -g

NGX_DIR     := $(BUILD)/nginx
MODULE_SO   := $(NGX_DIR)/objs/ngx_http_eventbridge_module.so
NGINX_BIN   := $(if $(NGX_STATIC)$(NGX_BINARY),$(NGX_DIR)/objs/nginx,$(shell command -v nginx || echo /usr/sbin/nginx))

CORE_SRCS   := $(wildcard src/core/*.c)
CORE_HDRS   := $(wildcard src/core/*.h)
MOD_SRCS    := ngx_http_eventbridge_module.c $(wildcard src/module/*.c) $(wildcard src/module/*.h)
EBD_SRCS    := $(wildcard src/dispatcher/*.c)
EBD_HDRS    := $(wildcard src/dispatcher/*.h)
EBD_BIN     := $(BUILD)/ebd
EBD_CFLAGS  := -D_GNU_SOURCE -Isrc/core -Isrc/dispatcher -I/usr/include/mariadb \
               -I/usr/include/postgresql
EBD_LIBS    := -levent -levent_pthreads -levent_openssl -lhiredis -lcurl \
               -lnghttp2 -lmariadb -lpq -lyajl -lpcre2-8 -lssl -lcrypto \
               -lpthread -lm
UNIT_SRCS   := $(wildcard t/unit/test_*.c)
UNIT_BINS   := $(patsubst t/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRCS))

export TEST_NGINX_BINARY := $(abspath $(NGINX_BIN))
export TEST_EB_MODULE    := $(if $(NGX_STATIC),,$(abspath $(MODULE_SO)))
export TEST_EB_UNIT_DIR  := $(abspath $(BUILD)/unit)
export TEST_EB_SAN       := $(SAN)
export TEST_EB_EBD       := $(abspath $(EBD_BIN))

.PHONY: all module ebd unit deps node-deps test test-asan test-newest test-static check demo console-screenshots bench bench-dispatch bench-instructions bench-clients bench-cluster bench-match bench-replay fuzz fuzz-campaign fuzz-coverage clean FORCE

all: module ebd unit

deps:
	@bash .ci/deps

# (with NGX_BINARY, nginx's own default target builds the .so too)
module: $(if $(NGX_STATIC)$(NGX_BINARY),$(NGX_DIR)/objs/nginx,$(MODULE_SO))

# Holds the tree and the kind of build NGX_DIR was configured for: it
# changes, so NGX_DIR is configured again, when either does (a BUILD dir
# used for another nginx version would otherwise keep the old one).
NGX_STAMP   := $(BUILD)/nginx-source
$(NGX_STAMP): FORCE
	@mkdir -p $(BUILD)
	@echo "$(abspath $(NGX_SRC)) static=$(NGX_STATIC)" | cmp -s - $@ || \
	    echo "$(abspath $(NGX_SRC)) static=$(NGX_STATIC)" > $@

$(NGX_DIR)/objs/Makefile: config $(NGX_STAMP)
	rm -rf $(NGX_DIR)
	mkdir -p $(BUILD)
	cp -r $(NGX_SRC) $(NGX_DIR)
	cd $(NGX_DIR) && ./configure --with-compat \
	    $(if $(NGX_STATIC)$(NGX_BINARY),--with-http_auth_request_module) \
	    $(if $(NGX_STATIC),--add-module,--add-dynamic-module)=$(CURDIR) \
	    --with-cc-opt="$(SAN_FLAGS)" --with-ld-opt="$(SAN_FLAGS)" \
	    > configure.log 2>&1 || { tail -30 configure.log; exit 1; }

$(MODULE_SO): $(NGX_DIR)/objs/Makefile $(CORE_SRCS) $(CORE_HDRS) $(MOD_SRCS)
	$(MAKE) -C $(NGX_DIR) -f objs/Makefile modules >/dev/null

$(NGX_DIR)/objs/nginx: $(NGX_DIR)/objs/Makefile $(CORE_SRCS) $(CORE_HDRS) $(MOD_SRCS)
	$(MAKE) -C $(NGX_DIR) -f objs/Makefile >/dev/null

ebd: $(EBD_BIN)

# the dispatcher: src/dispatcher + the shared core
$(EBD_BIN): $(EBD_SRCS) $(EBD_HDRS) $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(BUILD)
	@echo "CC $@"
	@$(CC) $(OPT) $(WARN) $(SAN_FLAGS) $(EBD_CFLAGS) -o $@ $(EBD_SRCS) \
	    $(CORE_SRCS) $(EBD_LIBS)

unit: $(UNIT_BINS)

# ebd's parts that need no loop or network are unit-tested with the core
EBD_PURE    := src/dispatcher/ebd_retry.c src/dispatcher/ebd_parse.c \
               src/dispatcher/ebd_sign.c src/dispatcher/ebd_secret.c \
               src/dispatcher/ebd_metrics_request.c

# the core and those parts compiled once per BUILD into an archive the
# unit tests link (each test compiling them all again cost minutes)
UNIT_OBJS   := $(patsubst %.c,$(BUILD)/obj/%.o,$(CORE_SRCS) $(EBD_PURE))
UNIT_LIB    := $(BUILD)/libeb-unit.a

$(BUILD)/obj/%.o: %.c $(CORE_HDRS) $(EBD_HDRS)
	@mkdir -p $(dir $@)
	@echo "CC $@"
	@$(CC) $(OPT) $(WARN) $(SAN_FLAGS) -D_GNU_SOURCE -Isrc/core \
	    -Isrc/dispatcher -c -o $@ $<

$(UNIT_LIB): $(UNIT_OBJS)
	@rm -f $@
	@ar rcs $@ $^

$(BUILD)/unit/%: t/unit/%.c $(wildcard t/unit/*.h) $(UNIT_LIB)
	@mkdir -p $(BUILD)/unit
	@echo "CC $@"
	@$(CC) $(OPT) $(WARN) $(SAN_FLAGS) -D_GNU_SOURCE -Isrc/core -It/unit \
	    -Isrc/dispatcher -o $@ $< $(UNIT_LIB) -lyajl -lpcre2-8 \
	    -lhiredis -lcrypto -lm

# t/013-signatures.t signs its requests with the providers' own libraries,
# t/074-ebd-signing.t checks ebd's with standardwebhooks
# (t/node/package.json, exact versions; no lockfile: t/node/.npmrc)
node-deps:
	@cd t/node && { [ -d node_modules/stripe ] && \
	    [ node_modules/.eb-stamp -nt package.json ] || { \
	    npm install --no-audit --no-fund --no-package-lock --silent && \
	    touch node_modules/.eb-stamp; }; }

# The README's test command: everything, ending with "N passed, N failed".
test: deps
	$(MAKE) all
	$(MAKE) node-deps
	perl t/run.pl

test-asan: deps
	$(MAKE) SAN=asan all
	$(MAKE) SAN=asan check

# T=t/030-redis-faults.t runs only the files named
check: node-deps
	perl t/run.pl $(T)

# test-newest and test-static: the nginx of NGX_NEWEST (`make test` covers
# Debian 12's 1.22). ebd and the unit tests do not depend on nginx: they
# are built once, in build/. Fetching the source may be skipped where no
# archive is reachable, except in CI (CI=true); a build or test failure
# fails.
NEWEST_SKIP  = { echo "$@: could not fetch the nginx source of $(NGX_NEWEST)"; \
                 [ "$$CI" != true ] && echo "$@: skipped"; }
NEWEST_REUSE = TEST_EB_EBD=$(abspath build/ebd) \
               TEST_EB_UNIT_DIR=$(abspath build/unit)
# ...and so these two runs leave out the files that test ebd or the unit
# tests, not the module: they would run the same build/ebd and
# build/unit again. The module paths those files drive events through
# (a source, PutEvents, the fan-out) are the ones the remaining files
# test against this nginx.
EBD_ONLY_TESTS = t/000-unit.t t/065-ebd-console-feed.t $(wildcard t/07*.t) \
                 t/084-ebd-cluster.t t/089-ebd-shared-limits.t \
                 t/091-ebd-ordering.t t/096-ebd-http2.t \
                 t/085-ebd-sentinel.t t/086-ebd-redis-recovery.t
MODULE_TESTS   = $(filter-out $(EBD_ONLY_TESTS),$(sort $(wildcard t/*.t)))
# A static build differs from the .so in the module's place in nginx's
# module list (its phase handlers and filters among the others'), not in
# what its code does: test-static keeps the files of the request path
# (checks, bodies, signatures, dedupe, PutEvents, status, reload, the
# demo) and leaves out the Redis fault and topology files (t/030, t/08x),
# the console's (t/041, t/045-047) and the rules' (t/060), which
# test-newest runs against the same nginx.
STATIC_TESTS   = $(filter-out t/030-redis-faults.t $(wildcard t/08*.t) \
                   t/041-metrics-series.t $(wildcard t/04[5-7]*.t) \
                   t/060-rules.t,$(MODULE_TESTS))

test-newest: deps
	@src=$$(bash .ci/nginx-source $(NGX_NEWEST)) || { $(NEWEST_SKIP); exit; }; \
	$(MAKE) BUILD=build ebd unit && \
	$(MAKE) NGX_SRC=$$src NGX_BINARY=1 BUILD=build-newest module && \
	$(MAKE) NGX_SRC=$$src NGX_BINARY=1 BUILD=build-newest $(NEWEST_REUSE) T="$(MODULE_TESTS)" check

test-static: deps
	@src=$$(bash .ci/nginx-source $(NGX_NEWEST)) || { $(NEWEST_SKIP); exit; }; \
	$(MAKE) BUILD=build ebd unit && \
	$(MAKE) NGX_SRC=$$src NGX_STATIC=1 BUILD=build-static module && \
	$(MAKE) NGX_SRC=$$src NGX_STATIC=1 BUILD=build-static $(NEWEST_REUSE) T="$(STATIC_TESTS)" check

demo: deps
	$(MAKE) module ebd
	bash conf/demo

# docs/console.md's pictures, taken by the browser test
console-screenshots: deps
	$(MAKE) module ebd
	TEST_EB_SCREENSHOTS=docs/console perl t/run.pl t/046-console-browser.t

bench: deps
	$(MAKE) module ebd
	bash bench/ingest

# ebd: backlog drain rates (HTTP sink, MariaDB), ebd beside a Node.js peer
# on the same backlog, end-to-end latency at BENCH_RATE (10,000) events/s
bench-dispatch: deps
	$(MAKE) module ebd
	bash bench/dispatch

# ebd's user-space instructions per delivery (callgrind), and the CPU one
# HTTP/1.1 request costs libcurl and evhttp alone (the drivers' floor)
bench-instructions: deps
	$(MAKE) ebd
	bash bench/ebd-instructions

bench-clients: deps
	bash bench/http-clients

# ingest (wrk) with buses spread over a 3-primary Redis Cluster, against
# a single Redis node, same run
bench-cluster: deps
	$(MAKE) module
	bash bench/cluster

# events/s of the pattern matcher (src/core/eb_pattern*), 10 to 10,000 rules
bench-match:
	bash bench/match

# ebd replay: a window of the seed event through 1,000 rules, against
# ebd archive export of the same window (bench/replay, about 15 s)
bench-replay: deps
	$(MAKE) module ebd
	perl bench/replay

# libFuzzer harnesses: fuzz/fuzz_NAME.c runs from fuzz/corpus/NAME (new
# inputs it finds go to build-fuzz/corpus/NAME, not into the tree); each
# is linked with the core and ebd's pure parts
FUZZ_SRCS    := $(wildcard fuzz/fuzz_*.c)
FUZZ_BINS    := $(patsubst fuzz/%.c,build-fuzz/%,$(FUZZ_SRCS))
FUZZ_SECONDS ?= 30

build-fuzz/fuzz_%: fuzz/fuzz_%.c $(CORE_SRCS) $(CORE_HDRS) $(EBD_PURE) $(EBD_HDRS)
	@mkdir -p build-fuzz
	@echo "CC $@"
	@clang -O1 -g -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -D_GNU_SOURCE -Isrc/core \
	    -Isrc/dispatcher -o $@ $< $(CORE_SRCS) $(EBD_PURE) \
	    -lyajl -lpcre2-8 -lhiredis -lcrypto

fuzz: deps $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do \
	    n=$${f#build-fuzz/fuzz_}; mkdir -p build-fuzz/corpus/$$n; \
	    echo "fuzz: $$n for $(FUZZ_SECONDS) s"; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        build-fuzz/corpus/$$n fuzz/corpus/$$n 2>build-fuzz/$$n.log \
	        || { tail -60 build-fuzz/$$n.log; exit 1; }; \
	    grep -E "stat::number_of_executed_units|cov:" build-fuzz/$$n.log \
	        | tail -2; \
	done

fuzz-campaign: deps $(FUZZ_BINS)
	bash fuzz/campaign

fuzz-coverage: deps
	EBD_PURE="$(EBD_PURE)" bash fuzz/coverage

clean:
	rm -rf build build-asan build-fuzz build-static build-newest build-deb

# Debian packages: libnginx-mod-http-eventbridge (the module, for Debian's
# nginx) and eventbridge-ebd, built from a copy of the tree in
# build-deb/src; the .debs land in build-deb/.
.PHONY: deb test-deb

deb: deps
	bash packaging/build-deb

# Installs the packages just built with apt-get, runs nginx and ebd from
# them, purges them: changes this machine, so only on request.
test-deb: deb
	TEST_EB_PACKAGED=1 perl t/run.pl t/095-deb-install.t
