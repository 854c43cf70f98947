/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The capabilities ferryd needs, checked at start: without one of them the
 * first bpf(2) or netlink call fails with a bare EPERM (or the verifier's
 * "pointer arithmetic ... prohibited for !root"), which does not say what to
 * grant. A container started with too few capabilities is told which.
 */
#ifndef FERRY_CAPS_H
#define FERRY_CAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Writes the names of the capabilities ferryd needs and @effective (a CapEff
 * bit mask) lacks into @buf ("CAP_BPF CAP_PERFMON"); returns how many are
 * missing. CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON, as in the
 * kernel (before 5.8 there is no CAP_BPF or CAP_PERFMON); CAP_NET_ADMIN has
 * no stand-in.
 */
int ferry_caps__missing(uint64_t effective, char *buf, size_t len);

/*
 * Reads this process's effective capabilities (/proc/self/status) and logs
 * one error naming those missing. Returns 0, -EPERM when some are missing,
 * or another negative errno when they cannot be read.
 */
int ferry_caps__check(void);

#endif /* FERRY_CAPS_H */
