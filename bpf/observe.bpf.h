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

static __noinline __attribute__((unused)) int ferry_hist_record(__u32 id, __u32 kind_metric,
								__u64 ns)
{
	struct ferry_hist_key key = {
		.id = id,
		.kind = kind_metric & 0xff,
		.metric = kind_metric >> 8,
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
			return 0;
		}
	}
	b = ferry_hist_bucket(ns);
	if (b >= FERRY_HIST_BUCKETS) /* for the verifier */
		b = FERRY_HIST_BUCKETS - 1;
	hist->count += 1;
	hist->sum_ns += ns;
	hist->bucket[b] += 1;
	return 0;
}

/* Forward half of latency sampling: a request starts when the client sends payload. */
static __always_inline void ferry_fwd_latency(struct ferry_flow *flow, const struct ferry_pkt *pkt)
{
	__u32 flags = flow->flags;

	if (!pkt->payload_len || (flags & FERRY_FLOW_F_REQ_PENDING))
		return;
	/* Payload from the client also ends a handshake whose SYN-ACK we missed. */
	flow->pending_ns = bpf_ktime_get_ns();
	/* Atomics: the reply direction updates other bits of flags from another CPU. */
	__sync_fetch_and_and(&flow->flags, ~(FERRY_FLOW_F_SYN_PENDING | FERRY_FLOW_F_RESP_SEEN));
	__sync_fetch_and_or(&flow->flags, FERRY_FLOW_F_REQ_PENDING);
}

/* "HTTP/1.x NNN" -> its class; anything else (TLS, HTTP/2, gRPC) is unknown. */
static __always_inline __u32 ferry_http_class(void *ctx, const int hook,
					      const struct ferry_pkt *pkt)
{
	void *data = ferry_data(ctx, hook), *data_end = ferry_data_end(ctx, hook);
	const __u8 *p = data + (pkt->payload_off & 0xff);

	if (pkt->payload_len < 12 || (void *)(p + 12) > data_end)
		return FERRY_HTTP_UNKNOWN;
	if (p[0] != 'H' || p[1] != 'T' || p[2] != 'T' || p[3] != 'P' || p[4] != '/' ||
	    p[5] != '1' || p[6] != '.' || p[8] != ' ')
		return FERRY_HTTP_UNKNOWN;
	if (p[9] < '1' || p[9] > '5')
		return FERRY_HTTP_UNKNOWN;
	return p[9] - '1';
}

/* Reply half: SYN-ACK ends a connect, the first response payload ends a request. */
static __always_inline void ferry_reply_latency(void *ctx, const int hook, struct ferry_flow *flow,
						const struct ferry_pkt *pkt,
						struct ferry_stats *stats)
{
	__u32 flags = flow->flags;
	__u32 metric, class;
	__u64 delta;

	if ((flags & FERRY_FLOW_F_SYN_PENDING) &&
	    (pkt->tcp_flags & (FERRY_TCP_SYN | FERRY_TCP_ACK)) == (FERRY_TCP_SYN | FERRY_TCP_ACK)) {
		metric = FERRY_LAT_CONNECT;
		__sync_fetch_and_and(&flow->flags, ~FERRY_FLOW_F_SYN_PENDING);
	} else if ((flags & FERRY_FLOW_F_REQ_PENDING) && pkt->payload_len) {
		metric = FERRY_LAT_REQUEST;
		__sync_fetch_and_and(&flow->flags, ~FERRY_FLOW_F_REQ_PENDING);
		__sync_fetch_and_or(&flow->flags, FERRY_FLOW_F_RESP_SEEN);
		class = ferry_http_class(ctx, hook, pkt);
		if (stats && class < FERRY_HTTP_CLASSES)
			stats->http[class] += 1;
	} else {
		return;
	}
	delta = bpf_ktime_get_ns() - flow->pending_ns;
	flow->pending_ns = 0;
	ferry_hist_record(flow->predictor_id, FERRY_HIST_PREDICTOR | (metric << 8), delta);
	ferry_hist_record(flow->backend_id, FERRY_HIST_BACKEND | (metric << 8), delta);
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
