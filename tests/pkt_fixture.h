/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The set-up that the packet fixtures (tests/test_pkt.c) and the packet fuzz
 * target (fuzz/pkt.c) share: ferry's XDP and TC objects loaded unpinned with
 * one set of maps, their programs by hook, backends and services written
 * into the maps from text, permanent neighbours in the fixture's namespace,
 * and a client's packet with the fixtures' sequence numbers.
 */
#ifndef FERRY_PKT_FIXTURE_H
#define FERRY_PKT_FIXTURE_H

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ferry_maps.h"
#include "ferry_xdp.skel.h"
#include "ferry_tc.skel.h"
#include "kernel/dataplane.h"
#include "netns_fixture.h"
#include "pkt_builder.h"

/* The program a frame runs through. */
enum prog { P_XDP, P_TC_FWD, P_TC_REPLY_IN, P_TC_REPLY_EG };

/*
 * Unpins the maps of the opened object obj and has those it shares with the
 * loaded object from (all but its internal .rodata/.bss ones) reuse from's:
 * one set of maps for both.
 */
static inline int pkt_fixture__share_maps(struct bpf_object *obj, const struct bpf_object *from)
{
	struct bpf_map *m, *twin;
	int err;

	bpf_object__for_each_map(m, obj) {
		bpf_map__set_pin_path(m, NULL);
		if (bpf_map__is_internal(m))
			continue;
		twin = bpf_object__find_map_by_name(from, bpf_map__name(m));
		if (!twin)
			return -ENOENT;
		err = bpf_map__reuse_fd(m, bpf_map__fd(twin));
		if (err)
			return err;
	}
	return 0;
}

/*
 * Loads both opened objects unpinned with one set of maps: the TC object
 * reuses the XDP object's map fds (user/kernel/dataplane.c does the same
 * through pins). Settings in .rodata are the caller's, before this.
 */
static inline int pkt_fixture__load(struct ferry_xdp *xdp, struct ferry_tc *tc)
{
	struct bpf_map *m;
	int err;

	bpf_object__for_each_map(m, xdp->obj)
		bpf_map__set_pin_path(m, NULL);
	/* As ferryd loads it: where the kernel refuses the helper, XDP hands off to the stack. */
	xdp->rodata->ferry_xdp_meta = ferry_dp_xdp_meta();
	err = ferry_xdp__load(xdp);
	err = err ?: pkt_fixture__share_maps(tc->obj, xdp->obj);
	err = err ?: ferry_tc__load(tc);
	if (err)
		return err;
	/* And its clock, as ferryd publishes it (the helper's where that fails). */
	ferry_clock__sync(&(struct ferry_clock){ 0 }, xdp, tc);
	return 0;
}

static inline int pkt_fixture__prog_fd(const struct ferry_xdp *xdp, const struct ferry_tc *tc,
				       enum prog p)
{
	switch (p) {
	case P_XDP:
		return bpf_program__fd(xdp->progs.ferry_xdp_fwd);
	case P_TC_FWD:
		return bpf_program__fd(tc->progs.ferry_tc_fwd);
	case P_TC_REPLY_IN:
		return bpf_program__fd(tc->progs.ferry_tc_reply_in);
	default:
		return bpf_program__fd(tc->progs.ferry_tc_reply_eg);
	}
}

static inline __u8 pkt_fixture__family(const char *addr)
{
	return strchr(addr, ':') ? FERRY_AF_INET6 : FERRY_AF_INET;
}

/* ferry_config.new_flow_rate in the config map fd, as ferryd's --new-flow-rate sets it. */
static inline int pkt_fixture__new_flow_rate(int fd, __u32 rate)
{
	struct ferry_config cfg;
	__u32 zero = 0;

	if (bpf_map_lookup_elem(fd, &zero, &cfg))
		return -errno;
	cfg.new_flow_rate = rate;
	return bpf_map_update_elem(fd, &zero, &cfg, 0) ? -errno : 0;
}

/* Sets bit in the filter map fd (ferry_vip_bits, ferry_be_bits), as ferryd's sync does. */
static inline int pkt_fixture__bit(int fd, __u32 bit)
{
	__u32 word = bit / 64;
	__u64 w;

	if (bpf_map_lookup_elem(fd, &word, &w))
		return -errno;
	w |= 1ULL << (bit % 64);
	return bpf_map_update_elem(fd, &word, &w, 0) ? -errno : 0;
}

static inline int pkt_fixture__vip_bit(int fd, const struct ferry_vip *vip)
{
	return pkt_fixture__bit(fd, ferry_vip_bit(vip->addr, vip->port, vip->proto));
}

/*
 * An active backend addr:port (port in host order) into ferry_backends (fd),
 * its bit in ferry_be_bits (bits_fd); sole: FERRY_BE_F_SOLE, which ferryd's
 * sync gives a backend whose endpoint no other service has.
 */
static inline int pkt_fixture__backend(int fd, int bits_fd, uint32_t id, uint32_t predictor_id,
				       uint32_t svc_id, const char *addr, uint16_t port, bool sole)
{
	struct ferry_backend be = { .port = htons(port),
				    .state = FERRY_BE_ACTIVE,
				    .predictor_id = predictor_id,
				    .svc_id = svc_id,
				    .flags = sole ? FERRY_BE_F_SOLE : 0 };
	int err;

	pb_addr(be.addr, addr);
	be.family = pkt_fixture__family(addr);
	err = pkt_fixture__bit(bits_fd, ferry_be_bit(be.addr, be.port));
	return err ?: bpf_map_update_elem(fd, &id, &be, 0);
}

/*
 * The service svc at the VIP addr:port/proto (port in host order) into
 * ferry_services (fd), and its address marker (port 0, proto 0) unless
 * another service on the address wrote it first; both in ferry_vip_bits
 * (bits_fd).
 */
static inline int pkt_fixture__service(int fd, int bits_fd, struct ferry_service svc,
				       const char *addr, uint16_t port, uint8_t proto)
{
	struct ferry_vip vip = { .port = htons(port), .proto = proto };
	int err;

	pb_addr(vip.addr, addr);
	vip.family = pkt_fixture__family(addr);
	err = pkt_fixture__vip_bit(bits_fd, &vip);
	err = err ?: bpf_map_update_elem(fd, &vip, &svc, 0);
	if (err)
		return err;
	vip.port = 0;
	vip.proto = 0;
	svc.flags = FERRY_SVC_F_ADDR_MARKER;
	bpf_map_update_elem(fd, &vip, &svc, BPF_NOEXIST);
	return pkt_fixture__vip_bit(bits_fd, &vip);
}

/*
 * The commands that make the fixture's namespace ns (string literals all):
 * veth pfx-c0 (mac_c0; 198.18.0.1/24, 2001:db8::1/64) where the clients
 * client4 and client6 are permanent neighbours at mac_client, veth pfx-b0
 * (mac_b0; 198.18.1.1/24, 2001:db8:1::1/64) where the backends are,
 * 198.18.3.0/24 a blackhole, forwarding on. For netns_fixture__create().
 */
/* clang-format off */
#define PKT_FIXTURE_NETNS_CMDS(ns, pfx, mac_c0, mac_b0, mac_client, client4, client6)          \
	"ip -n " ns " link set lo up",                                                         \
	"ip -n " ns " link add " pfx "-c0 address " mac_c0 " type veth peer name " pfx "-c1",   \
	"ip -n " ns " link add " pfx "-b0 address " mac_b0 " type veth peer name " pfx "-b1",   \
	"ip -n " ns " link set " pfx "-c0 up",                                                 \
	"ip -n " ns " link set " pfx "-c1 up",                                                 \
	"ip -n " ns " link set " pfx "-b0 up",                                                 \
	"ip -n " ns " link set " pfx "-b1 up",                                                 \
	"ip -n " ns " addr add 198.18.0.1/24 dev " pfx "-c0",                                  \
	"ip -n " ns " addr add 2001:db8::1/64 dev " pfx "-c0 nodad",                           \
	"ip -n " ns " addr add 198.18.1.1/24 dev " pfx "-b0",                                  \
	"ip -n " ns " addr add 2001:db8:1::1/64 dev " pfx "-b0 nodad",                         \
	"ip -n " ns " neigh add " client4 " lladdr " mac_client " dev " pfx "-c0 nud permanent", \
	"ip -n " ns " -6 neigh add " client6 " lladdr " mac_client " dev " pfx                 \
		"-c0 nud permanent",                                                           \
	"ip -n " ns " route add blackhole 198.18.3.0/24",                                      \
	"ip netns exec " ns " sysctl -qw net.ipv4.ip_forward=1",                               \
	"ip netns exec " ns " sysctl -qw net.ipv6.conf.all.forwarding=1"
/* clang-format on */

/* A permanent neighbour addr -> mac on dev in the namespace ns. */
static inline int pkt_fixture__neigh(const char *ns, const char *dev, const char *addr,
				     const char *mac)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "ip -n %s neigh add %s lladdr %s dev %s nud permanent", ns, addr,
		 mac, dev);
	return netns_fixture__sh(cmd) ? -EIO : 0;
}

/*
 * A client's packet from client_mac to node_mac, saddr:sport -> daddr:dport
 * with those TCP flags: sequence 1000 and, with ACK set, acknowledgment 2000.
 */
static inline struct pb_spec pkt_fixture__client(const char *client_mac, const char *node_mac,
						 int family, uint8_t proto, const char *saddr,
						 uint16_t sport, const char *daddr, uint16_t dport,
						 uint8_t flags)
{
	struct pb_spec s = { .family = family,
			     .proto = proto,
			     .sport = sport,
			     .dport = dport,
			     .tcp_flags = flags,
			     .seq = 1000,
			     .ack = flags & PB_TCP_ACK ? 2000 : 0 };

	pb_ends(&s, client_mac, node_mac, saddr, daddr);
	return s;
}

#endif /* FERRY_PKT_FIXTURE_H */
