// SPDX-License-Identifier: GPL-2.0-only
/*
 * An HTTP/2 GOAWAY forged into a client's TCP socket (goaway.h). The segment
 * is built as the server's next one: source the socket's remote end, sequence
 * number the socket's rcv_nxt, acknowledging its snd_nxt, with the timestamp
 * option when the connection negotiated it (TSval = the server's last TSval,
 * so PAWS accepts it; TSecr = the client's own value the server echoed last).
 * It is sent to the socket's own local address through a raw socket of the
 * client's namespace, so the kernel loops it back into its own TCP stack
 * (no wire, no rp_filter for a looped-back packet).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "kernel/goaway.h"

#define IPPROTO_TCP_ 6
#define TCP_ACK 0x10
#define TCP_PSH 0x08
#define TCP_RST 0x04
#define TCPOLEN_TS_ALIGNED 12 /* NOP, NOP, kind 8, length 10, TSval, TSecr */

/* seg's tuple from rec->key, the socket's local -> remote; toward the local end if !out. */
static void seg_tuple(const struct ferry_rebal_sock *rec, struct ferry_goaway_seg *seg, bool out)
{
	const struct ferry_flow_key *k = &rec->key;

	memset(seg, 0, sizeof(*seg));
	seg->family = k->family;
	memcpy(seg->saddr, out ? k->saddr : k->daddr, sizeof(seg->saddr));
	memcpy(seg->daddr, out ? k->daddr : k->saddr, sizeof(seg->daddr));
	seg->sport = out ? k->sport : k->dport;
	seg->dport = out ? k->dport : k->sport;
}

void ferry_goaway__from_rec(const struct ferry_rebal_sock *rec, struct ferry_goaway_seg *seg)
{
	seg_tuple(rec, seg, false);
	seg->seq = rec->rcv_nxt;
	seg->ack = rec->snd_nxt;
	seg->window = rec->window > 0xffff ? 0xffff : (__u16)rec->window;
	seg->tstamp = rec->tcp_flags & FERRY_RB_TCP_TSTAMP;
	seg->tsval = rec->ts_recent;
	seg->tsecr = rec->ts_ecr;
}

void ferry_goaway__rst_from_rec(const struct ferry_rebal_sock *rec, struct ferry_goaway_seg *seg)
{
	seg_tuple(rec, seg, true);
	seg->seq = rec->snd_una;
	seg->rst = true;
}

static void put16(__u8 *p, __u16 v)
{
	p[0] = v >> 8;
	p[1] = (__u8)v;
}

static void put32(__u8 *p, __u32 v)
{
	p[0] = v >> 24;
	p[1] = (__u8)(v >> 16);
	p[2] = (__u8)(v >> 8);
	p[3] = (__u8)v;
}

/* RFC 1071 sum of len bytes (big-endian 16-bit words) added to sum, not folded. */
static __u32 sum16(const __u8 *p, size_t len, __u32 sum)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (__u32)p[i] << 8 | p[i + 1];
	if (len & 1)
		sum += (__u32)p[len - 1] << 8;
	return sum;
}

static __u16 fold(__u32 sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

ssize_t ferry_goaway__build(const struct ferry_goaway_seg *seg, void *buf, size_t len)
{
	size_t iplen = seg->family == FERRY_AF_INET6 ? 40 : 20, alen = iplen == 40 ? 16 : 4;
	size_t tcplen = 20 + (seg->tstamp && !seg->rst ? TCPOLEN_TS_ALIGNED : 0);
	size_t paylen = seg->rst ? 0 : FERRY_GOAWAY_FRAME_LEN;
	size_t total = iplen + tcplen + paylen;
	static const __u8 frame[FERRY_GOAWAY_FRAME_LEN] = FERRY_GOAWAY_FRAME;
	__u8 *ip = buf, *tcp = ip + iplen, *h2 = tcp + tcplen;
	__u32 sum;

	if (seg->family != FERRY_AF_INET && seg->family != FERRY_AF_INET6)
		return -EAFNOSUPPORT;
	if (len < total)
		return -ENOSPC;
	memset(buf, 0, total);

	/* The same frame the reply path appends (ferry_maps.h). */
	memcpy(h2, frame, paylen);

	memcpy(tcp, &seg->sport, 2);
	memcpy(tcp + 2, &seg->dport, 2);
	put32(tcp + 4, seg->seq);
	put32(tcp + 8, seg->ack);
	tcp[12] = (__u8)(tcplen / 4) << 4;
	tcp[13] = seg->rst ? TCP_RST : TCP_ACK | TCP_PSH;
	put16(tcp + 14, seg->window);
	if (tcplen > 20) {
		tcp[20] = 1; /* NOP, NOP: the aligned layout Linux itself sends */
		tcp[21] = 1;
		tcp[22] = 8;
		tcp[23] = 10;
		put32(tcp + 24, seg->tsval);
		put32(tcp + 28, seg->tsecr);
	}

	/* Pseudo-header: addresses, protocol, TCP length (RFC 9293 3.1; RFC 8200 8.1). */
	sum = sum16((const __u8 *)seg->saddr, alen, 0);
	sum = sum16((const __u8 *)seg->daddr, alen, sum);
	sum += IPPROTO_TCP_ + (__u32)(tcplen + paylen);
	sum = sum16(tcp, tcplen + paylen, sum);
	put16(tcp + 16, fold(sum));

	if (iplen == 40) {
		ip[0] = 0x60;
		put16(ip + 4, (__u16)(tcplen + paylen));
		ip[6] = IPPROTO_TCP_;
		ip[7] = 64;
		memcpy(ip + 8, seg->saddr, 16);
		memcpy(ip + 24, seg->daddr, 16);
	} else {
		ip[0] = 0x45;
		put16(ip + 2, (__u16)total);
		ip[6] = 0x40; /* DF */
		ip[8] = 64;
		ip[9] = IPPROTO_TCP_;
		memcpy(ip + 12, seg->saddr, 4);
		memcpy(ip + 16, seg->daddr, 4);
		/* The kernel fills it for IP_HDRINCL too; a complete packet is easier to test. */
		put16(ip + 10, fold(sum16(ip, 20, 0)));
	}
	return (ssize_t)total;
}

int ferry_goaway__open(struct ferry_goaway_sockets *s)
{
	/* IPPROTO_RAW implies IP_HDRINCL (IPv4) and a header-included IPv6 socket. */
	s->fd4 = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	if (s->fd4 < 0)
		s->fd4 = -errno;
	s->fd6 = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	if (s->fd6 < 0)
		s->fd6 = -errno;
	return s->fd4 < 0 ? s->fd4 : 0;
}

void ferry_goaway__close(struct ferry_goaway_sockets *s)
{
	if (s->fd4 >= 0)
		close(s->fd4);
	if (s->fd6 >= 0)
		close(s->fd6);
	s->fd4 = s->fd6 = -EBADF;
}

int ferry_goaway__send(const struct ferry_goaway_sockets *s, const struct ferry_goaway_seg *seg)
{
	__u8 pkt[FERRY_GOAWAY_SEG_MAX];
	struct sockaddr_in6 to6 = { .sin6_family = AF_INET6 };
	struct sockaddr_in to4 = { .sin_family = AF_INET };
	ssize_t n = ferry_goaway__build(seg, pkt, sizeof(pkt));
	const struct sockaddr *to;
	socklen_t tolen;
	int fd;

	if (n < 0)
		return (int)n;
	if (seg->family == FERRY_AF_INET6) {
		fd = s->fd6;
		memcpy(&to6.sin6_addr, seg->daddr, 16);
		to = (const struct sockaddr *)&to6;
		tolen = sizeof(to6);
	} else {
		fd = s->fd4;
		memcpy(&to4.sin_addr, seg->daddr, 4);
		to = (const struct sockaddr *)&to4;
		tolen = sizeof(to4);
	}
	if (fd < 0)
		return fd;
	if (sendto(fd, pkt, (size_t)n, 0, to, tolen) != n)
		return errno ? -errno : -EIO;
	return 0;
}
