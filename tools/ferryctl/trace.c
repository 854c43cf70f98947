// SPDX-License-Identifier: GPL-2.0-only
/*
 * ferryctl trace: sampled per-packet decisions from the trace ring.
 */
#include "ferryctl.h"

/* --------------------------------------------------------------- trace */

/* Far more than anyone reads; keeps --count a plain whole number. */
#define TRACE_MAX_COUNT 1000000000L

struct trace_ctx {
	struct ctl *c;
	bool want_svc;
	struct ferry_vip svc;
	long count, seen;
};

static const char *reason_name(__u8 r)
{
	switch (r) {
	case FERRY_TR_NEW_FLOW:
		return "new-flow";
	case FERRY_TR_FLOW_HIT:
		return "flow-hit";
	case FERRY_TR_FLOW_MISS:
		return "flow-miss";
	case FERRY_TR_REPLY:
		return "reply";
	case FERRY_TR_DROP_NO_BACKEND:
		return "drop:no-backend";
	case FERRY_TR_DROP_FRAGMENT:
		return "drop:fragment";
	case FERRY_TR_DROP_FIB:
		return "drop:fib";
	default:
		return "unknown";
	}
}

static int on_trace(void *ctx, void *data, size_t size)
{
	struct trace_ctx *t = ctx;
	const struct ferry_trace_event *e = data;
	char src[FERRY_ADDR_STRLEN], dst[FERRY_ADDR_STRLEN], ifname[IF_NAMESIZE] = "?";
	const char *hook;

	/* libbpf 1.1 drains what is queued even after a positive return: stop here too. */
	if (size < sizeof(*e) || (t->count > 0 && t->seen >= t->count))
		return 0;
	if (t->want_svc && e->reason != FERRY_TR_REPLY &&
	    (e->tuple.family != t->svc.family || e->tuple.dport != t->svc.port ||
	     memcmp(e->tuple.daddr, t->svc.addr, 16)))
		return 0;
	ferry_addr__format(e->tuple.saddr, e->tuple.sport, e->tuple.family, src, sizeof(src));
	ferry_addr__format(e->tuple.daddr, e->tuple.dport, e->tuple.family, dst, sizeof(dst));
	if_indextoname(e->ifindex, ifname);
	hook = e->hook == FERRY_HOOK_XDP	? "xdp" :
	       e->hook == FERRY_HOOK_TC_INGRESS ? "tc-in" :
						  "tc-eg";
	if (t->c->json) {
		json_t *o = json_pack("{s:f, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:i}", "ts",
				      e->ts_ns / 1e9, "hook", hook, "ifname", ifname, "src", src,
				      "dst", dst, "reason", reason_name(e->reason), "service_id",
				      (int)e->svc_id, "predictor_id", (int)e->predictor_id,
				      "backend_id", (int)e->backend_id);

		json_dumpf(o, stdout, JSON_COMPACT);
		fputc('\n', stdout);
		json_decref(o);
	} else {
		printf("%.6f %-5s %-10s %-24s -> %-24s %-16s svc %u pred %u backend %u\n",
		       e->ts_ns / 1e9, hook, ifname, src, dst, reason_name(e->reason), e->svc_id,
		       e->predictor_id, e->backend_id);
	}
	fflush(stdout);
	t->seen++;
	return t->count > 0 && t->seen >= t->count ? 1 : 0;
}

int cmd_trace(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = { { "service", required_argument, NULL, 's' },
					      { "count", required_argument, NULL, 'n' },
					      { "every", required_argument, NULL, 'e' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	struct trace_ctx t = { .c = c, .count = 0 };
	struct ring_buffer *rb = NULL;
	struct ferry_config cfg;
	struct ferry_dp *dp;
	long every = 1;
	int opt, rc = EXIT_FAIL;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "s:n:e:h", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			if (ferry_endpoint__parse(optarg, false, &t.svc.family, t.svc.addr,
						  &t.svc.port)) {
				fprintf(stderr,
					"ferryctl trace: --service %s: expected ADDR:PORT\n",
					optarg);
				return EXIT_USAGE;
			}
			t.want_svc = true;
			break;
		case 'n':
			if (option_long("trace", "--count", optarg, 1, TRACE_MAX_COUNT, &t.count))
				return EXIT_USAGE;
			break;
		case 'e':
			/* ferry_config.trace_every is a __u32: larger would be truncated. */
			if (option_long("trace", "--every", optarg, 1, UINT32_MAX, &every))
				return EXIT_USAGE;
			break;
		case 'h':
			printf("Usage: ferryctl trace [--service VIP] [--count N] [--every N]\n"
			       "Streams the data plane's per-packet decisions (service, predictor,\n"
			       "backend, and why: new flow, flow hit, miss, reply, drop reason),\n"
			       "sampling one packet in N (default every packet) while it runs.\n"
			       "--count N stops after N events (1 to %ld; default: until Ctrl-C),\n"
			       "--every N is from 1 to %u.\n",
			       TRACE_MAX_COUNT, UINT32_MAX);
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	}
	dp = open_maps(c);
	if (!dp)
		return EXIT_FAIL;
	rb = ring_buffer__new(dp->map_fds[FERRY_M_TRACE], on_trace, &t, NULL);
	if (!rb || ferry_dp__config_read(dp, &cfg)) {
		fprintf(stderr, "ferryctl trace: cannot open the trace ring buffer: %s\n",
			strerror(errno));
		goto out;
	}
	cfg.trace_every = every;
	ferry_dp__config_write(dp, &cfg);
	signal(SIGINT, on_stop);
	signal(SIGTERM, on_stop);
	while (!stop_requested) {
		int err = ring_buffer__poll(rb, 200);

		if (err < 0 && err != -EINTR)
			break;
		if (t.count > 0 && t.seen >= t.count)
			break;
	}
	rc = EXIT_OK;
	/* Tracing costs a branch per packet only while off: always switch it off. */
	if (!ferry_dp__config_read(dp, &cfg)) {
		cfg.trace_every = 0;
		ferry_dp__config_write(dp, &cfg);
	}
out:
	ring_buffer__free(rb);
	ferry_dp__close(dp);
	return rc;
}
