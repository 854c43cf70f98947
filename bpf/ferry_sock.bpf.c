// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Host-network clients: processes in the node's own network namespace that
 * connect to a VIP. Their packets never cross an interface where the XDP or
 * TC programs run before leaving the node, so ferry balances them where they
 * start, at connect(): the socket is pointed at the chosen backend, every
 * packet then goes there directly, and replies need no translation. Connected
 * UDP sockets take the same path. The choice is the packet path's
 * (ferry_select in select.bpf.h), hashing the socket cookie as the client
 * address instead of a 5-tuple (the source port is not chosen yet at connect
 * time). The choice is also kept with the socket (ferry_sock_sel) so that
 * rebalancing can find the socket again after a weight change.
 *
 * An AF_INET6 socket connecting to an IPv4-mapped address (::ffff:a.b.c.d,
 * what gRPC's dual-stack sockets do for an IPv4 target) reaches only the
 * connect6 hook: it is balanced as the IPv4 VIP it names.
 */
#include <linux/bpf.h>
#include <linux/errno.h>
#include <linux/in.h>
#include <stdbool.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "ferry_maps.h"
#include "maps.bpf.h"
#include "select.bpf.h"

/* The node's network namespace: the hook sits on a cgroup, which spans namespaces. */
const volatile __u64 ferry_netns_cookie = 0;

static __always_inline int balance(struct bpf_sock_addr *ctx, __u8 family, bool mapped)
{
	struct ferry_sock_sel *sel;
	struct ferry_vip vip = { .family = family };
	struct ferry_flow_key tuple = {};
	const struct ferry_backend *be;
	struct ferry_service *svc;
	struct ferry_config *cfg;
	struct ferry_stats *st;
	__u32 zero = 0, hash, be_id = 0;

	if (ferry_netns_cookie && bpf_get_netns_cookie(ctx) != ferry_netns_cookie)
		return 1;
	if (ctx->protocol != IPPROTO_TCP && ctx->protocol != IPPROTO_UDP)
		return 1;
	vip.proto = ctx->protocol;
	vip.port = (__be16)ctx->user_port;
	if (mapped) {
		vip.addr[0] = ctx->user_ip6[3];
	} else if (family == FERRY_AF_INET) {
		vip.addr[0] = ctx->user_ip4;
	} else {
		vip.addr[0] = ctx->user_ip6[0];
		vip.addr[1] = ctx->user_ip6[1];
		vip.addr[2] = ctx->user_ip6[2];
		vip.addr[3] = ctx->user_ip6[3];
	}
	svc = bpf_map_lookup_elem(&ferry_services, &vip);
	if (!svc || (svc->flags & FERRY_SVC_F_ADDR_MARKER))
		return 1;
	cfg = bpf_map_lookup_elem(&ferry_config, &zero);
	if (!cfg)
		return 1;
	/* With client-ip affinity every host client is the same client: the node. */
	if (ferry_svc_hash_mode(svc) == FERRY_HASH_MODE_TUPLE) {
		__u64 cookie = bpf_get_socket_cookie(ctx);

		tuple.saddr[0] = (__u32)cookie;
		tuple.saddr[1] = (__u32)(cookie >> 32);
	}
	be = ferry_select(svc, &tuple, cfg->hash_seed, FERRY_HASH_MODE_SRC_ADDR, family, NULL,
			  &hash, &be_id);
	if (!be) {
		/*
		 * No backend: fail the connect now with ECONNREFUSED (returning 0
		 * alone would give EPERM) instead of letting it time out at the VIP.
		 */
		ferry_count(FERRY_CTR_NO_BACKEND);
		bpf_set_retval(-ECONNREFUSED);
		return 0;
	}
	if (mapped) {
		ctx->user_ip6[3] = be->addr[0];
	} else if (family == FERRY_AF_INET) {
		ctx->user_ip4 = be->addr[0];
	} else {
		ctx->user_ip6[0] = be->addr[0];
		ctx->user_ip6[1] = be->addr[1];
		ctx->user_ip6[2] = be->addr[2];
		ctx->user_ip6[3] = be->addr[3];
	}
	ctx->user_port = be->port;
	st = bpf_map_lookup_elem(&ferry_stats, &be_id);
	if (st)
		st->new_flows++;
	/* No storage (memory pressure) only means this socket is never rebalanced. */
	if (ctx->protocol == IPPROTO_TCP && ctx->sk) {
		sel = bpf_sk_storage_get(&ferry_sock_sel, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (sel) {
			sel->svc_id = svc->id;
			sel->predictor_id = be->predictor_id;
			sel->backend_id = be_id;
		}
	}
	return 1;
}

SEC("cgroup/connect4")
int ferry_connect4(struct bpf_sock_addr *ctx)
{
	return balance(ctx, FERRY_AF_INET, false);
}

SEC("cgroup/connect6")
int ferry_connect6(struct bpf_sock_addr *ctx)
{
	/* ::ffff:0:0/96 in network byte order, whatever the host's. */
	if (ctx->user_ip6[0] == 0 && ctx->user_ip6[1] == 0 &&
	    ctx->user_ip6[2] == bpf_htonl(0x0000ffff))
		return balance(ctx, FERRY_AF_INET, true);
	return balance(ctx, FERRY_AF_INET6, false);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
