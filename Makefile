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
.PHONY: all deps test unit vmtest vmtest-6.1 bench demo clean format check-format

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

# user/ is a library plus ferryd. Its rooms (user/source, user/kernel,
# user/telemetry) are listed here, not discovered: a new folder is one word.
USER_DIRS := user user/source user/kernel user/telemetry
FERRYD_SRCS := user/ferryd.c user/ferryd_options.c
FERRYD_OBJS := $(FERRYD_SRCS:%.c=$(BUILD)/%.o)
LIB_SRCS := $(filter-out $(FERRYD_SRCS),$(foreach d,$(USER_DIRS),$(wildcard $(d)/*.c)))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB := $(BUILD)/libferry.a

TOOL_SRCS := $(wildcard tools/*.c)
TOOLS := $(patsubst tools/%.c,$(BUILD)/%,$(TOOL_SRCS)) $(BUILD)/ferryctl
# ferryctl: one file per command under tools/ferryctl/. (A build/ferryctl.d
# from when it was one file would name tools/ferryctl.c: not included below.)
CTL_SRCS := $(wildcard tools/ferryctl/*.c)
CTL_OBJS := $(CTL_SRCS:%.c=$(BUILD)/%.o)
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

$(BUILD)/user/%.o: user/%.c $(SKELS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/ferryd: $(FERRYD_OBJS) $(LIB)
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $(FERRYD_OBJS) $(LIB) $(LDLIBS) -o $@

$(BUILD)/tools/%.o: tools/%.c $(SKELS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/ferryctl: $(CTL_OBJS) $(LIB)
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $(CTL_OBJS) $(LIB) $(LDLIBS) -o $@

$(BUILD)/%: tools/%.c $(LIB) $(SKELS)
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/%.c tests/testing.h $(LIB) $(SKELS) | $(BUILD)/tests
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(CFLAGS) -Itests $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(BUILD)/bench/%: bench/%.c $(LIB) $(SKELS) | $(BUILD)/bench
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(BUILD)/bpf $(BUILD)/include $(BUILD)/tests $(BUILD)/bench:
	$(Q)mkdir -p $@

deps:
	$(Q)tools/install-deps

# Unprivileged unit tests only (table builder, manifests): quick, no root.
unit: all
	$(Q)FERRY_BUILD=$(BUILD) tests/run --unit

test: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)FERRY_BUILD=$(BUILD) tests/run

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
	$(Q)clang-format -i $(wildcard bpf/*.[ch] maps/*.h $(foreach d,$(USER_DIRS),$(d)/*.[ch]) tools/*.c tools/ferryctl/*.[ch] tests/*.[ch] bench/*.c)

check-format:
	$(Q)clang-format --dry-run --Werror $(wildcard bpf/*.[ch] maps/*.h $(foreach d,$(USER_DIRS),$(d)/*.[ch]) tools/*.c tools/ferryctl/*.[ch] tests/*.[ch] bench/*.c)

clean:
	$(call msg,CLEAN,$(BUILD))
	$(Q)rm -rf $(BUILD)

-include $(wildcard $(BUILD)/bpf/*.d $(foreach d,$(USER_DIRS),$(BUILD)/$(d)/*.d) $(BUILD)/tools/ferryctl/*.d $(BUILD)/tests/*.d $(BUILD)/bench/*.d $(filter-out $(BUILD)/ferryctl.d $(BUILD)/ferryd.d,$(wildcard $(BUILD)/*.d)))
