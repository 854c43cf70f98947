// SPDX-License-Identifier: GPL-2.0-only
/*
 * ferryctl drain and undrain: take a backend out of (or back into) new flows.
 */
#include "ferryctl.h"

/* --------------------------------------------------------------- drain */

static int cmd_drain(struct ctl *c, int argc, char **argv, bool drain)
{
	struct ferry_sync *sync = NULL;
	struct ferry_dp *dp;
	__be32 addr[4];
	__be16 port;
	__u8 family;
	size_t changed = 0;
	int err, rc = EXIT_FAIL;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		printf("Usage: ferryctl %s BACKEND\n"
		       "BACKEND is ADDR or ADDR:PORT ([ADDR]:PORT for IPv6). %s\n",
		       drain ? "drain" : "undrain",
		       drain ? "The backend takes no new connection (its open ones continue)\n"
			       "in every service it serves, until 'ferryctl undrain'; survives\n"
			       "ferryd restarts." :
			       "Undoes 'ferryctl drain'.");
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	if (ferry_endpoint__parse(argv[1], true, &family, addr, &port)) {
		fprintf(stderr, "ferryctl %s: BACKEND '%s': expected ADDR or ADDR:PORT\n",
			drain ? "drain" : "undrain", argv[1]);
		return EXIT_USAGE;
	}
	dp = open_maps(c);
	sync = dp ? ferry_sync__new(dp, NULL) : NULL;
	if (!sync)
		goto out;
	err = ferry_sync__set_backend_state(sync, family, addr, port,
					    drain ? FERRY_BE_DRAINING : FERRY_BE_ACTIVE, &changed);
	if (err) {
		fprintf(stderr, "ferryctl: %s\n", strerror(-err));
		goto out;
	}
	if (!changed) {
		fprintf(stderr, "ferryctl: no backend %s %s (see 'ferryctl services')\n", argv[1],
			drain ? "to drain (unknown, or already drained)" :
				"to undrain (unknown, or not drained)");
		rc = EXIT_NOT_FOUND;
		goto out;
	}
	printf("%s: %s in %zu service(s)\n", argv[1], drain ? "drained" : "undrained", changed);
	rc = EXIT_OK;
out:
	ferry_sync__free(sync);
	ferry_dp__close(dp);
	return rc;
}

int cmd_drain_on(struct ctl *c, int argc, char **argv)
{
	return cmd_drain(c, argc, argv, true);
}

int cmd_undrain(struct ctl *c, int argc, char **argv)
{
	return cmd_drain(c, argc, argv, false);
}
