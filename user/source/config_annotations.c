// SPDX-License-Identifier: GPL-2.0-only
/*
 * ferry's SeldonDeployment annotations (annotations.h), one entry each: the
 * name, its parser (which writes the value into struct sdep), and the two
 * columns docs/configuration.md shows for it (tests/test_annotations.c
 * checks that table against this one).
 */
#include "source/annotations.h"
#include "source/config_internal.h"

/* A Service name is a DNS label: a-z, 0-9 and '-', 63 at most, a letter first. */
static bool dns_label(const char *name)
{
	size_t n = strlen(name);

	if (!n || n > 63 || !(name[0] >= 'a' && name[0] <= 'z') || name[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
		      name[i] == '-'))
			return false;
	return true;
}

/* service/NAME: recorded now, resolved against the Service at each build. */
static int parse_svc_ref(struct vctx *c, const char *name, json_t *where, const char *field,
			 struct sdep *sd)
{
	struct sd_svc_ref *r;

	if (!dns_label(name)) {
		verr(c, where, ANN_VIP, NULL, field,
		     "\"%s%s\": \"%s\" is not a Service name (lower-case letters, digits and "
		     "'-', a letter first, 63 at most): write service/NAME with the name of a "
		     "Service in this deployment's namespace",
		     VIP_SERVICE_PREFIX, name, name);
		errno = EINVAL;
		return -EINVAL;
	}
	for (size_t i = 0; i < sd->nsvcs; i++) {
		if (!strcmp(sd->svcs[i].name, name)) {
			verr(c, where, ANN_VIP, NULL, field, "%s%s is listed twice: list it once",
			     VIP_SERVICE_PREFIX, name);
			errno = EINVAL;
			return -EINVAL;
		}
	}
	r = realloc(sd->svcs, (sd->nsvcs + 1) * sizeof(*r));
	if (!r) {
		errno = ENOMEM;
		return -ENOMEM;
	}
	sd->svcs = r;
	snprintf(r[sd->nsvcs].name, sizeof(r->name), "%s", name);
	sd->nsvcs++;
	return 0;
}

static int parse_ann_vip(struct vctx *c, const char *value, json_t *where, const char *field,
			 struct sdep *sd)
{
	char *copy, *tok, *rest;
	bool blank = !value[strspn(value, " \t")], stray = false;
	int bad = 0;

	copy = strdup(value);
	if (!copy)
		return -ENOMEM;
	/* strsep, not strtok: an empty entry ("a,", "a,,b") is a typo to report, not skip. */
	for (rest = copy; (tok = strsep(&rest, ","));) {
		struct sd_vip *v;
		char why[256];
		char *end;

		while (*tok == ' ' || *tok == '\t')
			tok++;
		end = tok + strlen(tok);
		while (end > tok && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (!*tok) {
			if (!blank && !stray) {
				verr(c, where, ANN_VIP, NULL, field,
				     "empty entry in \"%s\" (a stray comma): write "
				     "ADDR:PORT[,ADDR:PORT...] with no empty entries",
				     value);
				stray = true;
				bad = 1;
			}
			continue;
		}
		if (!strncmp(tok, VIP_SERVICE_PREFIX, strlen(VIP_SERVICE_PREFIX))) {
			if (parse_svc_ref(c, tok + strlen(VIP_SERVICE_PREFIX), where, field, sd)) {
				bad = 1;
				if (errno == ENOMEM) {
					free(copy);
					return -ENOMEM;
				}
			}
			continue;
		}
		v = realloc(sd->vips, (sd->nvips + 1) * sizeof(*v));
		if (!v) {
			free(copy);
			return -ENOMEM;
		}
		sd->vips = v;
		v = &sd->vips[sd->nvips];
		memset(v, 0, sizeof(*v));
		if (ferry_vip__parse(tok, &v->vip, why, sizeof(why))) {
			verr(c, where, ANN_VIP, NULL, field, "%s", why);
			bad = 1;
			continue;
		}
		ferry_vip__format(&v->vip, v->text, sizeof(v->text));
		for (size_t i = 0; i < sd->nvips; i++) {
			if (!vip_cmp(&sd->vips[i].vip, &v->vip)) {
				verr(c, where, ANN_VIP, NULL, field,
				     "VIP %s is listed twice: list it once", v->text);
				bad = 1;
			}
		}
		sd->nvips++;
	}
	if (!sd->nvips && !sd->nsvcs && !bad) {
		verr(c, where, ANN_VIP, NULL, field,
		     "no VIP in \"%s\": write ADDR:PORT[,ADDR:PORT...] or service/NAME, e.g. "
		     "198.18.100.10:8000 or service/iris, or remove the annotation",
		     value);
		bad = 1;
	}
	free(copy);
	return bad ? -EINVAL : 0;
}

static int parse_ann_affinity(struct vctx *c, const char *value, json_t *where, const char *field,
			      struct sdep *sd)
{
	if (!strcmp(value, "client-ip")) {
		sd->flags |= FERRY_SVC_F_HASH_SRC_ADDR;
	} else if (strcmp(value, "none")) {
		verr(c, where, ANN_AFFINITY, NULL, field,
		     "unknown affinity \"%s\": use client-ip (every connection of a client "
		     "address goes to the same backend) or none",
		     value);
		return -EINVAL;
	}
	return 0;
}

static int parse_ann_latency_sample(struct vctx *c, const char *value, json_t *where,
				    const char *field, struct sdep *sd)
{
	unsigned long long n;
	char *end;

	errno = 0;
	n = strtoull(value, &end, 10);
	if (!*value || *end || errno || n > UINT32_MAX || value[0] == '-') {
		verr(c, where, ANN_LATENCY_SAMPLE, NULL, field,
		     "\"%s\" is not a whole number: use 0 (off), 1 (every connection) or "
		     "N (one connection in N)",
		     value);
		return -EINVAL;
	}
	sd->sample_every = (__u32)n;
	return 0;
}

static int parse_ann_protocol(struct vctx *c, const char *value, json_t *where, const char *field,
			      struct sdep *sd)
{
	sd->flags &= ~(FERRY_SVC_F_PROTO_HTTP1 | FERRY_SVC_F_PROTO_H2C);
	if (!strcmp(value, "http1")) {
		sd->flags |= FERRY_SVC_F_PROTO_HTTP1;
	} else if (!strcmp(value, "h2c")) {
		sd->flags |= FERRY_SVC_F_PROTO_H2C;
	} else if (strcmp(value, "auto")) {
		verr(c, where, ANN_PROTOCOL, NULL, field,
		     "unknown protocol \"%s\": use auto (HTTP/2 recognised by its connection "
		     "preface), http1 or h2c (gRPC and other clear-text HTTP/2)",
		     value);
		return -EINVAL;
	}
	return 0;
}

static int parse_ann_rebalance(struct vctx *c, const char *value, json_t *where, const char *field,
			       struct sdep *sd)
{
	if (!strcmp(value, "off")) {
		sd->rebalance_off = true;
	} else if (!strcmp(value, "idle")) {
		sd->rebalance_off = false;
	} else {
		verr(c, where, ANN_REBALANCE, NULL, field,
		     "unknown rebalance mode \"%s\": use idle (after a weight change, end idle "
		     "connections of predictors that lose traffic, spread over "
		     "ferry.io/rebalance-window) or off (held connections stay where they are)",
		     value);
		return -EINVAL;
	}
	return 0;
}

/*
 * A duration as Kubernetes and Go write them: one or more NUMBER UNIT parts,
 * units ms, s, m, h ("30s", "1m30s", "1.5s"). Returns 0 and the nanoseconds.
 */
static int parse_duration(const char *text, __u64 *ns)
{
	static const struct {
		const char *unit;
		double ns;
	} units[] = { { "ms", 1e6 }, { "s", 1e9 }, { "m", 60e9 }, { "h", 3600e9 } };
	const char *p = text;
	double total = 0;

	if (!*p)
		return -EINVAL;
	while (*p) {
		char *end;
		double n;
		size_t u;

		if (!((*p >= '0' && *p <= '9') || *p == '.'))
			return -EINVAL;
		errno = 0;
		n = strtod(p, &end);
		if (end == p || errno)
			return -EINVAL;
		p = end;
		for (u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
			size_t len = strlen(units[u].unit);

			/* "m" must not take the "m" of "ms". */
			if (!strncmp(p, units[u].unit, len) &&
			    !(len == 1 && units[u].unit[0] == 'm' && p[1] == 's'))
				break;
		}
		if (u == sizeof(units) / sizeof(units[0]))
			return -EINVAL;
		total += n * units[u].ns;
		p += strlen(units[u].unit);
		if (total > 1e18)
			return -ERANGE;
	}
	*ns = (__u64)(total + 0.5);
	return 0;
}

static int parse_ann_rebalance_window(struct vctx *c, const char *value, json_t *where,
				      const char *field, struct sdep *sd)
{
	__u64 ns = 0;

	if (parse_duration(value, &ns)) {
		verr(c, where, ANN_REBALANCE_WINDOW, NULL, field,
		     "\"%s\" is not a duration: write a number and a unit (ms, s, m, h), e.g. "
		     "30s or 2m",
		     value);
		return -EINVAL;
	}
	if (ns < FERRY_REBALANCE_WINDOW_MIN_NS || ns > FERRY_REBALANCE_WINDOW_MAX_NS) {
		verr(c, where, ANN_REBALANCE_WINDOW, NULL, field,
		     "%s is out of range: the window must be from 1s to 1h (connections end at "
		     "moments spread over it, so clients do not all reconnect at once)",
		     value);
		return -EINVAL;
	}
	sd->rebalance_window_ns = ns;
	return 0;
}

/* ------------------------------------------------------ canary analysis */

static int parse_ann_canary(struct vctx *c, const char *value, json_t *where, const char *field,
			    struct sdep *sd)
{
	size_t nmain = 0;

	if (!strcmp(value, "off"))
		return 0;
	if (strcmp(value, "auto")) {
		verr(c, where, ANN_CANARY, NULL, field,
		     "unknown canary mode \"%s\": use auto (ferry judges the canary and moves its "
		     "weight) or off",
		     value);
		return -EINVAL;
	}
	for (size_t i = 0; i < sd->npreds; i++)
		nmain += !sd->preds[i].shadow;
	if (nmain < 2) {
		verr(c, where, ANN_CANARY, NULL, field,
		     "canary analysis needs two predictors that take traffic (a canary and a "
		     "baseline); this deployment has %zu: add the canary predictor or remove the "
		     "annotation",
		     nmain);
		return -EINVAL;
	}
	sd->canary.enabled = true;
	return 0;
}

/* A non-shadow predictor of this deployment, for canary-predictor and baseline-predictor. */
static int parse_canary_name(struct vctx *c, const char *value, json_t *where, const char *ann,
			     const char *field, const struct sdep *sd, char *out, const char *other)
{
	for (size_t i = 0; i < sd->npreds; i++) {
		if (strcmp(sd->preds[i].name, value))
			continue;
		if (sd->preds[i].shadow) {
			verr(c, where, ann, NULL, field,
			     "predictor \"%s\" is a shadow: it takes no traffic, so it cannot be "
			     "judged: name a predictor without shadow: true",
			     value);
			return -EINVAL;
		}
		if (other && !strcmp(other, value)) {
			verr(c, where, ann, NULL, field,
			     "predictor \"%s\" is both the canary and the baseline: name two "
			     "different predictors",
			     value);
			return -EINVAL;
		}
		snprintf(out, FERRY_PRED_NAME_LEN, "%s", value);
		return 0;
	}
	verr(c, where, ann, NULL, field,
	     "no predictor \"%s\" in spec.predictors: name one of this deployment's predictors",
	     value);
	return -EINVAL;
}

static int parse_ann_canary_predictor(struct vctx *c, const char *value, json_t *where,
				      const char *field, struct sdep *sd)
{
	return parse_canary_name(c, value, where, ANN_CANARY_PREDICTOR, field, sd,
				 sd->canary.canary, sd->canary.baseline);
}

static int parse_ann_baseline_predictor(struct vctx *c, const char *value, json_t *where,
					const char *field, struct sdep *sd)
{
	return parse_canary_name(c, value, where, ANN_BASELINE_PREDICTOR, field, sd,
				 sd->canary.baseline, sd->canary.canary);
}

static int parse_ann_canary_steps(struct vctx *c, const char *value, json_t *where,
				  const char *field, struct sdep *sd)
{
	const char *p = value;
	__u32 steps[FERRY_CANARY_MAX_STEPS], n = 0;

	while (*p) {
		double pct;
		char *end;

		errno = 0;
		pct = strtod(p, &end);
		if (end == p || errno || !(pct > 0 && pct <= 100) || (*end && *end != ',')) {
			verr(c, where, ANN_CANARY_STEPS, NULL, field,
			     "\"%s\" is not a list of shares: write percents above 0 and at most "
			     "100, ascending and comma separated, e.g. \"10,25,50,100\"",
			     value);
			return -EINVAL;
		}
		if (n == FERRY_CANARY_MAX_STEPS) {
			verr(c, where, ANN_CANARY_STEPS, NULL, field,
			     "more than %d steps in \"%s\": use fewer steps",
			     FERRY_CANARY_MAX_STEPS, value);
			return -EINVAL;
		}
		steps[n] = (__u32)lround(pct * 10000);
		if (n && steps[n] <= steps[n - 1]) {
			verr(c, where, ANN_CANARY_STEPS, NULL, field,
			     "steps in \"%s\" must grow: %g comes after a share at least as large: "
			     "list them in ascending order",
			     value, pct);
			return -EINVAL;
		}
		n++;
		p = *end ? end + 1 : end;
		while (*p == ' ')
			p++;
	}
	if (!n) {
		verr(c, where, ANN_CANARY_STEPS, NULL, field,
		     "no step: write shares like \"10,25,50,100\" or remove the annotation (then "
		     "ferry guards the manifest's split)");
		return -EINVAL;
	}
	memcpy(sd->canary.steps, steps, n * sizeof(steps[0]));
	sd->canary.nsteps = n;
	return 0;
}

/* The same duration syntax as ferry.io/rebalance-window, in whole seconds from 1s to 1h. */
static int parse_ann_canary_interval(struct vctx *c, const char *value, json_t *where,
				     const char *field, struct sdep *sd)
{
	__u64 ns = 0;

	if (parse_duration(value, &ns) || ns % 1000000000ULL || ns < 1000000000ULL ||
	    ns > 3600ULL * 1000000000ULL) {
		verr(c, where, ANN_CANARY_INTERVAL, NULL, field,
		     "\"%s\" is not a window length from 1s to 1h: write whole seconds, minutes "
		     "or an hour, e.g. 30s, 5m or 1h",
		     value);
		return -EINVAL;
	}
	sd->canary.interval_s = (__u32)(ns / 1000000000ULL);
	return 0;
}

/* A real in [lo, hi] (lo excluded when open_lo), for the canary thresholds. */
static int parse_real(struct vctx *c, const char *value, json_t *where, const char *ann,
		      const char *field, double lo, bool open_lo, double hi, const char *hint,
		      double *out)
{
	double v;
	char *end;

	errno = 0;
	v = strtod(value, &end);
	if (end == value || *end || errno || isnan(v) || v < lo || (open_lo && v == lo) || v > hi) {
		verr(c, where, ann, NULL, field, "\"%s\" is out of range: %s", value, hint);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int parse_ann_canary_max_error_rate(struct vctx *c, const char *value, json_t *where,
					   const char *field, struct sdep *sd)
{
	return parse_real(c, value, where, ANN_CANARY_MAX_ERROR_RATE, field, 0, false, 1,
			  "write errors per request from 0 to 1, e.g. \"0.01\"",
			  &sd->canary.max_error_rate);
}

static int parse_ann_canary_max_error_increase(struct vctx *c, const char *value, json_t *where,
					       const char *field, struct sdep *sd)
{
	return parse_real(c, value, where, ANN_CANARY_MAX_ERROR_INCREASE, field, 0, false, 1,
			  "write errors per request over the baseline's, 0 to 1, e.g. \"0.005\"",
			  &sd->canary.max_error_increase);
}

static int parse_ann_canary_max_latency_ratio(struct vctx *c, const char *value, json_t *where,
					      const char *field, struct sdep *sd)
{
	return parse_real(
		c, value, where, ANN_CANARY_MAX_LATENCY_RATIO, field, 1, false, 1000,
		"write the canary's latency over the baseline's, at least 1, e.g. \"1.5\"",
		&sd->canary.max_latency_ratio);
}

static int parse_ann_canary_significance(struct vctx *c, const char *value, json_t *where,
					 const char *field, struct sdep *sd)
{
	return parse_real(c, value, where, ANN_CANARY_SIGNIFICANCE, field, 0, true, 0.5,
			  "write the rank test's significance level, above 0 and at most 0.5, "
			  "e.g. \"0.01\"",
			  &sd->canary.significance);
}

static int parse_ann_canary_min_effect(struct vctx *c, const char *value, json_t *where,
				       const char *field, struct sdep *sd)
{
	return parse_real(c, value, where, ANN_CANARY_MIN_EFFECT, field, 1, false, 1000,
			  "write the canary's median over the baseline's the rank test must also "
			  "see, at least 1, e.g. \"1.1\"",
			  &sd->canary.min_effect);
}

static int parse_count(struct vctx *c, const char *value, json_t *where, const char *ann,
		       const char *field, unsigned long long hi, const char *hint, __u32 *out)
{
	unsigned long long n;
	char *end;

	errno = 0;
	n = strtoull(value, &end, 10);
	if (!*value || *end || errno || value[0] == '-' || n < 1 || n > hi) {
		verr(c, where, ann, NULL, field, "\"%s\" is not a whole number from 1 to %llu: %s",
		     value, hi, hint);
		return -EINVAL;
	}
	*out = (__u32)n;
	return 0;
}

static int parse_ann_canary_min_requests(struct vctx *c, const char *value, json_t *where,
					 const char *field, struct sdep *sd)
{
	return parse_count(c, value, where, ANN_CANARY_MIN_REQUESTS, field, UINT32_MAX,
			   "write the canary requests a window needs to be judged, e.g. \"200\"",
			   &sd->canary.min_requests);
}

static int parse_ann_canary_failures(struct vctx *c, const char *value, json_t *where,
				     const char *field, struct sdep *sd)
{
	return parse_count(c, value, where, ANN_CANARY_FAILURES, field, 100,
			   "write the consecutive failed windows that roll back, e.g. \"2\"",
			   &sd->canary.failures);
}

/* In the order they are read (and errors reported). */
const struct ferry_annotation ferry_annotations[] = {
	{ ANN_VIP, "`ADDR:PORT`, `[ADDR]:PORT`, `/udp` suffix, `service/NAME`, comma separated",
	  "the deployment's VIPs, one service each (see VIPs above); `service/NAME` takes every "
	  "ClusterIP and port of Service NAME (see VIPs from a Service)",
	  parse_ann_vip },
	{ ANN_AFFINITY, "`client-ip`, `none` (default)",
	  "`client-ip` sets `FERRY_SVC_F_HASH_SRC_ADDR`: every connection from one client "
	  "address goes to the same backend",
	  parse_ann_affinity },
	{ ANN_LATENCY_SAMPLE, "`0` off, `1` every connection (default), `N` one connection in N",
	  "`sample_every`", parse_ann_latency_sample },
	{ ANN_PROTOCOL, "`auto` (default), `http1`, `h2c`",
	  "how the kernel reads requests: `auto` recognises HTTP/2 by the client's connection "
	  "preface and HTTP/1.x by its request line; `http1` (`FERRY_SVC_F_PROTO_HTTP1`) and "
	  "`h2c` (`FERRY_SVC_F_PROTO_H2C`) skip the guess (see docs/metrics.md, Requests)",
	  parse_ann_protocol },
	{ ANN_REBALANCE, "`idle` (default), `off`",
	  "`idle`: after a weight change, rollback or drain, idle connections of predictors and "
	  "backends that lose traffic are ended, spread over the window, so clients reconnect to "
	  "the new split (see Rebalancing in datapath.md); `off`: held connections stay",
	  parse_ann_rebalance },
	{ ANN_REBALANCE_WINDOW, "a duration from `1s` to `1h` (`ms`, `s`, `m`, `h`), default `30s`",
	  "the time over which those connections are ended, each at its own hashed moment",
	  parse_ann_rebalance_window },
	{ ANN_CANARY, "`auto`, `off` (default)",
	  "canary analysis: ferry judges the canary against the baseline every window and "
	  "steps it up or rolls it back (docs/canary.md)",
	  parse_ann_canary },
	{ ANN_CANARY_PREDICTOR, "a predictor's name",
	  "the canary; default: the predictor with the smallest `traffic` above 0",
	  parse_ann_canary_predictor },
	{ ANN_BASELINE_PREDICTOR, "a predictor's name",
	  "the baseline; default: the predictor with the largest `traffic`",
	  parse_ann_baseline_predictor },
	{ ANN_CANARY_STEPS, "percents, ascending, comma separated, e.g. `10,25,50,100`",
	  "the canary's share at each step; without it ferry guards the manifest's split",
	  parse_ann_canary_steps },
	{ ANN_CANARY_INTERVAL, "`1s` to `1h` (`s`, `m`, `h`; default `30s`)",
	  "the length of one analysis window", parse_ann_canary_interval },
	{ ANN_CANARY_MAX_ERROR_RATE, "0 to 1 (default `0.01`)",
	  "most errors per request on the canary (5xx, backend resets, SYN timeouts)",
	  parse_ann_canary_max_error_rate },
	{ ANN_CANARY_MAX_ERROR_INCREASE, "0 to 1 (default `0.005`)",
	  "most errors per request over the baseline's in the same window",
	  parse_ann_canary_max_error_increase },
	{ ANN_CANARY_MAX_LATENCY_RATIO, "at least 1 (default `1.5`)",
	  "most canary/baseline request latency, at p50 and at p99 (p90 below 1000 samples)",
	  parse_ann_canary_max_latency_ratio },
	{ ANN_CANARY_MIN_REQUESTS, "whole number (default `200`)",
	  "a window with fewer canary requests is inconclusive", parse_ann_canary_min_requests },
	{ ANN_CANARY_FAILURES, "1 to 100 (default `2`)",
	  "consecutive failed windows before rollback", parse_ann_canary_failures },
	{ ANN_CANARY_SIGNIFICANCE, "above 0, at most 0.5 (default `0.01`)",
	  "significance level of the one-sided Mann-Whitney U test on latency",
	  parse_ann_canary_significance },
	{ ANN_CANARY_MIN_EFFECT, "at least 1 (default `1.1`)",
	  "the rank test fails a window only if the canary's median is also at least this "
	  "times the baseline's",
	  parse_ann_canary_min_effect },
};

const size_t ferry_nannotations = sizeof(ferry_annotations) / sizeof(ferry_annotations[0]);

/* Levenshtein distance of a and b, both at most 63 characters long (else a large number). */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[64];

	if (la >= 64 || lb >= 64)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			diag = up;
			row[j] = best;
		}
	}
	return row[lb];
}

/*
 * A ferry.io/ annotation ferry does not read is most likely a misspelt one
 * (ferry.io/affinty): it would be ignored, and the deployment run without the
 * setting its writer asked for. A warning, not an error: a newer ferry's
 * annotation on an older ferryd must not take a deployment down. Other
 * prefixes are not ferry's to judge.
 */
void warn_unknown_annotations(struct vctx *c, json_t *ann, const char *where)
{
	const size_t plen = strlen("ferry.io/");
	const char *key;
	json_t *value;

	if (!ann)
		return;
	json_object_foreach(ann, key, value) {
		const char *closest = NULL;
		size_t best = SIZE_MAX;
		char known[1024] = "", pos[32] = "";
		bool found = false;
		int line, column;

		if (strncmp(key, "ferry.io/", plen))
			continue;
		for (size_t i = 0; i < ferry_nannotations && !found; i++) {
			size_t d = edit_distance(key, ferry_annotations[i].name);

			found = !d;
			if (d < best) {
				best = d;
				closest = ferry_annotations[i].name;
			}
		}
		if (found)
			continue;
		if (ferry_manifest__pos(c->mf, ann, key, NULL, &line, &column))
			snprintf(pos, sizeof(pos), ":%d:%d", line, column);
		/* Up to 3 edits (a typo, a dropped or doubled letter): a likely meaning. */
		if (best > 3) {
			for (size_t i = 0; i < ferry_nannotations; i++) {
				size_t n = strlen(known);

				snprintf(known + n, sizeof(known) - n, "%s%s", i ? ", " : "",
					 ferry_annotations[i].name);
			}
		}
		pr_warn("%s%s: %s: %s[\"%s\"]: unknown ferry annotation, ignored: %s%s%s%s",
			c->file, pos, c->object, where, key, best <= 3 ? "did you mean " : "",
			best <= 3 ? closest : "ferry reads ", best <= 3 ? "?" : known,
			best <= 3 ? "" : " (docs/configuration.md)");
	}
}
