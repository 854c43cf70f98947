/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The graceful half of rebalancing: an HTTP/2 GOAWAY forged into a client's
 * own TCP socket, as if its server had sent it, so that a gRPC client moves
 * its calls to a new connection by itself before the iterator ends the socket
 * (docs/datapath.md, "Rebalancing long-lived connections").
 */
#ifndef FERRY_GOAWAY_H
#define FERRY_GOAWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <linux/bpf.h>
#include <linux/types.h>

#include "ferry_maps.h"

/* Largest segment: IPv6 (40) + TCP with the timestamp option (32) + the frame. */
#define FERRY_GOAWAY_SEG_MAX (40 + 32 + FERRY_GOAWAY_FRAME_LEN)

/* One segment toward the client's socket: the server's side of the connection. */
struct ferry_goaway_seg {
	__u8 family; /* FERRY_AF_INET or FERRY_AF_INET6 */
	__be32 saddr[4], daddr[4]; /* saddr: the socket's remote end; daddr: its local end */
	__be16 sport, dport;
	__u32 seq, ack; /* host order: the socket's rcv_nxt and snd_nxt */
	__u16 window; /* as sent in the header (already scaled down) */
	bool tstamp; /* carry the timestamp option (negotiated on the connection) */
	__u32 tsval, tsecr;
	bool rst; /* a bare RST (no frame, no option, no ACK) instead of the GOAWAY */
};

/* The segment into the socket a rebalance record describes (FERRY_RB_GOAWAY). */
void ferry_goaway__from_rec(const struct ferry_rebal_sock *rec, struct ferry_goaway_seg *seg);

/*
 * After phase 2 aborted a told socket (FERRY_RB_DESTROYED, rec->snd_una): the
 * RST toward the server's side, from the socket's local end at the client's
 * snd_una. The abort's own RST is at snd_nxt, past what the server took when
 * it discarded the client's acknowledgements of the frame (its FIN too), so
 * the server can only answer it with a challenge ACK, which it rate-limits per
 * socket (net.ipv4.tcp_invalid_ratelimit) and had just spent on that FIN
 * (Linux 6.18.38+ challenges an ACK of unsent data): its socket then stayed
 * ESTABLISHED. A RST that is not exact (the server took more) is ignored.
 */
void ferry_goaway__rst_from_rec(const struct ferry_rebal_sock *rec, struct ferry_goaway_seg *seg);

/*
 * Writes the IP packet (header, TCP header with ACK|PSH and the timestamp
 * option when asked, GOAWAY frame with last-stream-id 0 and NO_ERROR; or, for
 * seg->rst, the bare RST; every checksum filled) into buf. Returns its length,
 * or -ENOSPC / -EAFNOSUPPORT.
 */
ssize_t ferry_goaway__build(const struct ferry_goaway_seg *seg, void *buf, size_t len);

/*
 * Raw sockets of the calling thread's current network namespace (IPPROTO_RAW,
 * the header included), -errno for a family that failed (CAP_NET_RAW).
 */
struct ferry_goaway_sockets {
	int fd4, fd6;
};
int ferry_goaway__open(struct ferry_goaway_sockets *s);
void ferry_goaway__close(struct ferry_goaway_sockets *s);

/* Builds and sends seg through s: 0 or -errno. */
int ferry_goaway__send(const struct ferry_goaway_sockets *s, const struct ferry_goaway_seg *seg);

#endif /* FERRY_GOAWAY_H */
