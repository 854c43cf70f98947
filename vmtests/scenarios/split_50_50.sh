#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# split_50_50: a SeldonDeployment with traffic 50/50 (main: 2 replicas, canary: 1).
# Over >= 2,000 new connections through the VIP, the canary's observed share is
# within 3 standard deviations of 50% (sd = sqrt(p(1-p)/n)), and no request fails.
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
# shellcheck source=SCRIPTDIR/../lib/split.sh
. "$(dirname "$0")/../lib/split.sh"
fe_init split_50_50 s50
fe_split_run 50 50
