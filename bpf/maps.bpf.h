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
 * BPF_F_INNER_MAP lets user space insert inner arrays of any size (each
 * service has its own prime table_size); the price is that the verifier
 * cannot inline the inner lookup, one helper call per new flow.
 * BPF_F_MMAPABLE lets user space fill a new table with one memcpy instead
 * of a syscall per slot (a 16381-slot table: ~10 us instead of ~4 ms).
 */
struct ferry_table_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FERRY_TABLE_SIZE_DEFAULT);
	__uint(map_flags, FERRY_TABLE_MAP_FLAGS);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, FERRY_MAX_SERVICES);
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

/* Only user space inserts (one entry per predictor and backend); BPF looks up. */
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

/* The three maps below are read and written only by user space. */
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

static __always_inline void ferry_count(__u32 reason)
{
	__u64 *ctr = bpf_map_lookup_elem(&ferry_counters, &reason);

	if (ctr)
		*ctr += 1;
}

#endif /* FERRY_MAPS_BPF_H */
