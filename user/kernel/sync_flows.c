// SPDX-License-Identifier: GPL-2.0-only
/*
 * Flow garbage collection: idle and closed flows, and the flows of deleted
 * backends, with their reverse entries.
 */
#include "kernel/sync_internal.h"

struct keylist {
	struct ferry_flow_key *keys;
	size_t n, cap;
};

static int keylist_add(struct keylist *l, const struct ferry_flow_key *key)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		struct ferry_flow_key *more = realloc(l->keys, cap * sizeof(*more));

		if (!more)
			return -ENOMEM;
		l->keys = more;
		l->cap = cap;
	}
	l->keys[l->n++] = *key;
	return 0;
}

static void keylist_delete(struct keylist *l, int fd)
{
	for (size_t i = 0; i < l->n; i++)
		bpf_map_delete_elem(fd, &l->keys[i]);
	free(l->keys);
}

/* Collects the keys of fd's flows (forward or reply, by rev) whose backend is dead. */
static void collect_dead(int fd, bool rev, const bool *dead, struct keylist *out)
{
	struct ferry_flow_key key, next, *prev = NULL;
	struct ferry_rflow rflow;
	struct ferry_flow flow;
	__u32 id;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		if (rev ? bpf_map_lookup_elem(fd, &key, &rflow) :
			  bpf_map_lookup_elem(fd, &key, &flow))
			continue;
		id = rev ? rflow.backend_id : flow.backend_id;
		if (id < FERRY_MAX_BACKENDS && dead[id])
			keylist_add(out, &key);
	}
}

/*
 * Removes the flows of deleted backends, confirmed and embryonic. Their next
 * packet is a flow miss: it is hashed onto a live backend, which has no such
 * connection and answers with a reset, so clients reconnect at once instead
 * of waiting on a dead pod.
 */
size_t purge_flows(struct ferry_sync *s, const bool *dead)
{
	static const struct {
		enum ferry_map_id id;
		bool rev;
	} maps[] = {
		{ FERRY_M_FLOWS, false },
		{ FERRY_M_RFLOWS, true },
		{ FERRY_M_EFLOWS, false },
		{ FERRY_M_ERFLOWS, true },
	};
	size_t purged = 0;

	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		int fd = s->dp->map_fds[maps[i].id];
		struct keylist l = {};

		collect_dead(fd, maps[i].rev, dead, &l);
		if (maps[i].id == FERRY_M_FLOWS)
			purged = l.n;
		keylist_delete(&l, fd);
	}
	return purged;
}

void ferry_flow__reverse_key(struct ferry_flow_key *rkey, const struct ferry_flow_key *key,
			     const struct ferry_flow *flow)
{
	memset(rkey, 0, sizeof(*rkey));
	memcpy(rkey->saddr, flow->backend_addr, sizeof(rkey->saddr));
	memcpy(rkey->daddr, key->saddr, sizeof(rkey->daddr));
	rkey->sport = flow->backend_port;
	rkey->dport = key->sport;
	rkey->proto = key->proto;
	rkey->family = key->family;
}

/*
 * One pass over a forward map (confirmed or embryonic) and the reply map of
 * the same kind: removes both halves of flows idle past their limit. Idle is
 * since the last packet either way (replies refresh last_ns too).
 */
static size_t gc_map(int ffd, int rfd, bool embryonic, const struct ferry_gc_opts *o, __u64 now)
{
	struct ferry_flow_key key, next, rkey, *prev = NULL;
	struct keylist fwd = {}, rev = {};
	struct ferry_flow flow;
	size_t n;

	while (!bpf_map_get_next_key(ffd, prev, &next)) {
		__u64 limit;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(ffd, &key, &flow) || flow.last_ns > now)
			continue;
		if (key.proto == IPPROTO_UDP)
			limit = o->udp_idle_ns;
		else if (flow.flags & FERRY_FLOW_F_CLOSING)
			limit = o->tcp_closing_ns;
		else if (embryonic)
			limit = o->embryonic_ns ?: o->tcp_closing_ns;
		else
			limit = o->tcp_idle_ns;
		if (now - flow.last_ns < limit)
			continue;
		ferry_flow__reverse_key(&rkey, &key, &flow);
		if (keylist_add(&fwd, &key) || keylist_add(&rev, &rkey))
			break;
	}
	n = fwd.n;
	keylist_delete(&fwd, ffd);
	keylist_delete(&rev, rfd);
	return n;
}

size_t ferry_sync__gc_flows(struct ferry_sync *s, const struct ferry_gc_opts *o)
{
	int *fds = s->dp->map_fds;
	struct timespec ts;
	__u64 now;

	/* The data plane stamps flows with bpf_ktime_get_coarse_ns(): CLOCK_MONOTONIC. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
	return gc_map(fds[FERRY_M_FLOWS], fds[FERRY_M_RFLOWS], false, o, now) +
	       gc_map(fds[FERRY_M_EFLOWS], fds[FERRY_M_ERFLOWS], true, o, now);
}
