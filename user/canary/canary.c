// SPDX-License-Identifier: GPL-2.0-only
/*
 * The canary judge and the rollout state machine (canary.h): pure functions
 * over window counts, so that tests/test_canary.c can check every rule.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "canary/canary.h"
#include "telemetry/hist.h"

void ferry_canary_counts__merge(struct ferry_canary_counts *a, const struct ferry_canary_counts *b)
{
	a->requests += b->requests;
	a->http_5xx += b->http_5xx;
	a->resets += b->resets;
	a->syn_timeouts += b->syn_timeouts;
	a->latency.count += b->latency.count;
	a->latency.sum_ns += b->latency.sum_ns;
	for (unsigned int i = 0; i < FERRY_HIST_BUCKETS; i++)
		a->latency.bucket[i] += b->latency.bucket[i];
}

/*
 * A reset or a SYN timeout ends an attempt that got no response, so it is not
 * among the responses (requests): attempts are responses plus those. A reset
 * after a response counts twice, which only lowers the rate a little.
 */
static __u64 attempts(const struct ferry_canary_counts *c)
{
	return c->requests + c->resets + c->syn_timeouts;
}

double ferry_canary_counts__error_rate(const struct ferry_canary_counts *c)
{
	__u64 n = attempts(c);

	return n ? (double)(c->http_5xx + c->resets + c->syn_timeouts) / (double)n : 0;
}

/*
 * Bucketed samples: every sample in one kernel bucket is a tie with every
 * other there (the bucket is all we know of its value), so it gets the
 * bucket's midrank, and the variance carries the usual tie correction
 * sum(t^3 - t) / (N (N - 1)). The normal approximation with a continuity
 * correction is what scipy.stats.mannwhitneyu(method="asymptotic") computes.
 */
void ferry_canary__mann_whitney(const struct ferry_hist *x, const struct ferry_hist *y,
				struct ferry_canary_mwu *out)
{
	double below = 0, r1 = 0, ties = 0, n1 = 0, n2 = 0, n, mu, var;

	memset(out, 0, sizeof(*out));
	out->p = 1;
	for (unsigned int i = 0; i < FERRY_HIST_BUCKETS; i++) {
		n1 += (double)x->bucket[i];
		n2 += (double)y->bucket[i];
	}
	out->n1 = (__u64)n1;
	out->n2 = (__u64)n2;
	if (!n1 || !n2)
		return;
	for (unsigned int i = 0; i < FERRY_HIST_BUCKETS; i++) {
		double t = (double)x->bucket[i] + (double)y->bucket[i];

		if (!t)
			continue;
		r1 += (double)x->bucket[i] * (below + (t + 1) / 2);
		ties += t * t * t - t;
		below += t;
	}
	n = n1 + n2;
	out->u = r1 - n1 * (n1 + 1) / 2;
	mu = n1 * n2 / 2;
	var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)));
	if (var <= 0) {
		/* Every sample in one bucket: nothing tells the two apart. */
		out->z = 0;
		out->p = 1;
		return;
	}
	out->z = (out->u - mu - 0.5) / sqrt(var);
	out->p = 0.5 * erfc(out->z / M_SQRT2);
}

static const char *const reason_names[FERRY_CANARY_R_MAX] = {
	[FERRY_CANARY_R_OK] = "ok",
	[FERRY_CANARY_R_EMPTY] = "empty",
	[FERRY_CANARY_R_FEW_REQUESTS] = "few_requests",
	[FERRY_CANARY_R_ERROR_RATE] = "error_rate",
	[FERRY_CANARY_R_ERROR_INCREASE] = "error_increase",
	[FERRY_CANARY_R_LATENCY_P50] = "latency_p50",
	[FERRY_CANARY_R_LATENCY_TAIL] = "latency_tail",
	[FERRY_CANARY_R_LATENCY_RANK] = "latency_rank",
	[FERRY_CANARY_R_MANUAL] = "manual",
	[FERRY_CANARY_R_STEPS_DONE] = "steps_done",
};

const char *ferry_canary_reason__name(enum ferry_canary_reason r)
{
	return r < FERRY_CANARY_R_MAX ? reason_names[r] : "unknown";
}

const char *ferry_canary_verdict__name(enum ferry_canary_verdict v)
{
	switch (v) {
	case FERRY_CANARY_PASS:
		return "pass";
	case FERRY_CANARY_FAIL:
		return "fail";
	case FERRY_CANARY_INCONCLUSIVE:
		return "inconclusive";
	}
	return "unknown";
}

static double ms(double ns)
{
	return ns / 1e6;
}

static double ratio(double a, double b)
{
	return b > 0 ? a / b : NAN;
}

void ferry_canary__judge(const struct ferry_canary_config *cfg,
			 const struct ferry_canary_counts *canary,
			 const struct ferry_canary_counts *baseline,
			 struct ferry_canary_judgement *j)
{
	__u64 nc = ferry_hist__total(&canary->latency), nb = ferry_hist__total(&baseline->latency);
	__u64 nmin = nc < nb ? nc : nb;

	memset(j, 0, sizeof(*j));
	j->mwu.p = 1;
	j->p50_ratio = j->tail_ratio = NAN;
	j->canary_p50_ms = j->baseline_p50_ms = NAN;
	j->canary_tail_ms = j->baseline_tail_ms = NAN;
	j->canary_requests = attempts(canary);
	j->baseline_requests = attempts(baseline);
	j->canary_error_rate = ferry_canary_counts__error_rate(canary);
	j->baseline_error_rate = ferry_canary_counts__error_rate(baseline);
	j->baseline_judged = j->baseline_requests >= cfg->min_requests && j->baseline_requests;
	if (nc)
		j->canary_p50_ms = ms(ferry_hist__quantile(&canary->latency, 0.5));
	if (nb)
		j->baseline_p50_ms = ms(ferry_hist__quantile(&baseline->latency, 0.5));
	j->p50_ratio = ratio(j->canary_p50_ms, j->baseline_p50_ms);
	if (nmin >= FERRY_CANARY_P99_MIN_SAMPLES)
		j->tail_q = 0.99;
	else if (nmin >= FERRY_CANARY_P90_MIN_SAMPLES)
		j->tail_q = 0.90;
	if (j->tail_q > 0) {
		j->canary_tail_ms = ms(ferry_hist__quantile(&canary->latency, j->tail_q));
		j->baseline_tail_ms = ms(ferry_hist__quantile(&baseline->latency, j->tail_q));
		j->tail_ratio = ratio(j->canary_tail_ms, j->baseline_tail_ms);
	}
	if (nc >= FERRY_CANARY_U_MIN_SAMPLES && nb >= FERRY_CANARY_U_MIN_SAMPLES)
		ferry_canary__mann_whitney(&canary->latency, &baseline->latency, &j->mwu);

	j->verdict = FERRY_CANARY_INCONCLUSIVE;
	if (!j->canary_requests) {
		j->reason = FERRY_CANARY_R_EMPTY;
		return;
	}
	if (j->canary_requests < cfg->min_requests) {
		j->reason = FERRY_CANARY_R_FEW_REQUESTS;
		return;
	}
	j->verdict = FERRY_CANARY_FAIL;
	if (j->canary_error_rate > cfg->max_error_rate) {
		j->reason = FERRY_CANARY_R_ERROR_RATE;
		return;
	}
	/* Relative checks need a baseline measured as well as the canary. */
	if (j->baseline_judged) {
		if (j->canary_error_rate - j->baseline_error_rate > cfg->max_error_increase) {
			j->reason = FERRY_CANARY_R_ERROR_INCREASE;
			return;
		}
		if (j->p50_ratio > cfg->max_latency_ratio) {
			j->reason = FERRY_CANARY_R_LATENCY_P50;
			return;
		}
		if (j->tail_ratio > cfg->max_latency_ratio) {
			j->reason = FERRY_CANARY_R_LATENCY_TAIL;
			return;
		}
		/*
		 * Significance alone would fail a canary 2% slower on a busy
		 * service (thousands of samples make any shift significant, and
		 * requests of one window are not independent): the median must
		 * also have moved by the effect-size floor.
		 */
		if (j->mwu.p < cfg->significance && j->p50_ratio >= cfg->min_effect) {
			j->reason = FERRY_CANARY_R_LATENCY_RANK;
			return;
		}
	}
	j->verdict = FERRY_CANARY_PASS;
	j->reason = FERRY_CANARY_R_OK;
}

void ferry_canary_judgement__format(const struct ferry_canary_judgement *j, char *buf, size_t len)
{
	int n;

	n = snprintf(buf, len,
		     "%s (%s): requests %llu/%llu, errors %.2f%%/%.2f%%, p50 %.2f/%.2f ms "
		     "(x%.2f)",
		     ferry_canary_verdict__name(j->verdict), ferry_canary_reason__name(j->reason),
		     (unsigned long long)j->canary_requests,
		     (unsigned long long)j->baseline_requests, j->canary_error_rate * 100,
		     j->baseline_error_rate * 100, j->canary_p50_ms, j->baseline_p50_ms,
		     j->p50_ratio);
	if (n < 0 || (size_t)n >= len)
		return;
	if (j->tail_q > 0)
		n += snprintf(buf + n, len - n, ", p%.0f %.2f/%.2f ms (x%.2f)", j->tail_q * 100,
			      j->canary_tail_ms, j->baseline_tail_ms, j->tail_ratio);
	if (n < 0 || (size_t)n >= len)
		return;
	if (j->mwu.n1 && j->mwu.n2)
		snprintf(buf + n, len - n, ", U test p=%.3g (z=%.2f)", j->mwu.p, j->mwu.z);
	if (n >= 0 && (size_t)n < len && !j->baseline_judged)
		strncat(buf, ", baseline too small: absolute checks only", len - strlen(buf) - 1);
}

/* ------------------------------------------------------------- rollout */

static const char *const state_names[] = {
	[FERRY_CANARY_S_PROGRESSING] = "progressing",
	[FERRY_CANARY_S_HOLDING] = "holding",
	[FERRY_CANARY_S_PROMOTED] = "promoted",
	[FERRY_CANARY_S_ROLLED_BACK] = "rolled-back",
	[FERRY_CANARY_S_PAUSED] = "paused",
	[FERRY_CANARY_S_INCONCLUSIVE] = "inconclusive",
};

const char *ferry_canary_state__name(enum ferry_canary_state s)
{
	if (!s)
		return "none";
	return s <= FERRY_CANARY_S_INCONCLUSIVE ? state_names[s] : "unknown";
}

int ferry_canary_state__parse(const char *name, enum ferry_canary_state *s)
{
	for (int i = FERRY_CANARY_S_PROGRESSING; i <= FERRY_CANARY_S_INCONCLUSIVE; i++) {
		if (!strcmp(name, state_names[i])) {
			*s = i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *ferry_canary_command__name(enum ferry_canary_command c)
{
	switch (c) {
	case FERRY_CANARY_CMD_PAUSE:
		return "pause";
	case FERRY_CANARY_CMD_RESUME:
		return "resume";
	case FERRY_CANARY_CMD_ABORT:
		return "abort";
	case FERRY_CANARY_CMD_PROMOTE:
		return "promote";
	default:
		return "none";
	}
}

/* Where an analysing rollout returns after an inconclusive window. */
static enum ferry_canary_state judging_state(const struct ferry_canary_config *cfg)
{
	return cfg->nsteps ? FERRY_CANARY_S_PROGRESSING : FERRY_CANARY_S_HOLDING;
}

void ferry_canary_rollout__start(struct ferry_canary_rollout *r,
				 const struct ferry_canary_config *cfg)
{
	memset(r, 0, sizeof(*r));
	r->state = judging_state(cfg);
	if (cfg->nsteps) {
		r->step = 1;
		r->has_weight = true;
		r->weight = cfg->steps[0];
	}
}

bool ferry_canary_rollout__analysing(const struct ferry_canary_rollout *r)
{
	return r->state == FERRY_CANARY_S_PROGRESSING || r->state == FERRY_CANARY_S_HOLDING ||
	       r->state == FERRY_CANARY_S_INCONCLUSIVE;
}

static void roll_back(struct ferry_canary_rollout *r)
{
	r->state = FERRY_CANARY_S_ROLLED_BACK;
	r->has_weight = true;
	r->weight = 0;
	r->consecutive_failures = 0;
}

bool ferry_canary_rollout__window(struct ferry_canary_rollout *r,
				  const struct ferry_canary_config *cfg,
				  const struct ferry_canary_judgement *j)
{
	struct ferry_canary_rollout before = *r;

	if (!ferry_canary_rollout__analysing(r))
		return false;
	switch (j->verdict) {
	case FERRY_CANARY_INCONCLUSIVE:
		/* Neither passes nor fails: the failure count stands. */
		r->state = FERRY_CANARY_S_INCONCLUSIVE;
		break;
	case FERRY_CANARY_FAIL:
		r->state = judging_state(cfg);
		if (++r->consecutive_failures >= (cfg->failures ? cfg->failures : 1))
			roll_back(r);
		break;
	case FERRY_CANARY_PASS:
		r->state = judging_state(cfg);
		r->consecutive_failures = 0;
		if (!cfg->nsteps)
			break;
		if (r->step < cfg->nsteps) {
			r->step++;
			r->weight = cfg->steps[r->step - 1];
			r->has_weight = true;
		} else {
			r->state = FERRY_CANARY_S_PROMOTED;
		}
		break;
	}
	return r->state != before.state || r->step != before.step ||
	       r->has_weight != before.has_weight || r->weight != before.weight;
}

bool ferry_canary_rollout__command(struct ferry_canary_rollout *r,
				   const struct ferry_canary_config *cfg,
				   enum ferry_canary_command cmd)
{
	struct ferry_canary_rollout before = *r;

	switch (cmd) {
	case FERRY_CANARY_CMD_PAUSE:
		if (ferry_canary_rollout__analysing(r)) {
			r->paused_from = r->state;
			r->state = FERRY_CANARY_S_PAUSED;
		}
		break;
	case FERRY_CANARY_CMD_RESUME:
		if (r->state == FERRY_CANARY_S_PAUSED)
			r->state = r->paused_from ? r->paused_from : judging_state(cfg);
		else if (r->state == FERRY_CANARY_S_ROLLED_BACK ||
			 r->state == FERRY_CANARY_S_PROMOTED)
			/* Clears the canary's weight and starts over from step 1. */
			ferry_canary_rollout__start(r, cfg);
		break;
	case FERRY_CANARY_CMD_ABORT:
		if (r->state != FERRY_CANARY_S_ROLLED_BACK)
			roll_back(r);
		break;
	case FERRY_CANARY_CMD_PROMOTE:
		if (!cfg->nsteps) {
			r->state = FERRY_CANARY_S_PROMOTED;
			r->has_weight = false;
			r->weight = 0;
		} else {
			r->state = FERRY_CANARY_S_PROGRESSING;
			r->step = cfg->nsteps;
			r->has_weight = true;
			r->weight = cfg->steps[cfg->nsteps - 1];
		}
		r->consecutive_failures = 0;
		break;
	case FERRY_CANARY_CMD_NONE:
		break;
	}
	return r->state != before.state || r->step != before.step ||
	       r->has_weight != before.has_weight || r->weight != before.weight;
}
