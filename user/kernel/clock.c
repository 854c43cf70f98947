/*
 * See clock.h and bpf/clock.bpf.h. The probe program reads the coarse clock,
 * jiffies, and the coarse clock again; equal clock readings bracket a
 * jiffies value of their tick. Readings are taken at a tick's edge: read
 * until both jiffies and the clock have moved. A CPU that has just woken
 * from idle sets the coarse clock to the moment it woke (mid-tick) while
 * jiffies count whole ticks; a CPU that keeps reading stays awake, its
 * ticks come on their boundaries, and the first reading after one has the
 * clock at the boundary (plus the interrupt's latency, microseconds). The
 * kernel moves jiffies an instant before the clock: waiting for both to
 * move skips a reading between the two.
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

#define CLOCK_MEASURE_NS 100000000ULL /* the tick is measured over about this */
#define CLOCK_EDGE_MAX_NS 100000000ULL /* a tick's edge is waited for at most this */
#define CLOCK_RESYNC_NS 60000000000ULL /* the offset read again (it should not move) */

struct clock_reading {
	__u64 j, ns;
};

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

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

/* The first reading after both jiffies and the clock moved (see the top). */
static int clock_edge(struct ferry_xdp *xdp, struct clock_reading *r)
{
	struct clock_reading first;
	__u64 start = mono_ns();
	int err;

	err = clock_read(xdp, &first);
	while (!err) {
		err = clock_read(xdp, r);
		if (!err && r->j != first.j && r->ns != first.ns)
			return 0;
		if (mono_ns() - start > CLOCK_EDGE_MAX_NS)
			return -ETIME;
	}
	return err;
}

/*
 * ns per jiffy: the clock's advance between two tick edges about
 * CLOCK_MEASURE_NS apart, taken to the TICK_NSEC of the nearest HZ a
 * kernel is built with (100, 250, 300 or 1000: an edge can still be a tick
 * off, 4% over 25 ticks, and those are 20% apart or more). A measurement
 * more than 10% from every one of them is refused.
 */
static int clock_measure(struct ferry_xdp *xdp, __u64 *tick_ns, struct clock_reading *last)
{
	static const unsigned int hzs[] = { 100, 250, 300, 1000 };
	struct timespec nap = { .tv_nsec = CLOCK_MEASURE_NS };
	struct clock_reading a;
	double est, hz;
	size_t i;
	int err;

	err = clock_edge(xdp, &a);
	if (err)
		return err;
	nanosleep(&nap, NULL);
	err = clock_edge(xdp, last);
	if (err)
		return err;
	if (last->j == a.j || last->ns == a.ns)
		return -ERANGE;
	est = (double)(last->ns - a.ns) / (double)(last->j - a.j);
	hz = 1e9 / est;
	for (i = 0; i < sizeof(hzs) / sizeof(hzs[0]); i++) {
		if (hz > hzs[i] * 0.9 && hz < hzs[i] * 1.1) {
			*tick_ns = (1000000000ULL + hzs[i] / 2) / hzs[i]; /* TICK_NSEC */
			return 0;
		}
	}
	return -ERANGE;
}

/*
 * The offset: the lowest of three edges'. An edge taken while the clock is
 * a tick ahead of jiffies (as it is right after an idle CPU wakes, until the
 * next tick) reads a tick high.
 */
static int clock_offset(struct ferry_xdp *xdp, __u64 tick, const struct clock_reading *first,
			__u64 *off)
{
	struct clock_reading r;
	__u64 o;
	int i, err;

	*off = first ? first->ns - first->j * tick : 0;
	for (i = first ? 1 : 0; i < 3; i++) {
		err = clock_edge(xdp, &r);
		if (err)
			return err;
		o = r.ns - r.j * tick;
		if ((!i && !first) || (__s64)(o - *off) < 0)
			*off = o;
	}
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
	__u64 now = mono_ns(), off;
	int err;

	if (c->err)
		return c->err;
	if (!c->tick_ns) {
		err = clock_measure(xdp, &c->tick_ns, &r);
		err = err ?: clock_offset(xdp, c->tick_ns, &r, &off);
		if (err) {
			c->tick_ns = 0;
			c->err = err;
			pr_warn("the data plane's clock stays bpf_ktime_get_coarse_ns (jiffies "
				"could not be measured against CLOCK_MONOTONIC: %s): correct, "
				"a few ns slower per packet",
				strerror(-err));
			return err;
		}
	} else {
		if (now - c->synced_ns < CLOCK_RESYNC_NS)
			return 0;
		err = clock_offset(xdp, c->tick_ns, NULL, &off);
		if (err)
			return err; /* the published offset stays */
	}
	c->synced_ns = now;
	clock_publish(&xdp->bss->ferry_tick_ns, &xdp->bss->ferry_clock_off, c->tick_ns, off);
	if (tc)
		clock_publish(&tc->bss->ferry_tick_ns, &tc->bss->ferry_clock_off, c->tick_ns, off);
	return 0;
}
