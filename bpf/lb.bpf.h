/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The load balancer's flow logic: one forward body for XDP and TC ingress
 * and one reply body for TC ingress and egress, built from one header per
 * concern: parse (headers -> 5-tuple), select (backend choice), nat
 * (rewrite + checksums), nexthop (fib, next-hop cache, transmit, XDP -> TC
 * handoff) and observe (stats, histograms, trace). Every function takes a
 * constant "hook" (FERRY_HOOK_*) that clang folds, so each program gets only
 * its own branch of the code without a second copy in the source. IPv4 and
 * IPv6 share the body: addresses are always 4 words, IPv4 uses word 0.
 */
#ifndef FERRY_LB_BPF_H
#define FERRY_LB_BPF_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "ferry_maps.h"
#include "maps.bpf.h"
#include "hook.bpf.h"
#include "parse.bpf.h"
#include "select.bpf.h"
#include "nat.bpf.h"
#include "nexthop.bpf.h"
#include "observe.bpf.h"
#include "l7.bpf.h"
#include "reject.bpf.h"

/* How stale the forward entry's last_ns may get before a reply refreshes it. */
#define FERRY_REPLY_TOUCH_NS 1000000000ULL

/* udp_timeout_s 0 in ferry_config means this default. */
#define FERRY_UDP_TIMEOUT_DEFAULT_S 30

/*
 * Parses the packet at hook. An skb whose headers are not all in its linear
 * part parses as malformed (or, for an ICMP error, cannot be read to its
 * quote): only then are the headers pulled and the packet parsed again. A
 * stack's TCP segments (a pod's) carry their payload in page fragments, so
 * pulling a fixed length every time copied payload into the head, and
 * often reallocated it, on every packet a hook only looks at.
 */
static __always_inline int ferry_parse_ctx(void *ctx, const int hook, struct ferry_pkt *pkt)
{
	struct __sk_buff *skb = ctx;
	int rc;

	rc = ferry_parse(ferry_data(ctx, hook), ferry_data_end(ctx, hook), pkt,
			 ferry_gso_len(ctx, hook));
	if (hook == FERRY_HOOK_XDP)
		return rc;
	if (rc != FERRY_PARSE_MALFORMED &&
	    !(rc == FERRY_PARSE_OTHER &&
	      (pkt->key.proto == IPPROTO_ICMP || pkt->key.proto == IPPROTO_ICMPV6)))
		return rc;
	if (skb->data_end - skb->data >= skb->len)
		return rc; /* all of it is linear: the verdict stands */
	ferry_tc_pull(skb);
	__builtin_memset(pkt, 0, sizeof(*pkt));
	return ferry_parse(ferry_data(ctx, hook), ferry_data_end(ctx, hook), pkt,
			   ferry_gso_len(ctx, hook));
}

/* --------------------------------------------------------------- forward */

/*
 * Flow lifecycle (docs/datapath.md). A flow is born EMBRYONIC, both halves
 * in ferry_eflows / ferry_erflows, small LRU maps of their own:
 * - a SYN: confirmed when the client's ACK acknowledges the backend's SYN-ACK
 *   (ack == SYN-ACK seq + 1; the SYN-ACK alone proves nothing, backends
 *   answer spoofed SYNs too);
 * - a TCP packet that is not a SYN and has no flow (state lost, another
 *   node's connection): a PICKUP, sent where the hash points and confirmed
 *   when the backend answers with anything but a RST (which drops it);
 * - a UDP datagram: confirmed when the backend answers.
 * Confirming moves both halves to ferry_flows / ferry_rflows, which only
 * confirmed flows enter: a flood churns the embryonic maps alone.
 *
 * Either half can be rebuilt from the other: the forward key holds client
 * and VIP and its value the backend; the reply key holds backend and client
 * and its value the VIP and the forward key. These rebuild the missing half
 * (BPF_NOEXIST: a concurrent rebuild on another CPU wins, with the same
 * content). Not inlined: whatever they need stays out of the callers'
 * frames, which every kernel caps with their subprograms' at 512 bytes.
 */
/* A reply entry being built: too big for the XDP program's stack (see below). */
struct ferry_rflow_scratch {
	struct ferry_flow_key key;
	struct ferry_rflow val;
};

/* Object-local, not pinned: scratch space only, nothing survives a call. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ferry_rflow_scratch);
} ferry_rflow_tmp SEC(".maps");

/*
 * The reply half a reply found through the VIP hint (ferry_rflow_recover):
 * rebuilt into the map, or, for a flow made without one
 * (FERRY_FLOW_F_REPLY_HINT), used from here for this packet only. Its own
 * scratch: the reply path may promote the flow, which builds in
 * ferry_rflow_tmp while this one is still being read.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ferry_rflow_scratch);
} ferry_reply_tmp SEC(".maps");

/* Flags of a flow that only its embryonic state has. */
#define FERRY_FLOW_F_EMBRYONIC_ONLY \
	(FERRY_FLOW_F_PICKUP | FERRY_FLOW_F_SYNACK | FERRY_FLOW_F_REPLY_HINT)

static __always_inline void ferry_reply_key(struct ferry_flow_key *rkey,
					    const struct ferry_flow_key *fwd, const __be32 *be_addr,
					    __be16 be_port)
{
	__builtin_memset(rkey, 0, sizeof(*rkey));
	__builtin_memcpy(rkey->saddr, be_addr, sizeof(rkey->saddr));
	__builtin_memcpy(rkey->daddr, fwd->saddr, sizeof(rkey->daddr));
	rkey->sport = be_port;
	rkey->dport = fwd->sport;
	rkey->proto = fwd->proto;
	rkey->family = fwd->family;
}

static __always_inline void ferry_rflow_fill(struct ferry_rflow *val,
					     const struct ferry_flow_key *fwd, __u32 flags,
					     __u32 backend_id)
{
	__builtin_memset(val, 0, sizeof(*val));
	__builtin_memcpy(val->vip_addr, fwd->daddr, sizeof(val->vip_addr));
	val->vip_port = fwd->dport;
	val->family = fwd->family;
	val->flags = flags;
	val->backend_id = backend_id;
	__builtin_memcpy(&val->fwd, fwd, sizeof(val->fwd));
}

/* The endpoint key of ferry_be_vips for the backend a reply key comes from. */
static __always_inline void ferry_be_key(struct ferry_vip *k, const struct ferry_flow_key *reply)
{
	__builtin_memset(k, 0, sizeof(*k));
	__builtin_memcpy(k->addr, reply->saddr, sizeof(k->addr));
	k->port = reply->sport;
	k->proto = reply->proto;
	k->family = reply->family;
}

static __always_inline bool ferry_be_vip_is(const struct ferry_be_vip *v,
					    const struct ferry_flow_key *fwd)
{
	return v->port == fwd->dport && ferry_addr_eq(v->addr, fwd->daddr);
}

static __always_inline void ferry_be_vip_set(struct ferry_be_vip *v,
					     const struct ferry_flow_key *fwd)
{
	__builtin_memcpy(v->addr, fwd->daddr, sizeof(v->addr));
	v->port = fwd->dport;
}

/*
 * What this CPU last confirmed in ferry_be_vips, per backend id slot: a new
 * flow to the same backend through the same VIP within FERRY_HINT_TTL_NS
 * skips the hash lookup (8% of a SYN in make bench). Object-local scratch.
 */
#define FERRY_HINT_SLOTS 4096
#define FERRY_HINT_TTL_NS 1000000000ULL

struct ferry_hint_seen {
	__u64 expires_ns;
	__u32 backend_id;
	struct ferry_be_vip vip;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FERRY_HINT_SLOTS);
	__type(key, __u32);
	__type(value, struct ferry_hint_seen);
} ferry_hint_seen SEC(".maps");

/*
 * Records that fwd's VIP sends flows to the backend of reply key rkey (struct
 * ferry_be_vips), once per new flow: a lookup that nearly always finds the
 * VIP already there, or none when this CPU found it within the last second.
 * A new VIP is written in place, newest first; a reader racing the write
 * sees a torn candidate, whose forward lookup then misses. Returns 1 when
 * the hint holds the VIP.
 */
static __noinline int ferry_be_vip_note(const struct ferry_flow_key *rkey,
					const struct ferry_flow_key *fwd, __u32 backend_id,
					__u64 now)
{
	struct ferry_be_vips *hint, val;
	struct ferry_hint_seen *seen;
	__u32 slot = backend_id % FERRY_HINT_SLOTS;
	struct ferry_vip k;

	seen = bpf_map_lookup_elem(&ferry_hint_seen, &slot);
	if (seen && seen->backend_id == backend_id && now < seen->expires_ns &&
	    ferry_be_vip_is(&seen->vip, fwd))
		return 1;
	ferry_be_key(&k, rkey);
	hint = bpf_map_lookup_elem(&ferry_be_vips, &k);
	if (hint && !ferry_be_vip_is(&hint->vip[0], fwd)) {
		int i, at = FERRY_BE_VIPS - 1;

		/* Moved to the front: the others shift down over it, or over the oldest. */
		for (i = 0; i < FERRY_BE_VIPS - 1; i++)
			if (ferry_be_vip_is(&hint->vip[i], fwd)) {
				at = i;
				break;
			}
		for (i = FERRY_BE_VIPS - 1; i > 0; i--)
			if (i <= at)
				hint->vip[i] = hint->vip[i - 1];
		ferry_be_vip_set(&hint->vip[0], fwd);
	} else if (!hint) {
		__builtin_memset(&val, 0, sizeof(val));
		ferry_be_vip_set(&val.vip[0], fwd);
		/* BPF_NOEXIST: another CPU's insert of the same endpoint wins; this VIP waits. */
		if (bpf_map_update_elem(&ferry_be_vips, &k, &val, BPF_NOEXIST))
			return 0;
	}
	if (seen) {
		seen->backend_id = backend_id;
		seen->expires_ns = now + FERRY_HINT_TTL_NS;
		ferry_be_vip_set(&seen->vip, fwd);
	}
	return 1;
}

/*
 * Runs on the forward packets of a flow without FERRY_FLOW_F_HINTED (made by
 * an earlier release, or rebuilt from its reply half), so it must not add
 * stack: the XDP program with ferry_fwd_new's frame is near the 512-byte cap,
 * and the reply entry (160 bytes with its key) is built in a per-CPU scratch
 * value. Once the reply half is there, the flow's VIP goes into the hint and
 * the flow takes the flag: its later packets skip this lookup (a connection
 * held across an upgrade pays it once, not for its whole life).
 * emb: the flow is embryonic, its reply half belongs in ferry_erflows.
 */
static __noinline int ferry_rflow_restore(const struct ferry_flow_key *fwd, struct ferry_flow *flow,
					  int emb)
{
	struct ferry_rflow_scratch *tmp;
	__u32 zero = 0;
	long err;

	tmp = bpf_map_lookup_elem(&ferry_rflow_tmp, &zero);
	if (!tmp)
		return 0;
	ferry_reply_key(&tmp->key, fwd, flow->backend_addr, flow->backend_port);
	if (emb) {
		if (bpf_map_lookup_elem(&ferry_erflows, &tmp->key))
			goto hint;
	} else {
		if (bpf_map_lookup_elem(&ferry_rflows, &tmp->key))
			goto hint;
	}
	ferry_rflow_fill(&tmp->val, fwd, flow->flags & ~FERRY_FLOW_F_EMBRYONIC_ONLY,
			 flow->backend_id);
	if (emb)
		err = bpf_map_update_elem(&ferry_erflows, &tmp->key, &tmp->val, BPF_NOEXIST);
	else
		err = bpf_map_update_elem(&ferry_rflows, &tmp->key, &tmp->val, BPF_NOEXIST);
	if (err)
		return 0;
	ferry_count(FERRY_CTR_FLOW_RESTORED);
hint:
	if (ferry_be_vip_note(&tmp->key, fwd, flow->backend_id, ferry_now()))
		__sync_fetch_and_or(&flow->flags, FERRY_FLOW_F_HINTED);
	return 0;
}

/* ferry_rflow_recover's answers: where the reply half is now. */
#define FERRY_RECOVER_NONE 0
#define FERRY_RECOVER_CONFIRMED 1 /* back in ferry_rflows */
#define FERRY_RECOVER_EMBRYONIC 2 /* back in ferry_erflows */
#define FERRY_RECOVER_SCRATCH 3 /* in ferry_reply_tmp, for this packet */

/*
 * A reply found no reply half: rebuilds it from the forward entry, found
 * through the backend's VIP hint (ferry_be_vips). Only a forward entry that
 * names this backend counts: the same backend address and port also answer
 * clients that called it directly, whose replies must keep it. The half is
 * stored again (in the map of the forward entry's kind), except for an
 * embryonic flow made without one (FERRY_FLOW_F_REPLY_HINT): left in
 * ferry_reply_tmp, so that a connection's handshake writes one reply half,
 * the confirmed one. synack: the reply is a SYN-ACK, whose flow is
 * embryonic: that map first, sparing a miss in ferry_flows.
 */
static __noinline int ferry_rflow_recover(const struct ferry_flow_key *reply, int synack)
{
	const struct ferry_be_vips *hint;
	struct ferry_rflow_scratch *tmp;
	const struct ferry_flow *flow;
	struct ferry_vip k;
	__u32 zero = 0;
	int i, emb;

	ferry_be_key(&k, reply);
	hint = bpf_map_lookup_elem(&ferry_be_vips, &k);
	if (!hint)
		return FERRY_RECOVER_NONE;
	tmp = bpf_map_lookup_elem(&ferry_reply_tmp, &zero);
	if (!tmp)
		return FERRY_RECOVER_NONE;
	for (i = 0; i < FERRY_BE_VIPS; i++) {
		if (!hint->vip[i].port)
			continue;
		__builtin_memset(&tmp->key, 0, sizeof(tmp->key));
		__builtin_memcpy(tmp->key.saddr, reply->daddr, sizeof(tmp->key.saddr));
		__builtin_memcpy(tmp->key.daddr, hint->vip[i].addr, sizeof(tmp->key.daddr));
		tmp->key.sport = reply->dport;
		tmp->key.dport = hint->vip[i].port;
		tmp->key.proto = reply->proto;
		tmp->key.family = reply->family;
		emb = 1;
		flow = synack ? bpf_map_lookup_elem(&ferry_eflows, &tmp->key) : NULL;
		if (!flow) {
			emb = 0;
			flow = bpf_map_lookup_elem(&ferry_flows, &tmp->key);
			if (!flow || (flow->flags & FERRY_FLOW_F_CLOSING)) {
				const struct ferry_flow *eflow =
					bpf_map_lookup_elem(&ferry_eflows, &tmp->key);

				if (eflow) {
					flow = eflow;
					emb = 1;
				}
				asm volatile("" : "+r"(flow));
			}
		}
		if (!flow || flow->backend_port != reply->sport ||
		    !ferry_addr_eq(flow->backend_addr, reply->saddr))
			continue;
		ferry_rflow_fill(&tmp->val, &tmp->key, flow->flags & ~FERRY_FLOW_F_EMBRYONIC_ONLY,
				 flow->backend_id);
		if (emb && (flow->flags & FERRY_FLOW_F_REPLY_HINT))
			return FERRY_RECOVER_SCRATCH;
		if (emb ? bpf_map_update_elem(&ferry_erflows, reply, &tmp->val, BPF_NOEXIST) :
			  bpf_map_update_elem(&ferry_rflows, reply, &tmp->val, BPF_NOEXIST))
			return FERRY_RECOVER_NONE;
		ferry_count(FERRY_CTR_FLOW_RESTORED);
		return emb ? FERRY_RECOVER_EMBRYONIC : FERRY_RECOVER_CONFIRMED;
	}
	return FERRY_RECOVER_NONE;
}

/*
 * The reply half of reply key key found through the hint (ferry_rflow_recover),
 * or NULL; *emb is set when its flow is embryonic.
 */
static __always_inline struct ferry_rflow *ferry_rflow_recovered(const struct ferry_flow_key *key,
								 int synack, bool *emb)
{
	struct ferry_rflow_scratch *tmp;
	__u32 zero = 0;

	switch (ferry_rflow_recover(key, synack)) {
	case FERRY_RECOVER_CONFIRMED:
		return bpf_map_lookup_elem(&ferry_rflows, key);
	case FERRY_RECOVER_EMBRYONIC:
		*emb = true;
		return bpf_map_lookup_elem(&ferry_erflows, key);
	case FERRY_RECOVER_SCRATCH:
		*emb = true;
		tmp = bpf_map_lookup_elem(&ferry_reply_tmp, &zero);
		return tmp ? &tmp->val : NULL;
	}
	return NULL;
}

static __noinline int ferry_flow_restore(const struct ferry_rflow *rflow,
					 const struct ferry_flow_key *reply, int emb)
{
	const struct ferry_backend *be;
	struct ferry_flow val = {};
	__u32 backend_id = rflow->backend_id;
	__u64 now = ferry_now();
	long err;

	__builtin_memcpy(val.backend_addr, reply->saddr, sizeof(val.backend_addr));
	val.backend_port = reply->sport;
	val.family = reply->family;
	/* Timing in flight is lost with the entry; so is a pending handshake check. */
	val.flags = rflow->flags & (FERRY_FLOW_F_SAMPLED | FERRY_FLOW_F_CLOSING);
	if (emb)
		val.flags |= FERRY_FLOW_F_PICKUP;
	val.backend_id = backend_id;
	be = bpf_map_lookup_elem(&ferry_backends, &backend_id);
	if (be) {
		val.predictor_id = be->predictor_id;
		val.svc_id = be->svc_id;
	}
	val.created_ns = now;
	val.last_ns = now;
	if (emb)
		err = bpf_map_update_elem(&ferry_eflows, &rflow->fwd, &val, BPF_NOEXIST);
	else
		err = bpf_map_update_elem(&ferry_flows, &rflow->fwd, &val, BPF_NOEXIST);
	if (!err)
		ferry_count(FERRY_CTR_FLOW_RESTORED);
	return 0;
}

/*
 * Confirms the embryonic flow fwd -> flow: both halves copied into the
 * confirmed maps (an existing confirmed entry of the same flow is replaced),
 * then removed from the embryonic ones. A flow made without its embryonic
 * reply half (FERRY_FLOW_F_REPLY_HINT) has its confirmed one built from the
 * forward entry, and no lookup or delete in ferry_erflows. Runs once per
 * connection. Returns 1 when both confirmed halves were written, 0
 * otherwise.
 */
static __noinline int ferry_flow_promote(const struct ferry_flow_key *fwd, struct ferry_flow *flow)
{
	struct ferry_rflow_scratch *tmp;
	const struct ferry_rflow *rev = NULL;
	__u32 zero = 0, hinted;

	tmp = bpf_map_lookup_elem(&ferry_rflow_tmp, &zero);
	if (!tmp)
		return 0;
	hinted = __sync_fetch_and_and(&flow->flags, ~FERRY_FLOW_F_EMBRYONIC_ONLY) &
		 FERRY_FLOW_F_REPLY_HINT;
	ferry_reply_key(&tmp->key, fwd, flow->backend_addr, flow->backend_port);
	if (!hinted)
		rev = bpf_map_lookup_elem(&ferry_erflows, &tmp->key);
	if (rev)
		__builtin_memcpy(&tmp->val, rev, sizeof(tmp->val));
	else
		ferry_rflow_fill(&tmp->val, fwd, flow->flags, flow->backend_id);
	tmp->val.flags &= ~FERRY_FLOW_F_EMBRYONIC_ONLY;
	if (bpf_map_update_elem(&ferry_flows, fwd, flow, BPF_ANY) ||
	    bpf_map_update_elem(&ferry_rflows, &tmp->key, &tmp->val, BPF_ANY)) {
		ferry_count(FERRY_CTR_FLOW_FULL);
		return 0;
	}
	/*
	 * The confirmed copy carries FERRY_FLOW_F_L7_FRESH (its first payload
	 * resets the tuple's request state); the embryonic entry gives it up
	 * before it goes. A reply on another CPU that found the embryonic entry
	 * before the delete would otherwise reset the state again, after the
	 * confirmed entry's first payload had: an h2c connection's preface,
	 * parsed, was lost, and rebalancing aborted the connection as unknown
	 * where it tells h2c ones with a GOAWAY (seen once in CI's sanitizer pass).
	 */
	if (flow->flags & FERRY_FLOW_F_L7_FRESH)
		__sync_fetch_and_and(&flow->flags, ~FERRY_FLOW_F_L7_FRESH);
	if (!hinted)
		bpf_map_delete_elem(&ferry_erflows, &tmp->key);
	bpf_map_delete_elem(&ferry_eflows, fwd);
	ferry_count(FERRY_CTR_EMBRYONIC_PROMOTED);
	return 1;
}

/* A backend's RST ends an embryonic flow: both halves go (a spoofed pickup, a closed port). */
static __noinline int ferry_flow_drop_embryonic(const struct ferry_flow_key *reply,
						const struct ferry_flow_key *fwd)
{
	bpf_map_delete_elem(&ferry_erflows, reply);
	bpf_map_delete_elem(&ferry_eflows, fwd);
	ferry_count(FERRY_CTR_EMBRYONIC_DROPPED);
	return 0;
}

static __always_inline bool ferry_key_eq(const struct ferry_flow_key *a,
					 const struct ferry_flow_key *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*a) / 4); i++)
		if (x[i] != y[i])
			return false;
	return true;
}

/* True when the reply entry belongs to another forward flow that is still open. */
static __always_inline bool ferry_rflow_taken(const struct ferry_rflow *other,
					      const struct ferry_flow_key *fwd)
{
	const struct ferry_flow *f;

	if (ferry_key_eq(&other->fwd, fwd))
		return false;
	f = bpf_map_lookup_elem(&ferry_flows, &other->fwd);
	if (!f)
		f = bpf_map_lookup_elem(&ferry_eflows, &other->fwd);
	return f && !(f->flags & FERRY_FLOW_F_CLOSING);
}

/*
 * Inserts a new flow's embryonic reply half. The reply key (backend ->
 * client) has no VIP: a client port that reaches one backend through two
 * VIPs gives two flows one reply key, and the second must not take the
 * first one's replies. Returns 0, 1 on such a clash, or -1 when the map
 * refused the entry. An embryonic clash is found by the insert itself
 * (BPF_NOEXIST); a confirmed one costs a lookup in ferry_rflows, made only
 * when the backend may be shared (check: no FERRY_BE_F_SOLE). That lookup
 * nearly always misses, in a map too large to stay in cache: about a fifth
 * of a new flow's time in make bench.
 */
static __noinline int ferry_rflow_insert(const struct ferry_flow_key *rkey,
					 const struct ferry_rflow *val, int check)
{
	const struct ferry_rflow *other;

	if (check) {
		other = bpf_map_lookup_elem(&ferry_rflows, rkey);
		if (other && ferry_rflow_taken(other, &val->fwd))
			return 1;
	}
	if (!bpf_map_update_elem(&ferry_erflows, rkey, val, BPF_NOEXIST))
		return 0;
	other = bpf_map_lookup_elem(&ferry_erflows, rkey);
	if (other && ferry_rflow_taken(other, &val->fwd))
		return 1;
	return bpf_map_update_elem(&ferry_erflows, rkey, val, BPF_ANY) ? -1 : 0;
}

/*
 * Past the guard: was this tuple turned away before? A SYN the guard turns
 * away late in its one-second window is retransmitted 1 s later (then 3 s),
 * late in the next window: without this, every retransmission of it was
 * turned away too and the client never connected while the flood lasted. A
 * spoofed flood's random tuples do not come back, so they find no tag of
 * their own; one that repeats its tuples is held by the second budget.
 * Returns 1 (and forgets the tuple) when its tag is there and admit is set;
 * otherwise notes the tuple (in its entry's oldest slot) and returns 0. Out
 * of line: it runs only past the guard, and the forward programs' frames
 * are near the cap.
 */
static __noinline int ferry_guard_again(const struct ferry_flow_key *key, __u32 seed, int admit)
{
	__u32 entry = ferry_flow_hash(key, seed, false) >> (32 - FERRY_SKIPPED_ORDER);
	struct ferry_skipped *e;
	__u32 tag, n;
	int i;

	/* Entry and tag from two independent hashes: a false match is 15 in 2^31. */
	tag = ferry_flow_hash(key, ferry_seed2(seed), false) | 1;
	e = bpf_map_lookup_elem(&ferry_skipped, &entry);
	if (!e)
		return 0;
	for (i = 0; i < FERRY_SKIPPED_TAGS; i++) {
		if (e->tag[i] != tag)
			continue;
		if (!admit)
			return 0;
		e->tag[i] = 0;
		return 1;
	}
	/* next is shared by the CPUs: a check the verifier sees, whatever another wrote. */
	n = e->next;
	barrier_var(n);
	if (n >= FERRY_SKIPPED_TAGS)
		n = 0;
	e->tag[n] = tag;
	e->next = n + 1 < FERRY_SKIPPED_TAGS ? n + 1 : 0;
	return 0;
}

/*
 * The new-flow rate guard: true while this CPU has inserted fewer than
 * new_flow_rate flows of this service in the current one-second window, and
 * for a tuple it turned away before while fewer than twice that.
 */
static __always_inline bool ferry_new_flow_allowed(const struct ferry_config *cfg,
						   const struct ferry_flow_key *key, __u32 svc_id,
						   __u64 now)
{
	struct ferry_new_rate *r;
	__u32 limit = cfg->new_flow_rate;

	if (!limit)
		return true;
	r = bpf_map_lookup_elem(&ferry_new_rate, &svc_id);
	if (!r)
		return true;
	if (now - r->window_ns >= 1000000000ULL) {
		r->window_ns = now;
		r->count = 0;
	}
	if (r->count >= limit && !ferry_guard_again(key, cfg->hash_seed, r->count < 2ULL * limit))
		return false;
	r->count += 1;
	return true;
}

/* A 32-bit word of the TCP header (4: sequence, 8: acknowledgment), host order; 0 if cut. */
static __always_inline __u32 ferry_tcp_word(void *ctx, const int hook, const struct ferry_pkt *pkt,
					    __u32 off)
{
	void *data = ferry_data(ctx, hook), *data_end = ferry_data_end(ctx, hook);
	const __be32 *p = data + (pkt->l4_off & 0x1ff) + off;

	if ((void *)(p + 1) > data_end)
		return 0;
	return bpf_ntohl(*p);
}

/*
 * Flow counters are plain adds, not atomics: a flow's packets arrive on one
 * CPU (RSS) and a lost increment under a race only skews a statistic. Flags
 * are set with atomics: the reply direction sets them from another CPU.
 */
/* emb in ferry_fwd: the packet just promoted its flow, both halves written. */
#define FERRY_EMB_PROMOTED 2

static __always_inline int ferry_fwd_established(void *ctx, const int hook,
						 const struct ferry_config *cfg,
						 const struct ferry_pkt *pkt,
						 struct ferry_flow *flow, const int emb)
{
	__u32 backend_id = flow->backend_id;

	/*
	 * A flow with its VIP hint has a lost reply half rebuilt by the reply
	 * (ferry_rflow_recover): no lookup here. A flow without it is checked
	 * once and then takes the hint (ferry_rflow_restore), except right after
	 * a promotion, which has just written the reply half.
	 */
	if (!(flow->flags & FERRY_FLOW_F_HINTED) && emb != FERRY_EMB_PROMOTED)
		ferry_rflow_restore(&pkt->key, flow, emb);
	flow->last_ns = ferry_now();
	flow->packets += 1;
	flow->bytes += pkt->len;
	/* Written only when it changes: the cache line is shared with other CPUs. */
	if ((pkt->tcp_flags & (FERRY_TCP_FIN | FERRY_TCP_RST)) &&
	    !(flow->flags & FERRY_FLOW_F_CLOSING))
		__sync_fetch_and_or(&flow->flags, FERRY_FLOW_F_CLOSING);
	ferry_fwd_latency(flow, pkt);
	if (ferry_l7_track(ctx, hook, &pkt->key, flow, pkt, false) == FERRY_L7_DROP) {
		ferry_count(FERRY_CTR_GOAWAY_TOLD);
		return ferry_drop(hook);
	}
	if (flow->flags & FERRY_FLOW_F_TOLD)
		ferry_told_seq(ctx, hook, pkt, &pkt->key, false);
	ferry_stats_fwd(backend_id, pkt->len, 0, 0);
	ferry_trace_decision(ctx, hook, cfg, pkt, FERRY_TR_FLOW_HIT, flow->svc_id,
			     flow->predictor_id, backend_id);
	return ferry_fwd_xmit(ctx, hook, cfg, pkt, backend_id, flow->backend_addr,
			      flow->backend_port, flow);
}

/*
 * A forward packet of an embryonic flow: the client's ACK of the SYN-ACK
 * confirms it; for UDP, any datagram after the backend's answer. Returns the
 * entry the packet travels on, *emb 0 when that is the confirmed one
 * (FERRY_EMB_PROMOTED when this packet wrote it).
 */
static __always_inline struct ferry_flow *ferry_fwd_confirm(void *ctx, const int hook,
							    const struct ferry_pkt *pkt,
							    struct ferry_flow *flow, int *emb)
{
	struct ferry_flow *confirmed;
	int promoted;

	if (!(flow->flags & FERRY_FLOW_F_SYNACK))
		return flow;
	if (pkt->key.proto == IPPROTO_TCP &&
	    ((pkt->tcp_flags & (FERRY_TCP_SYN | FERRY_TCP_ACK | FERRY_TCP_RST)) != FERRY_TCP_ACK ||
	     ferry_tcp_word(ctx, hook, pkt, 8) != flow->ack_expect))
		return flow;
	promoted = ferry_flow_promote(&pkt->key, flow);
	confirmed = bpf_map_lookup_elem(&ferry_flows, &pkt->key);
	if (!confirmed)
		return flow;
	*emb = promoted ? FERRY_EMB_PROMOTED : 0;
	return confirmed;
}

/*
 * The forward and reverse entries of a new flow, built in a per-CPU scratch
 * value rather than on the stack: Linux 6.1 caps a program's stack plus its
 * deepest call chain at 512 bytes, and the request layer's chain
 * (ferry_l7_fwd_xdp and its bpf_loop callback, l7.bpf.h) needs what this
 * union took (152 bytes) in the forward programs' frames.
 */
union ferry_new_scratch {
	struct ferry_flow fwd;
	struct {
		struct ferry_flow_key key;
		struct ferry_rflow val;
	} rev;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, union ferry_new_scratch);
} ferry_new_tmp SEC(".maps");

/* Picks a backend for a new connection (or a flow-table miss) and records the flow as embryonic. */
static __always_inline int ferry_fwd_new(void *ctx, const int hook, const struct ferry_config *cfg,
					 const struct ferry_pkt *pkt,
					 const struct ferry_service *svc, __u32 reason)
{
	union ferry_new_scratch *e;
	const struct ferry_backend *be;
	struct ferry_svc_stats *sst;
	struct ferry_flow *old, *nh = NULL;
	const __be32 *addr;
	__be16 port;
	__u32 svc_id = svc->id;
	__u32 hash, backend_id = 0, predictor_id, miss = reason == FERRY_TR_FLOW_MISS, zero = 0;
	__u32 flags = 0;
	__u64 now;
	int rc;

	be = ferry_select(svc, &pkt->key, cfg->hash_seed, ferry_svc_hash_mode(svc), pkt->key.family,
			  pkt->key.saddr, &hash, &backend_id);
	if (!be)
		goto no_backend;
	predictor_id = be->predictor_id;
	addr = be->addr;
	port = be->port;
	now = ferry_now();
	if (miss)
		ferry_count(FERRY_CTR_FLOW_MISS);
	if (!ferry_new_flow_allowed(cfg, &pkt->key, svc_id, now)) {
		/* Past the guard: where the hash points, without state. */
		ferry_count(FERRY_CTR_RATE_SKIPPED);
		goto xmit;
	}

	if (pkt->tcp_flags & (FERRY_TCP_FIN | FERRY_TCP_RST))
		flags |= FERRY_FLOW_F_CLOSING;
	/* On every flow, sampled or not: a second SYN before the SYN-ACK is a timeout. */
	if (pkt->tcp_flags & FERRY_TCP_SYN)
		flags |= FERRY_FLOW_F_SYN_PENDING;
	else if (pkt->key.proto == IPPROTO_TCP)
		flags |= FERRY_FLOW_F_PICKUP;
	if (ferry_sampled(hash, svc->sample_every))
		flags |= FERRY_FLOW_F_SAMPLED;
	/* The tuple's request state may be an earlier connection's: reset by the first payload. */
	if (pkt->tcp_flags & FERRY_TCP_SYN)
		flags |= FERRY_FLOW_F_L7_FRESH;
	/* Built in the per-CPU scratch: see union ferry_new_scratch. */
	e = bpf_map_lookup_elem(&ferry_new_tmp, &zero);
	if (!e)
		return ferry_pass(hook);

	ferry_reply_key(&e->rev.key, &pkt->key, be->addr, be->port);
	/*
	 * A SYN to a backend no other service shares stores no reply half: no
	 * other flow can hold its reply key, and its replies find the flow
	 * through the VIP hint (ferry_rflow_recover). One insert fewer per SYN
	 * and a lookup and a delete fewer at promotion, each a cold bucket.
	 * Pickups and UDP keep theirs: their replies are what confirms them.
	 */
	if ((be->flags & FERRY_BE_F_SOLE) && (pkt->tcp_flags & FERRY_TCP_SYN) &&
	    ferry_be_vip_note(&e->rev.key, &pkt->key, backend_id, now)) {
		flags |= FERRY_FLOW_F_HINTED | FERRY_FLOW_F_REPLY_HINT;
	} else {
		/* The reply half first: a clash refuses the connection before anything is stored. */
		ferry_rflow_fill(&e->rev.val, &pkt->key, flags & ~FERRY_FLOW_F_EMBRYONIC_ONLY,
				 backend_id);
		rc = ferry_rflow_insert(&e->rev.key, &e->rev.val, !(be->flags & FERRY_BE_F_SOLE));
		if (rc > 0) {
			ferry_count(FERRY_CTR_REPLY_CLASH);
			return ferry_reject(ctx, hook, pkt);
		}
		if (rc < 0)
			ferry_count(FERRY_CTR_FLOW_FULL);
		else if (ferry_be_vip_note(&e->rev.key, &pkt->key, backend_id, now))
			flags |= FERRY_FLOW_F_HINTED;
	}

	__builtin_memset(e, 0, sizeof(*e));
	__builtin_memcpy(e->fwd.backend_addr, be->addr, sizeof(e->fwd.backend_addr));
	e->fwd.backend_port = be->port;
	e->fwd.family = pkt->key.family;
	e->fwd.flags = flags;
	e->fwd.backend_id = backend_id;
	e->fwd.predictor_id = predictor_id;
	e->fwd.svc_id = svc_id;
	e->fwd.created_ns = now;
	e->fwd.last_ns = now;
	e->fwd.packets = 1;
	e->fwd.bytes = pkt->len;
	if ((flags & FERRY_FLOW_F_SAMPLED) && (pkt->tcp_flags & FERRY_TCP_SYN))
		e->fwd.pending_ns = bpf_ktime_get_ns();
	/*
	 * A retransmitted SYN finds its entry (BPF_NOEXIST) and keeps its
	 * backend, whatever the table says now. One transmit below for both
	 * cases: each inlined copy of the rewrite costs verifier work.
	 */
	if (bpf_map_update_elem(&ferry_eflows, &pkt->key, &e->fwd,
				pkt->key.proto == IPPROTO_TCP ? BPF_NOEXIST : BPF_ANY)) {
		old = bpf_map_lookup_elem(&ferry_eflows, &pkt->key);
		if (old && !(old->flags & FERRY_FLOW_F_CLOSING)) {
			if ((pkt->tcp_flags & FERRY_TCP_SYN) &&
			    (old->flags & FERRY_FLOW_F_SYN_PENDING))
				ferry_stats_syn_timeout(old->backend_id);
			old->last_ns = now;
			old->packets += 1;
			old->bytes += pkt->len;
			backend_id = old->backend_id;
			predictor_id = old->predictor_id;
			addr = old->backend_addr;
			port = old->backend_port;
			nh = old;
			ferry_stats_fwd(backend_id, pkt->len, 0, 0);
			goto trace;
		}
		if (bpf_map_update_elem(&ferry_eflows, &pkt->key, &e->fwd, BPF_ANY))
			ferry_count(FERRY_CTR_FLOW_FULL);
	}
	ferry_count(FERRY_CTR_EMBRYONIC_NEW);
	/*
	 * The new entry takes the next hop this packet looks up, so that the
	 * connection's next packet (the ACK that confirms it, and the confirmed
	 * entry it is copied to) skips bpf_fib_lookup: one hash lookup of an
	 * entry just written instead of a second route and neighbour lookup.
	 */
	nh = bpf_map_lookup_elem(&ferry_eflows, &pkt->key);

xmit:
	ferry_stats_fwd(backend_id, pkt->len, 1, miss);
trace:
	ferry_trace_decision(ctx, hook, cfg, pkt, reason, svc_id, predictor_id, backend_id);
	return ferry_fwd_xmit(ctx, hook, cfg, pkt, backend_id, addr, port, nh);

no_backend:
	ferry_count(FERRY_CTR_NO_BACKEND);
	sst = bpf_map_lookup_elem(&ferry_svc_stats, &svc_id);
	if (sst)
		sst->no_backend += 1;
	ferry_trace_decision(ctx, hook, cfg, pkt, FERRY_TR_DROP_NO_BACKEND, svc_id, 0, 0);
	return ferry_reject(ctx, hook, pkt);
}

/* The address-only marker entry of pkt's destination, if it is a VIP address. */
static __always_inline const struct ferry_service *ferry_vip_marker(const struct ferry_pkt *pkt)
{
	struct ferry_vip vip = {};

	__builtin_memcpy(vip.addr, pkt->key.daddr, sizeof(vip.addr));
	vip.family = pkt->key.family;
	return bpf_map_lookup_elem(&ferry_services, &vip);
}

/* True when bit is set in the filter map (ferry_vip_bits, ferry_be_bits). */
static __always_inline bool ferry_filter_has(void *map, __u32 bit)
{
	__u32 word = bit / 64;
	const __u64 *w = bpf_map_lookup_elem(map, &word);

	return w && ((*w >> (bit % 64)) & 1);
}

/*
 * False when no service has pkt's destination address, port and protocol (a
 * clear bit of ferry_vip_bits; with port and proto 0, no VIP has the address).
 */
static __always_inline bool ferry_vip_maybe(const struct ferry_pkt *pkt, __be16 port, __u8 proto)
{
	return ferry_filter_has(&ferry_vip_bits, ferry_vip_bit(pkt->key.daddr, port, proto));
}

/* True while a UDP flow's entry is within the idle timeout (last_ns may be ahead of now). */
static __always_inline bool ferry_udp_live(const struct ferry_flow *flow, __u64 now, __u64 idle_ns)
{
	return flow && (__s64)(now - flow->last_ns) <= (__s64)idle_ns;
}

/*
 * An ICMP error about a reply (a router on the client's side, or the client,
 * quoting VIP -> client): goes to the flow's backend, translated to quote
 * backend -> client, so that the backend's socket learns the path MTU or
 * the error. Anything else ICMP is not ours.
 */
static __always_inline int ferry_fwd_icmp(void *ctx, const int hook, struct ferry_pkt *pkt)
{
	struct bpf_fib_lookup fib;
	struct ferry_flow *flow;
	int rc;

	if (ferry_parse_icmp(ferry_data(ctx, hook), ferry_data_end(ctx, hook), pkt) !=
	    FERRY_PARSE_OK)
		return ferry_pass(hook);
	flow = bpf_map_lookup_elem(&ferry_flows, &pkt->key);
	if (!flow)
		flow = bpf_map_lookup_elem(&ferry_eflows, &pkt->key);
	if (!flow)
		return ferry_pass(hook);
	if (!pkt->vlan && ferry_ttl_expired(ctx, hook, pkt))
		return ferry_pass(hook);
	if (ferry_icmp_rewrite(ctx, hook, pkt, false, flow->backend_addr, flow->backend_port))
		return ferry_pass(hook);
	ferry_count(FERRY_CTR_ICMP_FWD);
	if (pkt->vlan) {
		ferry_count(FERRY_CTR_FIB_STACK);
		return ferry_pass(hook);
	}
	/*
	 * The client's address stands in for the sender's (often a router) and
	 * the quoted ports for ICMP's none: only policy routing reads them.
	 */
	rc = ferry_fib(ctx, hook, pkt, pkt->key.saddr, flow->backend_addr, pkt->key.sport,
		       flow->backend_port, &fib);
	return ferry_send(ctx, hook, &fib, rc, pkt->key.family == FERRY_AF_INET);
}

/* Packets that did not parse as TCP/UDP: pass, except fragments to a VIP address. */
static __always_inline int ferry_fwd_unparsed(void *ctx, const int hook, struct ferry_pkt *pkt,
					      int rc)
{
	const struct ferry_service *marker;
	struct ferry_svc_stats *sst;
	struct ferry_config *cfg;
	__u32 svc_id, zero = 0;

	switch (rc) {
	case FERRY_PARSE_MALFORMED:
		ferry_count(FERRY_CTR_MALFORMED);
		return ferry_pass(hook);
	case FERRY_PARSE_IPV6_EXT:
		ferry_count(FERRY_CTR_IPV6_EXT);
		return ferry_pass(hook);
	case FERRY_PARSE_FRAG:
		/* Later fragments carry no ports: ferry cannot balance them, so it drops them. */
		marker = ferry_vip_marker(pkt);
		if (!marker)
			return ferry_pass(hook);
		svc_id = marker->id;
		ferry_count(FERRY_CTR_FRAGMENT);
		sst = bpf_map_lookup_elem(&ferry_svc_stats, &svc_id);
		if (sst)
			sst->fragments += 1;
		cfg = bpf_map_lookup_elem(&ferry_config, &zero);
		if (cfg)
			ferry_trace_decision(ctx, hook, cfg, pkt, FERRY_TR_DROP_FRAGMENT, svc_id, 0,
					     0);
		return ferry_drop(hook);
	case FERRY_PARSE_OTHER:
		if (pkt->key.proto == IPPROTO_ICMP || pkt->key.proto == IPPROTO_ICMPV6)
			return ferry_fwd_icmp(ctx, hook, pkt);
		return ferry_pass(hook);
	default:
		return ferry_pass(hook);
	}
}

static __always_inline int ferry_fwd(void *ctx, const int hook)
{
	const struct ferry_service *svc;
	struct ferry_pkt pkt = {};
	struct ferry_config *cfg;
	struct ferry_flow *flow, *eflow;
	struct ferry_vip vip;
	__u32 zero = 0, reason, timeout;
	int rc, emb = 0;

	if (hook != FERRY_HOOK_XDP) {
		if (ferry_tc_handoff(ctx, &rc))
			return rc;
	}
	rc = ferry_parse_ctx(ctx, hook, &pkt);
	if (rc != FERRY_PARSE_OK)
		return ferry_fwd_unparsed(ctx, hook, &pkt, rc);
	/*
	 * Most packets at a node's interfaces are for no service: one array read
	 * tells them apart, instead of the flow, embryonic-flow and address
	 * lookups (three hash misses) they would take below. One to a VIP
	 * address on a port no service has is still counted.
	 */
	if (!ferry_vip_maybe(&pkt, pkt.key.dport, pkt.key.proto)) {
		if (ferry_vip_maybe(&pkt, 0, 0) && ferry_vip_marker(&pkt))
			ferry_count(FERRY_CTR_VIP_PORT_MISS);
		return ferry_pass(hook);
	}
	if (hook == FERRY_HOOK_XDP)
		pkt.len = ferry_data_end(ctx, hook) - ferry_data(ctx, hook);
	else
		pkt.len = ((struct __sk_buff *)ctx)->len;
	cfg = bpf_map_lookup_elem(&ferry_config, &zero);
	if (!cfg)
		return ferry_pass(hook);

	/* Established TCP first: one lookup, no service lookup. */
	reason = FERRY_TR_NEW_FLOW;
	if (pkt.key.proto == IPPROTO_TCP &&
	    (pkt.tcp_flags & (FERRY_TCP_SYN | FERRY_TCP_ACK)) != FERRY_TCP_SYN) {
		flow = bpf_map_lookup_elem(&ferry_flows, &pkt.key);
		if (flow && !(flow->flags & FERRY_FLOW_F_CLOSING))
			goto established;
		/*
		 * A closed connection's entry can stand beside a new one on the
		 * same port (the client reused it: a SYN after the close makes
		 * an embryonic flow): the embryonic one is the live connection.
		 */
		eflow = bpf_map_lookup_elem(&ferry_eflows, &pkt.key);
		if (eflow) {
			emb = 1;
			flow = ferry_fwd_confirm(ctx, hook, &pkt, eflow, &emb);
			goto established;
		}
		if (flow)
			goto established;
		/*
		 * Most such packets are simply not ours: the address marker
		 * tells in one lookup, instead of a service and a marker lookup.
		 */
		if (!ferry_vip_marker(&pkt))
			return ferry_pass(hook);
		reason = FERRY_TR_FLOW_MISS;
	} else if (pkt.key.proto != IPPROTO_TCP) {
		/*
		 * A datagram of a live flow needs no service lookup either: the
		 * confirmed entry, then the embryonic one (a flow whose backend
		 * never answered stays there). An idle one is picked anew.
		 */
		__u64 now = ferry_now();

		timeout = cfg->udp_timeout_s ?: FERRY_UDP_TIMEOUT_DEFAULT_S;
		flow = bpf_map_lookup_elem(&ferry_flows, &pkt.key);
		if (ferry_udp_live(flow, now, (__u64)timeout * 1000000000ULL))
			goto established;
		flow = bpf_map_lookup_elem(&ferry_eflows, &pkt.key);
		emb = 1;
		if (ferry_udp_live(flow, now, (__u64)timeout * 1000000000ULL)) {
			flow = ferry_fwd_confirm(ctx, hook, &pkt, flow, &emb);
			goto established;
		}
	}

	__builtin_memcpy(vip.addr, pkt.key.daddr, sizeof(vip.addr));
	vip.port = pkt.key.dport;
	vip.proto = pkt.key.proto;
	vip.family = pkt.key.family;
	svc = bpf_map_lookup_elem(&ferry_services, &vip);
	if (!svc) {
		/* A flow miss already found the marker. */
		if (reason == FERRY_TR_FLOW_MISS || ferry_vip_marker(&pkt))
			ferry_count(FERRY_CTR_VIP_PORT_MISS);
		return ferry_pass(hook);
	}

	if (reason == FERRY_TR_NEW_FLOW && pkt.key.proto == IPPROTO_TCP) {
		/*
		 * A SYN reuses its confirmed flow unless the old connection on
		 * this port closed; a retransmitted one finds its embryonic
		 * entry when it inserts (ferry_fwd_new).
		 */
		flow = bpf_map_lookup_elem(&ferry_flows, &pkt.key);
		if (flow && !(flow->flags & FERRY_FLOW_F_CLOSING)) {
			if (flow->flags & FERRY_FLOW_F_SYN_PENDING)
				ferry_stats_syn_timeout(flow->backend_id);
			goto established;
		}
	}
	return ferry_fwd_new(ctx, hook, cfg, &pkt, svc, reason);

established:
	return ferry_fwd_established(ctx, hook, cfg, &pkt, flow, emb);
}

/* ----------------------------------------------------------------- reply */

/*
 * An ICMP error about a forwarded packet (from the backend, a router on its
 * side, or this node, quoting client -> backend): goes to the client,
 * translated to quote client -> VIP, so that the client's socket, connected
 * to the VIP, takes it.
 */
static __always_inline int ferry_reply_icmp(struct __sk_buff *skb, const int hook,
					    struct ferry_pkt *pkt)
{
	struct ferry_rflow *rflow;
	bool emb = false;

	if (ferry_parse_icmp(ferry_data(skb, hook), ferry_data_end(skb, hook), pkt) !=
	    FERRY_PARSE_OK)
		return ferry_pass(hook);
	rflow = bpf_map_lookup_elem(&ferry_rflows, &pkt->key);
	if (!rflow)
		rflow = bpf_map_lookup_elem(&ferry_erflows, &pkt->key);
	/* A flow without its embryonic reply half, or one that lost it. */
	if (!rflow)
		rflow = ferry_rflow_recovered(&pkt->key, 0, &emb);
	if (!rflow)
		return ferry_pass(hook);
	if (ferry_icmp_rewrite(skb, hook, pkt, true, rflow->vip_addr, rflow->vip_port))
		return ferry_pass(hook);
	ferry_count(FERRY_CTR_ICMP_REPLY);
	if (hook == FERRY_HOOK_TC_EGRESS || pkt->vlan)
		return ferry_pass(hook);
	return ferry_reply_xmit(skb, hook, pkt, rflow);
}

static __always_inline int ferry_reply(struct __sk_buff *skb, const int hook)
{
	struct ferry_pkt pkt = {};
	struct ferry_rflow *rflow, *erflow;
	struct ferry_config *cfg;
	struct ferry_stats *st;
	struct ferry_flow *flow;
	__u32 zero = 0, backend_id, vip_addr[4];
	__be16 vip_port;
	bool synack, emb;
	int rc, l7 = FERRY_L7_PASS;

	rc = ferry_parse_ctx(skb, hook, &pkt);
	if (rc == FERRY_PARSE_OTHER &&
	    (pkt.key.proto == IPPROTO_ICMP || pkt.key.proto == IPPROTO_ICMPV6))
		return ferry_reply_icmp(skb, hook, &pkt);
	if (rc != FERRY_PARSE_OK) {
		/*
		 * A fragmented reply carries its ports in the first fragment
		 * only, so no fragment can be matched to its flow and each
		 * leaves with the backend's source address (the client drops
		 * it). Backends answer with DF set and PMTU discovery keeps
		 * them unfragmented; this counts what is left. No service can
		 * be named without the ports: a node counter.
		 */
		if (rc == FERRY_PARSE_FRAG)
			ferry_count(FERRY_CTR_REPLY_FRAGMENT);
		return ferry_pass(hook);
	}
	/*
	 * Most packets at a reply hook come from no backend (in pod mode it sees
	 * every packet into every pod): one array read passes them, instead of
	 * the reply-half, embryonic and VIP-hint misses they would take below.
	 */
	if (!ferry_filter_has(&ferry_be_bits, ferry_be_bit(pkt.key.saddr, pkt.key.sport)))
		return ferry_pass(hook);
	emb = false;
	synack = (pkt.tcp_flags & (FERRY_TCP_SYN | FERRY_TCP_ACK)) ==
		 (FERRY_TCP_SYN | FERRY_TCP_ACK);
	rflow = bpf_map_lookup_elem(&ferry_rflows, &pkt.key);
	/*
	 * A closed connection's entry yields to a new one on the same ports (see
	 * ferry_fwd). A SYN-ACK always looks for the new one: the old half is
	 * closing only if the backend's FIN or RST came this way, not after a
	 * client's RST, and through it the new flow would never be armed.
	 */
	if (!rflow || (rflow->flags & FERRY_FLOW_F_CLOSING) || synack) {
		erflow = bpf_map_lookup_elem(&ferry_erflows, &pkt.key);
		if (erflow)
			emb = true;
		/*
		 * The new one may have no embryonic reply half: its SYN-ACK
		 * finds it through the hint, or the old half would take it.
		 */
		else if (rflow && synack)
			erflow = ferry_rflow_recovered(&pkt.key, synack, &emb);
		if (erflow)
			rflow = erflow;
		/* Keeps clang from testing both pointers at once with an OR, which the verifier refuses. */
		asm volatile("" : "+r"(rflow));
	}
	if (!rflow) {
		/*
		 * An embryonic flow made without its reply half (a SYN to a
		 * backend no other service shares), or a half lost (an LRU
		 * eviction): found from the forward entry.
		 */
		rflow = ferry_rflow_recovered(&pkt.key, synack, &emb);
		if (!rflow)
			return ferry_pass(hook);
	}
	pkt.len = skb->len;
	backend_id = rflow->backend_id;
	rflow->packets += 1;
	rflow->bytes += pkt.len;
	ferry_count(FERRY_CTR_REPLY_NAT);
	st = bpf_map_lookup_elem(&ferry_stats, &backend_id);
	if (st) {
		st->rev_packets += 1;
		st->rev_bytes += pkt.len;
		if (pkt.tcp_flags & FERRY_TCP_RST)
			st->resets += 1;
	}
	if ((pkt.tcp_flags & (FERRY_TCP_FIN | FERRY_TCP_RST)) &&
	    !(rflow->flags & FERRY_FLOW_F_CLOSING))
		__sync_fetch_and_or(&rflow->flags, FERRY_FLOW_F_CLOSING);
	/*
	 * The forward entry on every reply (one more lookup, about 30 ns: make
	 * bench, tc_reply_in_v4 against tc_reply_payload_v4_sampled before): rebuilt when it is gone, so that the
	 * client's next packet still goes to this backend (a rehash would not
	 * after a table change), and its idle timer refreshed so that a flow
	 * that only streams replies does not expire. last_ns is written at most
	 * once a second: the cache line is shared with the forward CPU.
	 */
	if (emb)
		flow = bpf_map_lookup_elem(&ferry_eflows, &rflow->fwd);
	else
		flow = bpf_map_lookup_elem(&ferry_flows, &rflow->fwd);
	if (!flow) {
		ferry_flow_restore(rflow, &pkt.key, emb);
	} else {
		__u64 now = ferry_now();

		if (now - flow->last_ns > FERRY_REPLY_TOUCH_NS)
			flow->last_ns = now;
	}
	if (flow && ((pkt.tcp_flags & FERRY_TCP_RST) || synack)) {
		/* A reset by the backend ends the flow: the next SYN picks anew. */
		if ((pkt.tcp_flags & FERRY_TCP_RST) && !(flow->flags & FERRY_FLOW_F_CLOSING))
			__sync_fetch_and_or(&flow->flags, FERRY_FLOW_F_CLOSING);
		if (flow->flags & FERRY_FLOW_F_SAMPLED)
			ferry_reply_latency(flow, &pkt);
		else if (synack && (flow->flags & FERRY_FLOW_F_SYN_PENDING))
			__sync_fetch_and_and(&flow->flags, ~FERRY_FLOW_F_SYN_PENDING);
	}
	/* Requests and streams, on every flow: before the rewrite, which may move the data. */
	if (flow) {
		l7 = ferry_l7_track(skb, hook, &rflow->fwd, flow, &pkt, true);
		if (l7 == FERRY_L7_DROP) {
			ferry_count(FERRY_CTR_GOAWAY_TOLD);
			return ferry_drop(hook);
		}
		if (flow->flags & FERRY_FLOW_F_TOLD)
			ferry_told_seq(skb, hook, &pkt, &rflow->fwd, true);
	}
	cfg = bpf_map_lookup_elem(&ferry_config, &zero);
	if (cfg)
		ferry_trace_decision(skb, hook, cfg, &pkt, FERRY_TR_REPLY, 0, 0, backend_id);

	if (emb && flow) {
		if (pkt.tcp_flags & FERRY_TCP_RST) {
			/*
			 * A backend's RST: a spoofed pickup or a closed port, nothing
			 * to keep. The RST still reaches the client, through the stack
			 * (the entry holding the cached next hop is gone).
			 */
			__builtin_memcpy(vip_addr, rflow->vip_addr, sizeof(vip_addr));
			vip_port = rflow->vip_port;
			ferry_flow_drop_embryonic(&pkt.key, &rflow->fwd);
			ferry_rewrite(skb, hook, &pkt, true, vip_addr, vip_port);
			return ferry_pass(hook);
		}
		/*
		 * A pickup: the backend answered, the flow is real. After its
		 * SYN-ACK, a backend sends anything else only once a valid ACK
		 * established the connection: the client's ACK went by another
		 * node, or was missed here. UDP: the backend answers spoofed
		 * datagrams too, so its answer only arms the flow, as a SYN-ACK
		 * does; the client's next datagram confirms it (ferry_fwd_confirm),
		 * so that a flood of one datagram per spoofed source churns only
		 * the embryonic maps.
		 */
		if (pkt.key.proto != IPPROTO_TCP) {
			if (!(flow->flags & FERRY_FLOW_F_SYNACK))
				__sync_fetch_and_or(&flow->flags, FERRY_FLOW_F_SYNACK);
		} else if ((flow->flags & FERRY_FLOW_F_PICKUP) ||
			   ((flow->flags & FERRY_FLOW_F_SYNACK) && !synack)) {
			ferry_flow_promote(&rflow->fwd, flow);
			rflow = bpf_map_lookup_elem(&ferry_rflows, &pkt.key);
			if (!rflow)
				return ferry_pass(hook);
		} else if (synack) {
			flow->ack_expect = ferry_tcp_word(skb, hook, &pkt, 4) + 1;
			__sync_fetch_and_or(&flow->flags, FERRY_FLOW_F_SYNACK);
		}
	}

	if (ferry_rewrite(skb, hook, &pkt, true, rflow->vip_addr, rflow->vip_port))
		return ferry_pass(hook);
	/*
	 * Rebalancing's GOAWAY after this segment (l7.bpf.h). If it cannot go in,
	 * the first time the flow is armed again; a retransmission is dropped (the
	 * first copy carried the frame, or the next retransmission will).
	 */
	if (l7 == FERRY_L7_APPEND_GOAWAY || l7 == FERRY_L7_APPEND_AGAIN) {
		if (!ferry_goaway_append(skb, &pkt)) {
			ferry_count(FERRY_CTR_GOAWAY_APPENDED);
			if (flow && !(flow->flags & FERRY_FLOW_F_TOLD))
				__sync_fetch_and_or(&flow->flags, FERRY_FLOW_F_TOLD);
		} else if (l7 == FERRY_L7_APPEND_GOAWAY) {
			ferry_goaway_untell(&rflow->fwd);
		} else {
			ferry_count(FERRY_CTR_GOAWAY_TOLD);
			return ferry_drop(hook);
		}
	}
	if (hook == FERRY_HOOK_TC_EGRESS || pkt.vlan)
		return ferry_pass(hook);
	return ferry_reply_xmit(skb, hook, &pkt, rflow);
}

#endif /* FERRY_LB_BPF_H */