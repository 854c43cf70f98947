// SPDX-License-Identifier: GPL-2.0-only
/*
 * ferryctl top: a refreshing view of share, rate, latency, errors. Share and
 * rate are by requests (the kernel's request count per predictor), because
 * one long-lived connection (a gRPC channel) can carry any number of them;
 * new connections per second are shown beside.
 */
#include "ferryctl.h"
#include "weights.h"

/* ----------------------------------------------------------------- top */

/* A week of frames at 1 s; with the interval's bound, poll()'s int ms never overflows. */
#define TOP_MAX_ITERATIONS 1000000
#define TOP_MAX_INTERVAL_S 3600

/* A predictor in this frame (p) and the previous one (q), for rates; NULL when absent. */
static void predictor_pair(const struct ferry_snapshot *snap, const struct ferry_snapshot *prev,
			   __u32 id, const struct ferry_snap_predictor **p,
			   const struct ferry_snap_predictor **q)
{
	*p = ferry_snapshot__predictor(snap, id);
	*q = ferry_snapshot__predictor(prev, id);
}

/* The request latency of one interval (this frame minus the previous), not since boot. */
static void interval_quantiles(const struct ferry_snapshot *snap, const struct ferry_snapshot *prev,
			       __u32 predictor_id, double *p50, double *p99)
{
	const struct ferry_hist *h, *hp;
	struct ferry_hist delta = {};
	unsigned int b;

	*p50 = *p99 = NAN;
	h = ferry_snapshot__hist(snap, FERRY_HIST_PREDICTOR, FERRY_LAT_REQUEST, predictor_id);
	hp = ferry_snapshot__hist(prev, FERRY_HIST_PREDICTOR, FERRY_LAT_REQUEST, predictor_id);
	if (!h || !hp)
		return;
	delta.count = h->count - hp->count;
	delta.sum_ns = h->sum_ns - hp->sum_ns;
	for (b = 0; b < FERRY_HIST_BUCKETS; b++)
		delta.bucket[b] = h->bucket[b] - hp->bucket[b];
	if (delta.count) {
		*p50 = ferry_hist__quantile(&delta, 0.5) / 1e9;
		*p99 = ferry_hist__quantile(&delta, 0.99) / 1e9;
	}
}

/*
 * Requests of one interval: the kernel's exact count (ferry_stats.requests,
 * every TCP flow, sampled or not; what ferry_requests_total exports), one per
 * HTTP/1.x request, one per h2c stream. Not the latency histograms' count:
 * sampling is per connection, so with few gRPC channels a count scaled by N
 * gave 73/27 where the calls went 54/46.
 */
static double interval_requests(const struct ferry_snap_predictor *p,
				const struct ferry_snap_predictor *q)
{
	double n = 0;

	for (int k = 0; k < FERRY_L7_PROTOS; k++)
		n += (double)p->stats.requests[k] - (double)q->stats.requests[k];
	return n;
}

/*
 * The weights a service's predictors ask for (ppm, in the service's order):
 * configured, or the canary analysis' step with the others sharing the rest,
 * or an override, as ferry_weights__effective reads them with every
 * predictor ready. SHARE is compared with these: the no-ready-backend moves
 * are what a diverging share points at.
 */
static void asked_weights(const struct ferry_snapshot *snap, const struct ferry_snap_service *s,
			  __u32 *out)
{
	struct ferry_weight_in in[FERRY_MAX_SVC_PREDICTORS] = {};
	const struct ferry_snap_predictor *p;
	size_t j;

	for (j = 0; j < s->npredictors; j++) {
		p = ferry_snapshot__predictor(snap, s->predictor_ids[j]);
		if (!p)
			continue;
		in[j] = (struct ferry_weight_in){ .configured = p->weight_configured,
						  .flags = p->flags,
						  .override = p->weight_override,
						  .canary = p->weight_canary,
						  .ready = 1 };
	}
	ferry_weights__effective(in, s->npredictors, out);
}

/* One predictor's row: printed, or appended to jpreds with -j. */
static void top_row(const struct ctl *c, const struct ferry_snapshot *snap,
		    const struct ferry_snapshot *prev, const struct ferry_snap_predictor *p,
		    const struct ferry_snap_predictor *q, const char *vip, double weight,
		    double total, double total_req, double interval, json_t *jpreds)
{
	double conn = p->stats.new_flows - q->stats.new_flows, p50, p99;
	double req = interval_requests(p, q);
	double conn_share = total ? 100.0 * conn / total : 0.0;
	/* By requests; by connections when the service saw none (not HTTP, or idle). */
	double share = total_req ? 100.0 * req / total_req : conn_share;
	double http5 = (p->stats.http[FERRY_HTTP_5XX] - q->stats.http[FERRY_HTTP_5XX]) / interval;
	double rst = (p->stats.resets - q->stats.resets) / interval;
	/* No sampled request in the interval: no quantile, "-". */
	char p50s[24] = "-", p99s[24] = "-", reqs[24];

	interval_quantiles(snap, prev, p->id, &p50, &p99);
	if (c->json) {
		json_array_append_new(
			jpreds,
			json_pack("{s:s, s:f, s:f, s:f, s:o, s:f, s:o, s:o, s:f, s:f}", "name",
				  p->name, "weight_pct", weight, "share_pct", share,
				  "connection_share_pct", conn_share, "requests_per_s",
				  json_real(req / interval), "connections_per_s", conn / interval,
				  "p50_s", isnan(p50) ? json_null() : json_real(p50), "p99_s",
				  isnan(p99) ? json_null() : json_real(p99), "http_5xx_per_s",
				  http5, "resets_per_s", rst));
		return;
	}
	if (!isnan(p50)) {
		snprintf(p50s, sizeof(p50s), "%.2fms", p50 * 1e3);
		snprintf(p99s, sizeof(p99s), "%.2fms", p99 * 1e3);
	}
	snprintf(reqs, sizeof(reqs), "%.1f", req / interval);
	printf("%-22s %-16s %6.1f%% %6.1f%% %9s %9.1f %10s %10s %7.1f %7.1f\n", vip, p->name,
	       weight, share, reqs, conn / interval, p50s, p99s, http5, rst);
}

/* One frame: every service's predictors, as a table or (-j) one JSON line. */
static void top_frame(const struct ctl *c, const struct ferry_snapshot *snap,
		      const struct ferry_snapshot *prev, double interval, bool tty)
{
	json_t *jsvcs = c->json ? json_array() : NULL;
	size_t i, j;

	if (!c->json) {
		if (tty)
			printf("\033[H\033[2J");
		printf("ferry top — %s — every %.1fs (q quits)\n\n", c->pin_path, interval);
		printf("%-22s %-16s %7s %7s %9s %9s %10s %10s %7s %7s\n", "SERVICE", "PREDICTOR",
		       "WEIGHT", "SHARE", "REQ/s", "CONN/s", "p50", "p99", "5xx/s", "RST/s");
	}
	for (i = 0; i < snap->nservices; i++) {
		const struct ferry_snap_service *s = &snap->services[i];
		const struct ferry_snap_predictor *p, *q;
		__u32 asked[FERRY_MAX_SVC_PREDICTORS];
		char vip[FERRY_ADDR_STRLEN + 8];
		json_t *jpreds = c->json ? json_array() : NULL;
		double total = 0, total_req = 0;
		bool first = true;

		ferry_vip__format(&s->vip, vip, sizeof(vip));
		if (c->json)
			json_array_append_new(jsvcs, json_pack("{s:s, s:o}", "vip", vip,
							       "predictors", jpreds));
		for (j = 0; j < s->npredictors; j++) {
			predictor_pair(snap, prev, s->predictor_ids[j], &p, &q);
			if (p && q) {
				total += p->stats.new_flows - q->stats.new_flows;
				total_req += interval_requests(p, q);
			}
		}
		asked_weights(snap, s, asked);
		for (j = 0; j < s->npredictors; j++) {
			predictor_pair(snap, prev, s->predictor_ids[j], &p, &q);
			if (!p || !q)
				continue;
			top_row(c, snap, prev, p, q, first ? vip : "", asked[j] / 1e4, total,
				total_req, interval, jpreds);
			first = false;
		}
	}
	if (c->json) {
		json_t *o = json_pack("{s:f, s:o}", "interval_s", interval, "services", jsvcs);

		json_dumpf(o, stdout, JSON_COMPACT);
		printf("\n");
		json_decref(o);
	}
	fflush(stdout);
}

int cmd_top(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = { { "iterations", required_argument, NULL, 'n' },
					      { "interval", required_argument, NULL, 'i' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	struct ferry_snapshot *prev = NULL, *snap;
	long iterations = -1, it;
	double interval = 1.0;
	bool tty = isatty(STDOUT_FILENO);
	int opt, rc = EXIT_OK;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "n:i:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			if (option_long("top", "--iterations", optarg, 1, TOP_MAX_ITERATIONS,
					&iterations))
				return EXIT_USAGE;
			break;
		case 'i':
			/* Under 0.1 s a frame is mostly noise; over an hour, not "top". */
			if (option_double("top", "--interval", optarg, 0.1, TOP_MAX_INTERVAL_S,
					  &interval))
				return EXIT_USAGE;
			break;
		case 'h':
			printf("Usage: ferryctl top [--iterations N] [--interval SECONDS]\n"
			       "N from 1 to %d frames (default: until q), SECONDS from 0.1 to\n"
			       "%d (default 1).\n"
			       "Refreshing view of services and predictors: share of requests and\n"
			       "requests/s (counted by the kernel: HTTP/1.x requests, h2c streams;\n"
			       "the share is of new connections when the service saw no request in\n"
			       "the interval), new connections/s, p50/p99\n"
			       "latency (- when no request was sampled in the interval), 5xx and\n"
			       "resets. q or Ctrl-C quits. With -j, one JSON object per interval,\n"
			       "one line each.\n",
			       TOP_MAX_ITERATIONS, TOP_MAX_INTERVAL_S);
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	}
	signal(SIGINT, on_stop);
	signal(SIGTERM, on_stop);
	for (it = 0; !stop_requested && (iterations < 0 || it < iterations + 1); it++) {
		struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };

		snap = read_snapshot(c);
		if (!snap) {
			rc = EXIT_FAIL; /* no pins, or they went away: not a clean end */
			break;
		}
		if (prev)
			top_frame(c, snap, prev, interval, tty);
		ferry_snapshot__free(prev);
		prev = snap;
		if (iterations >= 0 && it >= iterations)
			break;
		if (poll(&pfd, tty ? 1 : 0, (int)(interval * 1000)) > 0) {
			char ch;

			if (read(STDIN_FILENO, &ch, 1) == 1 && (ch == 'q' || ch == 'Q'))
				break;
		}
	}
	ferry_snapshot__free(prev);
	return rc;
}
