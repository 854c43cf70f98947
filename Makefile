# SPDX-License-Identifier: GPL-2.0-only
# ferry: one non-recursive Makefile. Output goes to build/; `make V=1` shows commands.

BUILD ?= build
CLANG ?= clang
CC ?= gcc
BPFTOOL ?= bpftool
PKG_CONFIG ?= pkg-config
PYTHON ?= python3

ifeq ($(V),1)
Q :=
msg :=
else
Q := @
msg = @printf '  %-9s %s\n' "$(1)" "$(2)";
endif

.DELETE_ON_ERROR:
.SUFFIXES:
.PHONY: all deps test unit vmtest vmtest-6.1 bench demo clean format check-format image image-test \
	fuzz fuzz-build

ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)

# BPF: kernel UAPI headers plus libbpf's bpf_helpers.h; asm/types.h lives in
# the multiarch directory, which clang's bpf target does not search by itself.
BPF_CFLAGS := -O2 -g --target=bpf -mcpu=v3 -Wall -Werror -D__TARGET_ARCH_$(ARCH) \
	-Imaps -Ibpf -idirafter /usr/include/$(MULTIARCH) -MMD -MP

PKGS := libbpf jansson yaml-0.1 libnl-3.0 libnl-route-3.0 libmicrohttpd libcurl
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)

CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers \
	-D_GNU_SOURCE -Imaps -Iuser -I$(BUILD)/include $(PKG_CFLAGS) -MMD -MP
LDLIBS := $(PKG_LIBS) -lelf -lz -lm -lpthread

# `make SAN=address,undefined test` builds user space with sanitizers.
ifneq ($(SAN),)
# Packet headers sit at 2-byte offsets behind a 14-byte Ethernet header, as on
# the wire; x86 and the kernel read them unaligned, so UBSan's alignment check
# would only flag the packet builder's deliberate layout.
CFLAGS += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SAN)
ifneq ($(findstring undefined,$(SAN)),)
CFLAGS += -fno-sanitize=alignment
LDFLAGS += -fno-sanitize=alignment
endif
override BUILD := $(BUILD)/san
endif

BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_OBJS := $(BPF_SRCS:bpf/%.bpf.c=$(BUILD)/bpf/%.bpf.o)
SKELS := $(BPF_SRCS:bpf/%.bpf.c=$(BUILD)/include/%.skel.h)

LIB_SRCS := $(filter-out user/ferryd.c,$(wildcard user/*.c))
LIB_OBJS := $(LIB_SRCS:user/%.c=$(BUILD)/user/%.o)
LIB := $(BUILD)/libferry.a

TOOL_SRCS := $(wildcard tools/*.c)
TOOLS := $(patsubst tools/%.c,$(BUILD)/%,$(TOOL_SRCS))
TEST_SRCS := $(wildcard tests/*.c)
TESTS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
BENCH_SRCS := $(wildcard bench/*.c)
BENCHES := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)

all: $(BPF_OBJS) $(SKELS) $(LIB) $(BUILD)/ferryd $(TOOLS) $(TESTS) $(BENCHES)

$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c | $(BUILD)/bpf
	$(call msg,CLANG-BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/include/%.skel.h: $(BUILD)/bpf/%.bpf.o | $(BUILD)/include
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $* > $@

$(BUILD)/user/%.o: user/%.c $(SKELS) | $(BUILD)/user
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/ferryd: user/ferryd.c $(LIB) $(SKELS)
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(BUILD)/%: tools/%.c $(LIB) $(SKELS)
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/%.c tests/testing.h $(LIB) $(SKELS) | $(BUILD)/tests
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(CFLAGS) -Itests $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(BUILD)/bench/%: bench/%.c $(LIB) $(SKELS) | $(BUILD)/bench
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(BUILD)/bpf $(BUILD)/include $(BUILD)/user $(BUILD)/tests $(BUILD)/bench:
	$(Q)mkdir -p $@

# --------------------------------------------------------------- fuzzing
# `make fuzz`: libFuzzer targets (fuzz/*.c, one binary each in $(BUILD)/fuzz/)
# over the library compiled again with clang, ASan and UBSan in its own
# directory, independent of the gcc build. Each target runs FUZZ_SECONDS from
# its seed corpus fuzz/corpus/TARGET (new inputs go to $(BUILD)/fuzz/corpus);
# any crash fails. The packet target needs root and holds FUZZ_LOCK while it
# runs. tests/fuzz.sh does the running (CI: 10 s each through `make test`).
FUZZ_BUILD := $(BUILD)/fuzz
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_LOCK ?= /tmp/ferry-root.lock
# Include paths and defines as the gcc build has them; its -W and -O flags are gcc's.
FUZZ_CFLAGS := -O1 -g -fno-omit-frame-pointer -std=gnu11 -Wall -Wno-unused-parameter \
	-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all \
	-fno-sanitize=alignment $(filter -I% -D%,$(CFLAGS)) -Itests -MMD -MP
FUZZ_LDFLAGS := -fsanitize=fuzzer,address,undefined -fno-sanitize=alignment
FUZZ_SRCS := $(wildcard fuzz/*.c)
FUZZ_TARGETS := $(FUZZ_SRCS:fuzz/%.c=$(FUZZ_BUILD)/%)
# From LIB_SRCS, whatever folders it spans; objects mirror the source tree.
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_LIB := $(FUZZ_BUILD)/libferry.a
# The option parsers are static in the programs' own sources: the targets for
# them include those sources whole (their main renamed).
FERRYD_SRC := $(firstword $(wildcard user/ferryd.c user/*/ferryd.c))
FERRYCTL_SRC := $(firstword $(wildcard tools/ferryctl.c tools/*/ferryctl.c))

$(FUZZ_BUILD)/ferryd_opts: FUZZ_EXTRA := -Dmain=ferryd_main -DFERRYD_SRC='"$(abspath $(FERRYD_SRC))"'
$(FUZZ_BUILD)/ferryctl_args: FUZZ_EXTRA := -Dmain=ferryctl_main -DFERRYCTL_SRC='"$(abspath $(FERRYCTL_SRC))"'

fuzz-build: $(FUZZ_TARGETS)

fuzz: fuzz-build
	$(Q)FERRY_BUILD=$(BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_LOCK=$(FUZZ_LOCK) tests/fuzz.sh

$(FUZZ_BUILD)/obj/%.o: %.c $(SKELS)
	$(call msg,CC-FUZZ,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_LIB): $(FUZZ_LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/%: fuzz/%.c fuzz/fuzz.h $(FUZZ_LIB) $(SKELS) $(BPF_OBJS)
	$(call msg,CCLD-FUZZ,$@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_EXTRA) $(FUZZ_LDFLAGS) $< $(FUZZ_LIB) $(LDLIBS) -o $@

deps:
	$(Q)tools/install-deps

# Unprivileged unit tests only (table builder, manifests): quick, no root.
unit: all
	$(Q)FERRY_BUILD=$(BUILD) tests/run --unit

test: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)FERRY_BUILD=$(BUILD) tests/run

# deploy/Dockerfile built with docker or (daemonless) podman, from Debian
# bases made locally with debootstrap (cached in $(BUILD)/image), never pulled.
image:
	$(Q)deploy/image/build.sh $(BUILD)

# The image run with the DaemonSet's privileges in an end-to-end topology
# (root: run under flock /tmp/ferry-root.lock on shared machines). Also part
# of `make test`; builds the image first when it is out of date.
image-test: all
	$(Q)FERRY_BUILD=$(BUILD) tests/image.sh

vmtest: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)FERRY_BUILD=$(BUILD) vmtests/run $(T)

vmtest-6.1: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)FERRY_BUILD=$(BUILD) vmtests/qemu/run-6.1

bench: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)FERRY_BUILD=$(BUILD) bench/run

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)FERRY_BUILD=$(BUILD) examples/demo/run

format:
	$(Q)clang-format -i $(wildcard bpf/*.[ch] maps/*.h user/*.[ch] tools/*.c tests/*.[ch] bench/*.c fuzz/*.[ch])

check-format:
	$(Q)clang-format --dry-run --Werror $(wildcard bpf/*.[ch] maps/*.h user/*.[ch] tools/*.c tests/*.[ch] bench/*.c fuzz/*.[ch])

clean:
	$(call msg,CLEAN,$(BUILD))
	$(Q)rm -rf $(BUILD)

-include $(wildcard $(BUILD)/bpf/*.d $(BUILD)/user/*.d $(BUILD)/tests/*.d $(BUILD)/bench/*.d $(BUILD)/*.d)
-include $(FUZZ_LIB_OBJS:.o=.d) $(wildcard $(FUZZ_BUILD)/*.d)
