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
# ThreadSanitizer cannot share objects with ASan: its own tree.
override BUILD := $(BUILD)/$(if $(findstring thread,$(SAN)),tsan,san)
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
	$(Q)clang-format -i $(wildcard bpf/*.[ch] maps/*.h user/*.[ch] tools/*.c tests/*.[ch] bench/*.c)

check-format:
	$(Q)clang-format --dry-run --Werror $(wildcard bpf/*.[ch] maps/*.h user/*.[ch] tools/*.c tests/*.[ch] bench/*.c)

clean:
	$(call msg,CLEAN,$(BUILD))
	$(Q)rm -rf $(BUILD)

-include $(wildcard $(BUILD)/bpf/*.d $(BUILD)/user/*.d $(BUILD)/tests/*.d $(BUILD)/bench/*.d $(BUILD)/*.d)
