// SPDX-License-Identifier: GPL-2.0-only
/*
 * Address text (addr.h): ADDR:PORT, [ADDR6]:PORT and the /udp suffix, read
 * and written in one place for the config store, the exporter and ferryctl.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"

char *ferry_addr__format(const __be32 addr[4], __be16 port, __u8 family, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (family == FERRY_AF_INET6) {
		inet_ntop(AF_INET6, addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(port));
	} else {
		inet_ntop(AF_INET, addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(port));
	}
	return buf;
}

const char *ferry_vip__format(const struct ferry_vip *vip, char *buf, size_t len)
{
	char addr[INET6_ADDRSTRLEN];

	inet_ntop(vip->family == FERRY_AF_INET6 ? AF_INET6 : AF_INET, vip->addr, addr,
		  sizeof(addr));
	snprintf(buf, len, vip->family == FERRY_AF_INET6 ? "[%s]:%u%s" : "%s:%u%s", addr,
		 ntohs(vip->port), vip->proto == IPPROTO_UDP ? "/udp" : "");
	return buf;
}

static bool parse_port(const char *s, __u16 *port)
{
	unsigned long v;
	char *end;

	/* "08000" is refused rather than guessed: YAML 1.1 would read 08000 as octal elsewhere. */
	if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 5 || (s[0] == '0' && s[1]))
		return false;
	v = strtoul(s, &end, 10);
	if (v < 1 || v > 65535)
		return false;
	*port = (__u16)v;
	return true;
}

/*
 * An address no client can send a connection to: unspecified, broadcast or
 * multicast. Returns what it is, or NULL for an address that can be a VIP.
 */
static const char *unusable_addr(const struct ferry_vip *vip)
{
	const __u8 *b = (const __u8 *)vip->addr;

	if (vip->family == FERRY_AF_INET6) {
		static const __u8 zero[16];

		if (!memcmp(b, zero, 16))
			return "the unspecified address";
		if (b[0] == 0xff)
			return "a multicast address (ff00::/8)";
		return NULL;
	}
	if (!b[0] && !b[1] && !b[2] && !b[3])
		return "the unspecified address";
	if (b[0] == 255 && b[1] == 255 && b[2] == 255 && b[3] == 255)
		return "the broadcast address";
	if ((b[0] & 0xf0) == 224)
		return "a multicast address (224.0.0.0/4)";
	return NULL;
}

/*
 * Parses one "ADDR:PORT", "[ADDR6]:PORT", optionally followed by "/tcp" or
 * "/udp". On failure writes what is wrong and how to write it into why.
 */
int ferry_vip__parse(const char *text, struct ferry_vip *vip, char *why, size_t whylen)
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
	if (unusable_addr(vip)) {
		snprintf(why, whylen,
			 "\"%s\": %s is %s, which clients cannot connect to: write the unicast "
			 "address clients use, e.g. 198.18.100.10:8000",
			 text, addr, unusable_addr(vip));
		return -EINVAL;
	}
	if (port[0] == '0' && port[1] && strspn(port, "0123456789") == strlen(port) &&
	    strtoul(port, NULL, 10)) {
		snprintf(why, whylen,
			 "\"%s\": port \"%s\" has a leading zero: write the port without it, "
			 "e.g. %lu",
			 text, port, strtoul(port, NULL, 10));
		return -EINVAL;
	}
	if (!parse_port(port, &portnum)) {
		snprintf(why, whylen, "\"%s\": port \"%s\" is not a number from 1 to 65535", text,
			 port);
		return -EINVAL;
	}
	vip->port = htons(portnum);
	return 0;
}

/* "ADDR:PORT", "[ADDR6]:PORT", or without ":PORT" when port_optional. */
int ferry_endpoint__parse(const char *text, bool port_optional, __u8 *family, __be32 addr[4],
			  __be16 *port)
{
	char host[64];
	const char *p = NULL, *end;
	unsigned long n;
	char *e;

	memset(addr, 0, 16);
	*port = 0;
	if (text[0] == '[') {
		end = strchr(text, ']');
		if (!end || (size_t)(end - text - 1) >= sizeof(host))
			return -EINVAL;
		memcpy(host, text + 1, end - text - 1);
		host[end - text - 1] = '\0';
		if (end[1] == ':')
			p = end + 2;
		else if (end[1])
			return -EINVAL;
		*family = FERRY_AF_INET6;
		if (inet_pton(AF_INET6, host, addr) != 1)
			return -EINVAL;
	} else {
		const char *colon = strchr(text, ':');

		if (colon && strchr(colon + 1, ':')) {
			/* A bare IPv6 address: no port possible. */
			if (inet_pton(AF_INET6, text, addr) != 1)
				return -EINVAL;
			*family = FERRY_AF_INET6;
		} else {
			size_t len = colon ? (size_t)(colon - text) : strlen(text);

			if (len >= sizeof(host))
				return -EINVAL;
			memcpy(host, text, len);
			host[len] = '\0';
			if (inet_pton(AF_INET, host, addr) != 1)
				return -EINVAL;
			*family = FERRY_AF_INET;
			p = colon ? colon + 1 : NULL;
		}
	}
	if (!p)
		return port_optional ? 0 : -EINVAL;
	errno = 0;
	n = strtoul(p, &e, 10);
	if (errno || *e || !*p || n == 0 || n > 65535)
		return -EINVAL;
	*port = htons((__u16)n);
	return 0;
}
