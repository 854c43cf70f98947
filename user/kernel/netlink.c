// SPDX-License-Identifier: GPL-2.0-only
/*
 * ferryd's rtnetlink layer (libnl-3, libnl-route-3): route look-ups for the
 * reply program's interfaces, link and routing notifications for pod
 * interfaces, and interface name helpers. See netlink.h for the contract.
 */
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <net/if.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <linux/rtnetlink.h>

#include <netlink/attr.h>
#include <netlink/cache.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/object.h>
#include <netlink/socket.h>
#include <netlink/route/link.h>

#include "ferry_maps.h"
#include "log.h"
#include "kernel/netlink.h"

/*
 * Route requests in flight per sendmsg. Each reply is its own skb of about
 * 1 KiB truesize in the query socket's receive queue; 64 stay well under the
 * default 208 KiB rmem_max, so the kernel never drops a reply (a dropped
 * unicast reply would leave us waiting for it).
 */
#define ROUTE_BATCH 64
/* The kernel always answers RTM_GETROUTE; this only bounds a bug's damage. */
#define QUERY_TIMEOUT_S 5
/* Reads per ferry_nl__process(); level-triggered epoll brings us back. */
#define PROCESS_MAX_READS 256
/* Notification bursts (a node draining 100 pods) must not overflow. */
#define EVENTS_RCVBUF (4 << 20)
/* Route cache: power-of-two open addressing; flushes rather than grow past. */
#define CACHE_MIN 1024
#define CACHE_MAX (1 << 20)
/* linux/if.h has it but clashes with glibc's net/if.h, which lacks it. */
#ifndef IFF_LOWER_UP
#define IFF_LOWER_UP 0x10000
#endif
/* Link flags whose change alters routing without a route notification. */
#define LINK_ROUTE_FLAGS (IFF_UP | IFF_LOWER_UP)

struct route_entry {
	__u32 gen; /* valid only while equal to ferry_nl.cache_gen */
	__u8 family; /* AF_INET or AF_INET6 */
	__be32 addr[4]; /* IPv4: addr[1..3] zero */
	int ifindex;
	int err;
};

struct known_link {
	int ifindex;
	unsigned int flags; /* IFF_* */
	bool seen; /* marked by a resync dump */
	char name[IFNAMSIZ];
};

struct ferry_nl {
	struct nl_sock *query; /* route look-ups and link dumps; blocking */
	struct nl_sock *events; /* multicast notifications; non-blocking */
	struct ferry_nl_callbacks cb;
	void *ctx;

	struct route_entry *cache;
	size_t cache_cap;
	size_t cache_used; /* entries of the current generation */
	__u32 cache_gen; /* bumped to flush in O(1) */
	__u32 seq; /* our own sequence numbers for raw route requests */

	struct known_link *links; /* the state on_link reports changes of */
	size_t nlinks, links_cap;

	bool route_changed; /* seen during this ferry_nl__process() */
	bool need_resync; /* notifications were lost and no dump has caught up yet */
};

static int nlerr_to_errno(int nlerr)
{
	switch (nlerr < 0 ? -nlerr : nlerr) {
	case 0:
		return 0;
	case NLE_NOMEM:
		return -ENOMEM;
	case NLE_AGAIN:
		return -EAGAIN;
	case NLE_INTR:
		return -EINTR;
	case NLE_PERM:
		return -EPERM;
	case NLE_NOACCESS:
		return -EACCES;
	case NLE_INVAL:
	case NLE_MSGTYPE_NOSUPPORT:
		return -EINVAL;
	case NLE_AF_NOSUPPORT:
		return -EAFNOSUPPORT;
	case NLE_OBJ_NOTFOUND:
		return -ENOENT;
	case NLE_NODEV:
		return -ENODEV;
	case NLE_BAD_SOCK:
		return -EBADF;
	case NLE_PROTO_MISMATCH:
		return -EPROTONOSUPPORT;
	case NLE_RANGE:
		return -ERANGE;
	case NLE_OPNOTSUPP:
		return -EOPNOTSUPP;
	default:
		return -EIO;
	}
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

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

static void cache_flush(struct ferry_nl *nl)
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

static int cache_grow(struct ferry_nl *nl)
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

/* ------------------------------------------------------------------ links */

static struct known_link *link_find(struct ferry_nl *nl, int ifindex)
{
	size_t i;

	for (i = 0; i < nl->nlinks; i++)
		if (nl->links[i].ifindex == ifindex)
			return &nl->links[i];
	return NULL;
}

static struct known_link *link_add(struct ferry_nl *nl, int ifindex)
{
	struct known_link *l;

	if (nl->nlinks == nl->links_cap) {
		size_t cap = nl->links_cap ? nl->links_cap * 2 : 64;

		l = realloc(nl->links, cap * sizeof(*l));
		if (!l)
			return NULL;
		nl->links = l;
		nl->links_cap = cap;
	}
	l = &nl->links[nl->nlinks++];
	memset(l, 0, sizeof(*l));
	l->ifindex = ifindex;
	return l;
}

/*
 * Records the state of one link and tells ferryd when it differs from what
 * it was told before. notify is false while seeding at start.
 */
static void link_update(struct ferry_nl *nl, int ifindex, const char *name, unsigned int flags,
			bool removed, bool notify)
{
	struct known_link *l = link_find(nl, ifindex);

	if (removed) {
		char old[IFNAMSIZ];

		if (!l)
			return; /* never reported, so nothing to take back */
		snprintf(old, sizeof(old), "%s", l->name);
		*l = nl->links[--nl->nlinks];
		nl->route_changed = true;
		if (notify && nl->cb.on_link)
			nl->cb.on_link(nl->ctx, ifindex, name && *name ? name : old, false, true);
		return;
	}

	if (l) {
		bool same = !strcmp(l->name, name) && !((l->flags ^ flags) & IFF_UP);

		if ((l->flags ^ flags) & LINK_ROUTE_FLAGS)
			nl->route_changed = true;
		l->flags = flags;
		l->seen = true;
		if (same)
			return;
	} else {
		l = link_add(nl, ifindex);
		if (!l) {
			pr_warn("netlink: out of memory tracking link %s (ifindex %d)", name,
				ifindex);
			return;
		}
		l->flags = flags;
		l->seen = true;
	}
	snprintf(l->name, sizeof(l->name), "%s", name);
	if (notify && nl->cb.on_link)
		nl->cb.on_link(nl->ctx, ifindex, name, flags & IFF_UP, false);
}

struct link_parse_arg {
	struct ferry_nl *nl;
	bool removed;
	bool notify;
};

static void link_obj_parsed(struct nl_object *obj, void *arg)
{
	struct link_parse_arg *a = arg;
	struct rtnl_link *link = (struct rtnl_link *)obj;
	const char *name = rtnl_link_get_name(link);

	/*
	 * AF_BRIDGE RTM_NEWLINK/DELLINK describe bridge ports joining and
	 * leaving, not links appearing and disappearing.
	 */
	if (rtnl_link_get_family(link) != AF_UNSPEC)
		return;
	link_update(a->nl, rtnl_link_get_ifindex(link), name ? name : "", rtnl_link_get_flags(link),
		    a->removed, a->notify);
}

/* Dumps the links into a libnl cache (on the query socket). */
static int links_dump(struct ferry_nl *nl, struct nl_cache **cache)
{
	int err = rtnl_link_alloc_cache(nl->query, AF_UNSPEC, cache);

	if (err < 0) {
		pr_warn("netlink: cannot dump links: %s", nl_geterror(err));
		return nlerr_to_errno(err);
	}
	return 0;
}

/*
 * Discards queued notifications: they are older than the dump that follows,
 * and applying them after it would roll links back to a past state.
 */
static void events_drain(struct ferry_nl *nl)
{
	int fd = nl_socket_get_fd(nl->events), i;
	char byte;

	for (i = 0; i < 1 << 16; i++) {
		/* MSG_TRUNC with one byte: drop the whole datagram unread. */
		if (recv(fd, &byte, 1, MSG_DONTWAIT | MSG_TRUNC) < 0 && errno != ENOBUFS &&
		    errno != EINTR)
			break;
	}
}

/*
 * After lost notifications: compare a fresh dump with what ferryd was told,
 * report every difference and a routing change.
 */
static int links_resync(struct ferry_nl *nl)
{
	struct link_parse_arg a = { .nl = nl, .notify = true };
	struct nl_cache *cache;
	size_t i;
	int err;

	events_drain(nl);
	cache_flush(nl);
	nl->route_changed = true;
	/* Kept set until a dump succeeds, so that the next call tries again. */
	nl->need_resync = true;
	err = links_dump(nl, &cache);
	if (err)
		return err;
	nl->need_resync = false;
	for (i = 0; i < nl->nlinks; i++)
		nl->links[i].seen = false;
	nl_cache_foreach(cache, link_obj_parsed, &a);
	nl_cache_free(cache);
	for (i = 0; i < nl->nlinks;) {
		struct known_link *l = &nl->links[i];

		if (l->seen) {
			i++;
			continue;
		}
		/* link_update() moves the last entry here: look at i again. */
		link_update(nl, l->ifindex, NULL, 0, true, true);
	}
	return 0;
}

static int link_cmp(const void *a, const void *b)
{
	const struct known_link *x = a, *y = b;

	return (x->ifindex > y->ifindex) - (x->ifindex < y->ifindex);
}

int ferry_nl__for_each_link(struct ferry_nl *nl, ferry_nl_link_fn cb, void *ctx)
{
	struct link_parse_arg a = { .nl = nl, .notify = false };
	struct nl_cache *cache;
	size_t i;
	int err;

	err = links_dump(nl, &cache);
	if (err)
		return err;
	nl->nlinks = 0;
	nl_cache_foreach(cache, link_obj_parsed, &a);
	nl_cache_free(cache);
	qsort(nl->links, nl->nlinks, sizeof(*nl->links), link_cmp);
	for (i = 0; i < nl->nlinks; i++) {
		const struct known_link *l = &nl->links[i];

		/* cb may look routes up (never touches links[]), not process events. */
		err = cb(ctx, l->ifindex, l->name, l->flags & IFF_UP);
		if (err)
			return err;
	}
	return 0;
}

/* ---------------------------------------------------------- notifications */

static int event_msg(struct nl_msg *msg, void *arg)
{
	struct ferry_nl *nl = arg;
	struct nlmsghdr *hdr = nlmsg_hdr(msg);
	struct link_parse_arg a = { .nl = nl, .notify = true };
	int err;

	switch (hdr->nlmsg_type) {
	case RTM_NEWLINK:
	case RTM_DELLINK:
		a.removed = hdr->nlmsg_type == RTM_DELLINK;
		err = nl_msg_parse(msg, link_obj_parsed, &a);
		if (err < 0)
			pr_debug("netlink: ignoring unparsable link notification: %s",
				 nl_geterror(err));
		break;
	case RTM_NEWROUTE:
	case RTM_DELROUTE:
	case RTM_NEWADDR:
	case RTM_DELADDR:
	case RTM_NEWRULE:
	case RTM_DELRULE:
	case RTM_NEWNEXTHOP:
	case RTM_DELNEXTHOP:
		nl->route_changed = true;
		break;
	default:
		break;
	}
	return NL_OK;
}

int ferry_nl__process(struct ferry_nl *nl)
{
	struct nl_cb *cb = nl_socket_get_cb(nl->events); /* a reference: put below */
	int i, n, err = 0;

	/* A resync that failed last time (its dump did) is retried first. */
	if (nl->need_resync)
		err = links_resync(nl);
	for (i = 0; !err && i < PROCESS_MAX_READS; i++) {
		n = nl_recvmsgs_report(nl->events, cb);
		if (n == -NLE_NOMEM) {
			/* ENOBUFS: the kernel dropped notifications; start over from a dump. */
			pr_warn("netlink: notifications were lost (receive buffer full); resyncing links and routes");
			err = links_resync(nl);
			continue;
		}
		if (n == -NLE_AGAIN || n == 0)
			break;
		if (n < 0) {
			pr_warn("netlink: reading notifications: %s", nl_geterror(n));
			err = nlerr_to_errno(n);
			break;
		}
	}
	nl_cb_put(cb);
	if (nl->route_changed) {
		nl->route_changed = false;
		cache_flush(nl);
		if (nl->cb.on_route_change)
			nl->cb.on_route_change(nl->ctx);
	}
	return err;
}

int ferry_nl__fd(const struct ferry_nl *nl)
{
	return nl_socket_get_fd(nl->events);
}

void ferry_nl__set_callbacks(struct ferry_nl *nl, const struct ferry_nl_callbacks *cb, void *ctx)
{
	if (cb)
		nl->cb = *cb;
	else
		memset(&nl->cb, 0, sizeof(nl->cb));
	nl->ctx = ctx;
}

/* ------------------------------------------------------------- lifecycle */

static int events_open(struct ferry_nl *nl)
{
	int err;

	nl->events = nl_socket_alloc();
	if (!nl->events)
		return -ENOMEM;
	/* Multicast notifications carry no sequence we asked for. */
	nl_socket_disable_seq_check(nl->events);
	err = nl_socket_modify_cb(nl->events, NL_CB_VALID, NL_CB_CUSTOM, event_msg, nl);
	if (err < 0)
		return nlerr_to_errno(err);
	err = nl_connect(nl->events, NETLINK_ROUTE);
	if (err < 0)
		return nlerr_to_errno(err);
	/*
	 * No RTNLGRP_NEIGH: neighbour churn is the busiest group and never
	 * changes which interface a destination routes through.
	 */
	err = nl_socket_add_memberships(nl->events, RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR,
					RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE,
					RTNLGRP_IPV4_RULE, RTNLGRP_IPV6_RULE, RTNLGRP_NEXTHOP, 0);
	if (err < 0)
		return nlerr_to_errno(err);
	err = nl_socket_set_nonblocking(nl->events);
	if (err < 0)
		return nlerr_to_errno(err);
	/* Capped by net.core.rmem_max; ENOBUFS is handled by a resync anyway. */
	nl_socket_set_buffer_size(nl->events, EVENTS_RCVBUF, 0);
	return 0;
}

static int query_open(struct ferry_nl *nl)
{
	struct timeval tv = { .tv_sec = QUERY_TIMEOUT_S };
	int err;

	nl->query = nl_socket_alloc();
	if (!nl->query)
		return -ENOMEM;
	err = nl_connect(nl->query, NETLINK_ROUTE);
	if (err < 0)
		return nlerr_to_errno(err);
	if (setsockopt(nl_socket_get_fd(nl->query), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)))
		return -errno;
	/*
	 * One recvmsg per reply instead of a MSG_PEEK to size the buffer and a
	 * second read: halves the syscalls of a 10,000-address batch. 32 KiB
	 * holds any skb the kernel builds for a dump (it caps them at 32 KiB).
	 */
	nl_socket_disable_msg_peek(nl->query);
	err = nl_socket_set_msg_buf_size(nl->query, 32768);
	if (err < 0)
		return nlerr_to_errno(err);
	return 0;
}

struct ferry_nl *ferry_nl__new(void)
{
	struct link_parse_arg a;
	struct nl_cache *cache;
	struct ferry_nl *nl;
	int err;

	nl = calloc(1, sizeof(*nl));
	if (!nl) {
		errno = ENOMEM;
		return NULL;
	}
	nl->cache_gen = 1;
	nl->seq = 1;
	/* Subscribe before the dump so that no change falls between the two. */
	err = events_open(nl);
	if (err)
		goto err_free;
	err = query_open(nl);
	if (err)
		goto err_free;
	err = cache_grow(nl);
	if (err)
		goto err_free;
	err = links_dump(nl, &cache);
	if (err)
		goto err_free;
	a = (struct link_parse_arg){ .nl = nl, .notify = false };
	nl_cache_foreach(cache, link_obj_parsed, &a);
	nl_cache_free(cache);
	nl->route_changed = false;
	return nl;

err_free:
	pr_debug("netlink: cannot open rtnetlink sockets: %s", strerror(-err));
	ferry_nl__free(nl);
	errno = -err;
	return NULL;
}

void ferry_nl__free(struct ferry_nl *nl)
{
	if (!nl)
		return;
	/* nl_socket_free() closes the socket too. */
	nl_socket_free(nl->events);
	nl_socket_free(nl->query);
	free(nl->cache);
	free(nl->links);
	free(nl);
}

/* ---------------------------------------------------------- name helpers */

/* One comma-separated entry, spaces trimmed; returns the end of the entry. */
static const char *pattern_next(const char *p, const char **start, size_t *len)
{
	const char *end = strchrnul(p, ','), *s = p, *e = end;

	while (s < e && isspace((unsigned char)*s))
		s++;
	while (e > s && isspace((unsigned char)e[-1]))
		e--;
	*start = s;
	*len = e - s;
	return end;
}

#define PATTERN_MAX 128

bool ferry_nl__match(const char *patterns, const char *ifname)
{
	const char *p = patterns, *s;
	char pat[PATTERN_MAX];
	size_t len;

	if (!patterns || !ifname)
		return false;
	for (;;) {
		p = pattern_next(p, &s, &len);
		if (len && len < sizeof(pat)) {
			memcpy(pat, s, len);
			pat[len] = '\0';
			if (!fnmatch(pat, ifname, 0))
				return true;
		}
		if (!*p)
			return false;
		p++;
	}
}

int ferry_nl__check_patterns(const char *what, const char *patterns, char *err, size_t errlen)
{
	const char *p = patterns, *s;
	size_t len;
	int n = 1;

	what = what ? what : "interface patterns";
	if (!patterns || !*patterns) {
		set_err(err, errlen,
			"%s: empty pattern list; give comma-separated globs such as \"veth*,cali*\"",
			what);
		return -EINVAL;
	}
	for (;; n++) {
		p = pattern_next(p, &s, &len);
		if (!len) {
			set_err(err, errlen,
				"%s \"%s\": pattern %d is empty; remove the extra comma", what,
				patterns, n);
			return -EINVAL;
		}
		if (len >= PATTERN_MAX) {
			set_err(err, errlen,
				"%s: pattern %d is %zu characters long; at most %d are allowed",
				what, n, len, PATTERN_MAX - 1);
			return -EINVAL;
		}
		if (!*p)
			return 0;
		p++;
	}
}

int ferry_nl__ifindex_by_name(const char *what, const char *ifname, int *ifindex, char *err,
			      size_t errlen)
{
	unsigned int idx;
	size_t len;

	what = what ? what : "interface";
	if (!ifname || !*ifname) {
		set_err(err, errlen, "%s: empty interface name; give a name such as eth0", what);
		return -EINVAL;
	}
	len = strlen(ifname);
	if (len >= IFNAMSIZ) {
		set_err(err, errlen,
			"%s %s: interface names are at most %d characters, this one has %zu", what,
			ifname, IFNAMSIZ - 1, len);
		return -ENAMETOOLONG;
	}
	/* The kernel's dev_valid_name(). */
	if (!strcmp(ifname, ".") || !strcmp(ifname, "..") || strpbrk(ifname, "/: \t\n\v\f\r")) {
		set_err(err, errlen,
			"%s \"%s\": not a valid interface name (no '/', ':' or white space)", what,
			ifname);
		return -EINVAL;
	}
	idx = if_nametoindex(ifname);
	if (!idx) {
		int e = errno;

		if (e == ENODEV || e == ENXIO || e == 0) {
			set_err(err, errlen,
				"%s %s: no such interface in this network namespace; `ip link` lists them",
				what, ifname);
			return -ENODEV;
		}
		set_err(err, errlen, "%s %s: cannot look the interface up: %s", what, ifname,
			strerror(e));
		return -e;
	}
	*ifindex = (int)idx;
	return 0;
}

int ferry_nl__ifname_by_index(int ifindex, char *buf, size_t buflen, char *err, size_t errlen)
{
	char name[IF_NAMESIZE];

	if (ifindex <= 0 || !if_indextoname((unsigned int)ifindex, name)) {
		set_err(err, errlen, "ifindex %d: no such interface in this network namespace",
			ifindex);
		return -ENODEV;
	}
	if (strlen(name) >= buflen) {
		set_err(err, errlen, "ifindex %d: name %s does not fit in %zu bytes", ifindex, name,
			buflen);
		return -ENOSPC;
	}
	memcpy(buf, name, strlen(name) + 1);
	return 0;
}
