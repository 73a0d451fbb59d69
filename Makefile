# Airlock: plain GNU Makefile.  `make`, `make check`, `make demo`, `make stop`.

PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
DESTDIR   ?=
BUILD     ?= build
ASAN      ?= build/asan
PYTHON    ?= /usr/bin/python3

PKGS      := libbsd-overlay jansson libmicrohttpd libpq libseccomp
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS)) -lmd -lpthread -lm

WARNINGS  := -std=c17 -Wall -Wextra -Wformat=2 -Wshadow -Wpointer-arith -Wcast-qual \
             -Wstrict-prototypes -Wmissing-prototypes -Wold-style-definition -Wundef \
             -Wvla -Wimplicit-fallthrough -Werror
# The user's CFLAGS add to these; they never replace them.
CFLAGS    ?= -O2 -g
REQ_CFLAGS = $(WARNINGS) -D_GNU_SOURCE -Iinclude $(PKG_CFLAGS) -MMD -MP
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

# Every .c under these folders but the programs' main.c is a module of the library
# the three programs share.
LIB_SRCS  := $(filter-out %/main.c,$(wildcard gateway/*.c ctl/*.c sandbox/*.c))
PROGRAMS  := airlockd airlockctl airlock-sandbox
UNIT_SRCS := $(wildcard tests/unit/test_*.c)

lib_objs   = $(patsubst %.c,$(1)/obj/%.o,$(LIB_SRCS))
unit_bins  = $(patsubst tests/unit/%.c,$(1)/tests/%,$(UNIT_SRCS))

.SECONDARY:
.PHONY: all asan check unit unit-asan integration fuzz fuzz-smoke demo stop install clean bootstrap lint
all: $(addprefix $(BUILD)/,$(PROGRAMS)) $(call unit_bins,$(BUILD))

asan:
	$(MAKE) BUILD=$(ASAN) CFLAGS="-O1 -g $(SAN_FLAGS)" LDFLAGS="$(SAN_FLAGS)" all

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(REQ_CFLAGS) $(CFLAGS) -c -o $@ $<

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

bootstrap:
	@sh scripts/bootstrap.sh

# Unit tests print TAP; prove runs them, once as built and once under ASan+UBSan.
unit: all
	prove -f $(call unit_bins,$(BUILD))
unit-asan: asan
	ASAN_OPTIONS=detect_leaks=1 prove -f $(call unit_bins,$(ASAN))

# Integration tests: a throwaway PostgreSQL cluster, real daemons on free ports.
integration: all
	cd tests && $(PYTHON) -m pytest -q -p no:cacheprovider integration sandbox

# libFuzzer targets (clang), one per parser of untrusted input, with seed corpora in the tree.
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude
FUZZ_RPC   := tests/fuzz/fuzz_rpc.c gateway/rpc.c
FUZZ_ARGS  := tests/fuzz/fuzz_args.c gateway/tool.c gateway/token.c gateway/log.c \
              sandbox/gvisor.c sandbox/sandbox.c sandbox/cgroup.c sandbox/proxy.c \
              sandbox/seccomp.c
build/fuzz/fuzz_rpc: $(FUZZ_RPC) include/airlock/rpc.h
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) $(PKG_CFLAGS) -o $@ $(FUZZ_RPC) $(PKG_LIBS)
build/fuzz/fuzz_args: $(FUZZ_ARGS) include/airlock/tool.h include/airlock/token.h
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) $(PKG_CFLAGS) -o $@ $(FUZZ_ARGS) $(PKG_LIBS)
fuzz: build/fuzz/fuzz_rpc build/fuzz/fuzz_args

# A short, fixed run of each target over its corpus (a copy: the tree's corpus stays as is).
FUZZ_RUNS ?= 20000
fuzz-smoke: fuzz
	@for t in rpc args; do d=$$(mktemp -d); \
	    build/fuzz/fuzz_$$t -runs=$(FUZZ_RUNS) -max_len=4096 $$d tests/fuzz/corpus/$$t \
	        >$$d.log 2>&1 || { tail -30 $$d.log; rm -rf $$d $$d.log; exit 1; }; \
	    echo "fuzz_$$t: $$(tail -1 $$d.log)"; rm -rf $$d $$d.log; done

check: bootstrap
	$(MAKE) lint
	$(MAKE) unit
	$(MAKE) unit-asan
	$(MAKE) fuzz-smoke
	$(MAKE) integration

demo: bootstrap all
	@sh scripts/demo.sh

stop:
	@if [ -x $(BUILD)/airlockctl ]; then $(BUILD)/airlockctl dev-db stop; fi

SHAREDIR  ?= $(PREFIX)/share/airlock

# Programs in BINDIR; the migrations and the demo catalog in SHAREDIR (airlockctl migrate
# --dir $(SHAREDIR)/migrations, airlockd --tools a catalog of your own).
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SHAREDIR)/migrations $(DESTDIR)$(SHAREDIR)/tools
	install -m 0755 $(addprefix $(BUILD)/,$(PROGRAMS)) $(DESTDIR)$(BINDIR)
	install -m 0644 migrations/*.sql $(DESTDIR)$(SHAREDIR)/migrations
	install -m 0644 tools/*.json tools/README.md $(DESTDIR)$(SHAREDIR)/tools

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --std=c11 \
	    --inline-suppr --suppress=missingIncludeSystem -Iinclude \
	    --include=/usr/include/bsd/sys/queue.h --include=/usr/include/bsd/sys/tree.h \
	    -D__unused= gateway ctl sandbox

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
