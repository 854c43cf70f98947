// SPDX-License-Identifier: GPL-2.0-only
/*
 * See clock.h and bpf/clock.bpf.h. The probe program reads the coarse clock,
 * jiffies, and the coarse clock again: equal readings bracket a jiffies value
 * of the same tick, except in the instant between the kernel's jiffies
 * update and its clock update, which makes that sample's offset one tick low;
 * the highest of a few samples is the offset.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kernel/clock.h"
#include "log.h"
#include "ferry_tc.skel.h"
#include "ferry_xdp.skel.h"

#define CLOCK_SAMPLES 3
#define CLOCK_MEASURE_NS 100000000ULL /* the tick is measured over at least this */
#define CLOCK_MIN_TICKS 10

struct clock_reading {
	__u64 j, ns;
};

static int clock_read(struct ferry_xdp *xdp, struct clock_reading *r)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts);
	unsigned char frame[64] = { 0 };
	int fd = bpf_program__fd(xdp->progs.ferry_clock_probe);
	int i;

	opts.data_in = frame;
	opts.data_size_in = sizeof(frame);
	for (i = 0; i < 100; i++) {
		if (bpf_prog_test_run_opts(fd, &opts))
			return -errno;
		if (xdp->bss->ferry_probe_ns0 != xdp->bss->ferry_probe_ns1)
			continue; /* a tick between the reads */
		r->j = xdp->bss->ferry_probe_j;
		r->ns = xdp->bss->ferry_probe_ns0;
		return 0;
	}
	return -EAGAIN;
}

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/*
 * ns per jiffy: the coarse clock's advance over at least CLOCK_MIN_TICKS
 * ticks and CLOCK_MEASURE_NS, rounded to the kernel's TICK_NSEC for the
 * nearest whole HZ. A measurement off that by more than 0.5% (a clock
 * that does not tick as jiffies do) is refused.
 */
static int clock_measure(struct ferry_xdp *xdp, __u64 *tick_ns)
{
	struct timespec nap = { .tv_nsec = 5000000 };
	struct clock_reading a, b;
	__u64 start = mono_ns(), hz, tick, dns, dj;
	double est;
	int err;

	err = clock_read(xdp, &a);
	if (err)
		return err;
	do {
		nanosleep(&nap, NULL);
		err = clock_read(xdp, &b);
		if (err)
			return err;
		if (mono_ns() - start > 20 * CLOCK_MEASURE_NS)
			return -ETIME;
	} while (b.j - a.j < CLOCK_MIN_TICKS || b.ns - a.ns < CLOCK_MEASURE_NS);
	dns = b.ns - a.ns;
	dj = b.j - a.j;
	hz = (__u64)((double)dj * 1e9 / (double)dns + 0.5);
	if (!hz)
		return -ERANGE;
	tick = (1000000000ULL + hz / 2) / hz; /* the kernel's TICK_NSEC */
	est = (double)dns / (double)dj;
	if (est < tick * 0.995 || est > tick * 1.005)
		return -ERANGE;
	*tick_ns = tick;
	return 0;
}

static void clock_publish(__u64 *tick_ns, __u64 *off, __u64 tick, __u64 offset)
{
	__atomic_store_n(off, offset, __ATOMIC_RELAXED);
	__atomic_store_n(tick_ns, tick, __ATOMIC_RELEASE);
}

int ferry_clock__sync(struct ferry_clock *c, struct ferry_xdp *xdp, struct ferry_tc *tc)
{
	struct clock_reading r;
	__u64 off = 0;
	int i, err;

	if (c->err)
		return c->err;
	if (!c->tick_ns) {
		err = clock_measure(xdp, &c->tick_ns);
		if (err) {
			c->err = err;
			pr_warn("the data plane's clock stays bpf_ktime_get_coarse_ns (jiffies "
				"could not be measured against CLOCK_MONOTONIC: %s): correct, "
				"a few ns slower per packet",
				strerror(-err));
			return err;
		}
	}
	for (i = 0; i < CLOCK_SAMPLES; i++) {
		__u64 o;

		err = clock_read(xdp, &r);
		if (err)
			return err;
		o = r.ns - r.j * c->tick_ns;
		if (!i || (__s64)(o - off) > 0)
			off = o;
	}
	c->off = off;
	clock_publish(&xdp->bss->ferry_tick_ns, &xdp->bss->ferry_clock_off, c->tick_ns, off);
	if (tc)
		clock_publish(&tc->bss->ferry_tick_ns, &tc->bss->ferry_clock_off, c->tick_ns, off);
	return 0;
}
