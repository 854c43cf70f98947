// SPDX-License-Identifier: GPL-2.0-only
/*
 * ferryd's rtnetlink layer (libnl-3, libnl-route-3): link and routing
 * notifications for pod interfaces, and interface name helpers; route
 * look-ups are netlink_routes.c's. See netlink.h for the contract.
 */
#include "kernel/netlink_internal.h"

int nlerr_to_errno(int nlerr)
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
		/*
		 * The netdev family does not announce every xdp-features change
		 * (a veth's, when its peer attaches XDP, in 6.18), but the link
		 * says "feature change": read the features again after the burst.
		 */
		nl->xdp_recheck = true;
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
	if (nl->xdp_recheck) {
		nl->xdp_recheck = false;
		if (nl->xdp_features && nl->cb.on_xdp_features)
			ferry_nl__xdp_dump(nl);
	}
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
	/* xdp-features are an optimisation: without them ferryd keeps its safe defaults. */
	err = xdp_open(nl);
	if (err)
		pr_warn("netlink: cannot read xdp-features (%s): XDP egress stays the TC handoff",
			strerror(-err));
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
	xdp_close(nl);
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
