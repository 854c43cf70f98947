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

/* "ADDR:PORT", "[ADDR6]:PORT", or without ":PORT" when port_optional. */
int parse_endpoint(const char *text, bool port_optional, __u8 *family, __be32 addr[4], __be16 *port)
{
	char host[64];
	const char *p = NULL, *end;
	unsigned long n;
	char *e;

	memset(addr, 0, 16);
	*port = 0;
	if (text[0] == '[') {
		end = strchr(text, ']');
		if (!end || (size_t)(end - text - 1) >= sizeof(host))
			return -EINVAL;
		memcpy(host, text + 1, end - text - 1);
		host[end - text - 1] = '\0';
		if (end[1] == ':')
			p = end + 2;
		else if (end[1])
			return -EINVAL;
		*family = FERRY_AF_INET6;
		if (inet_pton(AF_INET6, host, addr) != 1)
			return -EINVAL;
	} else {
		const char *colon = strchr(text, ':');

		if (colon && strchr(colon + 1, ':')) {
			/* A bare IPv6 address: no port possible. */
			if (inet_pton(AF_INET6, text, addr) != 1)
				return -EINVAL;
			*family = FERRY_AF_INET6;
		} else {
			size_t len = colon ? (size_t)(colon - text) : strlen(text);

			if (len >= sizeof(host))
				return -EINVAL;
			memcpy(host, text, len);
			host[len] = '\0';
			if (inet_pton(AF_INET, host, addr) != 1)
				return -EINVAL;
			*family = FERRY_AF_INET;
			p = colon ? colon + 1 : NULL;
		}
	}
	if (!p)
		return port_optional ? 0 : -EINVAL;
	errno = 0;
	n = strtoul(p, &e, 10);
	if (errno || *e || !*p || n == 0 || n > 65535)
		return -EINVAL;
	*port = htons((__u16)n);
	return 0;
}

const char *fmt_vip(const struct ferry_vip *vip, char *buf, size_t len)
{
	ferry_addr__format(vip->addr, vip->port, vip->family, buf, len);
	if (vip->proto == IPPROTO_UDP)
		strncat(buf, "/udp", len - strlen(buf) - 1);
	return buf;
}

/*
 * SERVICE is a VIP (ADDR:PORT) or a deployment (namespace/name, all its VIPs).
 * Fills ids with matching service ids; returns how many, or -errno.
 */
int match_services(const struct ferry_snapshot *snap, const char *service, __u32 *ids, size_t max)
{
	struct ferry_vip want = {};
	bool by_name = strchr(service, '/') && service[0] != '[';
	size_t i, n = 0;

	if (!by_name && parse_endpoint(service, false, &want.family, want.addr, &want.port)) {
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
