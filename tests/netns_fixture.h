/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A network namespace the calling thread works in, for the packet tests and
 * the packet benchmark: made fresh from a list of ip(8) commands, entered
 * with setns() (bpf_fib_lookup in test_run resolves there), and removed on
 * every exit path, signals included.
 */
#ifndef FERRY_NETNS_FIXTURE_H
#define FERRY_NETNS_FIXTURE_H

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct netns_fixture {
	const char *name;
	int orig_ns; /* the namespace to return to; -1 when not entered */
	bool created;
};

#define NETNS_FIXTURE(n)                   \
	{                                  \
		.name = (n), .orig_ns = -1 \
	}

static inline int netns_fixture__sh(const char *cmd)
{
	int rc = system(cmd);

	if (rc)
		fprintf(stderr, "    command failed (%d): %s\n", rc, cmd);
	return rc ? -EIO : 0;
}

/* Removes a leftover namespace of that name, makes it anew, runs cmds. */
static inline int netns_fixture__create(struct netns_fixture *f, const char *const *cmds,
					size_t ncmds)
{
	char cmd[128];
	size_t i;

	snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null", f->name);
	if (system(cmd) == -1)
		return -errno;
	snprintf(cmd, sizeof(cmd), "ip netns add %s", f->name);
	if (netns_fixture__sh(cmd))
		return -EIO;
	f->created = true;
	for (i = 0; i < ncmds; i++)
		if (netns_fixture__sh(cmds[i]))
			return -EIO;
	return 0;
}

/* Moves the calling thread into the namespace. */
static inline int netns_fixture__enter(struct netns_fixture *f)
{
	char path[128];
	int fd, err = 0;

	snprintf(path, sizeof(path), "/run/netns/%s", f->name);
	f->orig_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->orig_ns < 0 || fd < 0 || setns(fd, CLONE_NEWNET)) {
		err = -errno;
		fprintf(stderr, "    entering %s: %s\n", f->name, strerror(errno));
	}
	if (fd >= 0)
		close(fd);
	return err;
}

/* Back to the original namespace, and the fixture's one deleted. */
static inline void netns_fixture__destroy(struct netns_fixture *f)
{
	char cmd[128];

	if (f->orig_ns >= 0) {
		setns(f->orig_ns, CLONE_NEWNET);
		close(f->orig_ns);
		f->orig_ns = -1;
	}
	if (f->created) {
		snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null", f->name);
		if (system(cmd) == -1)
			fprintf(stderr, "    cannot remove namespace %s\n", f->name);
		f->created = false;
	}
}

#endif /* FERRY_NETNS_FIXTURE_H */
