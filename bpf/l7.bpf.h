/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The request layer: what a TCP flow's payload says about requests, on every
 * flow (counts, streams in flight for rebalancing), timed on sampled flows.
 *
 * - HTTP/2 in clear text (h2c, gRPC): the client preface, then the frame layer
 *   in both directions, located by TCP sequence number (struct ferry_l7_dir). A
 *   client HEADERS on a new stream opens a request; the backend's first HEADERS
 *   on it ends it (time to response headers); END_STREAM from the backend or a
 *   RST_STREAM closes the stream.
 * - HTTP/1.x: the first client payload opens a request, the first response
 *   that is not an interim 1xx ends it.
 * - Anything else (TLS): one exchange at a time, as before, as protocol unknown.
 *
 * All of it runs in one global function per hook (verified once, on its own,
 * so the XDP program's budget does not grow with it) and walks frame headers
 * in a bpf_loop callback (verified once whatever the number of frames).
 */
#ifndef FERRY_L7_BPF_H
#define FERRY_L7_BPF_H

#include "hook.bpf.h"
#include "maps.bpf.h"
#include "parse.bpf.h"
#include "observe.bpf.h"

#define FERRY_H2_HDR_LEN 9
#define FERRY_H2_PREFACE_LEN 24
#define FERRY_H1_HEAD_LEN 12 /* "HTTP/1.1 200": what a status class needs */
/*
 * Frame headers walked per packet at most. A GSO packet at TC holds up to 64 KB;
 * gRPC's smallest answer is three frames (HEADERS, DATA, trailers) of about 60
 * bytes, so 64 KB of them is ~1100 headers. A packet with more is not followed:
 * the flow is marked unsynchronised (counted).
 */
#define FERRY_H2_MAX_FRAMES 2048

#define FERRY_H2_DATA 0x0
#define FERRY_H2_HEADERS 0x1
#define FERRY_H2_RST_STREAM 0x3
#define FERRY_H2_END_STREAM 0x1
#define FERRY_H2_END_HEADERS 0x4
/* The frame size every peer must accept (RFC 9113, SETTINGS_MAX_FRAME_SIZE's initial value). */
#define FERRY_H2_FRAME_MIN_MAX 16384
#define FERRY_H2_FRAME_MAX 0xffffff /* the length field's */
/*
 * Searching a segment past a hole: in chunks of this many bytes (a segment
 * shorter than one is not searched), at most FERRY_H2_SEARCHES searches a
 * direction not paid back, one paid back per FERRY_H2_WALKED segments walked.
 */
#define FERRY_H2_CHUNK 256
#define FERRY_H2_WALKED 64
#define FERRY_H2_SEARCH_WORDS (65536 / 8 + FERRY_H2_CHUNK / 8)

/* What ferry_l7_track says to do with the packet. */
#define FERRY_L7_PASS 0
#define FERRY_L7_APPEND_GOAWAY 1 /* reply: append the GOAWAY frame (FERRY_L7_GOAWAY_TOLD) */
#define FERRY_L7_DROP 2 /* payload past a GOAWAY on a told connection */
#define FERRY_L7_APPEND_AGAIN 3 /* reply: the appended segment retransmitted: the frame again */

/* Packed arguments of ferry_l7_xdp / ferry_l7_skb (a global function takes five). */
#define FERRY_L7_ARG_SAMPLED (1ULL << 49)
/* The connection's first payload (FERRY_FLOW_F_L7_FRESH): reset the tuple's state first. */
#define FERRY_L7_ARG_FRESH (1ULL << 50)

/*
 * Stack is the scarce resource: the XDP program's own frame is ~450 of the 512
 * bytes every kernel allows a program and its deepest call chain (6.1 rounds
 * each frame up to 32). So the request layer's state for one packet lives in a
 * per-CPU scratch value, and the bpf_loop callback gets on the stack only what
 * cannot go in a map: the pointers. Chain: XDP frame + ferry_l7_xdp (32) +
 * callback (32), with no call below the callback (it adds histogram samples
 * inline).
 */
struct ferry_l7_scratch {
	__u8 head[FERRY_H2_PREFACE_LEN]; /* the payload's first bytes */
	struct ferry_vip vip;
	/*
	 * The flow key, copied: 6.1 takes a global function's pointer argument
	 * (PTR_TO_MEM) as a map key for no helper (6.18 does).
	 */
	struct ferry_flow_key key;
	__u32 seq;
	__u32 predictor_id;
	__u32 backend_id;
	__u32 base; /* payload offset in the frame */
	__u32 len; /* payload length */
	__u32 off; /* where the next header byte we need is, in the payload */
	__u32 dir; /* 0: client -> backend, 1: backend -> client */
	__u32 sampled;
	__u32 unsync;
	/* Keys the callback passes to lookups from here, not from its stack. */
	struct ferry_hist_key hkey;
	__u32 zero;
	__u32 hist_miss; /* FERRY_CTR_HIST_MISS */
	__u8 cand[FERRY_H2_HDR_LEN]; /* ferry_h2_bridge: a frame header it guessed, read */
	/*
	 * ferry_h2_bridge: the stream sought, the next header expected, the last
	 * frame's span and the largest frame taken, whether a guess fell past the
	 * segment; the search's chunk offset and where it found a header + 1.
	 */
	__u32 sid;
	__u32 want;
	__u32 span;
	__u32 max;
	__u32 fits;
	__u32 search_off;
	__u32 found;
	__u8 chunk[FERRY_H2_CHUNK] __attribute__((aligned(8)));
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ferry_l7_scratch);
} ferry_l7_tmp SEC(".maps");

/* The bpf_loop context: the pointers, on the stack (a map value cannot hold them). */
struct ferry_l7_walk {
	void *ctx;
	struct ferry_l7 *l7;
	struct ferry_l7_scratch *t;
};

static __always_inline long ferry_l7_load(void *ctx, const int hook, __u32 off, void *dst,
					  __u32 len)
{
	if (hook == FERRY_HOOK_XDP)
		return bpf_xdp_load_bytes(ctx, off, dst, len);
	return bpf_skb_load_bytes(ctx, off, dst, len);
}

/* ferry_hist_add with every key in the scratch value: the callback has no stack to spare. */
static __always_inline void ferry_l7_hist_add(struct ferry_l7_scratch *t, __u32 id, __u8 kind,
					      __u8 proto, __u64 ns)
{
	struct ferry_hist *hist;
	__u64 *ctr;
	__u32 b;

	t->hkey.id = id;
	t->hkey.kind = kind;
	t->hkey.metric = FERRY_LAT_REQUEST;
	t->hkey.protocol = proto;
	t->hkey.pad = 0;
	hist = bpf_map_lookup_elem(&ferry_latency, &t->hkey);
	if (!hist) {
		const struct ferry_hist *empty = bpf_map_lookup_elem(&ferry_hist_zero, &t->zero);

		if (empty)
			bpf_map_update_elem(&ferry_latency, &t->hkey, empty, BPF_NOEXIST);
		hist = bpf_map_lookup_elem(&ferry_latency, &t->hkey);
		if (!hist) {
			ctr = bpf_map_lookup_elem(&ferry_counters, &t->hist_miss);
			if (ctr)
				*ctr += 1;
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

static __always_inline void ferry_l7_time(struct ferry_l7_scratch *t, __u8 proto, __u64 ns)
{
	if (!t->sampled)
		return;
	ferry_l7_hist_add(t, t->predictor_id, FERRY_HIST_PREDICTOR, proto, ns);
	ferry_l7_hist_add(t, t->backend_id, FERRY_HIST_BACKEND, proto, ns);
}

static __always_inline struct ferry_stats *ferry_l7_stats(struct ferry_l7_scratch *t)
{
	return bpf_map_lookup_elem(&ferry_stats, &t->backend_id);
}

/* A stream or request is over: one answered, one fewer in flight (never below 0). */
static __always_inline void ferry_l7_close(struct ferry_l7 *l7)
{
	__sync_fetch_and_add(&l7->head.requests, 1);
	if (l7->head.inflight)
		__sync_fetch_and_add(&l7->head.inflight, -1);
}

/*
 * Whether a stream that holds no slot is open: more in flight than slots in
 * use. A close event (END_STREAM, RST_STREAM) for a stream without a slot is
 * either such a stream's or a late one for a stream already closed (a reset
 * after END_STREAM): it lowers the count only while the first is possible, so
 * it can never take a tracked stream's share. The one case still miscounted
 * (a late reset of an untracked stream while another untracked one is open)
 * lowers the count by one too early, never below the tracked streams.
 */
static __always_inline bool ferry_l7_untracked_open(const struct ferry_l7 *l7)
{
	__u32 used = 0, i;

	for (i = 0; i < FERRY_L7_STREAMS; i++)
		used += l7->stream_id[i] != 0;
	return l7->head.inflight > used;
}

static __always_inline void ferry_h2_client_frame(struct ferry_l7_walk *w, __u8 type, __u32 sid)
{
	struct ferry_l7 *l7 = w->l7;
	struct ferry_stats *st;
	__u32 i;

	/* Client streams are odd and increase: a smaller id is trailers or a CONTINUATION. */
	if (type == FERRY_H2_HEADERS && (sid & 1) && sid > l7->last_stream) {
		l7->last_stream = sid;
		__sync_fetch_and_add(&l7->head.inflight, 1);
		l7->head.last_ns = ferry_now();
		st = ferry_l7_stats(w->t);
		if (st)
			st->requests[FERRY_L7_H2C] += 1;
		for (i = 0; i < FERRY_L7_STREAMS; i++) {
			if (!l7->stream_id[i]) {
				l7->stream_id[i] = sid;
				l7->stream_ns[i] = bpf_ktime_get_ns();
				return;
			}
		}
		/* Beyond FERRY_L7_STREAMS at once: counted and closed by END_STREAM, not timed. */
		if (st)
			st->streams_skipped += 1;
		return;
	}
	if (type != FERRY_H2_RST_STREAM)
		return;
	/* A reset by the client closes the stream, tracked or not (ferry_l7_untracked_open). */
	for (i = 0; i < FERRY_L7_STREAMS; i++) {
		if (l7->stream_id[i] == sid) {
			l7->stream_id[i] = 0;
			ferry_l7_close(l7);
			return;
		}
	}
	if ((sid & 1) && sid <= l7->last_stream && ferry_l7_untracked_open(l7))
		ferry_l7_close(l7);
}

static __always_inline void ferry_h2_server_frame(struct ferry_l7_walk *w,
						  struct ferry_l7_scratch *t, __u8 type, __u8 flags,
						  __u32 sid)
{
	struct ferry_l7 *l7 = w->l7;
	struct ferry_stats *st;
	bool end = flags & FERRY_H2_END_STREAM;
	__u64 start;
	__u32 i;

	if (type == FERRY_H2_RST_STREAM) {
		st = ferry_l7_stats(t);
		if (st)
			st->h2_resets += 1;
		end = true;
	} else if (type != FERRY_H2_HEADERS && !(type == FERRY_H2_DATA && end)) {
		return;
	}
	if (!sid || (sid & 1) == 0)
		return; /* the connection's own frames, or a pushed stream */
	l7->head.last_ns = ferry_now();
	for (i = 0; i < FERRY_L7_STREAMS; i++) {
		if (l7->stream_id[i] != sid)
			continue;
		/* The stream's first response HEADERS: time to response headers. */
		start = l7->stream_ns[i];
		if (type == FERRY_H2_HEADERS && start) {
			l7->stream_ns[i] = 0;
			ferry_l7_time(t, FERRY_L7_H2C, bpf_ktime_get_ns() - start);
		}
		if (end) {
			l7->stream_id[i] = 0;
			ferry_l7_close(l7);
		}
		return;
	}
	/*
	 * Not tracked: a stream beyond the slots (closed by its END_STREAM or a
	 * reset) or one already closed (a reset after END_STREAM): see
	 * ferry_l7_untracked_open. A reset used to be ignored here, so a stream
	 * beyond the slots that the server reset stayed in flight for good.
	 */
	if (end && sid <= l7->last_stream && ferry_l7_untracked_open(l7))
		ferry_l7_close(l7);
}

/* A frame header's length field. */
static __always_inline __u32 ferry_h2_len(const __u8 *h)
{
	return ((__u32)h[0] << 16) | ((__u32)h[1] << 8) | h[2];
}

/* A frame header's last four bytes: the stream id, with the reserved bit. */
static __always_inline __u32 ferry_h2_sid_r(const __u8 *h)
{
	return ((__u32)h[5] << 24) | ((__u32)h[6] << 16) | ((__u32)h[7] << 8) | h[8];
}

/*
 * n (1..8) bytes of a frame header split across segments, into d->hdr from
 * byte have on, one byte per load: 6.1 loses the bounds of a variable load
 * size somewhere between the check and the call (it saw a size that may be 0),
 * and this is the rare path.
 */
static __always_inline int ferry_h2_load_part(void *ctx, const int hook, __u32 off,
					      struct ferry_l7_dir *d, __u32 have, __u32 n)
{
	__u32 k;

#pragma unroll
	for (k = 0; k < FERRY_H2_HDR_LEN - 1; k++) {
		if (k >= n)
			break;
		if (have + k >= FERRY_H2_HDR_LEN ||
		    ferry_l7_load(ctx, hook, off + k, &d->hdr[have + k], 1))
			return -1;
	}
	return 0;
}

/*
 * One frame header of the walk: completes it (it may have begun in an earlier
 * segment), acts on it and moves to the next. 0: go on, 1: stop.
 */
static __always_inline long ferry_h2_step(const int hook, struct ferry_l7_walk *w)
{
	struct ferry_l7_scratch *t = w->t;
	struct ferry_l7 *l7 = w->l7;
	struct ferry_l7_dir *d;
	__u32 have, need, left, flen, sid;
	__u8 *h;

	if (t->off >= t->len)
		return 1;
	d = &l7->dir[t->dir & 1];
	have = d->hdr_have;
	if (have >= FERRY_H2_HDR_LEN)
		goto lost;
	need = FERRY_H2_HDR_LEN - have;
	left = t->len - t->off;
	if (left < need) {
		/* The header goes on in the next segment: keep its first bytes. */
		if (ferry_h2_load_part(w->ctx, hook, t->base + t->off, d, have, left))
			goto lost;
		d->hdr_have = have + left;
		t->off = t->len;
		return 1;
	}
	if (have ? ferry_h2_load_part(w->ctx, hook, t->base + t->off, d, have, need) :
		   ferry_l7_load(w->ctx, hook, t->base + t->off, d->hdr, FERRY_H2_HDR_LEN))
		goto lost;
	h = d->hdr;
	flen = ferry_h2_len(h);
	sid = ferry_h2_sid_r(h) & 0x7fffffff;
	/* HEADERS and RST_STREAM always name a stream: without one we are lost. */
	if ((h[3] == FERRY_H2_HEADERS || h[3] == FERRY_H2_RST_STREAM) && !sid)
		goto lost;
	d->hdr_have = 0;
	d->hdr_seq += FERRY_H2_HDR_LEN + flen;
	t->off += need + flen;
	if (t->dir)
		ferry_h2_server_frame(w, t, h[3], h[4], sid);
	else
		ferry_h2_client_frame(w, h[3], sid);
	return 0;
lost:
	t->unsync = 1;
	return 1;
}

static long ferry_h2_step_xdp(__u32 i, void *arg)
{
	return ferry_h2_step(FERRY_HOOK_XDP, arg);
}

static long ferry_h2_step_skb(__u32 i, void *arg)
{
	return ferry_h2_step(FERRY_HOOK_TC_INGRESS, arg);
}

/*
 * Where the hole before a segment may have ended, past the frames it is taken
 * to hold (see ferry_h2_bridge): none, or one or two of the small frames a
 * peer sends between DATA frames (WINDOW_UPDATE and RST_STREAM 13 bytes, PING
 * 17), in bytes.
 */
#define FERRY_H2_BRIDGE_TRIES 6
static const __u8 ferry_h2_bridge_slack[FERRY_H2_BRIDGE_TRIES] = { 0, 13, 17, 26, 30, 34 };

/* A frame header the bridge can take: on the hole's stream, a kind that stream carries. */
static __always_inline bool ferry_h2_bridge_ok(const __u8 *h, __u32 sid, __u32 max)
{
	__u32 flen = ferry_h2_len(h);

	if (ferry_h2_sid_r(h) != sid)
		return false; /* also rejects the reserved bit */
	switch (h[3]) {
	case FERRY_H2_DATA: /* END_STREAM, PADDED */
		return flen <= max && !(h[4] & ~0x09);
	case FERRY_H2_HEADERS: /* END_STREAM, END_HEADERS, PADDED, PRIORITY */
		return flen <= max && !(h[4] & ~0x2d);
	case FERRY_H2_RST_STREAM:
		return flen == 4 && !h[4];
	}
	return false;
}

/*
 * One word of a search for a header of stream t->sid, reloading the chunk at
 * each chunk's first word: every byte equal to the stream id's last byte
 * (found a word at a time) is checked as the end of a frame header. A word
 * per call: a loop over a chunk's words and their bytes in one callback took
 * the verifier past its budget. 0: go on, 1: stop (t->found set, or the end).
 */
static __always_inline long ferry_h2_search_step(const int hook, __u32 i, struct ferry_l7_walk *w)
{
	struct ferry_l7_scratch *t = w->t;
	__u64 pat = 0x0101010101010101ULL * (t->sid & 0xff), x;
	__u32 word = i % (FERRY_H2_CHUNK / 8), start, b, at;

	if (!word) {
		start = i / (FERRY_H2_CHUNK / 8) * FERRY_H2_CHUNK;
		if (start >= t->len)
			return 1;
		/* The last chunk ends at the segment's end (it may look at bytes again). */
		if (start > t->len - FERRY_H2_CHUNK)
			start = t->len - FERRY_H2_CHUNK;
		if (ferry_l7_load(w->ctx, hook, t->base + start, t->chunk, FERRY_H2_CHUNK))
			return 1;
		t->search_off = start;
	}
	x = ((__u64 *)t->chunk)[word] ^ pat;
	if (!((x - 0x0101010101010101ULL) & ~x & 0x8080808080808080ULL))
		return 0;
#pragma unroll
	for (b = 0; b < 8; b++) {
		if (t->chunk[(word * 8 + b) & (FERRY_H2_CHUNK - 1)] != (t->sid & 0xff))
			continue;
		at = t->search_off + word * 8 + b; /* the header's last byte */
		if (at < FERRY_H2_HDR_LEN - 1 || at >= t->len)
			continue;
		if (ferry_l7_load(w->ctx, hook, t->base + at - (FERRY_H2_HDR_LEN - 1), t->cand,
				  FERRY_H2_HDR_LEN))
			return 1;
		if (ferry_h2_bridge_ok(t->cand, t->sid, FERRY_H2_FRAME_MAX)) {
			t->found = at - (FERRY_H2_HDR_LEN - 1) + 1;
			return 1;
		}
	}
	return 0;
}

static long ferry_h2_search_xdp(__u32 i, void *arg)
{
	return ferry_h2_search_step(FERRY_HOOK_XDP, i, arg);
}

static long ferry_h2_search_skb(__u32 i, void *arg)
{
	return ferry_h2_search_step(FERRY_HOOK_TC_INGRESS, i, arg);
}

/*
 * A segment that starts past the next frame header: the bytes before it come
 * later (a veth hands a bulk sender's GSO packets to per-CPU backlogs, which
 * reorder them) or were lost before ferry and come again. It happens inside
 * large messages, where the last frame walked is a DATA frame of a stream
 * that goes on, or the HEADERS before one; the segment is walked from its
 * first header of that stream, found in one of two ways. A peer that sends
 * DATA frames of one size puts it at one of a few places (the hole holds more
 * such frames, perhaps one or two small control frames): those are read
 * first. After HEADERS, or otherwise, the segment is
 * searched (ferry_h2_search_step), at most FERRY_H2_SEARCHES times per
 * direction not paid back by walked segments. A header is taken only if it
 * reads as a frame of that stream (payload bytes that do, stream id included,
 * are about a 1-in-2^40 chance per place). The hole's own segment then falls
 * wholly before the next header and is skipped, as a retransmission is. A
 * segment with no header of the stream is skipped (the inside of a frame, as
 * far as can be told); the hole's segment, when it comes, is walked. What a
 * skipped segment held of other streams is lost. 1: walk from t->off; 0:
 * skip; -1: the frame layer is lost.
 */
static __always_inline int ferry_h2_bridge(const int hook, struct ferry_l7_walk *w,
					   struct ferry_l7_scratch *t, struct ferry_l7_dir *d,
					   __u32 want)
{
	const __u8 *h = d->hdr;
	__u32 flen, gap, c, off, i;

	/* d->hdr is the last header walked, unless one is half read. */
	if (d->hdr_have)
		return -1;
	/*
	 * What the guesses need lives in the scratch value, not in registers:
	 * spilled across the loads, it took the request layer's frame past
	 * Linux 6.1's 512 bytes for the whole call chain.
	 */
	flen = ferry_h2_len(h);
	t->sid = ferry_h2_sid_r(h);
	if (!t->sid || (t->sid & 0x80000000))
		return -1;
	/*
	 * A whole header block of a stream that goes on: its message's DATA
	 * comes next, of a size nothing walked so far tells, so there is no
	 * run to guess from (a server writes a response's HEADERS in a
	 * segment of their own, then the message in GSO packets: the second
	 * of those overtaking the first leaves this hole).
	 */
	if (h[3] == FERRY_H2_HEADERS &&
	    (h[4] & (FERRY_H2_END_STREAM | FERRY_H2_END_HEADERS)) == FERRY_H2_END_HEADERS)
		goto search;
	if (h[3] != FERRY_H2_DATA || (h[4] & FERRY_H2_END_STREAM))
		return -1;
	t->want = want;
	t->span = FERRY_H2_HDR_LEN + flen;
	t->max = flen > FERRY_H2_FRAME_MIN_MAX ? flen : FERRY_H2_FRAME_MIN_MAX;
	t->fits = 0;
	/* Unrolled: Linux 6.1 rejects the loop clang makes of it (its back edge is a fall-through). */
#pragma unroll
	for (i = 0; i < FERRY_H2_BRIDGE_TRIES; i++) {
		gap = t->seq - t->want - ferry_h2_bridge_slack[i];
		if ((__s32)gap < 0)
			gap = 0;
		/* The first place at or past the segment's start. */
		c = t->want + ferry_h2_bridge_slack[i] + (gap + t->span - 1) / t->span * t->span;
		off = c - t->seq;
		if (off + FERRY_H2_HDR_LEN > t->len) {
			t->fits = 1; /* no whole header here under this guess */
			continue;
		}
		t->off = off;
		if (ferry_l7_load(w->ctx, hook, t->base + off, t->cand, FERRY_H2_HDR_LEN))
			return -1;
		if (ferry_h2_bridge_ok(t->cand, t->sid, t->max)) {
			d->hdr_seq = t->seq + t->off;
			return 1;
		}
	}
	/*
	 * A place past the segment: under that guess it holds no header, and
	 * it is skipped (a search would cost more than it tells: frames as
	 * large as gRPC's messages, 1 MB in one frame, hold no header in most
	 * segments).
	 */
	if (t->fits)
		return 0;
	/*
	 * Frames of varying size (a sender that cuts DATA frames to what flow
	 * control lets it send): search the segment for a header of the
	 * stream. Found nowhere, the segment is taken for the inside of one
	 * frame and skipped.
	 */
search:
	if (t->len < FERRY_H2_CHUNK || d->searches >= FERRY_H2_SEARCHES)
		return -1;
	d->searches++;
	t->found = 0;
	if (hook == FERRY_HOOK_XDP)
		bpf_loop(FERRY_H2_SEARCH_WORDS, ferry_h2_search_xdp, w, 0);
	else
		bpf_loop(FERRY_H2_SEARCH_WORDS, ferry_h2_search_skb, w, 0);
	if (!t->found)
		return 0;
	off = t->found - 1;
	d->hdr_seq = t->seq + off;
	t->off = off;
	return 1;
}

/*
 * Lines a segment [seq, seq + len) up with the next frame header of its
 * direction and walks the headers in it. A segment wholly before that header
 * (inside a frame's payload, or a retransmission of what was walked) has
 * nothing to say; one that starts after it is bridged (ferry_h2_bridge) or,
 * if it cannot be, the flow stops being measured.
 */
static __always_inline void ferry_h2_segment(const int hook, const bool reply,
					     struct ferry_l7_walk *w, struct ferry_l7_scratch *t)
{
	struct ferry_l7_dir *d = &w->l7->dir[t->dir & 1];
	__u32 want = d->hdr_seq + d->hdr_have;
	int rc;

	if ((__s32)(t->seq + t->len - want) <= 0)
		return;
	if ((__s32)(want - t->seq) < 0) {
		rc = ferry_h2_bridge(hook, w, t, d, want);
		if (rc < 0) {
			t->unsync = 1;
			return;
		}
		ferry_count(FERRY_CTR_H2_GAP_BRIDGED);
		if (!rc)
			return;
	} else {
		t->off = want - t->seq;
		if (d->searches && ++d->walked >= FERRY_H2_WALKED) {
			d->walked = 0;
			d->searches--;
		}
	}
	if (hook == FERRY_HOOK_XDP)
		bpf_loop(FERRY_H2_MAX_FRAMES, ferry_h2_step_xdp, w, 0);
	else
		bpf_loop(FERRY_H2_MAX_FRAMES, ferry_h2_step_skb, w, 0);
	if (t->off < t->len)
		t->unsync = 1; /* more frame headers than the walk takes */
}

/* Eight bytes as one little-endian word, for comparing strings in one go. */
#define FERRY_LE8(a, b, c, d, e, f, g, h)                                                        \
	((__u64)(a) | (__u64)(b) << 8 | (__u64)(c) << 16 | (__u64)(d) << 24 | (__u64)(e) << 32 | \
	 (__u64)(f) << 40 | (__u64)(g) << 48 | (__u64)(h) << 56)

/*
 * "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" in three words: a byte loop made clang keep 24
 * booleans, and the verifier explored their combinations past its 1M budget.
 */
static __always_inline bool ferry_h2_preface(const __u8 *p)
{
	__u64 w[3];

	__builtin_memcpy(w, p, sizeof(w));
	return w[0] == FERRY_LE8('P', 'R', 'I', ' ', '*', ' ', 'H', 'T') &&
	       w[1] == FERRY_LE8('T', 'P', '/', '2', '.', '0', '\r', '\n') &&
	       w[2] == FERRY_LE8('\r', '\n', 'S', 'M', '\r', '\n', '\r', '\n');
}

/* An HTTP/1.x request line begins with an upper-case method and a space. */
static __always_inline bool ferry_h1_request(const __u8 *p, __u32 len)
{
	__u32 i;

	for (i = 0; i < 8 && i < len; i++) {
		if (p[i] == ' ')
			return i >= 3;
		if (p[i] < 'A' || p[i] > 'Z')
			return false;
	}
	return false;
}

/* "HTTP/1.x NNN": the status class, FERRY_HTTP_UNKNOWN for anything else. */
static __always_inline __u32 ferry_h1_class(const __u8 *p, __u32 len)
{
	if (len < 12 || p[0] != 'H' || p[1] != 'T' || p[2] != 'T' || p[3] != 'P' || p[4] != '/' ||
	    p[5] != '1' || p[6] != '.' || p[8] != ' ' || p[9] < '1' || p[9] > '5')
		return FERRY_HTTP_UNKNOWN;
	return p[9] - '1';
}

/* HTTP/1.x and unknown protocols: one exchange at a time. */
static __always_inline void ferry_h1_payload(struct ferry_l7_walk *w, struct ferry_l7_scratch *s)
{
	struct ferry_stats *st = ferry_l7_stats(s);
	struct ferry_l7 *l7 = w->l7;
	const __u8 *p = s->head;
	__u32 proto = l7->head.protocol == FERRY_L7_HTTP1 ? FERRY_L7_HTTP1 : FERRY_L7_UNKNOWN;
	__u32 class;
	__u64 t;

	if (!s->dir) {
		/* Later segments of the request (an upload) do not move its start. */
		if (l7->start_ns)
			return;
		l7->start_ns = bpf_ktime_get_ns();
		l7->head.inflight = 1;
		l7->head.last_ns = ferry_now();
		if (st)
			st->requests[proto] += 1;
		return;
	}
	t = l7->start_ns;
	if (!t)
		return; /* the rest of a response */
	class = ferry_h1_class(p, s->len);
	/* An interim response (100 Continue, 103 Early Hints) is not the answer; 101 is. */
	if (class == FERRY_HTTP_1XX && !(p[10] == '0' && p[11] == '1'))
		return;
	l7->start_ns = 0;
	l7->head.inflight = 0;
	__sync_fetch_and_add(&l7->head.requests, 1);
	l7->head.last_ns = ferry_now();
	if (st && class < FERRY_HTTP_CLASSES)
		st->http[class] += 1;
	ferry_l7_time(s, proto, bpf_ktime_get_ns() - t);
}

/* The protocol of a flow from its first client payload p (len bytes) and the service's override. */
static __always_inline __u32 ferry_l7_classify(const struct ferry_flow_key *key,
					       struct ferry_l7_scratch *s, bool *preface)
{
	const struct ferry_service *svc;
	const __u8 *p = s->head;
	__u32 flags = 0, len = s->len;

	__builtin_memcpy(s->vip.addr, key->daddr, sizeof(s->vip.addr));
	s->vip.port = key->dport;
	s->vip.proto = key->proto;
	s->vip.family = key->family;
	svc = bpf_map_lookup_elem(&ferry_services, &s->vip);
	if (svc)
		flags = svc->flags;
	*preface = len >= FERRY_H2_PREFACE_LEN && ferry_h2_preface(p);
	if (flags & FERRY_SVC_F_PROTO_H2C)
		return FERRY_L7_H2C;
	if (flags & FERRY_SVC_F_PROTO_HTTP1)
		return FERRY_L7_HTTP1;
	if (*preface)
		return FERRY_L7_H2C;
	return ferry_h1_request(p, len) ? FERRY_L7_HTTP1 : FERRY_L7_UNKNOWN;
}

/* A frame header with no stream: what an HTTP/2 server sends first (SETTINGS). */
static __always_inline bool ferry_h2_settings(const __u8 *p, __u32 len)
{
	return len >= FERRY_H2_HDR_LEN && p[3] == 0x4 && !(p[5] | p[6] | p[7] | p[8]);
}

/*
 * A told connection (FERRY_L7_GOAWAY_TOLD, _RAW): the client's byte stream
 * holds the GOAWAY at goaway_seq, 32 bytes the backend never sent. The
 * backend's payload past it would land 32 bytes off; the client's is a call
 * the GOAWAY makes it retry on a new connection (or what goes with one), which
 * the backend must not run too: both are dropped until the iterator ends the
 * socket. A retransmission of the segment the frame was appended to (the
 * backend never saw the client acknowledge it) gets the frame again.
 */
static __always_inline int ferry_l7_told(const struct ferry_l7 *l7,
					 const struct ferry_l7_scratch *s)
{
	__s32 past;

	if (!s->dir)
		return FERRY_L7_DROP;
	past = (__s32)(s->seq + s->len - l7->goaway_seq);
	if (past > 0)
		return FERRY_L7_DROP;
	if (!past && l7->head.goaway == FERRY_L7_GOAWAY_TOLD)
		return FERRY_L7_APPEND_AGAIN;
	return FERRY_L7_PASS;
}

/*
 * Segment payloads every path carries: IPv4's default MSS (576-byte datagrams)
 * and IPv6's minimum MTU (1280) less 60 bytes of headers.
 */
#define FERRY_MSS_FLOOR_V4 536
#define FERRY_MSS_FLOOR_V6 1220

/*
 * A connection the iterator armed (FERRY_L7_GOAWAY_TELL: due to be rebalanced
 * and never idle at a pass, calls back to back): this backend segment ends at
 * a frame boundary with no stream open, so the GOAWAY can follow it. Only a
 * segment that can grow in place and still fit the path: not GSO
 * (bpf_skb_change_tail cannot grow one past the device's MTU), 32 bytes under
 * this device's MTU, and 32 bytes under the largest segment the backend sent
 * on the flow or the floor every path carries (the backend sizes its segments
 * to the client's MSS and the path MTU, which a device's MTU does not show: a
 * client behind a smaller MTU would drop the grown segment, and the backend's
 * retransmissions with it). A later segment will do.
 */
static __always_inline int ferry_l7_tell(struct __sk_buff *skb, struct ferry_l7 *l7,
					 const struct ferry_l7_scratch *s)
{
	const struct ferry_l7_dir *d = &l7->dir[1];
	__u32 end = s->seq + s->len, mtu = 0, fits;

	if (s->unsync || l7->head.inflight || d->hdr_have || d->hdr_seq != end)
		return FERRY_L7_PASS;
	fits = s->key.family == FERRY_AF_INET ? FERRY_MSS_FLOOR_V4 : FERRY_MSS_FLOOR_V6;
	if (d->seg_max > fits)
		fits = d->seg_max;
	if (s->len + FERRY_GOAWAY_FRAME_LEN > fits || skb->gso_size ||
	    bpf_check_mtu(skb, 0, &mtu, FERRY_GOAWAY_FRAME_LEN, 0))
		return FERRY_L7_PASS;
	/* The sequence number first: the iterator reads it once it sees TOLD. */
	*(volatile __u32 *)&l7->goaway_seq = end;
	*(volatile __u16 *)&l7->head.goaway = FERRY_L7_GOAWAY_TOLD;
	return FERRY_L7_APPEND_GOAWAY;
}

/*
 * The body of ferry_l7_xdp and ferry_l7_skb. key: the flow's forward key;
 * ids: predictor << 32 | backend; pos: payload offset | length << 16 |
 * L4 offset << 32 | FERRY_L7_ARG_*.
 */
static __always_inline int ferry_l7_packet(void *ctx, const int hook, const bool reply,
					   const struct ferry_flow_key *key, __u64 ids, __u64 pos)
{
	struct ferry_l7_walk w = { .ctx = ctx };
	struct ferry_l7_scratch *s;
	struct ferry_stats *st;
	struct ferry_l7 *l7;
	__u32 z = 0, n;
	bool preface = false;

	s = bpf_map_lookup_elem(&ferry_l7_tmp, &z);
	if (!s || !key)
		return 0;
	w.t = s;
	s->zero = 0;
	s->hist_miss = FERRY_CTR_HIST_MISS;
	s->predictor_id = ids >> 32;
	s->backend_id = (__u32)ids;
	s->base = pos & 0xffff;
	s->len = (pos >> 16) & 0xffff;
	s->dir = reply;
	s->sampled = !!(pos & FERRY_L7_ARG_SAMPLED);
	s->off = 0;
	s->unsync = 0;
	__builtin_memcpy(&s->key, key, sizeof(s->key));
	if (pos & FERRY_L7_ARG_FRESH) {
		/*
		 * What an earlier connection on this 5-tuple left (LRU entries
		 * outlive their connections) is not this one's: its sequence
		 * numbers and streams are another connection's. Reset in place,
		 * here rather than at the SYN, where a lookup of a cold bucket
		 * cost about a tenth of a new connection and nearly always
		 * found nothing.
		 */
		l7 = bpf_map_lookup_elem(&ferry_l7, &s->key);
		if (l7) {
			const struct ferry_l7 *empty =
				bpf_map_lookup_elem(&ferry_l7_zero, &s->zero);

			if (empty)
				__builtin_memcpy(l7, empty, sizeof(*l7));
		}
	}
	if (!s->len || ferry_l7_load(ctx, hook, ((pos >> 32) & 0xffff) + 4, &s->seq, 4))
		return 0;
	s->seq = bpf_ntohl(s->seq);
	/*
	 * The first bytes: enough for the preface, a request line or a status line
	 * (12 bytes). Constant load sizes: Linux 6.1's verifier rejects a size it
	 * cannot prove non-zero, however the length was checked before.
	 */
	__builtin_memset(s->head, 0, sizeof(s->head));
	if (s->len >= FERRY_H2_PREFACE_LEN)
		n = FERRY_H2_PREFACE_LEN;
	else if (s->len >= FERRY_H1_HEAD_LEN)
		n = FERRY_H1_HEAD_LEN;
	else
		n = 0;
	if (n) {
		if (ferry_l7_load(ctx, hook, s->base, s->head, n))
			return 0;
	} else {
#pragma unroll
		for (n = 0; n < FERRY_H1_HEAD_LEN - 1; n++) {
			if (n >= s->len)
				break;
			if (ferry_l7_load(ctx, hook, s->base + n, &s->head[n], 1))
				return 0;
		}
	}

	l7 = bpf_map_lookup_elem(&ferry_l7, &s->key);
	if (!l7) {
		/* Made from an all-zero value: 176 bytes is too much for the XDP stack. */
		const struct ferry_l7 *empty = bpf_map_lookup_elem(&ferry_l7_zero, &s->zero);

		if (!empty)
			return 0;
		bpf_map_update_elem(&ferry_l7, &s->key, empty, BPF_NOEXIST);
		l7 = bpf_map_lookup_elem(&ferry_l7, &s->key);
		if (!l7)
			return 0;
	}
	w.l7 = l7;
	if (reply) {
		/* The path's MSS from below, for ferry_l7_tell: the backend's segments. */
		__u32 seg = ((struct __sk_buff *)ctx)->gso_size ?: s->len;

		if (seg > l7->dir[1].seg_max && seg <= 0xffff)
			l7->dir[1].seg_max = seg;
	}
	/* Before the unsynchronised test: a tracker that lost the frames still knows the frame's place. */
	if (l7->head.goaway >= FERRY_L7_GOAWAY_TOLD)
		return ferry_l7_told(l7, s);
	if (l7->head.flags & FERRY_L7_F_UNSYNC)
		return 0;

	if (!s->dir && !(l7->head.flags & FERRY_L7_F_CLASSIFIED)) {
		l7->head.protocol = ferry_l7_classify(key, s, &preface);
		l7->head.flags |= FERRY_L7_F_CLASSIFIED;
		if (l7->head.protocol == FERRY_L7_H2C) {
			l7->dir[0].hdr_seq = s->seq + (preface ? FERRY_H2_PREFACE_LEN : 0);
			l7->dir[0].hdr_have = 0;
			l7->dir[0].synced = 1;
		}
	}
	if (s->dir && !l7->dir[1].synced &&
	    (l7->head.protocol == FERRY_L7_H2C ||
	     (!(l7->head.flags & FERRY_L7_F_CLASSIFIED) && ferry_h2_settings(s->head, n)))) {
		/* The server's first payload: its connection preface, a SETTINGS frame. */
		l7->dir[1].hdr_seq = s->seq;
		l7->dir[1].hdr_have = 0;
		l7->dir[1].synced = 1;
	}

	if (l7->head.protocol == FERRY_L7_H2C ||
	    (s->dir && l7->dir[1].synced && !(l7->head.flags & FERRY_L7_F_CLASSIFIED))) {
		if (l7->dir[s->dir & 1].synced)
			ferry_h2_segment(hook, reply, &w, s);
	} else if (l7->head.flags & FERRY_L7_F_CLASSIFIED) {
		ferry_h1_payload(&w, s);
	}
	if (s->unsync) {
		l7->head.flags |= FERRY_L7_F_UNSYNC;
		st = ferry_l7_stats(s);
		if (st)
			st->l7_unsync += 1;
	}
	if (reply && l7->head.goaway == FERRY_L7_GOAWAY_TELL && l7->head.protocol == FERRY_L7_H2C)
		return ferry_l7_tell(ctx, l7, s);
	return 0;
}

/* Global: each is verified once, on its own, whatever its callers. */
__attribute__((unused)) int ferry_l7_fwd_xdp(struct xdp_md *ctx, const struct ferry_flow_key *key,
					     __u64 ids, __u64 pos)
{
	return ferry_l7_packet(ctx, FERRY_HOOK_XDP, false, key, ids, pos);
}

__attribute__((unused)) int ferry_l7_fwd_skb(struct __sk_buff *skb,
					     const struct ferry_flow_key *key, __u64 ids, __u64 pos)
{
	return ferry_l7_packet(skb, FERRY_HOOK_TC_INGRESS, false, key, ids, pos);
}

__attribute__((unused)) int
ferry_l7_reply_skb(struct __sk_buff *skb, const struct ferry_flow_key *key, __u64 ids, __u64 pos)
{
	return ferry_l7_packet(skb, FERRY_HOOK_TC_INGRESS, true, key, ids, pos);
}

/* FERRY_L7_PASS, or what the packet needs: a GOAWAY after it, or dropping. */
static __always_inline int ferry_l7_track(void *ctx, const int hook,
					  const struct ferry_flow_key *key, struct ferry_flow *flow,
					  const struct ferry_pkt *pkt, bool reply)
{
	__u64 ids = ((__u64)flow->predictor_id << 32) | flow->backend_id;
	__u64 pos = pkt->payload_off | ((__u64)pkt->payload_len << 16) | ((__u64)pkt->l4_off << 32);

	if (!pkt->payload_len || pkt->key.proto != IPPROTO_TCP)
		return FERRY_L7_PASS;
	if (flow->flags & FERRY_FLOW_F_SAMPLED)
		pos |= FERRY_L7_ARG_SAMPLED;
	/* Atomic: the first payload either way resets, once (the other direction may race it). */
	if ((flow->flags & FERRY_FLOW_F_L7_FRESH) &&
	    (__sync_fetch_and_and(&flow->flags, ~FERRY_FLOW_F_L7_FRESH) & FERRY_FLOW_F_L7_FRESH))
		pos |= FERRY_L7_ARG_FRESH;
	if (reply)
		return ferry_l7_reply_skb(ctx, key, ids, pos);
	if (hook == FERRY_HOOK_XDP)
		return ferry_l7_fwd_xdp(ctx, key, ids, pos);
	return ferry_l7_fwd_skb(ctx, key, ids, pos);
}

/*
 * FERRY_L7_APPEND_GOAWAY: the frame after the backend segment's payload, at
 * TC, after the reply's rewrite. The IP length and both checksums follow, in
 * every checksum state: a pod's CHECKSUM_PARTIAL skb holds only the
 * pseudo-header sum in its TCP field, and the frame's own sum goes in only
 * when the field holds the whole sum, which bpf_l4_csum_replace without
 * BPF_F_PSEUDO_HDR does by itself. skb->csum (CHECKSUM_COMPLETE) needs no
 * change: the frame's sum and the field's change cancel out, as do the IP
 * length's and its header checksum's. ferry_l7_tell checked the room; a
 * retransmission (FERRY_L7_APPEND_AGAIN) may not have it, and then fails here.
 */
static __always_inline int ferry_goaway_append(struct __sk_buff *skb, const struct ferry_pkt *pkt)
{
	static const __u8 frame[FERRY_GOAWAY_FRAME_LEN] = FERRY_GOAWAY_FRAME;
	__u32 l3 = pkt->l3_off & 0xff, l4 = pkt->l4_off & 0x1ff;
	__u32 csum_off = l4 + offsetof(struct tcphdr, check);
	bool v4 = pkt->key.family == FERRY_AF_INET;
	__u32 len_off =
		l3 + (v4 ? offsetof(struct iphdr, tot_len) : offsetof(struct ipv6hdr, payload_len));
	__be16 old_len, new_len;
	__u32 end, tcp_len;
	__s64 sum;

	if (bpf_skb_load_bytes(skb, len_off, &old_len, sizeof(old_len)))
		return -1;
	/* Where the segment ends by its IP header: a frame's padding is not payload. */
	end = l3 + bpf_ntohs(old_len) + (v4 ? 0 : sizeof(struct ipv6hdr));
	if (end <= l4 || end > 0xffff - FERRY_GOAWAY_FRAME_LEN)
		return -1;
	tcp_len = end - l4;
	if (bpf_skb_change_tail(skb, end + FERRY_GOAWAY_FRAME_LEN, 0) ||
	    bpf_skb_store_bytes(skb, end, frame, FERRY_GOAWAY_FRAME_LEN, 0))
		return -1;
	new_len = bpf_htons(bpf_ntohs(old_len) + FERRY_GOAWAY_FRAME_LEN);
	if (bpf_skb_store_bytes(skb, len_off, &new_len, sizeof(new_len), 0))
		return -1;
	if (v4 && bpf_l3_csum_replace(skb, l3 + offsetof(struct iphdr, check), old_len, new_len,
				      sizeof(new_len)))
		return -1;
	if (bpf_l4_csum_replace(skb, csum_off, bpf_htons(tcp_len),
				bpf_htons(tcp_len + FERRY_GOAWAY_FRAME_LEN),
				BPF_F_PSEUDO_HDR | sizeof(__be16)))
		return -1;
	sum = bpf_csum_diff(NULL, 0, (__be32 *)frame, FERRY_GOAWAY_FRAME_LEN, 0);
	if (sum < 0)
		return -1;
	/* At an odd offset in the segment every 16-bit word of the frame is byte-swapped. */
	if (tcp_len & 1)
		sum = ((__u32)sum >> 8) | ((__u32)sum << 24);
	return bpf_l4_csum_replace(skb, csum_off, 0, (__u32)sum, 0) ? -1 : 0;
}

/*
 * The frame could not go in (the skb could not grow: no memory, say): the
 * segment leaves as it came, so the connection is armed again rather than
 * told, and its later payload is not dropped.
 */
static __always_inline void ferry_goaway_untell(const struct ferry_flow_key *key)
{
	struct ferry_l7 *l7 = bpf_map_lookup_elem(&ferry_l7, key);

	if (l7 && l7->head.goaway == FERRY_L7_GOAWAY_TOLD)
		l7->head.goaway = FERRY_L7_GOAWAY_TELL;
}

/*
 * A payload-less segment of a told connection (FERRY_FLOW_F_TOLD). The
 * client's stream holds the GOAWAY's 32 bytes at goaway_seq; the backend
 * never sent them. Left alone, the client's acknowledgements run 32 bytes
 * past what the backend sent, and the backend discards them as acks of unsent
 * data, its FIN included: it retransmits its last segment, never takes the
 * client's FIN, and then ignores the client's final RST as out of sequence,
 * so its socket lingered for its whole retransmission timeout (~15 min). The
 * backend's own ACKs and FIN sat 32 bytes before what the client expects and
 * were ignored in turn. So the frame is taken out of the client's ack (fwd)
 * and put into the backend's sequence number (reply) from goaway_seq on.
 * Payload is the request layer's business (dropped, ferry_l7_told). Out of
 * line: inlined, its code cost the established XDP path about 4 ns a packet
 * (pkt_bench, xdp_established_v4, three alternations) though no packet of an
 * untold flow runs it; the verifier still sees each caller's constant hook.
 */
static __noinline void ferry_told_seq(void *ctx, const int hook, const struct ferry_pkt *pkt,
				      const struct ferry_flow_key *key, const bool reply)
{
	void *data = ferry_data(ctx, hook), *data_end = ferry_data_end(ctx, hook);
	__u32 l4 = pkt->l4_off & 0x1ff, off = reply ? 4 : 8, at, now;
	const struct ferry_l7 *l7;
	__be32 *word, old, new;
	__u16 *check;

	if (pkt->payload_len || (!reply && !(pkt->tcp_flags & FERRY_TCP_ACK)))
		return;
	l7 = bpf_map_lookup_elem(&ferry_l7, key);
	if (!l7 || l7->head.goaway < FERRY_L7_GOAWAY_TOLD)
		return;
	word = data + l4 + off;
	check = data + l4 + offsetof(struct tcphdr, check);
	if ((void *)(word + 1) > data_end || (void *)(check + 1) > data_end)
		return;
	old = *word;
	at = bpf_ntohl(old);
	if ((__s32)(at - l7->goaway_seq) < 0)
		return; /* before the frame: nothing to move */
	if (reply)
		now = at + FERRY_GOAWAY_FRAME_LEN;
	else if ((__s32)(at - l7->goaway_seq - FERRY_GOAWAY_FRAME_LEN) >= 0)
		now = at - FERRY_GOAWAY_FRAME_LEN;
	else
		now = l7->goaway_seq; /* inside the frame: cannot be, but never past it */
	new = bpf_htonl(now);
	if (hook == FERRY_HOOK_XDP) {
		*word = new;
		*check = ferry_csum_apply(*check, ferry_csum_diff32(0, old, new));
	} else {
		/* A CHECKSUM_PARTIAL skb's field holds no data sum: the helper leaves it. */
		if (bpf_skb_store_bytes(ctx, l4 + off, &new, sizeof(new), 0))
			return; /* the packet as it came: its checksum still holds */
		bpf_l4_csum_replace(ctx, l4 + offsetof(struct tcphdr, check), old, new,
				    sizeof(new));
	}
}

#endif /* FERRY_L7_BPF_H */
