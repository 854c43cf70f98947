// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Rebalancing (the ferry_iter object): a TCP socket iterator that ends idle client connections ferryd
 * marked after a weight change, rollback or drain, so that the client's next
 * request goes out on a new connection that follows the new weights.
 *
 * ferryd reads the iterator once a tick while a rebalance is under way. For
 * each TCP socket of the namespace the iterator was created in that ferry
 * balanced (a flow of the packet path, client -> VIP; or a host client's
 * socket the connect hook pointed at a backend), it writes one struct
 * ferry_rebal_sock: what ferryd needs to choose which connections must go.
 * A socket ferryd marked (ferry_rb_marks, by cookie) whose deadline has
 * passed is ended with bpf_sock_destroy (Linux 6.5+) if it is idle, checked
 * here under the socket lock the iterator holds, so no send or receive can
 * slip in between the check and the abort.
 *
 * Idle: ESTABLISHED, nothing queued or unacknowledged, nothing unread, and no
 * request in flight: per ferry_l7's count when the packet path tracks the
 * flow. Without it (host clients, no L7 map) only the socket is seen, plus
 * one guess: a client whose last data went out well after its last receipt
 * (more than FERRY_TURN_JIFFIES later) has probably sent a request that is
 * not answered yet. Data sent right after a receipt is taken for the
 * acknowledgements HTTP/2 clients send after a response (WINDOW_UPDATE, a
 * PING for bandwidth probing), which would otherwise keep every idle gRPC
 * connection "busy".
 *
 * A marked connection that speaks h2c (ferry_l7 says so, or the service's
 * ferry.io/protocol does) is not aborted at once: the record carries the
 * socket's sequence numbers and timestamps instead (FERRY_RB_GOAWAY), ferryd
 * delivers an HTTP/2 GOAWAY into it through a raw socket, so that the client
 * moves its calls to a new connection by itself, and a later pass ends the
 * socket (FERRY_RB_GOAWAY_WAIT until then; see struct ferry_rebal_mark). An
 * abort alone fails a call the client wrote before it noticed (gRPC C-core).
 *
 * Kernel structures are read with CO-RE (BTF of the running kernel) through
 * the few fields declared below; the object is separate from the others so
 * that a kernel without the kfunc or the iterator only loses rebalancing.
 */
#include <linux/bpf.h>
#include <linux/in6.h>
#include <stdbool.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "ferry_maps.h"

/* The fields this program reads; libbpf relocates them against the kernel's BTF. */
struct sock_common {
	union {
		struct {
			__be32 skc_daddr;
			__be32 skc_rcv_saddr;
		};
	};
	union {
		struct {
			__be16 skc_dport;
			__u16 skc_num;
		};
	};
	unsigned short skc_family;
	volatile unsigned char skc_state;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
	int sk_wmem_queued;
} __attribute__((preserve_access_index));

struct inet_connection_sock {
	struct {
		__u32 lrcvtime;
	} icsk_ack;
} __attribute__((preserve_access_index));

struct tcp_options_received {
	__u32 ts_recent;
	__u32 rcv_tsecr;
	__u16 tstamp_ok : 1, snd_wscale : 4;
} __attribute__((preserve_access_index));

struct tcp_sock {
	struct inet_connection_sock inet_conn;
	__u32 rcv_nxt;
	__u32 copied_seq;
	__u32 snd_una;
	__u32 snd_nxt;
	__u32 snd_wnd;
	__u32 write_seq;
	__u32 lsndtime;
	struct tcp_options_received rx_opt;
} __attribute__((preserve_access_index));

struct bpf_iter_meta {
	void *seq;
} __attribute__((preserve_access_index));

struct bpf_iter__tcp {
	struct bpf_iter_meta *meta;
	struct sock_common *sk_common;
} __attribute__((preserve_access_index));

extern int bpf_sock_destroy(struct sock_common *sk) __ksym;

#define AF_INET 2
#define AF_INET6 10
#define TCP_ESTABLISHED 1
#define IPPROTO_TCP 6

/* Jiffies: at HZ=1000 2 ms, at HZ=250 8 ms. */
#define FERRY_TURN_JIFFIES 2

/* Set by ferryd before load: whether ferry_l7 (the HTTP/2 tracker's map) is the real one. */
const volatile bool ferry_have_l7 = false;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FERRY_MAX_FLOWS);
	__type(key, struct ferry_flow_key);
	__type(value, struct ferry_flow);
} ferry_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ferry_sock_sel);
} ferry_sock_sel SEC(".maps");

/*
 * ferry_l7 (struct ferry_l7: the head's counts and the GOAWAY state). ferryd
 * points this at the pin before load; without the pin it stays a private
 * one-entry map.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1);
	__type(key, struct ferry_flow_key);
	__type(value, struct ferry_l7);
} ferry_l7 SEC(".maps");

/* Socket cookie -> ferryd's decision; ferryd writes it, this program only reads. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct ferry_rebal_mark);
} ferry_rb_marks SEC(".maps");

/* The socket's tuple as the client's flow key: local -> remote. IPv4-mapped IPv6 counts as IPv4. */
static __always_inline bool socket_key(const struct sock_common *skc, struct ferry_flow_key *key)
{
	unsigned short family = skc->skc_family;

	key->proto = IPPROTO_TCP;
	key->sport = bpf_htons(skc->skc_num);
	key->dport = skc->skc_dport;
	if (family == AF_INET6) {
		struct in6_addr d = skc->skc_v6_daddr, s = skc->skc_v6_rcv_saddr;

		if (!(d.in6_u.u6_addr32[0] == 0 && d.in6_u.u6_addr32[1] == 0 &&
		      d.in6_u.u6_addr32[2] == bpf_htonl(0x0000ffff))) {
			key->family = FERRY_AF_INET6;
			__builtin_memcpy(key->saddr, s.in6_u.u6_addr32, 16);
			__builtin_memcpy(key->daddr, d.in6_u.u6_addr32, 16);
			return true;
		}
	} else if (family != AF_INET) {
		return false;
	}
	key->family = FERRY_AF_INET;
	key->saddr[0] = skc->skc_rcv_saddr;
	key->daddr[0] = skc->skc_daddr;
	return true;
}

/* Why tp is not idle (FERRY_RB_BUSY_*), 0 when it is. */
static __always_inline __u8 busy_reason(const struct sock_common *skc, struct tcp_sock *tp,
					struct ferry_rebal_sock *rec, bool l7_known)
{
	const struct sock *sk = (const struct sock *)tp;
	__u8 busy = 0;

	if (skc->skc_state != TCP_ESTABLISHED)
		busy |= FERRY_RB_BUSY_STATE;
	if (sk->sk_wmem_queued || tp->write_seq != tp->snd_una)
		busy |= FERRY_RB_BUSY_SEND;
	if (tp->rcv_nxt != tp->copied_seq)
		busy |= FERRY_RB_BUSY_RECV;
	if (l7_known) {
		if (rec->inflight)
			busy |= FERRY_RB_BUSY_L7;
	} else if ((__s32)(tp->lsndtime - tp->inet_conn.icsk_ack.lrcvtime) > FERRY_TURN_JIFFIES) {
		busy |= FERRY_RB_BUSY_TURN;
	}
	return busy;
}

/* A due, idle connection is told with a GOAWAY first when it speaks h2c (and ferryd can send). */
static __always_inline bool wants_goaway(const struct ferry_rebal_sock *rec,
					 const struct ferry_rebal_mark *mark)
{
	if (mark->flags & FERRY_RB_MARK_ABORT)
		return false;
	return rec->l7_protocol == FERRY_L7_H2C || (mark->flags & FERRY_RB_MARK_H2C);
}

/* What ferryd's forged segment needs, read under the socket lock. */
static __always_inline void segment_state(struct tcp_sock *tp, struct ferry_rebal_sock *rec)
{
	__u32 wscale = BPF_CORE_READ_BITFIELD(tp, rx_opt.snd_wscale);

	rec->rcv_nxt = tp->rcv_nxt;
	rec->snd_nxt = tp->snd_nxt;
	rec->window = tp->snd_wnd >> (wscale & 15);
	if (BPF_CORE_READ_BITFIELD(tp, rx_opt.tstamp_ok)) {
		rec->tcp_flags |= FERRY_RB_TCP_TSTAMP;
		rec->ts_recent = tp->rx_opt.ts_recent;
		rec->ts_ecr = tp->rx_opt.rcv_tsecr;
	}
}

/*
 * Phase 2, after the GOAWAY: end the socket once the client closed it, or read
 * the frame and had a moment to move its calls, or at the limit; the GOAWAY
 * desynchronised the byte stream (the server never sent those bytes), so the
 * connection cannot go on. At the limit a socket that neither received the frame
 * nor is idle is left (the GOAWAY was lost; the round's end gives it up).
 */
static __always_inline __u8 after_goaway(struct sock_common *skc, struct tcp_sock *tp,
					 const struct ferry_rebal_mark *mark, __u8 busy, __u64 now,
					 bool dropping, __u32 *snd_una)
{
	bool closed = skc->skc_state != TCP_ESTABLISHED;
	bool read = (__s32)(tp->copied_seq - mark->goaway_end_seq) >= 0;
	bool received = (__s32)(tp->rcv_nxt - mark->goaway_end_seq) >= 0;
	__u64 age = now - mark->goaway_ns;

	/* A connection whose payload the data path drops cannot go on either way: ended at the limit. */
	if (!(closed || (read && age >= FERRY_RB_GOAWAY_LINGER_NS) ||
	      (age >= FERRY_RB_GOAWAY_LIMIT_NS && (received || !busy || dropping))))
		return FERRY_RB_GOAWAY_WAIT;
	/* Read before the abort: where the server's side takes ferryd's RST (rebalance.c). */
	*snd_una = tp->snd_una;
	return bpf_sock_destroy(skc) ? FERRY_RB_FAILED : FERRY_RB_DESTROYED;
}

/*
 * A due h2c connection that is busy at every pass (calls back to back) is
 * armed instead: the reply path appends the GOAWAY to the backend's next
 * segment that ends with no stream open (bpf/l7.bpf.h, ferry_l7_tell).
 */
static __always_inline bool can_arm(const struct ferry_rebal_sock *rec, const struct ferry_l7 *l7,
				    bool l7_known)
{
	return l7 && l7_known && l7->head.protocol == FERRY_L7_H2C && !l7->head.goaway &&
	       !(rec->busy & FERRY_RB_BUSY_STATE);
}

SEC("iter/tcp")
int ferry_rebal_iter(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct ferry_rebal_sock rec = {};
	struct ferry_rebal_mark *mark;
	struct ferry_l7 *l7 = NULL;
	struct ferry_sock_sel *sel;
	struct ferry_flow *flow;
	struct tcp_sock *tp;
	bool l7_known = false;

	if (!skc)
		return 0;
	/* Listeners, request and time-wait sockets are not connections a client holds. */
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp || skc->skc_state == 10 /* TCP_LISTEN */)
		return 0;
	if (!socket_key(skc, &rec.key))
		return 0;
	sel = bpf_sk_storage_get(&ferry_sock_sel, tp, 0, 0);
	if (sel) {
		rec.origin = FERRY_RB_ORIGIN_CONNECT;
		rec.svc_id = sel->svc_id;
		rec.predictor_id = sel->predictor_id;
		rec.backend_id = sel->backend_id;
	} else {
		flow = bpf_map_lookup_elem(&ferry_flows, &rec.key);
		if (!flow)
			return 0;
		rec.origin = FERRY_RB_ORIGIN_FLOW;
		rec.svc_id = flow->svc_id;
		rec.predictor_id = flow->predictor_id;
		rec.backend_id = flow->backend_id;
		/* Until its first payload, a new connection's entry is an earlier one's. */
		if (ferry_have_l7 && !(flow->flags & FERRY_FLOW_F_L7_FRESH)) {
			l7 = bpf_map_lookup_elem(&ferry_l7, &rec.key);
			if (l7) {
				rec.inflight = l7->head.inflight;
				rec.requests = l7->head.requests;
				rec.l7_protocol = l7->head.protocol;
				rec.l7_flags = l7->head.flags;
				rec.l7_goaway = l7->head.goaway;
				/* An unsynchronised tracker's count means nothing: fall back. */
				l7_known = l7->head.protocol != FERRY_L7_UNKNOWN &&
					   !(l7->head.flags & FERRY_L7_F_UNSYNC);
			}
		}
	}
	rec.cookie = bpf_get_socket_cookie(tp);
	rec.busy = busy_reason(skc, tp, &rec, l7_known);
	mark = bpf_map_lookup_elem(&ferry_rb_marks, &rec.cookie);
	if (mark) {
		__u64 now = bpf_ktime_get_ns();
		bool dropping = rec.l7_goaway >= FERRY_L7_GOAWAY_TOLD;

		if (mark->goaway_ns) {
			rec.verdict =
				after_goaway(skc, tp, mark, rec.busy, now, dropping, &rec.snd_una);
		} else if (l7 && rec.l7_goaway == FERRY_L7_GOAWAY_TOLD) {
			/* The reply path appended it since the last pass: phase 2 from now. */
			rec.goaway_end_seq = l7->goaway_seq + FERRY_GOAWAY_FRAME_LEN;
			rec.verdict = FERRY_RB_TOLD;
		} else if (dropping && (mark->flags & FERRY_RB_MARK_ABORT)) {
			/* ferryd could not send its GOAWAY: nothing goes through any more. */
			rec.verdict = bpf_sock_destroy(skc) ? FERRY_RB_FAILED : FERRY_RB_DESTROYED;
		} else if (mark->deadline_ns > now) {
			/* not due yet */
		} else if (rec.busy) {
			if (can_arm(&rec, l7, l7_known))
				l7->head.goaway = FERRY_L7_GOAWAY_TELL;
			rec.verdict = FERRY_RB_BUSY;
		} else if (wants_goaway(&rec, mark)) {
			segment_state(tp, &rec);
			/*
			 * The data path drops what would land on or past the frame
			 * (a PING ack racing ferryd's segment; a call the client
			 * sends before it reads the frame); the sequence number first.
			 */
			if (l7 && rec.l7_goaway != FERRY_L7_GOAWAY_TOLD) {
				*(volatile __u32 *)&l7->goaway_seq = tp->rcv_nxt;
				*(volatile __u16 *)&l7->head.goaway = FERRY_L7_GOAWAY_RAW;
				__sync_fetch_and_or(&flow->flags, FERRY_FLOW_F_TOLD);
			}
			rec.verdict = FERRY_RB_GOAWAY;
		} else {
			rec.verdict = bpf_sock_destroy(skc) ? FERRY_RB_FAILED : FERRY_RB_DESTROYED;
		}
	}
	bpf_seq_write(ctx->meta->seq, &rec, sizeof(rec));
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
