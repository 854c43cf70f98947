// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The benchmark floor: parses Ethernet/IP/L4 exactly as ferry does and
 * bounces the frame with XDP_TX. ferry's cost per packet is reported as a
 * ratio to this program's, which cancels out the machine and test_run.
 */
#include "parse.bpf.h"

SEC("xdp")
int ferry_floor(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ferry_pkt pkt = {};

	if (ferry_parse(data, data_end, &pkt, 0) != FERRY_PARSE_OK)
		return XDP_PASS;
	/* Use the tuple so that the compiler keeps every load of the parse. */
	return (pkt.key.sport ^ pkt.key.dport ^ pkt.key.daddr[3] ^ pkt.l4_off) != 0xdead ? XDP_TX :
											   XDP_DROP;
}

/*
 * Does nothing: the benchmark subtracts its cost, which is test_run's own
 * timing overhead when programs are run one packet per call.
 */
SEC("xdp")
int ferry_nop(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
