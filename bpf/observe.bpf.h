/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Telemetry of the packet path: per-backend statistics, sampled latency
 * histograms (connect and request), HTTP status classes and decision
 * tracing into the ring buffer. Nothing here changes where a packet goes.
 */
#ifndef FERRY_OBSERVE_BPF_H
#define FERRY_OBSERVE_BPF_H

#include "hook.bpf.h"
#include "maps.bpf.h"
#include "parse.bpf.h"

/*
 * Not inlined: one copy of the ring buffer code however many decisions there
 * are. Four arguments, packed, keep its stack (the saved arguments) at 32
 * bytes: 6.1 rounds each frame up to 32 and caps the sum at 512.
 */
static __noinline int ferry_trace_emit(const struct ferry_flow_key *key, __u64 reason_hook_ifindex,
				       __u64 svc_predictor, __u32 backend_id)
{
	struct ferry_trace_event *ev;

	ev = bpf_ringbuf_reserve(&ferry_trace, sizeof(*ev), 0);
	if (!ev) {
		ferry_count(FERRY_CTR_TRACE_LOST);
		return 0;
	}
	ev->ts_ns = bpf_ktime_get_ns();
	__builtin_memcpy(&ev->tuple, key, sizeof(ev->tuple));
	ev->svc_id = svc_predictor >> 32;
	ev->predictor_id = (__u32)svc_predictor;
	ev->backend_id = backend_id;
	ev->ifindex = reason_hook_ifindex >> 32;
	ev->reason = reason_hook_ifindex & 0xff;
	ev->hook = (reason_hook_ifindex >> 8) & 0xff;
	__builtin_memset(ev->pad, 0, sizeof(ev->pad));
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

static __always_inline void ferry_trace_decision(void *ctx, const int hook,
						 const struct ferry_config *cfg,
						 const struct ferry_pkt *pkt, __u32 reason,
						 __u32 svc_id, __u32 predictor_id, __u32 backend_id)
{
	__u32 every = cfg->trace_every;

	if (!every || bpf_get_prandom_u32() % every)
		return;
	ferry_trace_emit(&pkt->key, ((__u64)ferry_ifindex(ctx, hook) << 32) | (hook << 8) | reason,
			 ((__u64)svc_id << 32) | predictor_id, backend_id);
}

/* floor(log2(v)) for v > 0; BPF has no count-leading-zeros instruction. */
static __always_inline __u32 ferry_log2(__u64 v)
{
	__u32 r = 0, s;

	s = (v > 0xffffffffULL) << 5;
	v >>= s;
	r |= s;
	s = (v > 0xffff) << 4;
	v >>= s;
	r |= s;
	s = (v > 0xff) << 3;
	v >>= s;
	r |= s;
	s = (v > 0xf) << 2;
	v >>= s;
	r |= s;
	s = (v > 0x3) << 1;
	v >>= s;
	r |= s;
	return r | (v >> 1);
}

/* The log-linear bucket described next to FERRY_HIST_BUCKETS. */
static __always_inline __u32 ferry_hist_bucket(__u64 ns)
{
	__u32 msb;

	if (ns < (1ULL << FERRY_HIST_MIN_SHIFT))
		return 0;
	msb = ferry_log2(ns);
	if (msb >= FERRY_HIST_MIN_SHIFT + FERRY_HIST_OCTAVES)
		return FERRY_HIST_BUCKETS - 1;
	return 1 + ((msb - FERRY_HIST_MIN_SHIFT) << FERRY_HIST_SUB_BITS) +
	       ((ns >> (msb - FERRY_HIST_SUB_BITS)) & ((1 << FERRY_HIST_SUB_BITS) - 1));
}

/*
 * kind_metric: kind | metric << 8 | protocol << 16 (enum ferry_l7_proto).
 * Global, so verified once on its own: as a static subprogram the verifier walks
 * its bucket arithmetic again for every caller's state (the request layer's
 * walk calls it from a loop, which took the XDP program past 1M instructions).
 */
static __always_inline void ferry_hist_add(__u32 id, __u32 kind_metric, __u64 ns)
{
	struct ferry_hist_key key = {
		.id = id,
		.kind = kind_metric & 0xff,
		.metric = (kind_metric >> 8) & 0xff,
		.protocol = (kind_metric >> 16) & 0xff,
	};
	struct ferry_hist *hist;
	__u32 b;

	hist = bpf_map_lookup_elem(&ferry_latency, &key);
	if (!hist) {
		/*
		 * Histograms are made on first use: memory goes only to predictors
		 * and backends that carry sampled traffic (3.5 KB per CPU each).
		 */
		__u32 zero = 0;
		const struct ferry_hist *empty = bpf_map_lookup_elem(&ferry_hist_zero, &zero);

		if (empty)
			bpf_map_update_elem(&ferry_latency, &key, empty, BPF_NOEXIST);
		hist = bpf_map_lookup_elem(&ferry_latency, &key);
		if (!hist) {
			ferry_count(FERRY_CTR_HIST_MISS);
			return;
		}
	}
	b = ferry_hist_bucket(ns);
	if (b >= FERRY_HIST_BUCKETS) /* for the verifier */
		b = FERRY_HIST_BUCKETS - 1;
	hist->count += 1;
	hist->sum_ns += ns;
	hist->bucket[b] += 1;
}

__noinline __attribute__((unused)) int ferry_hist_record(__u32 id, __u32 kind_metric, __u64 ns)
{
	ferry_hist_add(id, kind_metric, ns);
	return 0;
}

/*
 * Forward half of connect timing: payload from the client also ends a handshake whose
 * SYN-ACK we missed. Requests are timed by the request layer below.
 */
static __always_inline void ferry_fwd_latency(struct ferry_flow *flow, const struct ferry_pkt *pkt)
{
	if (pkt->payload_len && (flow->flags & FERRY_FLOW_F_SYN_PENDING))
		/* Atomic: the reply direction updates other bits from another CPU. */
		__sync_fetch_and_and(&flow->flags, ~FERRY_FLOW_F_SYN_PENDING);
}

/* Reply half: SYN-ACK ends a connect (sampled flows only). */
static __always_inline void ferry_reply_latency(struct ferry_flow *flow,
						const struct ferry_pkt *pkt)
{
	__u32 flags = flow->flags;
	__u64 delta;

	if (!(flags & FERRY_FLOW_F_SYN_PENDING) ||
	    (pkt->tcp_flags & (FERRY_TCP_SYN | FERRY_TCP_ACK)) != (FERRY_TCP_SYN | FERRY_TCP_ACK))
		return;
	__sync_fetch_and_and(&flow->flags, ~FERRY_FLOW_F_SYN_PENDING);
	delta = bpf_ktime_get_ns() - flow->pending_ns;
	flow->pending_ns = 0;
	ferry_hist_record(flow->predictor_id, FERRY_HIST_PREDICTOR | (FERRY_LAT_CONNECT << 8),
			  delta);
	ferry_hist_record(flow->backend_id, FERRY_HIST_BACKEND | (FERRY_LAT_CONNECT << 8), delta);
}

static __always_inline void ferry_stats_fwd(__u32 backend_id, __u32 len, __u32 new_flow, __u32 miss)
{
	struct ferry_stats *st = bpf_map_lookup_elem(&ferry_stats, &backend_id);

	if (!st)
		return;
	st->fwd_packets += 1;
	st->fwd_bytes += len;
	st->new_flows += new_flow;
	st->flow_misses += miss;
}

/* The client retransmitted its SYN: the backend did not answer the first in time. */
static __always_inline void ferry_stats_syn_timeout(__u32 backend_id)
{
	struct ferry_stats *st = bpf_map_lookup_elem(&ferry_stats, &backend_id);

	if (st)
		st->syn_timeouts += 1;
}

static __always_inline bool ferry_sampled(__u32 hash, __u32 every)
{
	if (every <= 1)
		return every == 1;
	return (hash >> 8) % every == 0;
}

#endif /* FERRY_OBSERVE_BPF_H */
