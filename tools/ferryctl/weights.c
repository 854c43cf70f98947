// SPDX-License-Identifier: GPL-2.0-only
/*
 * ferryctl weights: the emergency split override.
 */
#include "ferryctl.h"

/* ------------------------------------------------------------- weights */

/* What the override needs of one service: from the snapshot or from its own map entries. */
struct weights_pred {
	char name[FERRY_PRED_NAME_LEN];
	__u32 flags;
	__u32 weight_configured;
};

struct weights_target {
	struct ferry_vip vip;
	char deployment[FERRY_NAME_LEN];
	size_t npredictors;
	struct weights_pred preds[FERRY_MAX_SVC_PREDICTORS];
};

static void target_from_snapshot(const struct ferry_snapshot *snap, __u32 id,
				 struct weights_target *t)
{
	const struct ferry_snap_service *s = ferry_snapshot__service(snap, id);
	size_t j;

	memset(t, 0, sizeof(*t));
	t->vip = s->vip;
	snprintf(t->deployment, sizeof(t->deployment), "%s", s->deployment);
	for (j = 0; j < s->npredictors; j++) {
		const struct ferry_snap_predictor *p =
			ferry_snapshot__predictor(snap, s->predictor_ids[j]);

		if (!p)
			continue;
		snprintf(t->preds[t->npredictors].name, FERRY_PRED_NAME_LEN, "%s", p->name);
		t->preds[t->npredictors].flags = p->flags;
		t->preds[t->npredictors++].weight_configured = p->weight_configured;
	}
}

/* The same from a mirror of the service alone (ferry_sync__open_service). */
static int target_from_sync(const struct ferry_sync *sync, __u32 id, struct weights_target *t)
{
	const struct ferry_svc_meta *meta = ferry_sync__svc_meta(sync, id);
	__u32 j, n;

	memset(t, 0, sizeof(*t));
	if (!meta)
		return -ENOENT;
	t->vip = meta->vip;
	snprintf(t->deployment, sizeof(t->deployment), "%.*s", (int)sizeof(meta->deployment) - 1,
		 meta->deployment);
	n = meta->npredictors < FERRY_MAX_SVC_PREDICTORS ? meta->npredictors :
							   FERRY_MAX_SVC_PREDICTORS;
	for (j = 0; j < n; j++) {
		const struct ferry_pred_meta *pm =
			ferry_sync__pred_meta(sync, meta->predictor_ids[j]);

		if (!pm)
			continue;
		snprintf(t->preds[t->npredictors].name, FERRY_PRED_NAME_LEN, "%.*s",
			 FERRY_PRED_NAME_LEN - 1, pm->name);
		t->preds[t->npredictors].flags = pm->flags;
		t->preds[t->npredictors++].weight_configured = pm->weight_configured;
	}
	return 0;
}

/*
 * Long on purpose: parses the three modes (set, --clear, --rollback), checks them
 * against the snapshot and makes one sync call; the checks read in order.
 */
int cmd_weights(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = { { "clear", no_argument, NULL, 'c' },
					      { "rollback", no_argument, NULL, 'r' },
					      { "to", required_argument, NULL, 't' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	const char *names[FERRY_MAX_SVC_PREDICTORS], *to = NULL, *service;
	__u32 weights[FERRY_MAX_SVC_PREDICTORS], ids[64];
	bool clear = false, rollback = false, full;
	struct ferry_snapshot *snap = NULL;
	struct ferry_sync *sync = NULL;
	struct ferry_dp *dp = NULL;
	size_t n = 0, total = 0;
	int opt, nsvc, i, rc = EXIT_FAIL;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "+crt:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			clear = true;
			break;
		case 'r':
			rollback = true;
			break;
		case 't':
			to = optarg;
			break;
		case 'h':
			printf("Usage: ferryctl weights SERVICE PREDICTOR=PERCENT ...\n"
			       "       ferryctl weights SERVICE --rollback [--to PREDICTOR]\n"
			       "       ferryctl weights SERVICE --clear\n"
			       "Emergency override of a service's split, in the kernel at once. It\n"
			       "survives ferryd restarts and shows in status and services until\n"
			       "--clear. Percentages must sum to 100, each predictor named once;\n"
			       "predictors not named get 0.\n"
			       "--rollback sends every new connection to one predictor: --to's, or\n"
			       "else the one with the largest configured traffic (first on a tie).\n"
			       "Open connections are never moved.\n");
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "ferryctl weights: SERVICE is required (see --help)\n");
		return EXIT_USAGE;
	}
	service = argv[optind++];
	/* Options may also follow SERVICE. */
	while ((opt = getopt_long(argc, argv, "crt:h", opts, NULL)) != -1) {
		if (opt == 'c')
			clear = true;
		else if (opt == 'r')
			rollback = true;
		else if (opt == 't')
			to = optarg;
		else
			return EXIT_USAGE;
	}
	for (; optind < argc; optind++) {
		char *eq = strchr(argv[optind], '=');
		double pct;
		size_t k;

		if (!eq || eq == argv[optind] || n == FERRY_MAX_SVC_PREDICTORS) {
			fprintf(stderr,
				"ferryctl weights: '%s': expected PREDICTOR=PERCENT, e.g. main=100\n",
				argv[optind]);
			return EXIT_USAGE;
		}
		*eq = '\0';
		if (strict_double(eq + 1, &pct) || pct < 0 || pct > 100) {
			fprintf(stderr,
				"ferryctl weights: %s=%s: expected a percentage from 0 to 100\n",
				argv[optind], eq + 1);
			return EXIT_USAGE;
		}
		/*
		 * Named twice, both entries would be written and split the
		 * weight between them: main=100 main=0 would be 50/50, the
		 * opposite of an "all to main" emergency. Refuse, change nothing.
		 */
		for (k = 0; k < n; k++) {
			if (strcmp(names[k], argv[optind]))
				continue;
			fprintf(stderr,
				"ferryctl weights: predictor %s is named twice (%s=%s and %s=%s); "
				"give each predictor once\n",
				argv[optind], names[k], names[k] + strlen(names[k]) + 1,
				argv[optind], eq + 1);
			return EXIT_USAGE;
		}
		names[n] = argv[optind];
		weights[n] = (__u32)llround(pct * 1e4);
		total += weights[n];
		n++;
	}
	if ((clear + rollback + (n > 0)) != 1) {
		fprintf(stderr, "ferryctl weights: give exactly one of PREDICTOR=PERCENT..., "
				"--rollback or --clear (see --help)\n");
		return EXIT_USAGE;
	}
	if (n && (total < FERRY_WEIGHT_ONE - 100 || total > FERRY_WEIGHT_ONE + 100)) {
		fprintf(stderr,
			"ferryctl weights: the percentages sum to %.2f; they must sum to 100\n",
			total / 1e4);
		return EXIT_USAGE;
	}

	/*
	 * The fast path opens the maps one service's override reads and writes
	 * (ferry_sync__open_service) and resolves SERVICE on them, then mirrors
	 * only the matched services. Anything it cannot settle (no match, a bad
	 * SERVICE) takes the snapshot path, whose messages and exit codes are the
	 * documented ones; no pins is the same error on either path.
	 * FERRYCTL_WEIGHTS_FULL=1 forces the snapshot and full-mirror path: the
	 * reference tests/ferryctl.sh compares the fast path's writes with.
	 */
	full = getenv("FERRYCTL_WEIGHTS_FULL") && *getenv("FERRYCTL_WEIGHTS_FULL") == '1';
	if (!full) {
		dp = open_some_maps(c, 1ULL << FERRY_M_SERVICES | 1ULL << FERRY_M_SVC_META |
					       1ULL << FERRY_M_PRED_META | 1ULL << FERRY_M_SELECT |
					       1ULL << FERRY_M_CONFIG);
		if (!dp)
			goto out;
		nsvc = match_services_meta(dp, service, ids, 64);
		if (nsvc <= 0) {
			ferry_dp__close(dp);
			dp = NULL;
			full = true;
		}
	}
	if (full) {
		snap = read_snapshot(c);
		if (!snap)
			return EXIT_FAIL;
		nsvc = match_services(snap, service, ids, 64);
		if (nsvc < 0) {
			rc = nsvc == -ENOENT ? EXIT_NOT_FOUND : EXIT_USAGE;
			goto out;
		}
		dp = open_maps(c);
		if (!dp)
			goto out;
		sync = ferry_sync__new(dp, NULL);
		if (!sync)
			goto out;
	}
	for (i = 0; i < nsvc; i++) {
		struct weights_target t;
		char vip[FERRY_ADDR_STRLEN + 8];
		size_t nn = n;
		int err;

		if (snap) {
			target_from_snapshot(snap, ids[i], &t);
		} else {
			ferry_sync__free(sync);
			sync = ferry_sync__open_service(dp, ids[i]);
			err = sync ? target_from_sync(sync, ids[i], &t) : -errno;
			if (err) {
				fprintf(stderr, "ferryctl weights: service %u: %s\n", ids[i],
					strerror(-err));
				goto out;
			}
		}
		ferry_vip__format(&t.vip, vip, sizeof(vip));
		if (rollback) {
			const struct weights_pred *best = NULL;
			size_t j;

			for (j = 0; j < t.npredictors; j++) {
				const struct weights_pred *p = &t.preds[j];

				if (p->flags & FERRY_PRED_F_SHADOW)
					continue;
				if (to ? !strcmp(p->name, to) :
					 (!best || p->weight_configured > best->weight_configured))
					best = p;
			}
			if (!best) {
				fprintf(stderr, "ferryctl weights: %s has no predictor %s\n", vip,
					to ? to : "to roll back to");
				rc = EXIT_NOT_FOUND;
				goto out;
			}
			names[0] = best->name;
			weights[0] = FERRY_WEIGHT_ONE;
			nn = 1;
		}
		err = ferry_sync__override(sync, &t.vip, names, weights, nn, clear);
		if (err == -ENOENT) {
			fprintf(stderr,
				"ferryctl weights: %s (%s): no such predictor among those named; see "
				"'ferryctl services'\n",
				vip, t.deployment);
			rc = EXIT_NOT_FOUND;
			goto out;
		}
		if (err) {
			fprintf(stderr, "ferryctl weights: %s: %s\n", vip, strerror(-err));
			goto out;
		}
		if (clear)
			printf("%s (%s): override cleared; the manifest's weights apply\n", vip,
			       t.deployment);
		else
			for (size_t k = 0; k < nn; k++)
				printf("%s (%s): %s = %.2f%% (override)\n", vip, t.deployment,
				       names[k], weights[k] / 1e4);
	}
	rc = EXIT_OK;
out:
	ferry_sync__free(sync);
	ferry_dp__close(dp);
	ferry_snapshot__free(snap);
	return rc;
}
