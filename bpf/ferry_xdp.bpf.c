// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* ferry's XDP entry point: the forward path at the driver (see lb.bpf.h). */
#include "lb.bpf.h"

SEC("xdp")
int ferry_xdp_fwd(struct xdp_md *ctx)
{
	return ferry_fwd(ctx, FERRY_HOOK_XDP);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
