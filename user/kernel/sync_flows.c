// SPDX-License-Identifier: GPL-2.0-only
/*
 * Flow garbage collection: idle and closed flows, and the flows of deleted
 * backends, with their reverse entries.
 */
#include "kernel/sync_internal.h"

/*
 * Entries per batch syscall, and the most keys a pass holds at once: what
 * is due is deleted after each batch read, so a pass allocates about 60 KB
 * whatever the table holds. Collecting every due key first made a pass over
 * a full table of due flows grow ferryd by 21 MB (and free it again) every
 * ten seconds, and cost a third more CPU (docs/performance.md).
 */
#define FLOW_BATCH 256

/* Keys to delete from one map, a batch at a time. */
struct keylist {
	int fd;
	__u32 n;
	struct ferry_flow_key keys[FLOW_BATCH];
};

/*
 * Deletes l's keys, a batch per call, and empties l. A key that is already
 * gone (the LRU or the data plane took it since the walk) stops a batch at
 * that key: it is skipped and the rest go on.
 */
static void keylist_flush(struct keylist *l)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	__u32 done = 0;

	while (done < l->n) {
		__u32 n = l->n - done;
		int err = bpf_map_delete_batch(l->fd, l->keys + done, &n, &opts);

		done += n;
		if (!err)
			continue;
		/* Not the missing key (a kernel without batches?): that key alone. */
		if (err != -ENOENT && done < l->n)
			bpf_map_delete_elem(l->fd, &l->keys[done]);
		done++;
	}
	l->n = 0;
}

/*
 * One walk over a flow map: visit() is called for every entry and queues
 * what must go in fwd (keys of the walked map or another) and rev; both are
 * deleted after each batch read. Deleting behind the walk is safe: a batch
 * read resumes at the next hash bucket, and only buckets already read lose
 * entries. At most FLOW_BATCH keys each per batch.
 */
struct flow_walk {
	void (*visit)(struct flow_walk *w, const struct ferry_flow_key *key, const void *val);
	struct keylist fwd, rev;
};

/*
 * Walks fd's entries (forward or reply: val_size), FLOW_BATCH per syscall.
 * One lookup per key after a get_next_key, two syscalls per flow, made a
 * pass over a full table (262,144 flows) cost ferryd most of a CPU-second
 * every ten seconds, on the cores the traffic uses. Returns 0 or -errno
 * (what was visited before it is deleted all the same).
 */
static int walk_flows(int fd, size_t val_size, struct flow_walk *w)
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
			w->visit(w, &keys[i], vals + (size_t)i * val_size);
		keylist_flush(&w->fwd);
		keylist_flush(&w->rev);
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
	struct flow_walk walk;
	const bool *dead;
	bool rev;
	size_t n;
};

static void visit_dead(struct flow_walk *fw, const struct ferry_flow_key *key, const void *val)
{
	struct dead_walk *w = (struct dead_walk *)fw;
	__u32 id = w->rev ? ((const struct ferry_rflow *)val)->backend_id :
			    ((const struct ferry_flow *)val)->backend_id;

	if (id < FERRY_MAX_BACKENDS && w->dead[id]) {
		w->walk.fwd.keys[w->walk.fwd.n++] = *key;
		w->n++;
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
	struct dead_walk *w = calloc(1, sizeof(*w));
	size_t purged = 0;
	int err;

	if (!w) {
		pr_warn("flows of deleted backends: out of memory; they age out");
		return 0;
	}
	w->walk.visit = visit_dead;
	w->dead = dead;
	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		int fd = s->dp->map_fds[maps[i].id];

		w->walk.fwd.fd = fd;
		w->rev = maps[i].rev;
		w->n = 0;
		err = walk_flows(fd,
				 w->rev ? sizeof(struct ferry_rflow) : sizeof(struct ferry_flow),
				 &w->walk);
		if (err)
			pr_warn("flows of deleted backends: reading a flow map failed (%s); the "
				"rest age out",
				strerror(-err));
		if (maps[i].id == FERRY_M_FLOWS)
			purged = w->n;
	}
	free(w);
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
	struct flow_walk walk;
	const struct ferry_gc_opts *o;
	__u64 now;
	bool embryonic;
	size_t n, seen;
};

static void visit_idle(struct flow_walk *fw, const struct ferry_flow_key *key, const void *val)
{
	struct gc_walk *w = (struct gc_walk *)fw;
	const struct ferry_flow *flow = val;
	__u64 limit;

	w->seen++;
	if (flow->last_ns > w->now)
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
	w->walk.fwd.keys[w->walk.fwd.n++] = *key;
	/* Made without an embryonic reply half: none to delete (a missing key costs a batch). */
	if (!(w->embryonic && (flow->flags & FERRY_FLOW_F_REPLY_HINT)))
		ferry_flow__reverse_key(&w->walk.rev.keys[w->walk.rev.n++], key, flow);
	w->n++;
}

/*
 * One pass over a forward map (confirmed or embryonic) and the reply map of
 * the same kind: removes both halves of flows idle past their limit. Idle is
 * since the last packet either way (replies refresh last_ns too).
 */
static void gc_map(struct gc_walk *w, int ffd, int rfd, bool embryonic)
{
	int err;

	w->walk.fwd.fd = ffd;
	w->walk.rev.fd = rfd;
	w->embryonic = embryonic;
	w->n = 0;
	w->seen = 0;
	err = walk_flows(ffd, sizeof(struct ferry_flow), &w->walk);
	if (err)
		pr_warn("flow gc: reading the %s flows failed (%s)",
			embryonic ? "embryonic" : "confirmed", strerror(-err));
}

size_t ferry_sync__gc_flows(struct ferry_sync *s, const struct ferry_gc_opts *o,
			    struct ferry_gc_result *res)
{
	static const struct {
		enum ferry_map_id fwd, rev;
	} tables[FERRY_FLOW_TABLES] = {
		[FERRY_FLOWS_CONFIRMED] = { FERRY_M_FLOWS, FERRY_M_RFLOWS },
		[FERRY_FLOWS_EMBRYONIC] = { FERRY_M_EFLOWS, FERRY_M_ERFLOWS },
	};
	struct ferry_gc_result r = {};
	int *fds = s->dp->map_fds;
	struct gc_walk *w = calloc(1, sizeof(*w));
	struct timespec ts;
	size_t n = 0;

	if (!w) {
		pr_warn("flow gc: out of memory; the next pass tries again");
		return 0;
	}
	w->walk.visit = visit_idle;
	w->o = o;
	/* The data plane stamps flows with bpf_ktime_get_coarse_ns(): CLOCK_MONOTONIC. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	w->now = (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
	for (int t = 0; t < FERRY_FLOW_TABLES; t++) {
		struct bpf_map_info info = {};
		__u32 len = sizeof(info);

		gc_map(w, fds[tables[t].fwd], fds[tables[t].rev], t == FERRY_FLOWS_EMBRYONIC);
		r.seen[t] = w->seen;
		r.removed[t] = w->n;
		if (!bpf_obj_get_info_by_fd(fds[tables[t].fwd], &info, &len))
			r.capacity[t] = info.max_entries;
		n += w->n;
	}
	free(w);
	if (res)
		*res = r;
	return n;
}
