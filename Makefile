# wharf — plain Makefile (see docs/architecture.md for the layout).
#   make            release build: build/release/wharf
#   make run        install missing packages, build, serve on 127.0.0.1:5000 with ./data
#   make test       install missing packages, build, run every test suite
#   make BUILD=check ...   the same with AddressSanitizer + UBSan into build/check
#   make WERROR=1 ...      warnings are errors (CI)

BUILD ?= release
B := build/$(BUILD)$(if $(filter 1,$(WERROR)),-werror)
PKGS := libmicrohttpd jansson sqlite3 openssl yaml-0.1 libarchive libargon2 libisal
# libcurl's headers only: it is loaded at run time by `wharf vulndb update` (see vulndb.c)
HDR_ONLY := libcurl
CC ?= cc

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
BASE := -std=c17 -D_GNU_SOURCE $(WARN) -Isrc $(shell pkg-config --cflags $(PKGS) $(HDR_ONLY)) -MMD -MP
ifeq ($(BUILD),check)
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDOPT := -fsanitize=address,undefined
else
OPT := -O2 -g -D_FORTIFY_SOURCE=3 -fstack-protector-strong -fstack-clash-protection \
	-fcf-protection -fPIE
LDOPT := -pie -Wl,-z,relro,-z,now
endif
CFLAGS_ALL := $(BASE) $(OPT) $(CFLAGS)
LIBS := $(shell pkg-config --libs $(PKGS)) -lpthread -ldl -lm

LIB_SRC := $(shell find src -name '*.c' ! -path src/main.c | sort)
LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o)
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_REPLAY := $(FUZZ_SRC:tests/fuzz/%.c=$(B)/fuzz/%)

.PHONY: all run test unit fuzz bench clean
all: $(B)/wharf

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS_ALL) -c $< -o $@

# The OpenAPI document is embedded by swagger.c (.incbin): rebuild it when the JSON changes.
$(B)/src/api/swagger.o: src/api/swagger.json

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

$(B)/tests/%: tests/unit/%.c $(B)/libwharf.a
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS_ALL) $(LDOPT) -o $@ $< $(B)/libwharf.a $(LIBS) -lcmocka

# Fuzz targets replayed over their corpus by a plain driver (gcc, every run);
# `make fuzz` builds them for libFuzzer with clang into build/fuzz/ (run one with
# `build/fuzz/fuzz_registry -max_total_time=60 tests/fuzz/corpus/registry`).
$(B)/fuzz/%: tests/fuzz/%.c tests/fuzz/replay.c $(B)/libwharf.a
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS_ALL) $(LDOPT) -o $@ $< tests/fuzz/replay.c $(B)/libwharf.a $(LIBS)

unit: $(UNIT_BIN) $(FUZZ_REPLAY)

FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
build/fuzz/%: tests/fuzz/%.c $(LIB_SRC)
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	@clang -std=c17 -D_GNU_SOURCE -Isrc $(shell pkg-config --cflags $(PKGS)) -g -O1 \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $< $(LIB_SRC) $(LIBS)

fuzz: $(FUZZ_BIN)

run:
	@bash scripts/deps.sh run
	@$(MAKE) --no-print-directory all
	./$(B)/wharf serve

test:
	@bash scripts/deps.sh test
	@$(MAKE) --no-print-directory all unit
	@bash tests/run.sh $(B)

bench:
	@bash scripts/deps.sh bench
	@$(MAKE) --no-print-directory all
	bash bench/run.sh $(B)/wharf
	bash bench/scan.sh

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(B)/src/main.d
