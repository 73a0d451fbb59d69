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
.PHONY: all asan check unit unit-asan integration demo stop install clean bootstrap lint format-check
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

check: bootstrap
	$(MAKE) unit
	$(MAKE) unit-asan
	$(MAKE) integration

demo: bootstrap all
	@sh scripts/demo.sh

stop:
	@if [ -x $(BUILD)/airlockctl ]; then $(BUILD)/airlockctl dev-db stop; fi

install: all
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 $(addprefix $(BUILD)/,$(PROGRAMS)) $(DESTDIR)$(BINDIR)

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --std=c11 \
	    --suppress=missingIncludeSystem -Iinclude gateway ctl sandbox

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
