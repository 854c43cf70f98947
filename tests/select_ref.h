/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The data plane's selection (bpf/select.bpf.h) replayed in user space for
 * tests, on the same hash functions (bpf/hash.bpf.h): what a packet must
 * get, computed without asking the program.
 */
#ifndef FERRY_TEST_SELECT_REF_H
#define FERRY_TEST_SELECT_REF_H

#include <linux/types.h>
#include <linux/bpf.h>

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

#include "ferry_maps.h"
#include "../bpf/hash.bpf.h"

/*
 * Stage 1: the index in sel->preds of the predictor hash picks, -1 for none;
 * *second (when not NULL) the runner-up's index, -1 for none.
 */
static inline int ref_pick_pred2(const struct ferry_select *sel, __u32 hash, int *second)
{
	__u64 best = ~0ULL, next = ~0ULL, score;
	int pick = -1, pick2 = -1;
	__u32 i;

	for (i = 0; i < sel->npredictors && i < FERRY_MAX_SVC_PREDICTORS; i++) {
		if (!sel->preds[i].weight)
			continue;
		score = ferry_pred_score(hash, sel->preds[i].key, sel->preds[i].weight);
		if (pick < 0 || score < best) {
			next = best;
			pick2 = pick;
			best = score;
			pick = (int)i;
		} else if (pick2 < 0 || score < next) {
			next = score;
			pick2 = (int)i;
		}
	}
	if (second)
		*second = pick2;
	return pick;
}

static inline int ref_pick_pred(const struct ferry_select *sel, __u32 hash)
{
	return ref_pick_pred2(sel, hash, NULL);
}

#endif /* FERRY_TEST_SELECT_REF_H */
