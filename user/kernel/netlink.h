/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ferryd's view of the host's links and routes, over rtnetlink (libnl-3).
 *
 * One struct ferry_nl holds two sockets: a query socket for route look-ups
 * and link dumps, and a notification socket subscribed to link, address,
 * route, rule and nexthop changes. ferryd polls ferry_nl__fd() in its epoll
 * loop (level-triggered) and calls ferry_nl__process() when it is readable;
 * the callbacks run from there, on ferryd's own thread. Nothing here starts a
 * thread or blocks on the notification socket.
 *
 * Both sockets belong to the network namespace that was current when
 * ferry_nl__new() ran.
 */
#ifndef FERRY_NETLINK_H
#define FERRY_NETLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

struct ferry_nl;

struct ferry_nl_callbacks {
	/*
	 * A link appeared, was renamed, went up or down, or disappeared
	 * (removed: also when it moved to another namespace). up means "exists
	 * and is administratively up" (IFF_UP). Fires only when the (name, up,
	 * exists) state of an ifindex changes, so attaching a program (which
	 * itself sends RTM_NEWLINK) does not call back into a loop.
	 */
	void (*on_link)(void *ctx, int ifindex, const char *ifname, bool up, bool removed);
	/*
	 * Routing may have changed (a route, address, rule or nexthop, or a
	 * link, since IPv4 drops routes of a downed link without notifying).
	 * Called at most once per ferry_nl__process(), after the on_link calls,
	 * so ferryd recomputes its reply interface set once per burst.
	 */
	void (*on_route_change)(void *ctx);
	/*
	 * A device's xdp-features (NETDEV_XDP_ACT_*) as the netdev family
	 * reports them: from ferry_nl__xdp_dump() for every device, from
	 * ferry_nl__xdp_process() when the family announces a device coming,
	 * changing or going (removed, features 0), and for every device again
	 * from ferry_nl__process() after link notifications (the family does
	 * not announce every change: a veth's when its peer attaches XDP).
	 */
	void (*on_xdp_features)(void *ctx, int ifindex, __u64 features, bool removed);
};

/* Returns NULL and sets errno on failure. */
struct ferry_nl *ferry_nl__new(void);
void ferry_nl__free(struct ferry_nl *nl);

/* cb is copied; either callback may be NULL. */
void ferry_nl__set_callbacks(struct ferry_nl *nl, const struct ferry_nl_callbacks *cb, void *ctx);

/* The notification socket, non-blocking, for poll/epoll (EPOLLIN). */
int ferry_nl__fd(const struct ferry_nl *nl);

/*
 * Reads pending notifications without blocking and runs the callbacks.
 * Reads a bounded number of messages per call; with level-triggered epoll
 * the rest wake the loop again. When the kernel dropped notifications
 * (ENOBUFS), re-dumps the links, reports every difference through on_link
 * and calls on_route_change. Returns 0 or -errno. Callbacks must not free nl.
 */
int ferry_nl__process(struct ferry_nl *nl);

/*
 * The interface the kernel would send a packet to addr through, like
 * `ip route get ADDR`: RTM_GETROUTE with RTA_DST, through the policy
 * rules of nl's namespace. With ECMP this is the one path the kernel picks
 * for this destination. family is AF_INET/AF_INET6 or FERRY_AF_INET/FERRY_AF_INET6
 * (as in struct ferry_model_backend); addr is in network byte order, IPv4 in
 * addr[0]. A local address gives the loopback device.
 *
 * Returns 0, -EAFNOSUPPORT for another family, or the kernel's verdict:
 * -ENETUNREACH (no route), -EHOSTUNREACH (unreachable route), -EACCES
 * (prohibit), -EINVAL (blackhole). Results, errors included, are cached per
 * address until the next routing notification.
 */
int ferry_nl__route_ifindex(struct ferry_nl *nl, __u8 family, const __be32 addr[4], int *ifindex);

struct ferry_nl_route_query {
	__u8 family; /* in: as for ferry_nl__route_ifindex() */
	__be32 addr[4]; /* in: network byte order */
	int ifindex; /* out: the output interface, 0 on error */
	int err; /* out: 0 or the -errno of ferry_nl__route_ifindex() */
};

/*
 * ferry_nl__route_ifindex() for n addresses at once: cache misses go to the
 * kernel in pipelined batches (one sendmsg per batch), so 10,000 backends
 * cost a few milliseconds, not 10,000 round trips. Per-address verdicts land
 * in q[i].err; the return value is 0, or -errno when the netlink exchange
 * itself failed (then entries not yet answered keep err -EINPROGRESS and
 * later ones are untouched).
 */
int ferry_nl__route_ifindex_batch(struct ferry_nl *nl, struct ferry_nl_route_query *q, size_t n);

/* Forgets every cached route look-up (tests and benchmarks). */
void ferry_nl__flush_cache(struct ferry_nl *nl);

/*
 * Calls cb for every link that exists now, in ifindex order; a non-zero
 * return from cb stops the walk and is returned. Also resets the state
 * that on_link compares against, so that events after this call are
 * relative to what cb saw. cb may look routes up but must not call
 * ferry_nl__process() or ferry_nl__for_each_link().
 */
typedef int (*ferry_nl_link_fn)(void *ctx, int ifindex, const char *ifname, bool up);
int ferry_nl__for_each_link(struct ferry_nl *nl, ferry_nl_link_fn cb, void *ctx);

/*
 * Interface name patterns, as in --pod-ifaces "veth*,cali*,lxc*":
 * comma-separated fnmatch(3) globs, spaces around each trimmed. True when
 * ifname matches any of them; false for NULL or empty patterns.
 */
bool ferry_nl__match(const char *patterns, const char *ifname);

/*
 * Checks a pattern list for a flag: no empty entry, no entry longer than
 * 127 characters. On error returns -EINVAL and writes a message naming
 * what (e.g. "--pod-ifaces") into err (when err is not NULL).
 */
int ferry_nl__check_patterns(const char *what, const char *patterns, char *err, size_t errlen);

/*
 * Name -> index in the current network namespace, for a flag such as
 * --iface. Checks the name the way the kernel does (1..15 characters, no
 * '/', ':' or white space). Returns 0, -EINVAL (bad name), -ENAMETOOLONG or
 * -ENODEV, with a message such as "--iface eth9: no such interface ..." in
 * err (when err is not NULL).
 */
int ferry_nl__ifindex_by_name(const char *what, const char *ifname, int *ifindex, char *err,
			      size_t errlen);

/*
 * Index -> name (buf of at least 16 bytes). Returns 0 or -ENODEV, with a
 * message in err (when err is not NULL).
 */
int ferry_nl__ifname_by_index(int ifindex, char *buf, size_t buflen, char *err, size_t errlen);

/* NETDEV_XDP_ACT_* of include/uapi/linux/netdev.h (Linux 6.3). */
#define FERRY_XDP_ACT_BASIC (1ULL << 0) /* native XDP: the driver runs programs */
#define FERRY_XDP_ACT_REDIRECT (1ULL << 1)
#define FERRY_XDP_ACT_NDO_XMIT (1ULL << 2) /* takes XDP_REDIRECT frames (ndo_xdp_xmit) */

/* What the kernel says about one interface's XDP abilities. */
struct ferry_nl_xdp_dev {
	bool veth; /* IFLA_INFO_KIND "veth" */
	bool peer_known; /* veth: its peer could be read (also in another namespace) */
	bool peer_xdp; /* veth: its peer has an XDP program attached */
	bool features_known; /* the netdev family answered for it (Linux 6.3+) */
	__u64 features; /* FERRY_XDP_ACT_* */
};

/* True when the kernel reports xdp-features (the netdev generic netlink family, 6.3+). */
bool ferry_nl__has_xdp_features(const struct ferry_nl *nl);

/* Reads ifindex's kind, its veth peer's XDP program and its xdp-features. 0 or -errno. */
int ferry_nl__xdp_dev(struct ferry_nl *nl, int ifindex, struct ferry_nl_xdp_dev *dev);

/*
 * Calls on_xdp_features for every device of the namespace. -EOPNOTSUPP
 * without the netdev family.
 */
int ferry_nl__xdp_dump(struct ferry_nl *nl);

/* The netdev notification socket for epoll, or -1 (no family, no group). */
int ferry_nl__xdp_fd(const struct ferry_nl *nl);

/* Reads pending netdev notifications without blocking and runs on_xdp_features. */
int ferry_nl__xdp_process(struct ferry_nl *nl);

#endif /* FERRY_NETLINK_H */
