/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Effective weights: the one function that turns what was asked for (the
 * manifest's traffic, an SRE's override, canary analysis' weight) and what
 * is available (ready backends) into the weights the kernel selects by.
 * The config layer calls it for the model it reports, the sync layer for
 * what it writes; nothing else computes a weight (docs/configuration.md).
 */
#ifndef FERRY_WEIGHTS_H
#define FERRY_WEIGHTS_H

#include <stddef.h>
#include <linux/types.h>

struct ferry_weight_in {
	__u32 configured; /* ppm, the manifest's traffic */
	__u32 flags; /* FERRY_PRED_F_SHADOW, FERRY_PRED_F_OVERRIDE, FERRY_PRED_F_CANARY */
	__u32 override; /* ppm, in force with FERRY_PRED_F_OVERRIDE */
	__u32 canary; /* ppm, in force with FERRY_PRED_F_CANARY */
	__u32 ready; /* backends that take new connections */
};

/*
 * Writes n effective weights (ppm) into out. The rules, in order:
 * 1. Asked weight. Shadow predictors: 0. If any predictor of the service has
 *    an override, overrides decide for all (a predictor without one: 0).
 *    Otherwise canary analysis' weights are absolute shares for the
 *    predictors it set, and the rest of FERRY_WEIGHT_ONE is split between
 *    the others in proportion to their configured weights (so a canary at
 *    20% leaves 80% to the rest, whatever the manifest said).
 * 2. Availability. A predictor with no ready backend gets 0; the others
 *    share FERRY_WEIGHT_ONE in proportion to their asked weights.
 * 3. If every predictor with ready backends asked for 0, they split evenly.
 * The result sums to exactly FERRY_WEIGHT_ONE when any predictor has a ready
 * backend (the rounding difference goes to the largest, the first on a tie)
 * and is all 0 when none has.
 */
void ferry_weights__effective(const struct ferry_weight_in *in, size_t n, __u32 *out);

#endif /* FERRY_WEIGHTS_H */
