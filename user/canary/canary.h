/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Automated canary analysis (docs/canary.md). Two layers, both pure (no maps,
 * no clock, no I/O) so that tests drive them with synthetic windows:
 *
 * - the judge: one analysis window's counts for the canary and the baseline
 *   (deltas of the kernel's counters and request-latency histograms, already
 *   merged over nodes) -> pass, fail or inconclusive, with the figures that
 *   decided it;
 * - the rollout: a state machine over judged windows and SRE commands ->
 *   state, step and the canary's weight.
 *
 * ferryd feeds both from snapshots (user/canary/canary_run.c) and writes the
 * weight into ferry_pred_meta.weight_canary (FERRY_PRED_F_CANARY).
 */
#ifndef FERRY_CANARY_H
#define FERRY_CANARY_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/types.h>

#include "ferry_maps.h"
#include "model.h"

/*
 * Tail quantile: a p99 is judged only with at least this many latency samples
 * on both sides (then at least 10 samples lie above it); from
 * FERRY_CANARY_P90_MIN_SAMPLES on, the p90 instead; below that only the p50.
 */
#define FERRY_CANARY_P99_MIN_SAMPLES 1000
#define FERRY_CANARY_P90_MIN_SAMPLES 100
/* The rank test needs this many latency samples on each side (normal approximation). */
#define FERRY_CANARY_U_MIN_SAMPLES 20

/* One predictor's counts over one window (deltas), merged over nodes. */
struct ferry_canary_counts {
	__u64 requests; /* responses seen (HTTP status classes, unknown included) */
	__u64 http_5xx;
	__u64 resets; /* RST from the backend: refused connects included */
	__u64 syn_timeouts; /* connect attempts that timed out */
	struct ferry_hist latency; /* request latency (FERRY_LAT_REQUEST) */
};

/* a += b, histograms bucket by bucket (windows of several nodes). */
void ferry_canary_counts__merge(struct ferry_canary_counts *a, const struct ferry_canary_counts *b);
/* Errors per request: (5xx + resets + SYN timeouts) / max(requests, 1). */
double ferry_canary_counts__error_rate(const struct ferry_canary_counts *c);

/* One-sided Mann-Whitney U test on two bucketed samples: is x stochastically larger than y? */
struct ferry_canary_mwu {
	__u64 n1, n2;
	double u; /* U of x: pairs with x > y, plus half the ties (bucket = tie) */
	double z; /* with tie correction and continuity correction */
	double p; /* one-sided, normal approximation; 1 when either side is empty */
};

void ferry_canary__mann_whitney(const struct ferry_hist *x, const struct ferry_hist *y,
				struct ferry_canary_mwu *out);

enum ferry_canary_verdict {
	FERRY_CANARY_PASS,
	FERRY_CANARY_FAIL,
	FERRY_CANARY_INCONCLUSIVE,
};

/* Why a window was judged so; the reason label of ferry_canary_decisions_total. */
enum ferry_canary_reason {
	FERRY_CANARY_R_OK, /* every check passed */
	FERRY_CANARY_R_EMPTY, /* no canary request at all */
	FERRY_CANARY_R_FEW_REQUESTS, /* fewer than min-requests */
	FERRY_CANARY_R_ERROR_RATE,
	FERRY_CANARY_R_ERROR_INCREASE,
	FERRY_CANARY_R_LATENCY_P50,
	FERRY_CANARY_R_LATENCY_TAIL,
	FERRY_CANARY_R_LATENCY_RANK, /* U test significant and the median shift above the floor */
	FERRY_CANARY_R_MANUAL, /* an SRE command */
	FERRY_CANARY_R_STEPS_DONE,
	FERRY_CANARY_R_MAX,
};

const char *ferry_canary_reason__name(enum ferry_canary_reason r);
const char *ferry_canary_verdict__name(enum ferry_canary_verdict v);

/* The figures of one judged window, for logs, Events and ferryctl. */
struct ferry_canary_judgement {
	enum ferry_canary_verdict verdict;
	enum ferry_canary_reason reason;
	__u64 canary_requests, baseline_requests;
	double canary_error_rate, baseline_error_rate;
	double canary_p50_ms, baseline_p50_ms;
	double tail_q; /* 0.99, 0.90 or 0 (not judged: too few samples) */
	double canary_tail_ms, baseline_tail_ms;
	double p50_ratio, tail_ratio; /* NaN when a side has no latency sample */
	struct ferry_canary_mwu mwu; /* p = 1 when not run */
	bool baseline_judged; /* the baseline had min-requests: relative checks ran */
};

/* Judges one window. Every threshold comes from cfg. */
void ferry_canary__judge(const struct ferry_canary_config *cfg,
			 const struct ferry_canary_counts *canary,
			 const struct ferry_canary_counts *baseline,
			 struct ferry_canary_judgement *j);

/* "errors 3.10% (max 1.00%), p50 12.0/4.0 ms ..." for logs and Events. */
void ferry_canary_judgement__format(const struct ferry_canary_judgement *j, char *buf, size_t len);

/* ------------------------------------------------------------- rollout */

enum ferry_canary_state {
	FERRY_CANARY_S_PROGRESSING = 1, /* at step k of n */
	FERRY_CANARY_S_HOLDING, /* no steps: guarding the manifest's split */
	FERRY_CANARY_S_PROMOTED,
	FERRY_CANARY_S_ROLLED_BACK,
	FERRY_CANARY_S_PAUSED,
	FERRY_CANARY_S_INCONCLUSIVE, /* the last window was too small; the step holds */
};

const char *ferry_canary_state__name(enum ferry_canary_state s);
/* 0 and the state for its name, or -EINVAL. */
int ferry_canary_state__parse(const char *name, enum ferry_canary_state *s);

enum ferry_canary_command {
	FERRY_CANARY_CMD_NONE,
	FERRY_CANARY_CMD_PAUSE,
	FERRY_CANARY_CMD_RESUME,
	FERRY_CANARY_CMD_ABORT,
	FERRY_CANARY_CMD_PROMOTE,
};

const char *ferry_canary_command__name(enum ferry_canary_command c);

struct ferry_canary_rollout {
	enum ferry_canary_state state;
	enum ferry_canary_state paused_from; /* the state --resume returns to */
	__u32 step; /* 1..nsteps while progressing; 0 without steps */
	__u32 consecutive_failures;
	/* The canary's weight: in force (FERRY_PRED_F_CANARY) when has_weight. */
	bool has_weight;
	__u32 weight; /* ppm */
};

/* A new rollout: step 1 (its share in force), or holding without steps. */
void ferry_canary_rollout__start(struct ferry_canary_rollout *r,
				 const struct ferry_canary_config *cfg);

/*
 * Feeds one judged window. Returns true when the state, step or weight
 * changed (a transition to log, count and report).
 */
bool ferry_canary_rollout__window(struct ferry_canary_rollout *r,
				  const struct ferry_canary_config *cfg,
				  const struct ferry_canary_judgement *j);

/* Applies an SRE command. Returns true on a transition. */
bool ferry_canary_rollout__command(struct ferry_canary_rollout *r,
				   const struct ferry_canary_config *cfg,
				   enum ferry_canary_command cmd);

/* True while windows are judged (progressing, holding, inconclusive). */
bool ferry_canary_rollout__analysing(const struct ferry_canary_rollout *r);

/* Per-deployment figures ferryd's /metrics exports. */
struct ferry_canary_metrics {
	char deployment[FERRY_NAME_LEN];
	enum ferry_canary_state state;
	__u32 step;
	__u64 decisions[3][FERRY_CANARY_R_MAX]; /* [verdict][reason] of judged windows */
	__u64 commands[5]; /* [enum ferry_canary_command]: SRE commands applied */
};

#endif /* FERRY_CANARY_H */
