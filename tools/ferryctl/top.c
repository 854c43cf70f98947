// SPDX-License-Identifier: GPL-2.0-only
/*
 * ferryctl top: a refreshing view of share, rate, latency, errors.
 */
#include "ferryctl.h"

/* ----------------------------------------------------------------- top */

/* A predictor in this frame (p) and the previous one (q), for rates; NULL when absent. */
static void predictor_pair(const struct ferry_snapshot *snap, const struct ferry_snapshot *prev,
			   __u32 id, const struct ferry_snap_predictor **p,
			   const struct ferry_snap_predictor **q)
{
	*p = ferry_snapshot__predictor(snap, id);
	*q = ferry_snapshot__predictor(prev, id);
}

/*
 * Long on purpose: options, terminal set-up and the refresh loop share the state of
 * the previous frame (for rates); split, they would pass it all around.
 */
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
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "n:i:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			iterations = strtol(optarg, NULL, 10);
			break;
		case 'i':
			interval = strtod(optarg, NULL);
			if (interval < 0.1)
				interval = 0.1;
			break;
		case 'h':
			printf("Usage: ferryctl top [--iterations N] [--interval SECONDS]\n"
			       "Refreshing view of services and predictors: traffic share of new\n"
			       "connections, connections/s, p50/p99 latency, 5xx and resets. q or\n"
			       "Ctrl-C quits.\n");
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	}
	signal(SIGINT, on_stop);
	signal(SIGTERM, on_stop);
	for (it = 0; !stop_requested && (iterations < 0 || it < iterations + 1); it++) {
		size_t i, j;
		struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };

		snap = read_snapshot(c);
		if (!snap)
			break;
		if (prev) {
			if (tty)
				printf("\033[H\033[2J");
			printf("ferry top — %s — every %.1fs (q quits)\n\n", c->pin_path, interval);
			printf("%-22s %-16s %7s %7s %9s %10s %10s %7s %7s\n", "SERVICE",
			       "PREDICTOR", "WEIGHT", "SHARE", "CONN/s", "p50", "p99", "5xx/s",
			       "RST/s");
			for (i = 0; i < snap->nservices; i++) {
				const struct ferry_snap_service *s = &snap->services[i];
				char vip[FERRY_ADDR_STRLEN + 8];
				double total = 0;

				ferry_vip__format(&s->vip, vip, sizeof(vip));
				for (j = 0; j < s->npredictors; j++) {
					const struct ferry_snap_predictor *p, *q;

					predictor_pair(snap, prev, s->predictor_ids[j], &p, &q);
					if (p && q)
						total += p->stats.new_flows - q->stats.new_flows;
				}
				for (j = 0; j < s->npredictors; j++) {
					const struct ferry_snap_predictor *p, *q;
					const struct ferry_hist *h;
					struct ferry_hist delta = {};
					double conn, p50 = NAN, p99 = NAN;
					unsigned int b;

					predictor_pair(snap, prev, s->predictor_ids[j], &p, &q);
					if (!p || !q)
						continue;
					conn = p->stats.new_flows - q->stats.new_flows;
					h = ferry_snapshot__hist(snap, FERRY_HIST_PREDICTOR,
								 FERRY_LAT_REQUEST, p->id);
					{
						const struct ferry_hist *hp = ferry_snapshot__hist(
							prev, FERRY_HIST_PREDICTOR,
							FERRY_LAT_REQUEST, p->id);

						/* Latency of this interval, not since boot. */
						if (h && hp) {
							delta.count = h->count - hp->count;
							delta.sum_ns = h->sum_ns - hp->sum_ns;
							for (b = 0; b < FERRY_HIST_BUCKETS; b++)
								delta.bucket[b] = h->bucket[b] -
										  hp->bucket[b];
						}
					}
					if (delta.count) {
						p50 = ferry_hist__quantile(&delta, 0.5) / 1e9;
						p99 = ferry_hist__quantile(&delta, 0.99) / 1e9;
					}
					printf("%-22s %-16s %6.1f%% %6.1f%% %9.1f %8.2fms %8.2fms %7.1f "
					       "%7.1f\n",
					       j ? "" : vip, p->name,
					       (p->flags & FERRY_PRED_F_OVERRIDE ?
							p->weight_override :
							p->weight_configured) /
						       1e4,
					       total ? 100.0 * conn / total : 0.0, conn / interval,
					       p50 * 1e3, p99 * 1e3,
					       (p->stats.http[FERRY_HTTP_5XX] -
						q->stats.http[FERRY_HTTP_5XX]) /
						       interval,
					       (p->stats.resets - q->stats.resets) / interval);
				}
			}
			fflush(stdout);
		}
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
	return EXIT_OK;
}
