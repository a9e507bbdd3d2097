# wharf — plain Makefile (see docs/architecture.md for the layout).
#   make            release build: build/release/wharf
#   make run        install missing packages, build, serve on 127.0.0.1:5000 with ./data
#   make test       install missing packages, build, run every test suite
#   make analyze    gcc -fanalyzer over src/, findings are errors (CI keeps it at zero)
#   make fuzz       libFuzzer builds of tests/fuzz/fuzz_*.c into build/fuzz (scripts/fuzz.sh runs one)
#   make BUILD=check ...   the same with AddressSanitizer + UBSan into build/check
#   make tsan       the unit tests under ThreadSanitizer (build/tsan)
#   make WERROR=1 ...      warnings are errors (CI)
#   make install    binary, man page, bash completion, systemd unit (PREFIX, DESTDIR)
#   make image      wharf's container image (buildah) into build/wharf-image.tar

BUILD ?= release
B := build/$(BUILD)$(if $(filter 1,$(WERROR)),-werror)
PKGS := libmicrohttpd jansson sqlite3 openssl yaml-0.1 libarchive libargon2 libisal expat libpq
# libcurl's headers only: it is loaded at run time (vulndb.c, fetch/, storage/s3.c);
# expat reads the S3 client's XML answers; libpq is the PostgreSQL driver's (db_pg.c)
HDR_ONLY := libcurl
CC ?= cc
FUZZ_CC ?= clang-14
ANALYZE_CC ?= gcc
DEPS := bash scripts/deps.sh

# pkg-config is asked only when a recipe needs its answer, and then once (the variables
# below replace themselves with the answer on first use). Nothing asks while the Makefile
# is read, so `make run` and `make test` install the packages before anything looks for
# them; a build on a machine without them stops with one message saying what to run.
pkg_config = $(shell pkg-config $(1))$(if $(filter 0,$(.SHELLSTATUS)),,$(error pkg-config \
	$(1) failed: install the packages with `bash scripts/deps.sh run`))
PKG_CFLAGS = $(eval PKG_CFLAGS := $$(call pkg_config,--cflags $(PKGS) $(HDR_ONLY)))$(PKG_CFLAGS)
LIBS = $(eval LIBS := $$(call pkg_config,--libs $(PKGS)) -lpthread -ldl -lm)$(LIBS)

WARN := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wmissing-declarations -Wold-style-definition -Wpointer-arith -Wcast-qual \
	-Wwrite-strings -Wformat=2 -Wundef -Wvla -Wnull-dereference -Wimplicit-fallthrough \
	-Wlogical-op -Wduplicated-cond -Wduplicated-branches -Wredundant-decls \
	-Wdouble-promotion -Werror=implicit-function-declaration \
	-Werror=incompatible-pointer-types -Werror=return-type
ifeq ($(WERROR),1)
WARN += -Werror
endif

# _GNU_SOURCE: sendfile-adjacent Linux calls (pipe2, O_TMPFILE, syncfs) are used on purpose.
# WH_HAVE_PG: the PostgreSQL driver (libpq) is built in (src/db/db_pg.c).
BASE = -std=c17 -D_GNU_SOURCE -DWH_HAVE_PG $(WARN) -Isrc $(PKG_CFLAGS) -MMD -MP
ifeq ($(BUILD),check)
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDOPT := -fsanitize=address,undefined
else ifeq ($(BUILD),tsan)
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=thread
LDOPT := -fsanitize=thread
else
OPT := -O2 -g -D_FORTIFY_SOURCE=3 -fstack-protector-strong -fstack-clash-protection \
	-fcf-protection -fPIE
LDOPT := -pie -Wl,-z,relro,-z,now
endif
CFLAGS_ALL = $(BASE) $(OPT) $(CFLAGS)

LIB_SRC := $(shell find src -name '*.c' ! -path src/main.c | sort)
# The portal's files (web/) become one generated C file of byte arrays (src/web/web.h).
WEB_FILES := $(shell find web -type f | sort)
WEB_GEN := $(B)/gen/web_assets.c
LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o) $(B)/gen/web_assets.o
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_REPLAY := $(FUZZ_SRC:tests/fuzz/%.c=$(B)/fuzz/%)

.PHONY: all run test unit unit-pg tsan fuzz analyze bench bench-lists clean install uninstall image
all: $(B)/wharf

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS_ALL) -c $< -o $@

$(WEB_GEN): $(WEB_FILES) scripts/embed-web.sh
	@mkdir -p $(dir $@)
	@echo "  EMBED   web/"
	@bash scripts/embed-web.sh web > $@.tmp
	@mv $@.tmp $@

$(B)/gen/web_assets.o: $(WEB_GEN)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS_ALL) -c $< -o $@

$(B)/libwharf.a: $(LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^

# What `wharf version` prints: the commit (with -dirty for local changes) and the build
# flags. Written only when it changes, so that only main.o is rebuilt; COMMIT=... overrides
# it where there is no git (a source tarball).
COMMIT ?= $(shell c=$$(git rev-parse --short=12 HEAD 2>/dev/null) && \
	{ git diff --quiet HEAD -- 2>/dev/null || c="$$c-dirty"; } && echo "$$c" || echo unknown)
VERSION_H := $(B)/gen/wharf_version.h
quote = $(subst ",,$(subst \,,$(1)))
$(VERSION_H): FORCE
	@mkdir -p $(dir $@)
	@printf '#define WHARF_COMMIT "%s"\n#define WHARF_BUILD "%s"\n#define WHARF_CFLAGS "%s"\n' \
		'$(call quote,$(COMMIT))' '$(BUILD)$(if $(filter 1,$(WERROR)), -Werror)' \
		'$(call quote,$(strip $(OPT) $(CFLAGS)))' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
$(B)/src/main.o: $(VERSION_H)
$(B)/src/main.o: CFLAGS_ALL += -I$(B)/gen
.PHONY: FORCE
FORCE:

$(B)/wharf: $(B)/src/main.o $(B)/libwharf.a
	@echo "  LD      $@"
	@$(CC) $(LDOPT) -o $@ $^ $(LIBS)

# Unit tests and fuzz replays are compiled and linked in one step; -MMD writes their header
# dependencies next to the binary ($@.d), included below, so editing a test header
# (tests/unit/scan_fixture.h) rebuilds the tests that include it.
$(UNIT_BIN): $(B)/tests/%: tests/unit/%.c $(B)/libwharf.a
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS_ALL) $(LDOPT) -o $@ $< $(B)/libwharf.a $(LIBS) -lcmocka

# Fuzz targets replayed over their corpus by a plain driver (gcc, every run). The driver
# is its own object so that each target's dependency file lists the target's headers.
$(FUZZ_REPLAY): $(B)/fuzz/%: tests/fuzz/%.c $(B)/tests/fuzz/replay.o $(B)/libwharf.a
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS_ALL) $(LDOPT) -o $@ $< $(B)/tests/fuzz/replay.o $(B)/libwharf.a $(LIBS)

unit: $(UNIT_BIN) $(FUZZ_REPLAY)

# The database unit tests again, against PostgreSQL: a throwaway server (scripts/pg-up.sh,
# stopped on exit), each test case in a fresh schema of it (tests/unit/db_fixture.h).
DB_UNIT := $(filter $(B)/tests/test_db% $(B)/tests/test_acl $(B)/tests/test_policy \
	$(B)/tests/test_adapter,$(UNIT_BIN))
unit-pg: $(DB_UNIT)
	@bash tests/unit-pg.sh $(DB_UNIT)

# The unit tests again under ThreadSanitizer (the connection pool, the writers' queues, the
# caches and queues threads share), in build/tsan; a report fails its test. Address space
# randomisation off (setarch -R): TSan's fixed shadow mappings can clash with it.
tsan:
	@$(MAKE) --no-print-directory BUILD=tsan unit
	@TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" WHARF_UNIT_ONLY=1 \
		setarch "$$(uname -m)" -R bash tests/run.sh build/tsan$(if $(filter 1,$(WERROR)),-werror)

# libFuzzer builds (clang, ASan + UBSan) into build/fuzz/: the library once with
# fuzzer-no-link, each target linked with the fuzzer runtime. `make fuzz` installs clang
# first (scripts/deps.sh fuzz); scripts/fuzz.sh NAME [SECONDS] builds and runs one target,
# writing new inputs to build/fuzz/NAME/corpus and reading tests/fuzz/corpus/NAME as seeds.
FZ := build/fuzz
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(FZ)/%)
FUZZ_OBJ := $(LIB_SRC:%.c=$(FZ)/obj/%.o)
FUZZ_CFLAGS = -std=c17 -D_GNU_SOURCE -DWH_HAVE_PG -Isrc $(PKG_CFLAGS) -g -O1 -fno-omit-frame-pointer \
	-fsanitize=address,undefined -fno-sanitize-recover=all -MMD -MP

$(FUZZ_OBJ): $(FZ)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FZ)/libwharf.a: $(FUZZ_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(FUZZ_BIN): $(FZ)/%: tests/fuzz/%.c $(FZ)/libwharf.a
	@echo "  FUZZ    $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FZ)/libwharf.a $(LIBS)

fuzz:
	@$(DEPS) fuzz
	@$(MAKE) --no-print-directory $(FUZZ_BIN)

# gcc's static analyzer over src/, warnings as errors. Objects go to build/analyze (never
# linked) so that a second run looks only at what changed. -O1: the level at which it
# reported the most on this tree (see docs/testing.md).
AN := build/analyze
AN_OBJ := $(LIB_SRC:%.c=$(AN)/%.o) $(AN)/src/main.o

$(AN_OBJ): $(AN)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  ANALYZE $<"
	@$(ANALYZE_CC) $(BASE) -Werror -O1 -fanalyzer -c $< -o $@

$(AN)/src/main.o: $(VERSION_H)
$(AN)/src/main.o: BASE += -I$(B)/gen

analyze: $(AN_OBJ)

# The OpenAPI document is embedded by swagger.c (.incbin): rebuild it when the JSON changes.
$(B)/src/api/swagger.o $(FZ)/obj/src/api/swagger.o $(AN)/src/api/swagger.o: src/api/swagger.json

run:
	@$(DEPS) run
	@$(MAKE) --no-print-directory all
	./$(B)/wharf serve

test:
	@$(DEPS) test
	@$(MAKE) --no-print-directory all unit
	@bash tests/run.sh $(B)

# The list benchmark's filler: a data directory written through the db layer.
$(B)/bench/listfill: bench/listfill.c $(B)/libwharf.a
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS_ALL) $(LDOPT) -o $@ $< $(B)/libwharf.a $(LIBS)

# The re-match benchmark: fills a data directory and times wh_scand_rematch.
$(B)/bench/rematch: bench/rematch.c $(B)/libwharf.a
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS_ALL) $(LDOPT) -o $@ $< $(B)/libwharf.a $(LIBS)

bench:
	@$(DEPS) bench
	@$(MAKE) --no-print-directory all $(B)/bench/listfill $(B)/bench/rematch
	bash bench/run.sh $(B)/wharf
	bash bench/scan.sh
	python3 bench/lists.py --wharf $(B)/wharf --fill $(B)/bench/listfill
	python3 bench/hub.py --wharf $(B)/wharf --fill $(B)/bench/rematch
	python3 bench/login_storm.py $(B)/wharf
	python3 bench/audit_growth.py $(B)/wharf
	python3 bench/gate.py $(B)/wharf
	python3 bench/scan_push.py $(B)/wharf
	python3 bench/portal.py --wharf $(B)/wharf --fill $(B)/bench/listfill

bench-lists: all $(B)/bench/listfill
	python3 bench/lists.py --wharf $(B)/wharf --fill $(B)/bench/listfill

# Installation (docs/deploy.md). PREFIX and the directories below may be set on the command
# line; DESTDIR is prepended to every path (staged installs, packaging). The configuration
# file is installed only where none exists, and uninstall leaves it and the data alone.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
SYSCONFDIR ?= /etc
INSTALL ?= install

install: $(B)/wharf
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR) \
		$(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(SYSCONFDIR)/wharf
	$(INSTALL) -m 0755 $(B)/wharf $(DESTDIR)$(BINDIR)/wharf
	$(INSTALL) -m 0644 man/wharf.1 $(DESTDIR)$(MANDIR)/man1/wharf.1
	$(INSTALL) -m 0644 contrib/wharf.bash-completion $(DESTDIR)$(BASHCOMPDIR)/wharf
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
		contrib/wharf.service.in > $(DESTDIR)$(SYSTEMDUNITDIR)/wharf.service.tmp
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/wharf.service.tmp
	mv $(DESTDIR)$(SYSTEMDUNITDIR)/wharf.service.tmp $(DESTDIR)$(SYSTEMDUNITDIR)/wharf.service
	$(INSTALL) -m 0644 contrib/wharf.sysusers $(DESTDIR)$(SYSUSERSDIR)/wharf.conf
	[ -e $(DESTDIR)$(SYSCONFDIR)/wharf/wharf.yaml ] || \
		$(INSTALL) -m 0644 contrib/wharf.yaml $(DESTDIR)$(SYSCONFDIR)/wharf/wharf.yaml

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/wharf $(DESTDIR)$(MANDIR)/man1/wharf.1 \
		$(DESTDIR)$(BASHCOMPDIR)/wharf $(DESTDIR)$(SYSTEMDUNITDIR)/wharf.service \
		$(DESTDIR)$(SYSUSERSDIR)/wharf.conf

# The container image: a release build on a Debian bookworm minbase root file system
# (mmdebstrap, cached in tests/.cache), committed by buildah as a docker-archive.
image:
	@$(MAKE) --no-print-directory BUILD=release WERROR= all
	bash scripts/build-image.sh build/release/wharf build/wharf-image.tar

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(B)/src/main.d $(B)/bench/listfill.d $(B)/tests/fuzz/replay.d \
	$(UNIT_BIN:=.d) $(FUZZ_REPLAY:=.d) $(FUZZ_OBJ:.o=.d) $(FUZZ_BIN:=.d) $(AN_OBJ:.o=.d)
