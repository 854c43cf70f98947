// SPDX-License-Identifier: GPL-2.0-only
/*
 * Rebalancing's planning rule and deadlines (user/kernel/rebalance.c), without
 * a kernel: which connections must go after a change, and when. The iterator
 * and bpf_sock_destroy are covered end to end (vmtests/scenarios/rebalance.sh).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/rebalance.h"
#include "testing.h"

#define SUITE "rebalance"

static size_t count(const bool *v, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		k += v[i];
	return k;
}

/* Rollback to 0/100: every connection of the predictor at 0 goes, none of the other's. */
static void test_rollback_to_zero(void)
{
	__u32 pred[6] = { 2, 2, 2, 1, 2, 1 }, hash[6] = { 6, 5, 4, 3, 2, 1 };
	__u32 ids[2] = { 1, 2 }, shares[2] = { FERRY_WEIGHT_ONE, 0 };
	bool shrunk[2] = { false, true }, losing[6] = {}, out[6];

	ASSERT_EQ(ferry_rebal__plan(6, pred, losing, hash, 2, ids, shares, shrunk, out), 4,
		  "four canary connections go");
	for (int i = 0; i < 6; i++)
		ASSERT_EQ(out[i], pred[i] == 2, "exactly the canary's");
}

/* A drain: the drained backend's connections go whatever the shares say. */
static void test_drain(void)
{
	__u32 pred[4] = { 1, 1, 1, 1 }, hash[4] = { 1, 2, 3, 4 };
	__u32 ids[1] = { 1 }, shares[1] = { FERRY_WEIGHT_ONE };
	bool shrunk[1] = { false }, losing[4] = { true, false, true, false }, out[4];

	ASSERT_EQ(ferry_rebal__plan(4, pred, losing, hash, 1, ids, shares, shrunk, out), 2,
		  "two on the drained backend");
	ASSERT_TRUE(out[0] && out[2] && !out[1] && !out[3], "only those");
}

/*
 * 50/50 -> 90/10 with 10 connections 5/5: the canary keeps round(10 * 0.1) = 1,
 * the four it loses are the ones with the highest hashes; main loses nothing.
 */
static void test_partial_shift(void)
{
	__u32 pred[10] = { 1, 2, 1, 2, 1, 2, 1, 2, 1, 2 };
	__u32 hash[10] = { 9, 50, 8, 10, 7, 40, 6, 30, 5, 20 };
	__u32 ids[2] = { 1, 2 }, shares[2] = { 900000, 100000 };
	bool shrunk[2] = { false, true }, losing[10] = {}, out[10];

	ASSERT_EQ(ferry_rebal__plan(10, pred, losing, hash, 2, ids, shares, shrunk, out), 4,
		  "four canary connections go");
	ASSERT_FALSE(out[3], "the lowest hash stays");
	ASSERT_TRUE(out[1] && out[5] && out[7] && out[9], "the others go");
	ASSERT_EQ(count(out, 10), 4, "main loses none");
}

/*
 * A change that lowers no share (a scale-up, a table rebuilt): nothing goes,
 * even when chance left the connections far from the weights.
 */
static void test_no_churn_without_shrink(void)
{
	__u32 pred[4] = { 1, 1, 1, 2 }, hash[4] = { 1, 2, 3, 4 };
	__u32 ids[2] = { 1, 2 }, shares[2] = { 500000, 500000 };
	bool shrunk[2] = { false, false }, losing[4] = {}, out[4];

	ASSERT_EQ(ferry_rebal__plan(4, pred, losing, hash, 2, ids, shares, shrunk, out), 0,
		  "no share went down");
}

/* A predictor the service no longer has: all its connections go. */
static void test_predictor_removed(void)
{
	__u32 pred[3] = { 1, 7, 7 }, hash[3] = { 1, 2, 3 };
	__u32 ids[1] = { 1 }, shares[1] = { FERRY_WEIGHT_ONE };
	bool shrunk[1] = { false }, losing[3] = {}, out[3];

	ASSERT_EQ(ferry_rebal__plan(3, pred, losing, hash, 1, ids, shares, shrunk, out), 2,
		  "the removed predictor's two");
	ASSERT_TRUE(!out[0] && out[1] && out[2], "only those");
}

/* Deadlines fall inside the window and spread over it (cookies are sequential). */
static void test_deadlines_spread(void)
{
	const __u64 start = 1000000000ULL, window = 30000000000ULL;
	unsigned int bins[10] = {};
	__u64 d;

	for (__u64 cookie = 1; cookie <= 1000; cookie++) {
		d = ferry_rebal__deadline(start, window, cookie);
		if (!ASSERT_TRUE(d >= start && d < start + window, "inside the window"))
			return;
		bins[(d - start) * 10 / window]++;
	}
	/* 100 expected per tenth; sequential cookies must not bunch up. */
	for (int i = 0; i < 10; i++)
		ASSERT_TRUE(bins[i] >= 50 && bins[i] <= 150, "every tenth of the window used");
	ASSERT_EQ(ferry_rebal__deadline(start, window, 42),
		  ferry_rebal__deadline(start, window, 42), "a connection's deadline is stable");
}

int main(int argc, char **argv)
{
	test__main_init(argc, argv);
	RUN_TEST(SUITE, test_rollback_to_zero);
	RUN_TEST(SUITE, test_drain);
	RUN_TEST(SUITE, test_partial_shift);
	RUN_TEST(SUITE, test_no_churn_without_shrink);
	RUN_TEST(SUITE, test_predictor_removed);
	RUN_TEST(SUITE, test_deadlines_spread);
	return test__summary();
}
