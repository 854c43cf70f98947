/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The data plane as user space sees it: the two BPF objects loaded against
 * maps pinned under one bpffs directory, and their attachment to interfaces.
 * Programs attached through netlink (XDP, TC clsact) and pinned maps outlive
 * the process, so closing a ferry_dp never interrupts forwarding.
 */
#ifndef FERRY_DATAPLANE_H
#define FERRY_DATAPLANE_H

#include <stdbool.h>
#include <linux/types.h>

#include <linux/bpf.h> /* struct bpf_spin_lock in ferry_maps.h */
#include "ferry_maps.h"
#include "kernel/clock.h"
#include "kernel/pins.h"

enum ferry_hook {
	FERRY_HOOK_XDP_FWD, /* XDP forward on a client-facing interface */
	FERRY_HOOK_TC_FWD, /* TC ingress forward (pods, or XDP's veth-safe handoff) */
	FERRY_HOOK_TC_REPLY_IN, /* TC ingress reply translation (backend-facing) */
	FERRY_HOOK_TC_REPLY_EG, /* TC egress reply translation (into a pod) */
};

struct ferry_dp_opts {
	const char *pin_path; /* NULL: FERRY_PIN_ROOT_DEFAULT */
	bool maps_only; /* open the pinned maps, load no program (ferryctl) */
	/* With maps_only: the maps to open, a bit per enum ferry_map_id (0: all); the rest -1. */
	__u64 maps;
	__u32 pod_path; /* FERRY_POD_PATH_*: how pod traffic leaves (--pod-fast-path) */
	bool pods; /* ferryd attaches to pod veths (--pod-iface): TC looks them up */
};

struct ferry_dp {
	char pin_path[256];
	int map_fds[FERRY_M_COUNT];
	bool created; /* the pins did not exist before this open */
	__u32 features; /* FERRY_FEAT_* */
	__u32 pod_path; /* FERRY_POD_PATH_* the TC object was loaded with */
	bool pods; /* ferry_pods the TC object was loaded with */
	struct ferry_xdp *xdp; /* NULL with maps_only */
	struct ferry_tc *tc;
	struct ferry_sock *sock;
	struct ferry_clock clock; /* the objects' coarse clock (kernel/clock.h) */
};

/*
 * Opens the data plane under opts->pin_path: reuses the pinned maps after
 * checking their ABI version, or creates and pins them. Returns NULL and sets
 * errno on failure, after logging what is wrong and how to fix it.
 */
struct ferry_dp *ferry_dp__open(const struct ferry_dp_opts *opts);
/*
 * Publishes the jiffies offset of the objects' coarse clock again, once a
 * minute (ferryd calls it every second). Returns 0 or -errno (the helper's
 * clock stays).
 */
int ferry_dp__clock_sync(struct ferry_dp *dp);
/* Closes fds only: attached programs and pins stay. */
void ferry_dp__close(struct ferry_dp *dp);
/*
 * Whether this kernel lets XDP programs call bpf_xdp_adjust_meta: the value
 * of the XDP object's ferry_xdp_meta, for whoever loads it.
 */
bool ferry_dp_xdp_meta(void);

/* Attaches the program for hook to ifindex, atomically replacing ferry's own. */
int ferry_dp__attach(struct ferry_dp *dp, int ifindex, enum ferry_hook hook);
/*
 * Balances host-network clients: connect() hooks on the cgroup v2 directory
 * cgroup_path (e.g. /sys/fs/cgroup), limited to this network namespace.
 * Replaces ferry's own hooks there; others' stay.
 */
int ferry_dp__attach_cgroup(struct ferry_dp *dp, const char *cgroup_path);
/* The cgroup v2 root: /sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts; NULL: none. */
const char *ferry_dp__cgroup2_root(void);

/*
 * Declares ifindex safe for XDP_REDIRECT (its driver takes XDP frames: a
 * physical NIC with ndo_xdp_xmit, a veth whose peer runs XDP or GRO).
 * Forwarded packets leaving through it skip the XDP -> TC handoff. why
 * (FERRY_TX_WHY_*) is recorded for ferryctl status; del takes it back.
 */
int ferry_dp__add_tx_port(struct ferry_dp *dp, int ifindex, __u32 why);
int ferry_dp__del_tx_port(struct ferry_dp *dp, int ifindex);
/* Empties ferry_tx_ports (before --xdp-tx-iface replaces what a previous ferryd found). */
int ferry_dp__clear_tx_ports(struct ferry_dp *dp);
/* True when ifindex is in ferry_tx_ports; *why (may be NULL) says why. */
bool ferry_dp__is_tx_port(struct ferry_dp *dp, int ifindex, __u32 *why);

/* Records why ifindex got the hooks it has (FERRY_LINK_WHY_*), for ferryctl status. */
int ferry_dp__link_reason(struct ferry_dp *dp, int ifindex, __u32 why);
/*
 * Marks ifindex as a pod's host-side veth before its programs are attached:
 * TC then keeps pod traffic on the policy-safe path (or, with
 * FERRY_POD_PATH_PEER, redirects into it with bpf_redirect_peer).
 */
int ferry_dp__mark_pod(struct ferry_dp *dp, int ifindex);
/* Removes ferry's XDP program from ifindex (the forward program moved to TC). */
int ferry_dp__detach_xdp(struct ferry_dp *dp, int ifindex);

/* Detaches every program ferry_links records, then removes every pin. */
int ferry_dp__reset(const char *pin_path);

/* Reads and writes the single ferry_config entry. */
int ferry_dp__config_read(const struct ferry_dp *dp, struct ferry_config *cfg);
int ferry_dp__config_write(struct ferry_dp *dp, const struct ferry_config *cfg);

/*
 * Sets ferry_config.hash_seed, the seed of the flow hash, to the cluster's
 * seed. *previous gets the seed the data plane had (a random one on a fresh
 * data plane, or what a previous ferryd pinned). Open flows keep their
 * backends whatever the seed: only new flows, and flows whose state is lost
 * (mid-stream pickup), are hashed with it.
 */
int ferry_dp__set_hash_seed(struct ferry_dp *dp, __u32 seed, __u32 *previous);

/* Checks that path is inside a bpffs mount; 0, or -ENOTSUP with a log line. */
int ferry_dp__check_bpffs(const char *path);

#endif /* FERRY_DATAPLANE_H */
