/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Address text, one module for every reader and writer of it: "ADDR:PORT",
 * "[ADDR6]:PORT" and an optional "/udp" (or "/tcp"). The config store parses
 * ferry.io/vip with ferry_vip__parse; ferryctl parses its arguments with
 * ferry_endpoint__parse; the exporter, ferryctl and the store's messages all
 * format with ferry_addr__format / ferry_vip__format.
 */
#ifndef FERRY_ADDR_H
#define FERRY_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include <linux/bpf.h> /* struct bpf_spin_lock in ferry_maps.h */

#include "ferry_maps.h"

/* "198.18.0.1:80" or "[2001:db8::1]:80"; buf needs 56 bytes. */
#define FERRY_ADDR_STRLEN 56
char *ferry_addr__format(const __be32 addr[4], __be16 port, __u8 family, char *buf, size_t len);

/* A VIP as ADDR:PORT, with "/udp" for UDP VIPs (docs/configuration.md's form). Returns buf. */
const char *ferry_vip__format(const struct ferry_vip *vip, char *buf, size_t len);

/*
 * Parses one "ADDR:PORT", "[ADDR6]:PORT", optionally followed by "/tcp" or
 * "/udp" (the ferry.io/vip form). Returns 0, or -EINVAL with what is wrong
 * and how to write it in why.
 */
int ferry_vip__parse(const char *text, struct ferry_vip *vip, char *why, size_t whylen);

/*
 * ferryctl's arguments: "ADDR:PORT", "[ADDR6]:PORT", or the address alone
 * (also a bare IPv6 address) when port_optional; *port is then 0. Returns 0
 * or -EINVAL.
 */
int ferry_endpoint__parse(const char *text, bool port_optional, __u8 *family, __be32 addr[4],
			  __be16 *port);

#endif /* FERRY_ADDR_H */
