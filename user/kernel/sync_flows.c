// SPDX-License-Identifier: GPL-2.0-only
/*
 * Flow garbage collection: idle and closed flows, and the flows of deleted
 * backends, with their reverse entries.
 */
#include "kernel/sync_internal.h"

/* Entries per batch syscall: 4,096 flows (a 448 KB value buffer). */
#define FLOW_BATCH 4096

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

/*
 * Deletes l's keys from fd, a batch per call. A key that is already gone
 * (the LRU or the data plane took it since the walk) stops a batch at that
 * key: it is skipped and the rest go on.
 */
static void keylist_delete(struct keylist *l, int fd)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	size_t done = 0;

	while (done < l->n) {
		__u32 n = l->n - done > FLOW_BATCH ? FLOW_BATCH : l->n - done;
		int err = bpf_map_delete_batch(fd, l->keys + done, &n, &opts);

		done += n;
		if (!err)
			continue;
		/* Not the missing key (a kernel without batches?): that key alone. */
		if (err != -ENOENT && done < l->n)
			bpf_map_delete_elem(fd, &l->keys[done]);
		done++;
	}
	free(l->keys);
}

typedef void (*flow_visit_fn)(const struct ferry_flow_key *key, const void *val, void *ctx);

/*
 * Calls fn for every entry of a flow map (forward or reply: val_size), read
 * FLOW_BATCH entries per syscall. One lookup per key after a get_next_key,
 * two syscalls per flow, made a GC pass over a full table (262,144 flows)
 * cost ferryd most of a CPU-second every ten seconds, on the cores the
 * traffic uses. Not ferry_map__read_all (snapshot.c): that holds the whole
 * table at once (40 MB when full), this one batch. Returns 0 or -errno (the
 * entries visited before it stay visited).
 */
static int walk_flows(int fd, size_t val_size, flow_visit_fn fn, void *ctx)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	struct ferry_flow_key *keys = calloc(FLOW_BATCH, sizeof(*keys));
	char *vals = calloc(FLOW_BATCH, val_size);
	__u32 in, out, n, i;
	bool first = true;
	int err = -ENOMEM;

	if (!keys || !vals)
		goto free_bufs;
	do {
		n = FLOW_BATCH;
		err = bpf_map_lookup_batch(fd, first ? NULL : &in, &out, keys, vals, &n, &opts);
		if (err && err != -ENOENT)
			break;
		for (i = 0; i < n; i++)
			fn(&keys[i], vals + (size_t)i * val_size, ctx);
		in = out;
		first = false;
	} while (!err);
	/* -ENOENT: the walk reached the end. */
	if (err == -ENOENT)
		err = 0;
free_bufs:
	free(vals);
	free(keys);
	return err;
}

struct dead_walk {
	const bool *dead;
	bool rev;
	struct keylist *out;
};

static void visit_dead(const struct ferry_flow_key *key, const void *val, void *ctx)
{
	const struct dead_walk *w = ctx;
	__u32 id = w->rev ? ((const struct ferry_rflow *)val)->backend_id :
			    ((const struct ferry_flow *)val)->backend_id;

	if (id < FERRY_MAX_BACKENDS && w->dead[id])
		keylist_add(w->out, key);
}

/* Collects the keys of fd's flows (forward or reply, by rev) whose backend is dead. */
static void collect_dead(int fd, bool rev, const bool *dead, struct keylist *out)
{
	struct dead_walk w = { .dead = dead, .rev = rev, .out = out };
	int err;

	err = walk_flows(fd, rev ? sizeof(struct ferry_rflow) : sizeof(struct ferry_flow),
			 visit_dead, &w);
	if (err)
		pr_warn("flows of deleted backends: reading a flow map failed (%s); the rest "
			"age out",
			strerror(-err));
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

struct gc_walk {
	const struct ferry_gc_opts *o;
	__u64 now;
	bool embryonic, full;
	struct keylist fwd, rev;
};

static void visit_idle(const struct ferry_flow_key *key, const void *val, void *ctx)
{
	const struct ferry_flow *flow = val;
	struct gc_walk *w = ctx;
	struct ferry_flow_key rkey;
	__u64 limit;

	if (w->full || flow->last_ns > w->now)
		return;
	if (key->proto == IPPROTO_UDP)
		limit = w->o->udp_idle_ns;
	else if (flow->flags & FERRY_FLOW_F_CLOSING)
		limit = w->o->tcp_closing_ns;
	else if (w->embryonic)
		limit = w->o->embryonic_ns ?: w->o->tcp_closing_ns;
	else
		limit = w->o->tcp_idle_ns;
	if (w->now - flow->last_ns < limit)
		return;
	ferry_flow__reverse_key(&rkey, key, flow);
	/* Out of memory: what was collected goes now, the rest on the next pass. */
	if (keylist_add(&w->fwd, key) || keylist_add(&w->rev, &rkey))
		w->full = true;
}

/*
 * One pass over a forward map (confirmed or embryonic) and the reply map of
 * the same kind: removes both halves of flows idle past their limit. Idle is
 * since the last packet either way (replies refresh last_ns too).
 */
static size_t gc_map(int ffd, int rfd, bool embryonic, const struct ferry_gc_opts *o, __u64 now)
{
	struct gc_walk w = { .o = o, .now = now, .embryonic = embryonic };
	size_t n;
	int err;

	err = walk_flows(ffd, sizeof(struct ferry_flow), visit_idle, &w);
	if (err)
		pr_warn("flow gc: reading the %s flows failed (%s)",
			embryonic ? "embryonic" : "confirmed", strerror(-err));
	/* A half-added pair (out of memory) leaves its reply half to the next pass. */
	if (w.rev.n < w.fwd.n)
		w.fwd.n = w.rev.n;
	n = w.fwd.n;
	keylist_delete(&w.fwd, ffd);
	keylist_delete(&w.rev, rfd);
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
