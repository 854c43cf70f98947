// SPDX-License-Identifier: GPL-2.0-only
/*
 * Helpers every ferryctl command shares: endpoint parsing, VIP formatting,
 * service matching, the snapshot read, clocks, JSON output, simple argument checks.
 */
#include "ferryctl.h"

volatile sig_atomic_t stop_requested;

void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* ------------------------------------------------------------- parsing */

/*
 * SERVICE is a VIP (ADDR:PORT) or a deployment (namespace/name, all its VIPs).
 * Fills ids with matching service ids; returns how many, or -errno.
 */
int match_services(const struct ferry_snapshot *snap, const char *service, __u32 *ids, size_t max)
{
	struct ferry_vip want = {};
	bool by_name = strchr(service, '/') && service[0] != '[';
	size_t i, n = 0;

	if (!by_name &&
	    ferry_endpoint__parse(service, false, &want.family, want.addr, &want.port)) {
		fprintf(stderr,
			"ferryctl: SERVICE '%s': expected a VIP ADDR:PORT ([ADDR]:PORT for IPv6) "
			"or a deployment namespace/name\n",
			service);
		return -EINVAL;
	}
	for (i = 0; i < snap->nservices && n < max; i++) {
		const struct ferry_snap_service *s = &snap->services[i];

		if (by_name ? !strcmp(s->deployment, service) :
			      (s->vip.family == want.family && s->vip.port == want.port &&
			       !memcmp(s->vip.addr, want.addr, 16)))
			ids[n++] = s->id;
	}
	if (!n) {
		fprintf(stderr, "ferryctl: no service %s (see 'ferryctl services')\n", service);
		return -ENOENT;
	}
	return n;
}

/* The pinned maps under --pin-path; ferryctl never loads a program. */
struct ferry_dp *open_maps(const struct ctl *c)
{
	return ferry_dp__open(
		&(struct ferry_dp_opts){ .pin_path = c->pin_path, .maps_only = true });
}

struct ferry_snapshot *read_snapshot(const struct ctl *c)
{
	struct ferry_snapshot *snap = ferry_snapshot__read(c->pin_path);

	if (!snap)
		fprintf(stderr,
			"ferryctl: cannot read ferry's maps under %s: %s (is ferry running on this "
			"node, and with this --pin-path?)\n",
			c->pin_path, strerror(errno));
	return snap;
}

double now_unix(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

__u64 now_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

void print_json(json_t *root)
{
	json_dumpf(root, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
	fputc('\n', stdout);
	json_decref(root);
}

/*
 * For commands without options: prints usage on --help (true: done, exit 0)
 * and rejects anything else but max_args positional arguments.
 */
bool simple_args(int argc, char **argv, int max_args, const char *usage_text, int *rc)
{
	int i, pos = 0;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(usage_text, stdout);
			*rc = EXIT_OK;
			return true;
		}
		if (argv[i][0] == '-' || ++pos > max_args) {
			fprintf(stderr, "ferryctl %s: unexpected argument '%s' (see --help)\n",
				argv[0], argv[i]);
			*rc = EXIT_USAGE;
			return true;
		}
	}
	return false;
}
