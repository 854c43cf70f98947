// SPDX-License-Identifier: GPL-2.0-only
/*
 * The ferry.io/vip annotation: ADDR:PORT[/udp] text to struct ferry_vip and back.
 */
#include "source/config_internal.h"

/* ------------------------------------------------------------------ VIPs */

void vip_format(const struct ferry_vip *vip, char *buf, size_t len)
{
	char addr[INET6_ADDRSTRLEN];

	inet_ntop(vip->family == FERRY_AF_INET6 ? AF_INET6 : AF_INET, vip->addr, addr,
		  sizeof(addr));
	snprintf(buf, len, vip->family == FERRY_AF_INET6 ? "[%s]:%u%s" : "%s:%u%s", addr,
		 ntohs(vip->port), vip->proto == IPPROTO_UDP ? "/udp" : "");
}

static bool parse_port(const char *s, __u16 *port)
{
	unsigned long v;
	char *end;

	if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 6)
		return false;
	v = strtoul(s, &end, 10);
	if (v < 1 || v > 65535)
		return false;
	*port = (__u16)v;
	return true;
}

/*
 * Parses one "ADDR:PORT", "[ADDR6]:PORT", optionally followed by "/tcp" or
 * "/udp". On failure writes what is wrong and how to write it into why.
 */
int parse_vip(const char *text, struct ferry_vip *vip, char *why, size_t whylen)
{
	char buf[128], *addr, *port, *proto;
	__u16 portnum;

	memset(vip, 0, sizeof(*vip));
	if (strlen(text) >= sizeof(buf)) {
		snprintf(why, whylen, "\"%.40s...\" is too long to be ADDR:PORT", text);
		return -EINVAL;
	}
	strcpy(buf, text);
	vip->proto = IPPROTO_TCP;
	proto = strrchr(buf, '/');
	if (proto) {
		*proto++ = '\0';
		if (!strcasecmp(proto, "udp")) {
			vip->proto = IPPROTO_UDP;
		} else if (strcasecmp(proto, "tcp")) {
			snprintf(why, whylen,
				 "\"%s\": unknown protocol \"%s\": write ADDR:PORT for TCP or "
				 "ADDR:PORT/udp for UDP",
				 text, proto);
			return -EINVAL;
		}
	}
	if (buf[0] == '[') {
		char *close = strchr(buf, ']');

		if (!close || close[1] != ':') {
			snprintf(why, whylen,
				 "\"%s\" is not [ADDR]:PORT: an IPv6 VIP is written like "
				 "[2001:db8::10]:8000",
				 text);
			return -EINVAL;
		}
		*close = '\0';
		addr = buf + 1;
		port = close + 2;
		vip->family = FERRY_AF_INET6;
		if (inet_pton(AF_INET6, addr, vip->addr) != 1) {
			snprintf(why, whylen, "\"%s\": \"%s\" is not an IPv6 address", text, addr);
			return -EINVAL;
		}
	} else {
		char *colon = strchr(buf, ':');

		if (colon && strchr(colon + 1, ':')) {
			snprintf(why, whylen,
				 "\"%s\": an IPv6 VIP needs brackets around the address: write "
				 "[ADDR]:PORT, e.g. [2001:db8::10]:8000",
				 text);
			return -EINVAL;
		}
		if (!colon) {
			snprintf(why, whylen,
				 "\"%s\" has no port: write ADDR:PORT, e.g. 198.18.100.10:8000",
				 text);
			return -EINVAL;
		}
		*colon = '\0';
		addr = buf;
		port = colon + 1;
		vip->family = FERRY_AF_INET;
		if (inet_pton(AF_INET, addr, vip->addr) != 1) {
			snprintf(why, whylen,
				 "\"%s\": \"%s\" is not an IPv4 address: write ADDR:PORT, e.g. "
				 "198.18.100.10:8000",
				 text, addr);
			return -EINVAL;
		}
	}
	if (!parse_port(port, &portnum)) {
		snprintf(why, whylen, "\"%s\": port \"%s\" is not a number from 1 to 65535", text,
			 port);
		return -EINVAL;
	}
	vip->port = htons(portnum);
	return 0;
}

int vip_cmp(const struct ferry_vip *a, const struct ferry_vip *b)
{
	int r;

	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	r = memcmp(a->addr, b->addr, sizeof(a->addr));
	if (r)
		return r;
	if (a->port != b->port)
		return ntohs(a->port) < ntohs(b->port) ? -1 : 1;
	if (a->proto != b->proto)
		return a->proto < b->proto ? -1 : 1;
	return 0;
}
