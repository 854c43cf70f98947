// SPDX-License-Identifier: GPL-2.0-only
/*
 * ferryctl reset: detach everything and remove every pin.
 */
#include "ferryctl.h"

/* --------------------------------------------------------------- reset */

int cmd_reset(struct ctl *c, int argc, char **argv)
{
	bool yes = false;
	int err, i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--yes") || !strcmp(argv[i], "-y")) {
			yes = true;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("Usage: ferryctl reset [--yes]\n"
			       "Detaches every ferry program and removes every pin under the pin\n"
			       "path. Open connections through ferry break. Asks first unless --yes.\n");
			return EXIT_OK;
		} else {
			fprintf(stderr, "ferryctl reset: unknown argument %s\n", argv[i]);
			return EXIT_USAGE;
		}
	}
	if (!yes) {
		char answer[16] = "";

		if (!isatty(STDIN_FILENO)) {
			fprintf(stderr, "ferryctl reset: refusing without --yes (no terminal to "
					"ask on)\n");
			return EXIT_USAGE;
		}
		printf("Detach ferry and remove %s? Open connections through ferry will break. "
		       "[y/N] ",
		       c->pin_path);
		fflush(stdout);
		if (!fgets(answer, sizeof(answer), stdin) ||
		    (answer[0] != 'y' && answer[0] != 'Y')) {
			printf("nothing changed\n");
			return EXIT_FAIL;
		}
	}
	if (ferry_dp__check_bpffs(c->pin_path))
		return EXIT_FAIL;
	err = ferry_dp__reset(c->pin_path);
	if (err && err != -ENOENT) {
		fprintf(stderr, "ferryctl reset: %s: %s\n", c->pin_path, strerror(-err));
		return EXIT_FAIL;
	}
	{
		char path[PATH_MAX];

		if (!ferry_status__path(c->pin_path, path, sizeof(path)))
			unlink(path);
	}
	printf("ferry removed: programs detached, %s deleted\n", c->pin_path);
	return EXIT_OK;
}
