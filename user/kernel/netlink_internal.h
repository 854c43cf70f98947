/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Private to user/kernel/netlink*.c: the state of a struct ferry_nl and the
 * helpers its files share. netlink_routes.c answers route look-ups (with a
 * cache); netlink.c tracks links, notifications and names.
 */
#ifndef FERRY_NETLINK_INTERNAL_H
#define FERRY_NETLINK_INTERNAL_H

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

#include <linux/bpf.h> /* struct bpf_spin_lock in ferry_maps.h */
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

	/* netlink_xdp.c */
	struct nl_sock *xdp_query; /* RTM_GETLINK for link kind and veth peers; blocking */
	struct nl_sock *genl_query; /* netdev family requests; blocking */
	struct nl_sock *genl_events; /* netdev "mgmt" notifications; non-blocking; NULL: none */
	int netdev_family; /* its generic netlink id */
	bool xdp_features; /* the kernel has the netdev family (Linux 6.3+) */
	bool xdp_recheck; /* a link changed during this ferry_nl__process(): dump the features */
};

void cache_flush(struct ferry_nl *nl);
int cache_grow(struct ferry_nl *nl);
int nlerr_to_errno(int nlerr);
int xdp_open(struct ferry_nl *nl);
void xdp_close(struct ferry_nl *nl);

#endif /* FERRY_NETLINK_INTERNAL_H */
