/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map of maps/ferry_maps.h, defined once. Both entry objects include
 * this file; the maps are pinned by name so that the XDP and TC objects (and
 * ferryd, ferryctl) share one instance of each.
 */
#ifndef FERRY_MAPS_BPF_H
#define FERRY_MAPS_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "ferry_maps.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct ferry_config);
} ferry_config SEC(".maps");

/* Service entries plus one address-marker entry per VIP address. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FERRY_MAX_SERVICES * 2);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, struct ferry_vip);
	__type(value, struct ferry_service);
} ferry_services SEC(".maps");

/*
 * Stage 1 of selection (select.bpf.h): a service's predictors and weights,
 * indexed by service id. Read under the value's bpf_spin_lock; user space
 * writes it whole with BPF_F_LOCK.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FERRY_MAX_SERVICES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct ferry_select);
} ferry_selectors SEC(".maps");

/*
 * Stage 2: one Maglev table per predictor, indexed by predictor id.
 * BPF_F_INNER_MAP lets user space insert inner arrays of any size (each
 * predictor's table is sized to its backends); the price is that the
 * verifier cannot inline the inner lookups, one helper call each.
 */
struct ferry_table_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FERRY_TABLE_CELLS(FERRY_TABLE_SIZE_DEFAULT, 1));
	__uint(map_flags, FERRY_TABLE_MAP_FLAGS);
	/* Sizes, not BTF types: clang emits only a forward declaration for a type seen this deep. */
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct ferry_table_cell));
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, FERRY_MAX_PREDICTORS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__array(values, struct ferry_table_inner);
} ferry_tables SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FERRY_MAX_BACKENDS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct ferry_backend);
} ferry_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FERRY_MAX_FLOWS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, struct ferry_flow_key);
	__type(value, struct ferry_flow);
} ferry_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FERRY_MAX_FLOWS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, struct ferry_flow_key);
	__type(value, struct ferry_rflow);
} ferry_rflows SEC(".maps");

/* Request-layer state of TCP flows that carried payload, keyed like ferry_flows. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FERRY_MAX_FLOWS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, struct ferry_flow_key);
	__type(value, struct ferry_l7);
} ferry_l7 SEC(".maps");

/*
 * Embryonic flows: both halves of a connection until it is confirmed (see
 * bpf/lb.bpf.h). Their own LRU maps, so that a flood of SYNs or stray
 * segments evicts only other embryonic flows, never a confirmed one.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FERRY_MAX_EMBRYONIC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, struct ferry_flow_key);
	__type(value, struct ferry_flow);
} ferry_eflows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FERRY_MAX_EMBRYONIC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, struct ferry_flow_key);
	__type(value, struct ferry_rflow);
} ferry_erflows SEC(".maps");

/* Backend endpoint -> the VIPs that send it flows: see struct ferry_be_vips. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FERRY_MAX_BACKENDS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, struct ferry_vip);
	__type(value, struct ferry_be_vips);
} ferry_be_vips SEC(".maps");

/* Which (VIP, port, protocol) may be a service: see FERRY_VIP_BITS_WORDS. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FERRY_VIP_BITS_WORDS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, __u64);
} ferry_vip_bits SEC(".maps");

/* Which (address, port) may be a backend's: see FERRY_BE_BITS_WORDS. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FERRY_BE_BITS_WORDS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, __u64);
} ferry_be_bits SEC(".maps");

/* Tuples the rate guard turned away: see FERRY_SKIPPED_ORDER. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FERRY_SKIPPED_ENTRIES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct ferry_skipped);
} ferry_skipped SEC(".maps");

/* The new-flow rate guard: per CPU and service, so counting takes no lock. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FERRY_MAX_SERVICES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct ferry_new_rate);
} ferry_new_rate SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FERRY_MAX_BACKENDS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct ferry_stats);
} ferry_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FERRY_MAX_SERVICES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct ferry_svc_stats);
} ferry_svc_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FERRY_CTR_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, __u64);
} ferry_counters SEC(".maps");

/*
 * Made by the data plane on a key's first sample (ferry_hist_add), so memory
 * goes only to what carries sampled traffic. No prealloc: a program's insert
 * takes per-CPU memory from caches the kernel refills asynchronously, so a
 * burst of first samples can find them empty (counted as HIST_MISS).
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, FERRY_MAX_HISTOGRAMS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, struct ferry_hist_key);
	__type(value, struct ferry_hist);
} ferry_latency SEC(".maps");

/*
 * An all-zero histogram, never written: the value a program inserts into
 * ferry_latency the first time a predictor or backend has a sample (the BPF
 * stack is too small to hold one). Object-local, so not pinned.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ferry_hist);
} ferry_hist_zero SEC(".maps");

/* An all-zero ferry_l7 value, never written: what a new flow's entry starts from. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ferry_l7);
} ferry_l7_zero SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, FERRY_TRACE_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_trace SEC(".maps");

/* Egress interfaces user space declared safe for XDP_REDIRECT: key and value are the ifindex. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, FERRY_MAX_TX_PORTS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, __u32);
} ferry_tx_ports SEC(".maps");

/*
 * The three maps below are written only by user space; TC reads ferry_links
 * (FERRY_LINK_POD) on the pod path only.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FERRY_MAX_SERVICES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct ferry_svc_meta);
} ferry_svc_meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FERRY_MAX_PREDICTORS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct ferry_pred_meta);
} ferry_pred_meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FERRY_MAX_LINKS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct ferry_link);
} ferry_links SEC(".maps");

/*
 * The connect hook's choice per host-client socket (rebalancing finds those
 * sockets by it). Socket-local storage, so it goes with the socket; the
 * kernel requires BTF for its key and value, which -g provides.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, int);
	__type(value, struct ferry_sock_sel);
} ferry_sock_sel SEC(".maps");

static __always_inline void ferry_count(__u32 reason)
{
	__u64 *ctr = bpf_map_lookup_elem(&ferry_counters, &reason);

	if (ctr)
		*ctr += 1;
}

#endif /* FERRY_MAPS_BPF_H */
