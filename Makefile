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

PKGS := libbpf jansson yaml-0.1 libnl-3.0 libnl-route-3.0 libmicrohttpd libcurl libprotobuf-c
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)

CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers \
	-D_GNU_SOURCE -Imaps -Iuser -I$(BUILD)/include -I$(BUILD)/proto $(PKG_CFLAGS) -MMD -MP
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

# user/ is a library plus ferryd. Its rooms (user/source, user/kernel,
# user/telemetry, user/canary) are listed here, not discovered: a new folder is one word.
USER_DIRS := user user/source user/kernel user/telemetry user/canary
FERRYD_SRCS := user/ferryd.c user/ferryd_options.c
FERRYD_OBJS := $(FERRYD_SRCS:%.c=$(BUILD)/%.o)
LIB_SRCS := $(filter-out $(FERRYD_SRCS),$(foreach d,$(USER_DIRS),$(wildcard $(d)/*.c)))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)

# Prometheus' exposition protobuf (proto/README.md), compiled by protoc-c at
# build time; its import google/protobuf/timestamp.proto is libprotobuf-dev's.
PROTOC_C ?= protoc-c
PROTO_SYS ?= /usr/include
PROTO_SRCS := proto/io/prometheus/client/metrics.proto
PROTO_GEN := $(BUILD)/proto/io/prometheus/client/metrics.pb-c.c \
	$(BUILD)/proto/google/protobuf/timestamp.pb-c.c
PROTO_HDRS := $(PROTO_GEN:%.c=%.h)
PROTO_OBJS := $(PROTO_GEN:%.c=%.o)
LIB_OBJS += $(PROTO_OBJS)
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
# Test clients in C for the end-to-end scenarios (vmtests/bin/*.c). They are
# references the data path is measured against, so they build without the
# sanitizers of a SAN build: their own timing must not move with it.
VMT_CFLAGS := -O2 -g -std=gnu11 -Wall -Wextra -Werror -Wno-missing-field-initializers \
	-D_GNU_SOURCE -MMD -MP
VMT_BINS := $(BUILD)/vmtests/grpc_client

all: $(BPF_OBJS) $(SKELS) $(LIB) $(BUILD)/ferryd $(TOOLS) $(TESTS) $(BENCHES) $(VMT_BINS)

$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c | $(BUILD)/bpf
	$(call msg,CLANG-BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/include/%.skel.h: $(BUILD)/bpf/%.bpf.o | $(BUILD)/include
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $* > $@

$(BUILD)/user/%.o: user/%.c $(SKELS) $(PROTO_HDRS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

# One protoc-c run writes both pairs (a grouped target).
$(PROTO_GEN) $(PROTO_HDRS) &: $(PROTO_SRCS)
	$(call msg,PROTOC-C,$(PROTO_SRCS))
	$(Q)mkdir -p $(BUILD)/proto
	$(Q)$(PROTOC_C) --c_out=$(BUILD)/proto -Iproto -I$(PROTO_SYS) $(PROTO_SRCS) \
		$(PROTO_SYS)/google/protobuf/timestamp.proto

$(BUILD)/proto/%.o: $(BUILD)/proto/%.c $(PROTO_HDRS)
	$(call msg,CC,$@)
	$(Q)$(CC) $(filter-out -Werror,$(CFLAGS)) -c $< -o $@

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

$(BUILD)/tests/%: tests/%.c tests/testing.h $(LIB) $(SKELS) $(PROTO_HDRS) | $(BUILD)/tests
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(CFLAGS) -Itests $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(BUILD)/bench/%: bench/%.c $(LIB) $(SKELS) | $(BUILD)/bench
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

# Debian's gRPC C core (libgrpc-dev).
$(BUILD)/vmtests/grpc_client: vmtests/bin/grpc_client.c | $(BUILD)/vmtests
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(VMT_CFLAGS) $(shell $(PKG_CONFIG) --cflags grpc) $< \
		$(shell $(PKG_CONFIG) --libs grpc) -lpthread -o $@

$(BUILD)/bpf $(BUILD)/include $(BUILD)/tests $(BUILD)/bench $(BUILD)/vmtests:
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
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(FUZZ_BUILD)/obj/%.o) $(PROTO_GEN:%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_LIB := $(FUZZ_BUILD)/libferry.a
# The option parsers are ferryd's and ferryctl's own, outside the library:
# their targets include those sources whole (fuzz/ferryd_opts.c, fuzz/ferryctl_args.c).
$(FUZZ_BUILD)/ferryd_opts: user/ferryd_options.c
$(FUZZ_BUILD)/ferryctl_args: $(CTL_SRCS)

fuzz-build: $(FUZZ_TARGETS)

fuzz: fuzz-build
	$(Q)FERRY_BUILD=$(BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_LOCK=$(FUZZ_LOCK) tests/fuzz.sh

$(FUZZ_BUILD)/obj/%.o: %.c $(SKELS) $(PROTO_HDRS)
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
	$(Q)clang-format -i $(wildcard bpf/*.[ch] maps/*.h $(foreach d,$(USER_DIRS),$(d)/*.[ch]) tools/*.c tools/ferryctl/*.[ch] tests/*.[ch] bench/*.c fuzz/*.[ch] vmtests/bin/*.c)

check-format:
	$(Q)clang-format --dry-run --Werror $(wildcard bpf/*.[ch] maps/*.h $(foreach d,$(USER_DIRS),$(d)/*.[ch]) tools/*.c tools/ferryctl/*.[ch] tests/*.[ch] bench/*.c fuzz/*.[ch] vmtests/bin/*.c)

clean:
	$(call msg,CLEAN,$(BUILD))
	$(Q)rm -rf $(BUILD)

-include $(wildcard $(BUILD)/bpf/*.d $(foreach d,$(USER_DIRS),$(BUILD)/$(d)/*.d) $(BUILD)/tools/ferryctl/*.d $(BUILD)/tests/*.d $(BUILD)/bench/*.d $(BUILD)/vmtests/*.d $(filter-out $(BUILD)/ferryctl.d $(BUILD)/ferryd.d,$(wildcard $(BUILD)/*.d)))
-include $(FUZZ_LIB_OBJS:.o=.d) $(wildcard $(FUZZ_BUILD)/*.d)
