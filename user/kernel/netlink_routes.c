// SPDX-License-Identifier: GPL-2.0-only
/*
 * Route look-ups for backend addresses: batched RTM_GETROUTE queries on the
 * query socket, and a cache flushed by route, rule and link changes.
 */
#include "kernel/netlink_internal.h"

/* ------------------------------------------------------------ route cache */

static int norm_family(__u8 family)
{
	switch (family) {
	case AF_INET:
	case FERRY_AF_INET:
		return AF_INET;
	case AF_INET6:
	case FERRY_AF_INET6:
		return AF_INET6;
	default:
		return -1;
	}
}

static size_t route_hash(int family, const __be32 addr[4])
{
	/* murmur3's finaliser over the four words: cheap and well mixed. */
	__u64 h = (__u64)family * 0x9e3779b97f4a7c15ULL;
	int i;

	for (i = 0; i < 4; i++) {
		h ^= addr[i];
		h ^= h >> 33;
		h *= 0xff51afd7ed558ccdULL;
		h ^= h >> 33;
	}
	return (size_t)h;
}

void cache_flush(struct ferry_nl *nl)
{
	nl->cache_used = 0;
	if (++nl->cache_gen == 0) {
		/* Wrapped: very old entries would look current again. */
		memset(nl->cache, 0, nl->cache_cap * sizeof(*nl->cache));
		nl->cache_gen = 1;
	}
}

static struct route_entry *cache_slot(struct route_entry *tab, size_t cap, __u32 gen, int family,
				      const __be32 addr[4], bool *found)
{
	size_t i = route_hash(family, addr) & (cap - 1);

	/* Slots of an older generation are free: nothing is ever deleted within one. */
	for (;; i = (i + 1) & (cap - 1)) {
		struct route_entry *e = &tab[i];

		if (e->gen != gen) {
			*found = false;
			return e;
		}
		if (e->family == family && !memcmp(e->addr, addr, sizeof(e->addr))) {
			*found = true;
			return e;
		}
	}
}

static const struct route_entry *cache_lookup(struct ferry_nl *nl, int family, const __be32 addr[4])
{
	struct route_entry *e;
	bool found;

	if (!nl->cache_used)
		return NULL;
	e = cache_slot(nl->cache, nl->cache_cap, nl->cache_gen, family, addr, &found);
	return found ? e : NULL;
}

int cache_grow(struct ferry_nl *nl)
{
	size_t cap = nl->cache_cap ? nl->cache_cap * 2 : CACHE_MIN, i;
	struct route_entry *tab;

	tab = calloc(cap, sizeof(*tab));
	if (!tab)
		return -ENOMEM;
	for (i = 0; i < nl->cache_cap; i++) {
		struct route_entry *old = &nl->cache[i], *e;
		bool found;

		if (old->gen != nl->cache_gen)
			continue;
		e = cache_slot(tab, cap, nl->cache_gen, old->family, old->addr, &found);
		*e = *old;
	}
	free(nl->cache);
	nl->cache = tab;
	nl->cache_cap = cap;
	return 0;
}

static void cache_store(struct ferry_nl *nl, int family, const __be32 addr[4], int ifindex, int err)
{
	struct route_entry *e;
	bool found;

	/* Keep the load at or under one half so probes stay short. */
	if ((nl->cache_used + 1) * 2 > nl->cache_cap) {
		if (nl->cache_cap >= CACHE_MAX)
			cache_flush(nl);
		else if (cache_grow(nl))
			return; /* a cache is optional */
	}
	e = cache_slot(nl->cache, nl->cache_cap, nl->cache_gen, family, addr, &found);
	if (!found) {
		e->gen = nl->cache_gen;
		e->family = family;
		memcpy(e->addr, addr, sizeof(e->addr));
		nl->cache_used++;
	}
	e->ifindex = ifindex;
	e->err = err;
}

/*
 * A notification that ferry_nl__process() has not read yet may already have
 * made the cache stale: ferryd can look routes up from a callback of another
 * event source first. Readable (or errored) notification socket -> flush.
 */
static void cache_check_pending(struct ferry_nl *nl)
{
	struct pollfd pfd = { .fd = nl_socket_get_fd(nl->events), .events = POLLIN };

	if (nl->cache_used && poll(&pfd, 1, 0) > 0)
		cache_flush(nl);
}

void ferry_nl__flush_cache(struct ferry_nl *nl)
{
	cache_flush(nl);
}

/* ---------------------------------------------------------- route queries */

struct route_req {
	struct nlmsghdr nh;
	struct rtmsg rtm;
	struct nlattr dst_hdr;
	__be32 dst[4];
};

/* The cache key of a query: IPv4 uses addr[0] only. Returns the AF_* family or -1. */
static int route_key(const struct ferry_nl_route_query *r, __be32 key[4])
{
	int family = norm_family(r->family);

	memset(key, 0, 4 * sizeof(*key));
	memcpy(key, r->addr, family == AF_INET ? 4 : 16);
	return family;
}

/* Appends one RTM_GETROUTE for q to buf; returns its aligned length. */
static size_t route_req_put(void *buf, int family, const __be32 addr[4], __u32 seq, __u32 port)
{
	size_t alen = family == AF_INET ? 4 : 16;
	struct route_req *r = buf;

	memset(r, 0, sizeof(*r));
	r->nh.nlmsg_len = NLMSG_LENGTH(sizeof(r->rtm)) + NLA_HDRLEN + alen;
	r->nh.nlmsg_type = RTM_GETROUTE;
	r->nh.nlmsg_flags = NLM_F_REQUEST;
	r->nh.nlmsg_seq = seq;
	r->nh.nlmsg_pid = port;
	r->rtm.rtm_family = family;
	r->rtm.rtm_dst_len = alen * 8;
	r->dst_hdr.nla_len = NLA_HDRLEN + alen;
	r->dst_hdr.nla_type = RTA_DST;
	memcpy(r->dst, addr, alen);
	return NLMSG_ALIGN(r->nh.nlmsg_len);
}

/* One reply: RTM_NEWROUTE with RTA_OIF, or NLMSG_ERROR with the verdict. */
static void route_reply_parse(struct nlmsghdr *hdr, int *ifindex, int *err)
{
	struct nlattr *tb[RTA_MAX + 1];

	*ifindex = 0;
	if (hdr->nlmsg_type == NLMSG_ERROR) {
		struct nlmsgerr *e = nlmsg_data(hdr);

		if (nlmsg_datalen(hdr) < (int)sizeof(*e))
			*err = -EBADMSG;
		else
			*err = e->error ? e->error : -ENODATA; /* an ack: we asked for none */
		return;
	}
	if (hdr->nlmsg_type != RTM_NEWROUTE ||
	    nlmsg_parse(hdr, sizeof(struct rtmsg), tb, RTA_MAX, NULL) < 0) {
		*err = -EBADMSG;
		return;
	}
	if (!tb[RTA_OIF]) {
		*err = -ENODATA;
		return;
	}
	*ifindex = (int)nla_get_u32(tb[RTA_OIF]);
	*err = 0;
}

/* Sends the misses idx[0..n) in one sendmsg and reads the n replies. */
static int route_query_batch(struct ferry_nl *nl, struct ferry_nl_route_query *q, const size_t *idx,
			     size_t n)
{
	char buf[ROUTE_BATCH * NLMSG_ALIGN(sizeof(struct route_req))];
	__u32 port = nl_socket_get_local_port(nl->query);
	__u32 seq0 = nl->seq;
	bool done[ROUTE_BATCH] = { false };
	size_t len = 0, i, pending = n;
	int err;

	nl->seq += n;
	for (i = 0; i < n; i++) {
		struct ferry_nl_route_query *r = &q[idx[i]];

		len += route_req_put(buf + len, norm_family(r->family), r->addr, seq0 + i, port);
	}
	err = nl_sendto(nl->query, buf, len);
	if (err < 0)
		return nlerr_to_errno(err);

	while (pending) {
		struct sockaddr_nl peer;
		unsigned char *rbuf = NULL;
		struct nlmsghdr *hdr;
		int rlen;

		rlen = nl_recv(nl->query, &peer, &rbuf, NULL);
		if (rlen <= 0) {
			free(rbuf);
			if (rlen == -NLE_AGAIN)
				return -ETIMEDOUT;
			return rlen ? nlerr_to_errno(rlen) : -EIO;
		}
		for (hdr = (struct nlmsghdr *)rbuf; nlmsg_ok(hdr, rlen);
		     hdr = nlmsg_next(hdr, &rlen)) {
			/* Unsigned difference: a stale reply from an aborted batch is out of range. */
			__u32 k = hdr->nlmsg_seq - seq0;
			struct ferry_nl_route_query *r;
			__be32 key[4];

			/* Only the kernel (port 0) answers; anyone else could poison the cache. */
			if (peer.nl_pid != 0 || k >= n || done[k])
				continue;
			r = &q[idx[k]];
			route_reply_parse(hdr, &r->ifindex, &r->err);
			cache_store(nl, route_key(r, key), key, r->ifindex, r->err);
			done[k] = true;
			pending--;
		}
		free(rbuf);
	}
	return 0;
}

int ferry_nl__route_ifindex_batch(struct ferry_nl *nl, struct ferry_nl_route_query *q, size_t n)
{
	size_t miss[ROUTE_BATCH], nmiss = 0, i;
	int err;

	cache_check_pending(nl);
	for (i = 0; i < n; i++) {
		struct ferry_nl_route_query *r = &q[i];
		const struct route_entry *e;
		__be32 key[4];
		int family = route_key(r, key);

		r->ifindex = 0;
		if (family < 0) {
			r->err = -EAFNOSUPPORT;
			continue;
		}
		e = cache_lookup(nl, family, key);
		if (e) {
			r->ifindex = e->ifindex;
			r->err = e->err;
			continue;
		}
		r->err = -EINPROGRESS; /* what stays if the exchange fails before its reply */
		miss[nmiss++] = i;
		if (nmiss == ROUTE_BATCH) {
			err = route_query_batch(nl, q, miss, nmiss);
			if (err)
				return err;
			nmiss = 0;
		}
	}
	if (nmiss)
		return route_query_batch(nl, q, miss, nmiss);
	return 0;
}

int ferry_nl__route_ifindex(struct ferry_nl *nl, __u8 family, const __be32 addr[4], int *ifindex)
{
	struct ferry_nl_route_query q = { .family = family };
	int err;

	memcpy(q.addr, addr, norm_family(family) == AF_INET ? 4 : sizeof(q.addr));
	err = ferry_nl__route_ifindex_batch(nl, &q, 1);
	if (err)
		return err;
	if (!q.err)
		*ifindex = q.ifindex;
	return q.err;
}
