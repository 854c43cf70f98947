// SPDX-License-Identifier: GPL-2.0-only
/*
 * 'ferryctl flows --flush' (flow_flush.h): the flow maps are named in one
 * table below and opened by their pin names, so a new flow map (an
 * embryonic table, a confirmed one) is one line here, with its matcher.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "kernel/flow_flush.h"
#include "kernel/pins.h"

/* Whether the entry (key, value) of a flow map belongs to vip. */
typedef bool (*flow_match_fn)(const void *key, const void *value, const struct ferry_vip *vip);

static bool vip_is(const struct ferry_vip *vip, const __be32 addr[4], __be16 port, __u8 proto,
		   __u8 family)
{
	return vip->family == family && vip->port == port && vip->proto == proto &&
	       !memcmp(vip->addr, addr, sizeof(vip->addr));
}

/* ferry_flows: client -> VIP, the VIP is the key's destination. */
static bool forward_matches(const void *key, const void *value, const struct ferry_vip *vip)
{
	const struct ferry_flow_key *k = key;

	return vip_is(vip, k->daddr, k->dport, k->proto, k->family);
}

/* ferry_rflows: backend -> client; the value says which VIP to put back. */
static bool reply_matches(const void *key, const void *value, const struct ferry_vip *vip)
{
	const struct ferry_flow_key *k = key;
	const struct ferry_rflow *r = value;

	return vip_is(vip, r->vip_addr, r->vip_port, k->proto, r->family);
}

static const struct flow_map {
	const char *name;
	flow_match_fn matches;
	__u32 key_size, value_size; /* what matches reads; checked against the pin */
	bool optional; /* may be absent (a map of another ABI version) */
} flow_maps[] = {
	{ FERRY_MAP_FLOWS, forward_matches, sizeof(struct ferry_flow_key),
	  sizeof(struct ferry_flow) },
	{ FERRY_MAP_RFLOWS, reply_matches, sizeof(struct ferry_flow_key),
	  sizeof(struct ferry_rflow) },
};

_Static_assert(sizeof(flow_maps) / sizeof(flow_maps[0]) <= FERRY_FLOW_FLUSH_MAX_MAPS,
	       "ferry_flow_flush_result has room for every flow map");

static bool wanted(const struct flow_map *m, const void *key, const void *value,
		   const struct ferry_vip *vips, size_t nvips)
{
	if (!nvips)
		return true;
	for (size_t i = 0; i < nvips; i++)
		if (m->matches(key, value, &vips[i]))
			return true;
	return false;
}

/*
 * Collects the keys first, then deletes them: deleting while walking a hash
 * map with get_next_key can restart the walk from the bucket's head.
 */
static int flush_map(int fd, const struct flow_map *m, const struct ferry_vip *vips, size_t nvips,
		     size_t *deleted)
{
	struct bpf_map_info info = {};
	__u32 info_len = sizeof(info);
	char *keys = NULL, *last = NULL, *cur = NULL, *value = NULL;
	size_t n = 0, cap = 0;
	bool started = false;
	int err = 0;

	if (bpf_obj_get_info_by_fd(fd, &info, &info_len))
		return -errno;
	/* A flush of everything reads no value: any layout goes. A filter must understand it. */
	if (nvips && (info.key_size != m->key_size || info.value_size != m->value_size))
		return -EPROTO;
	cur = malloc(info.key_size);
	last = malloc(info.key_size);
	value = malloc(info.value_size);
	if (!cur || !last || !value) {
		err = -ENOMEM;
		goto out_free;
	}
	while (!bpf_map_get_next_key(fd, started ? last : NULL, cur)) {
		started = true;
		memcpy(last, cur, info.key_size);
		/* Gone meanwhile (LRU eviction, expiry): nothing to delete. */
		if (nvips &&
		    (bpf_map_lookup_elem(fd, cur, value) || !wanted(m, cur, value, vips, nvips)))
			continue;
		if (n == cap) {
			size_t more_cap = cap ? cap * 2 : 1024;
			char *more = realloc(keys, more_cap * info.key_size);

			if (!more) {
				err = -ENOMEM;
				goto out_free;
			}
			keys = more;
			cap = more_cap;
		}
		memcpy(keys + n++ * info.key_size, cur, info.key_size);
	}
	for (size_t i = 0; i < n; i++)
		if (!bpf_map_delete_elem(fd, keys + i * info.key_size))
			(*deleted)++;
out_free:
	free(keys);
	free(cur);
	free(last);
	free(value);
	return err;
}

int ferry_flows__flush(const char *pin_path, const struct ferry_vip *vips, size_t nvips,
		       struct ferry_flow_flush_result *res)
{
	int err = 0;

	memset(res, 0, sizeof(*res));
	for (size_t i = 0; i < sizeof(flow_maps) / sizeof(flow_maps[0]); i++) {
		const struct flow_map *m = &flow_maps[i];
		struct ferry_flow_flush_map *r = &res->maps[res->nmaps++];
		char path[512];
		int fd, e;

		r->name = m->name;
		e = ferry_pin__path(path, sizeof(path), pin_path, m->name);
		fd = e ? e : bpf_obj_get(path);
		if (fd < 0) {
			e = e ? e : -errno;
			if (e == -ENOENT && m->optional)
				continue;
			err = err ? err : e;
			continue;
		}
		r->present = true;
		e = flush_map(fd, m, vips, nvips, &r->deleted);
		close(fd);
		if (e)
			err = err ? err : e;
	}
	return err;
}
