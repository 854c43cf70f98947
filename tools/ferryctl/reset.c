// SPDX-License-Identifier: GPL-2.0-only
/*
 * ferryctl reset: detach everything and remove every pin.
 */
#include <dirent.h>

#include "ferryctl.h"
#include "canary/canary_run.h"

/* --------------------------------------------------------------- reset */

/*
 * ferryd's files for this pin path in FERRY_STATUS_DIR: the status file, the
 * canary analysis' state file and its command directory (with any command
 * still queued in it). They describe maps that reset removes.
 */
static void remove_status_files(const char *pin_path)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d;

	if (!ferry_status__path(pin_path, path, sizeof(path)))
		unlink(path);
	if (!ferry_canary__state_path(pin_path, path, sizeof(path)))
		unlink(path);
	if (ferry_canary__ctl_dir(pin_path, path, sizeof(path)))
		return;
	d = opendir(path);
	if (d) {
		while ((e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				unlinkat(dirfd(d), e->d_name, 0);
		closedir(d);
	}
	rmdir(path);
}

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
			       "path, and ferryd's status file, canary state file and canary command\n"
			       "directory for it in /run/ferry. Open connections through ferry break.\n"
			       "Asks first unless --yes.\n");
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
	remove_status_files(c->pin_path);
	printf("ferry removed: programs detached, %s deleted\n", c->pin_path);
	return EXIT_OK;
}
