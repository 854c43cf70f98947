// SPDX-License-Identifier: GPL-2.0-only
/*
 * ferryctl canary: the canary analysis of each deployment (state, step, the
 * last windows' figures side by side) and the SRE controls. The rollout lives
 * in ferryd's state file (user/canary/canary_run.h); a control is queued for
 * ferryd as a command file, and one that moves a weight (--abort, --promote,
 * --resume after a rollback) is also written to the pinned maps at once, so it
 * takes effect for new connections even while ferryd is down.
 */
#include "ferryctl.h"
#include "canary/canary_run.h"

static const char *num(char *buf, size_t len, json_t *v, double scale, const char *fmt)
{
	if (!json_is_number(v))
		return "-";
	snprintf(buf, len, fmt, json_number_value(v) * scale);
	return buf;
}

static void print_windows(json_t *windows)
{
	char a[32], b[32], c[32], d[32], e[32], f[32], g[32];
	size_t i;
	json_t *w;

	if (!json_array_size(windows)) {
		printf("  no window judged yet\n");
		return;
	}
	printf("  %-8s %-12s %-14s %5s %13s %15s %17s %19s %9s\n", "ended", "verdict", "reason",
	       "step", "requests c/b", "errors % c/b", "p50 ms c/b", "tail ms c/b", "U p");
	json_array_foreach(windows, i, w) {
		time_t end = (time_t)json_integer_value(json_object_get(w, "end_unix"));
		char when[16], req[48], err[80], p50[80], tail[96], tq[8] = "";
		struct tm tm;

		gmtime_r(&end, &tm);
		strftime(when, sizeof(when), "%H:%M:%S", &tm);
		snprintf(req, sizeof(req), "%lld/%lld",
			 (long long)json_integer_value(json_object_get(w, "canary_requests")),
			 (long long)json_integer_value(json_object_get(w, "baseline_requests")));
		snprintf(err, sizeof(err), "%s/%s",
			 num(a, sizeof(a), json_object_get(w, "canary_error_rate"), 100, "%.2f"),
			 num(b, sizeof(b), json_object_get(w, "baseline_error_rate"), 100, "%.2f"));
		snprintf(p50, sizeof(p50), "%s/%s",
			 num(c, sizeof(c), json_object_get(w, "canary_p50_ms"), 1, "%.2f"),
			 num(d, sizeof(d), json_object_get(w, "baseline_p50_ms"), 1, "%.2f"));
		if (json_is_number(json_object_get(w, "tail_quantile")))
			snprintf(tq, sizeof(tq), "p%.0f ",
				 json_number_value(json_object_get(w, "tail_quantile")) * 100);
		snprintf(tail, sizeof(tail), "%s%s/%s", tq,
			 num(e, sizeof(e), json_object_get(w, "canary_tail_ms"), 1, "%.2f"),
			 num(f, sizeof(f), json_object_get(w, "baseline_tail_ms"), 1, "%.2f"));
		printf("  %-8s %-12s %-14s %5lld %13s %15s %17s %19s %9s\n", when,
		       json_string_value(json_object_get(w, "verdict")) ?: "?",
		       json_string_value(json_object_get(w, "reason")) ?: "?",
		       (long long)json_integer_value(json_object_get(w, "step")), req, err, p50,
		       tail, num(g, sizeof(g), json_object_get(w, "u_test_p"), 1, "%.3g"));
	}
	w = json_array_get(windows, json_array_size(windows) - 1);
	if (json_integer_value(json_object_get(w, "canary_no_http_status")) * 2 >
	    json_integer_value(json_object_get(w, "canary_requests")))
		printf("  note: most canary responses carry no HTTP/1.x status (TLS, HTTP/2, gRPC):\n"
		       "        the kernel cannot see gRPC status; errors are resets and SYN "
		       "timeouts, plus latency\n");
}

/* The kernel's side: the canary weight and any SRE override, from the maps. */
static json_t *kernel_weights(const struct ferry_snapshot *snap, const char *deployment)
{
	json_t *out = json_array();

	for (size_t s = 0; s < snap->nservices; s++) {
		const struct ferry_snap_service *svc = &snap->services[s];
		char vip[FERRY_ADDR_STRLEN + 8];

		if (!svc->has_meta || strcmp(svc->deployment, deployment))
			continue;
		ferry_vip__format(&svc->vip, vip, sizeof(vip));
		for (__u32 k = 0; k < svc->npredictors; k++) {
			const struct ferry_snap_predictor *p =
				ferry_snapshot__predictor(snap, svc->predictor_ids[k]);

			if (!p)
				continue;
			json_array_append_new(
				out,
				json_pack("{s:s, s:s, s:f, s:f, s:o, s:o}", "vip", vip, "predictor",
					  p->name, "configured", p->weight_configured / 1e4,
					  "effective", p->weight_effective / 1e4, "canary_override",
					  p->flags & FERRY_PRED_F_CANARY ?
						  json_real(p->weight_canary / 1e4) :
						  json_null(),
					  "sre_override",
					  p->flags & FERRY_PRED_F_OVERRIDE ?
						  json_real(p->weight_override / 1e4) :
						  json_null()));
		}
	}
	return out;
}

/* What apply_now did to the kernel. */
enum applied { APPLIED_NOTHING, APPLIED_WEIGHT, APPLIED_CLEARED };

/*
 * Writes what a command means for the weight into the maps now (ferryd agrees
 * later); *done says what was written, *weight the weight set (ppm).
 */
static int apply_now(const struct ctl *c, const struct ferry_snapshot *snap, const char *deployment,
		     json_t *st, enum ferry_canary_command cmd, enum applied *done,
		     __u32 *weight_out)
{
	const char *canary = json_string_value(json_object_get(st, "canary"));
	const char *state = json_string_value(json_object_get(st, "state")) ?: "";
	json_t *steps = json_object_get(st, "steps");
	struct ferry_sync *sync = NULL;
	struct ferry_dp *dp = NULL;
	bool set;
	__u32 weight = 0;
	int err = 0;

	if (cmd == FERRY_CANARY_CMD_ABORT) {
		set = true;
	} else if (cmd == FERRY_CANARY_CMD_PROMOTE && json_array_size(steps)) {
		set = true;
		weight = (__u32)llround(
			json_number_value(json_array_get(steps, json_array_size(steps) - 1)) * 1e4);
	} else if (cmd == FERRY_CANARY_CMD_RESUME &&
		   (!strcmp(state, "rolled-back") || !strcmp(state, "promoted"))) {
		/* ferryd starts over at step 1; until then the manifest's split. */
		set = false;
	} else {
		*done = APPLIED_NOTHING;
		return 0;
	}
	if (!canary)
		return -ENOENT;
	dp = open_maps(c);
	sync = dp ? ferry_sync__new(dp, NULL) : NULL;
	if (!sync) {
		err = -EIO;
		goto out;
	}
	for (size_t s = 0; s < snap->nservices && !err; s++) {
		const struct ferry_snap_service *svc = &snap->services[s];

		if (svc->has_meta && !strcmp(svc->deployment, deployment))
			err = ferry_sync__canary(sync, &svc->vip, canary, set, weight);
	}
	if (!err) {
		*done = set ? APPLIED_WEIGHT : APPLIED_CLEARED;
		*weight_out = weight;
	}
out:
	ferry_sync__free(sync);
	ferry_dp__close(dp);
	return err;
}

/*
 * Long on purpose: options, the state file, the filter by SERVICE, and the
 * two outputs (table, JSON) read in order.
 */
int cmd_canary(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = { { "pause", no_argument, NULL, 'p' },
					      { "resume", no_argument, NULL, 'r' },
					      { "abort", no_argument, NULL, 'a' },
					      { "promote", no_argument, NULL, 'P' },
					      { "json", no_argument, NULL, 'j' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	enum ferry_canary_command cmd = FERRY_CANARY_CMD_NONE;
	char path[PATH_MAX], deployment[FERRY_NAME_LEN] = "";
	const char *service = NULL, *key;
	struct ferry_snapshot *snap = NULL;
	json_t *root = NULL, *deps, *st, *out = NULL;
	int opt, ncmd = 0, rc = EXIT_FAIL;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			cmd = FERRY_CANARY_CMD_PAUSE;
			ncmd++;
			break;
		case 'r':
			cmd = FERRY_CANARY_CMD_RESUME;
			ncmd++;
			break;
		case 'a':
			cmd = FERRY_CANARY_CMD_ABORT;
			ncmd++;
			break;
		case 'P':
			cmd = FERRY_CANARY_CMD_PROMOTE;
			ncmd++;
			break;
		case 'j':
			c->json = true;
			break;
		case 'h':
			printf("Usage: ferryctl canary [SERVICE] [-j]\n"
			       "       ferryctl canary SERVICE --pause|--resume|--abort|--promote\n"
			       "The canary analysis of each deployment with ferry.io/canary: auto:\n"
			       "state (progressing step k of n, holding, promoted, rolled-back, paused,\n"
			       "inconclusive), the canary's weight in the kernel next to any SRE\n"
			       "override (which wins while set), and the last windows side by side:\n"
			       "requests, error rates, p50 and p99 (p90 under 1000 samples) of the\n"
			       "canary and the baseline, and the rank test's p. Controls: --pause\n"
			       "stops judging (weights stay), --resume continues a paused rollout or\n"
			       "starts a rolled-back or promoted one over, --abort rolls back now,\n"
			       "--promote goes to the last step now. Open connections never move.\n");
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind < argc)
		service = argv[optind++];
	if (optind < argc || ncmd > 1 || (ncmd && !service)) {
		fprintf(stderr,
			"ferryctl canary: expected [SERVICE] and at most one control, which "
			"needs SERVICE (see --help)\n");
		return EXIT_USAGE;
	}
	snap = read_snapshot(c);
	if (!snap)
		return EXIT_FAIL;
	if (service) {
		__u32 ids[1];
		int n = match_services(snap, service, ids, 1);

		if (n < 0) {
			rc = n == -ENOENT ? EXIT_NOT_FOUND : EXIT_USAGE;
			goto out;
		}
		snprintf(deployment, sizeof(deployment), "%s",
			 ferry_snapshot__service(snap, ids[0])->deployment);
	}
	if (ferry_canary__state_path(c->pin_path, path, sizeof(path)))
		goto out;
	root = json_load_file(path, 0, NULL);
	deps = json_object_get(root, "deployments");
	if (service && !json_object_get(deps, deployment)) {
		fprintf(stderr,
			"ferryctl canary: %s has no canary analysis (ferry.io/canary: auto), "
			"or ferryd has not started it\n",
			deployment);
		rc = EXIT_NOT_FOUND;
		goto out;
	}
	if (cmd != FERRY_CANARY_CMD_NONE) {
		enum applied done = APPLIED_NOTHING;
		const char *name = ferry_canary_command__name(cmd);
		__u32 weight = 0;
		double age;
		int err;

		st = json_object_get(deps, deployment);
		err = apply_now(c, snap, deployment, st, cmd, &done, &weight);
		if (err)
			fprintf(stderr, "ferryctl canary: %s: cannot write the weight now: %s\n",
				deployment, strerror(-err));
		err = ferry_canary__queue_command(c->pin_path, deployment, cmd);
		if (err) {
			fprintf(stderr, "ferryctl canary: %s: cannot queue --%s for ferryd: %s\n",
				deployment, name, strerror(-err));
			goto out;
		}
		/* What took effect at once, then what waits for ferryd. */
		if (done == APPLIED_WEIGHT)
			printf("%s: canary %s set to %.2f%% in the kernel now: new connections follow "
			       "at once\n",
			       deployment, json_string_value(json_object_get(st, "canary")),
			       weight / 1e4);
		else if (done == APPLIED_CLEARED)
			printf("%s: canary weight cleared in the kernel now: the manifest's split "
			       "applies until ferryd starts the rollout over at step 1\n",
			       deployment);
		if (ferryd_alive(&snap->config, &age))
			printf("%s: --%s queued for ferryd (applied at its next tick)\n",
			       deployment, name);
		else
			printf("%s: --%s queued for ferryd, which is NOT RUNNING: %s when it runs "
			       "again\n",
			       deployment, name,
			       done == APPLIED_NOTHING ?
				       "nothing changed yet; it is applied" :
				       "the rollout's state ('ferryctl canary') changes");
		rc = EXIT_OK;
		goto out;
	}
	out = json_object();
	json_object_foreach(deps, key, st) {
		json_t *o;

		if (service && strcmp(key, deployment))
			continue;
		o = json_deep_copy(st);
		json_object_set_new(o, "kernel", kernel_weights(snap, key));
		json_object_set_new(out, key, o);
	}
	if (c->json) {
		print_json(out); /* takes the reference */
		out = NULL;
		rc = EXIT_OK;
		goto out;
	}
	if (!json_object_size(out))
		printf("no deployment with canary analysis (ferry.io/canary: auto)\n");
	json_object_foreach(out, key, st) {
		size_t i;
		json_t *k;

		printf("%s: %s", key, json_string_value(json_object_get(st, "state")) ?: "?");
		if (json_integer_value(json_object_get(st, "nsteps")))
			printf(" step %lld/%lld",
			       (long long)json_integer_value(json_object_get(st, "step")),
			       (long long)json_integer_value(json_object_get(st, "nsteps")));
		printf(", canary %s vs baseline %s, %llds windows, %lld failed in a row (rollback "
		       "at %lld), min %lld requests\n",
		       json_string_value(json_object_get(st, "canary")) ?: "?",
		       json_string_value(json_object_get(st, "baseline")) ?: "?",
		       (long long)json_integer_value(json_object_get(st, "interval_s")),
		       (long long)json_integer_value(json_object_get(st, "failures")),
		       (long long)json_integer_value(json_object_get(st, "failures_to_rollback")),
		       (long long)json_integer_value(json_object_get(st, "min_requests")));
		json_array_foreach(json_object_get(st, "kernel"), i, k) {
			json_t *co = json_object_get(k, "canary_override");
			json_t *so = json_object_get(k, "sre_override");

			printf("  %s %-16s configured %6.2f%%  effective %6.2f%%",
			       json_string_value(json_object_get(k, "vip")),
			       json_string_value(json_object_get(k, "predictor")),
			       json_number_value(json_object_get(k, "configured")),
			       json_number_value(json_object_get(k, "effective")));
			if (json_is_number(co))
				printf("  CANARY %.2f%%", json_number_value(co));
			if (json_is_number(so))
				printf("  SRE OVERRIDE %.2f%% (wins)", json_number_value(so));
			printf("\n");
		}
		print_windows(json_object_get(st, "windows"));
	}
	rc = EXIT_OK;
out:
	json_decref(out);
	json_decref(root);
	ferry_snapshot__free(snap);
	return rc;
}
