// SPDX-License-Identifier: GPL-2.0-only
/* Effective weights: see weights.h for the rules, docs/configuration.md for the promise. */
#include <stdbool.h>
#include <string.h>
#include <linux/bpf.h>

#include "ferry_maps.h"
#include "weights.h"

/* Rule 1: what each predictor asks for, before availability. */
static void asked(const struct ferry_weight_in *in, size_t n, __u64 *ask)
{
	__u64 canary_sum = 0, rest_sum = 0;
	bool override = false, canary = false;
	size_t i;

	for (i = 0; i < n; i++) {
		override |= !!(in[i].flags & FERRY_PRED_F_OVERRIDE);
		canary |= !!(in[i].flags & FERRY_PRED_F_CANARY);
	}
	for (i = 0; i < n; i++) {
		if (in[i].flags & FERRY_PRED_F_SHADOW)
			ask[i] = 0;
		else if (override)
			ask[i] = in[i].flags & FERRY_PRED_F_OVERRIDE ? in[i].override : 0;
		else
			ask[i] = in[i].configured;
	}
	if (override || !canary)
		return;
	/* Canary shares are absolute; the others split what is left by their configured weights. */
	for (i = 0; i < n; i++) {
		if (in[i].flags & FERRY_PRED_F_SHADOW)
			continue;
		if (in[i].flags & FERRY_PRED_F_CANARY)
			canary_sum += in[i].canary < FERRY_WEIGHT_ONE ? in[i].canary :
									FERRY_WEIGHT_ONE;
		else
			rest_sum += in[i].configured;
	}
	for (i = 0; i < n; i++) {
		if (in[i].flags & FERRY_PRED_F_SHADOW)
			continue;
		if (in[i].flags & FERRY_PRED_F_CANARY) {
			ask[i] = in[i].canary < FERRY_WEIGHT_ONE ? in[i].canary : FERRY_WEIGHT_ONE;
			/* Scaled like the rest below, so that sums compare in one unit. */
			ask[i] *= rest_sum ? rest_sum : 1;
		} else if (canary_sum < FERRY_WEIGHT_ONE) {
			ask[i] = (__u64)in[i].configured * (FERRY_WEIGHT_ONE - canary_sum);
		} else {
			ask[i] = 0;
		}
	}
}

void ferry_weights__effective(const struct ferry_weight_in *in, size_t n, __u32 *out)
{
	__u64 ask[64], sum = 0;
	size_t i, nready = 0, largest = n;
	__u32 total = 0;

	if (n > 64)
		n = 64; /* a service has at most FERRY_MAX_SVC_PREDICTORS */
	memset(out, 0, n * sizeof(*out));
	asked(in, n, ask);
	for (i = 0; i < n; i++) {
		if (!in[i].ready || (in[i].flags & FERRY_PRED_F_SHADOW))
			continue;
		nready++;
		sum += ask[i];
	}
	if (!nready)
		return;
	for (i = 0; i < n; i++) {
		if (!in[i].ready || (in[i].flags & FERRY_PRED_F_SHADOW))
			continue;
		/* Every ready predictor asked for 0: split evenly rather than drop everything. */
		out[i] = sum ? (__u32)((unsigned __int128)ask[i] * FERRY_WEIGHT_ONE / sum) :
			       FERRY_WEIGHT_ONE / (__u32)nready;
		total += out[i];
		if (largest == n || out[i] > out[largest])
			largest = i;
	}
	out[largest] += FERRY_WEIGHT_ONE - total;
}
