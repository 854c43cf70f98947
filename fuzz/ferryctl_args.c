// SPDX-License-Identifier: GPL-2.0-only
/*
 * Fuzz target: ferryctl's SERVICE and weights argument parsers. The input
 * is a command line (NUL separates arguments):
 *   - the first argument goes to parse_endpoint (VIPs and backends) and,
 *     when it parses, must format back to an address that parses the same;
 *   - it is matched as SERVICE against a snapshot with IPv4, IPv6 and UDP
 *     services (match_services);
 *   - the whole line goes to `ferryctl weights` and `ferryctl drain` with a
 *     pin path where nothing is pinned, so they stop right after parsing;
 *     an accepted weights line must hold only finite percentages from 0
 *     to 100.
 * The parsers are static in ferryctl's source, so this file includes that
 * source whole (FERRYCTL_SRC, its main renamed by the Makefile).
 */
#include "../tools/ferryctl/common.c"
#include "../tools/ferryctl/weights.c"
#include "../tools/ferryctl/drain.c"

#include "fuzz.h"

#define MAX_ARGS 32

static struct ferry_snap_service services[3];
static struct ferry_snapshot snap = { .services = services, .nservices = 3 };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const vips[] = { "198.18.2.1", "2001:db8:2::1", "198.18.2.1" };

	for (int i = 0; i < 3; i++) {
		struct ferry_snap_service *s = &services[i];

		s->id = i + 1;
		s->vip.family = strchr(vips[i], ':') ? FERRY_AF_INET6 : FERRY_AF_INET;
		inet_pton(s->vip.family == FERRY_AF_INET6 ? AF_INET6 : AF_INET, vips[i],
			  s->vip.addr);
		s->vip.port = htons(i == 2 ? 53 : 80);
		s->vip.proto = i == 2 ? IPPROTO_UDP : IPPROTO_TCP;
		snprintf(s->deployment, sizeof(s->deployment), "seldon/iris%d", i);
	}
	return 0;
}

static void check_endpoint(const char *text)
{
	__be32 addr[4], addr2[4];
	__be16 port, port2;
	__u8 family = 0, family2 = 0;
	char buf[FERRY_ADDR_STRLEN + 8];

	if (ferry_endpoint__parse(text, true, &family, addr, &port))
		return;
	if (family != FERRY_AF_INET && family != FERRY_AF_INET6)
		abort();
	if (!port)
		return;
	ferry_addr__format(addr, port, family, buf, sizeof(buf));
	if (ferry_endpoint__parse(buf, false, &family2, addr2, &port2) || family2 != family ||
	    port2 != port || memcmp(addr, addr2, family == FERRY_AF_INET ? 4 : 16))
		abort();
}

/* Does this option take the next argument as its value (--to X, -t X, -ct X)? */
static bool takes_next(const char *arg)
{
	if (arg[0] != '-' || !arg[1])
		return false;
	if (arg[1] == '-')
		return arg[2] == 't' && !strchr(arg, '=');
	for (const char *c = arg + 1; *c; c++)
		if (*c == 't')
			return !c[1];
	return false;
}

/*
 * What cmd_weights may accept: every PREDICTOR=PERCENT item whose percent is
 * a number is a finite one from 0 to 100 (SERVICE and option values excluded).
 */
static bool weights_valid(int argc, char **argv)
{
	int i = 1;

	/* Options before SERVICE, as getopt's first pass ("+...") takes them. */
	while (i < argc && argv[i][0] == '-' && argv[i][1]) {
		if (!strcmp(argv[i], "--")) {
			i++;
			break;
		}
		i += takes_next(argv[i]) ? 2 : 1;
	}
	for (i++; i < argc; i++) {
		const char *eq = strchr(argv[i], '=');
		char *end;
		double v;

		if (argv[i][0] == '-' || !eq || eq == argv[i] || takes_next(argv[i - 1]))
			continue;
		v = strtod(eq + 1, &end);
		if (end != eq + 1 && !*end && !(isfinite(v) && v >= 0 && v <= 100))
			return false;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl c = { .pin_path = "/nonexistent/ferry-fuzz" };
	char *buf, *copy[MAX_ARGS + 3], *argv[MAX_ARGS + 3];
	__u32 ids[8];
	int argc = 0, rc;
	size_t i;

	buf = malloc(size + 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	argv[argc++] = "weights";
	for (i = 0; i <= size && argc <= MAX_ARGS;) {
		argv[argc++] = buf + i;
		i += strlen(buf + i) + 1;
	}
	argv[argc] = NULL;

	check_endpoint(argv[1]);
	match_services(&snap, argv[1], ids, 8);

	for (int a = 1; a < argc; a++)
		if (!strcmp(argv[a], "-h") || !strncmp(argv[a], "--h", 3) ||
		    (argv[a][0] == '-' && argv[a][1] != '-' && strchr(argv[a], 'h')))
			goto out; /* help text, not a parser */
	/* cmd_weights writes into its arguments ('=' to NUL): give it copies. */
	for (int a = 0; a <= argc; a++)
		copy[a] = a < argc ? strdup(argv[a]) : NULL;
	/*
	 * cmd_weights sets optind = 1, which keeps glibc's position inside an
	 * option cluster: a process runs one command, but here the previous
	 * input's state would leak in. optind = 0 and one call reset it all.
	 */
	optind = 0;
	opterr = 0;
	getopt(1, (char *[]){ "reset", NULL }, "");
	rc = cmd_weights(&c, argc, copy);
	if (rc != EXIT_USAGE && !weights_valid(argc, argv))
		abort();
	for (int a = 0; a < argc; a++)
		free(copy[a]);
	copy[0] = "drain";
	if (argc >= 2 && strcmp(argv[1], "--help") && strcmp(argv[1], "-h"))
		cmd_drain(&c, 2, (char *[]){ "drain", argv[1], NULL }, true);
out:
	free(buf);
	return 0;
}
