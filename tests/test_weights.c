// SPDX-License-Identifier: GPL-2.0-only
/*
 * The one owner of effective weights (user/weights.c): every case that
 * docs/configuration.md promises, plus the operator's override and canary
 * analysis' weight. Unprivileged.
 */
#include <string.h>
#include <linux/bpf.h> /* struct bpf_spin_lock in ferry_maps.h */

#include "ferry_maps.h"
#include "weights.h"
#include "testing.h"

#define SUITE "weights"

static bool eff(const struct ferry_weight_in *in, size_t n, const __u32 *want, const char *what)
{
	__u32 out[16];
	bool ok = true;

	ferry_weights__effective(in, n, out);
	for (size_t i = 0; i < n; i++)
		ok &= ASSERT_EQ(out[i], want[i], what);
	return ok;
}

static void test_configured(void)
{
	struct ferry_weight_in in[2] = { { .configured = 900000, .ready = 2 },
					 { .configured = 100000, .ready = 1 } };

	eff(in, 2, (__u32[]){ 900000, 100000 }, "90/10 as configured");
}

/* docs: "traffic 50/30/20 with the 30% predictor down gives 714286/0/285714". */
static void test_no_ready_redistributes(void)
{
	struct ferry_weight_in in[3] = { { .configured = 500000, .ready = 1 },
					 { .configured = 300000, .ready = 0 },
					 { .configured = 200000, .ready = 1 } };

	eff(in, 3, (__u32[]){ 714286, 0, 285714 }, "50/30/20, 30 down");
}

/* docs: every predictor with active backends at traffic 0: an even split. */
static void test_all_zero_even(void)
{
	struct ferry_weight_in in[3] = { { .ready = 1 }, { .ready = 2 }, { .ready = 0 } };

	eff(in, 3, (__u32[]){ 500000, 500000, 0 }, "all zero: even over the ready ones");
	in[2].ready = 1;
	eff(in, 3, (__u32[]){ 333334, 333333, 333333 }, "thirds; the rounding to the first");
}

/* An explicit 0 stays 0 while another predictor has weight; shadows never routed. */
static void test_zero_and_shadow(void)
{
	struct ferry_weight_in in[3] = {
		{ .configured = 1000000, .ready = 1 },
		{ .configured = 0, .ready = 1 },
		{ .configured = 500000, .ready = 1, .flags = FERRY_PRED_F_SHADOW }
	};

	eff(in, 3, (__u32[]){ 1000000, 0, 0 }, "explicit 0 and shadow");
}

/* Nothing ready anywhere: all 0, new connections are refused. */
static void test_nothing_ready(void)
{
	struct ferry_weight_in in[2] = { { .configured = 500000 }, { .configured = 500000 } };

	eff(in, 2, (__u32[]){ 0, 0 }, "nothing ready");
}

/* An override decides for every predictor; a drained override target redistributes. */
static void test_override(void)
{
	struct ferry_weight_in in[2] = {
		{ .configured = 900000, .ready = 1 },
		{ .configured = 100000,
		  .ready = 1,
		  .flags = FERRY_PRED_F_OVERRIDE,
		  .override = 1000000 },
	};

	eff(in, 2, (__u32[]){ 0, 1000000 }, "override 0/100");
	in[1].ready = 0;
	eff(in, 2, (__u32[]){ 1000000, 0 }, "override target down: the rest takes it");
}

/* Canary weight is absolute; the rest split what is left; an SRE override beats it. */
static void test_canary(void)
{
	struct ferry_weight_in in[3] = {
		{ .configured = 600000, .ready = 1 },
		{ .configured = 300000, .ready = 1 },
		{ .configured = 100000, .ready = 1, .flags = FERRY_PRED_F_CANARY, .canary = 250000 },
	};

	eff(in, 3, (__u32[]){ 500000, 250000, 250000 }, "canary 25%: 75% split 2:1");
	in[2].canary = 0;
	eff(in, 3, (__u32[]){ 666667, 333333, 0 }, "canary rolled back to 0");
	in[0].flags = FERRY_PRED_F_OVERRIDE;
	in[0].override = 1000000;
	eff(in, 3, (__u32[]){ 1000000, 0, 0 }, "override beats canary");
}

int main(int argc, char **argv)
{
	test__main_init(argc, argv);
	RUN_TEST(SUITE, test_configured);
	RUN_TEST(SUITE, test_no_ready_redistributes);
	RUN_TEST(SUITE, test_all_zero_even);
	RUN_TEST(SUITE, test_zero_and_shadow);
	RUN_TEST(SUITE, test_nothing_ready);
	RUN_TEST(SUITE, test_override);
	RUN_TEST(SUITE, test_canary);
	return test__summary();
}
