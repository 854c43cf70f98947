// SPDX-License-Identifier: GPL-2.0-only
/*
 * ferryctl: an SRE's view of ferry and its emergency controls. It reads and
 * writes the pinned maps directly, so it works whether or not ferryd runs.
 * Every read command prints a table, or JSON with -j. The command table
 * below is the one place a command is added.
 */
#include "ferryctl.h"

/* ---------------------------------------------------------------- main */

/*
 * Every command, in --help order: a new command is one entry (and its file).
 * help is the command's lines in the top-level --help, verbatim; NULL when an
 * entry above already describes it (undrain).
 */
static const struct ferryctl_cmd {
	const char *name;
	int (*run)(struct ctl *c, int argc, char **argv);
	const char *help;
} commands[] = {
	{ "status", cmd_status,
	  "  status                       programs and interfaces, map fill, ABI, ferryd\n"
	  "                               liveness, config generation and errors\n" },
	{ "services", cmd_services,
	  "  services                     VIPs, predictors (configured/effective weight),\n"
	  "                               backends with state and new connections/s\n" },
	{ "flows", cmd_flows,
	  "  flows [--service VIP] [--backend ADDR]   the connection table\n"
	  "  flows --flush [SERVICE]      forget flow state (connections continue where the\n"
	  "                               hash points): the way to force rehashing\n" },
	{ "latency", cmd_latency,
	  "  latency [SERVICE]            per-predictor latency histograms, p50..p99.9\n" },
	{ "top", cmd_top,
	  "  top                          refreshing view of share, rate, latency, errors\n" },
	{ "weights", cmd_weights,
	  "  weights SERVICE P=PCT ...    emergency split override (--clear to drop it,\n"
	  "                               --rollback [--to P] for all-to-one)\n" },
	{ "canary", cmd_canary,
	  "  canary [SERVICE]             canary analysis: state, step, last windows side by\n"
	  "                               side (--pause, --resume, --abort, --promote)\n" },
	{ "drain", cmd_drain_on, "  drain BACKEND | undrain BACKEND\n" },
	{ "undrain", cmd_undrain, NULL },
	{ "trace", cmd_trace,
	  "  trace [--service VIP] [--count N]        sampled per-packet decisions\n" },
	{ "reset", cmd_reset,
	  "  reset [--yes]                detach everything and remove every pin\n" },
};

static void usage(FILE *out)
{
	fprintf(out, "Usage: ferryctl [--pin-path PATH] [-j|--json] COMMAND [ARGS]\n"
		     "\n"
		     "Reads and steers ferry's kernel data plane through its pinned maps; works\n"
		     "whether or not ferryd is running.\n"
		     "\n"
		     "Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].help)
			fputs(commands[i].help, out);
	fprintf(out,
		"\n"
		"SERVICE is a VIP ADDR:PORT ([ADDR]:PORT for IPv6) or a deployment\n"
		"namespace/name (all its VIPs). 'ferryctl COMMAND --help' for details.\n"
		"\n"
		"Options:\n"
		"  --pin-path PATH   ferry's bpffs directory (default %s)\n"
		"  -j, --json        JSON output for read commands\n"
		"\n"
		"Exit codes: 0 ok, 1 failed, 2 usage error, 3 no such service/predictor/backend.\n",
		FERRY_PIN_ROOT_DEFAULT);
}

/* Said so, rather than "unknown option": the option exists, its value is missing. */
static int pin_path_missing(void)
{
	fprintf(stderr,
		"ferryctl: --pin-path needs a value: the bpffs directory of ferry's pins, "
		"e.g. --pin-path %s\n",
		FERRY_PIN_ROOT_DEFAULT);
	return EXIT_USAGE;
}

int main(int argc, char **argv)
{
	struct ctl c = { .pin_path = FERRY_PIN_ROOT_DEFAULT };
	const char *cmd;
	int i;

	/* Global options come before the command. */
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-j") || !strcmp(argv[i], "--json")) {
			c.json = true;
		} else if (!strcmp(argv[i], "--pin-path") || !strncmp(argv[i], "--pin-path=", 11)) {
			/* --pin-path=PATH, or --pin-path PATH; an empty one is no value either. */
			if (argv[i][10] == '=')
				c.pin_path = argv[i] + 11;
			else
				c.pin_path = i + 1 < argc ? argv[++i] : "";
			if (!*c.pin_path)
				return pin_path_missing();
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return EXIT_OK;
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "ferryctl: unknown option %s (see --help)\n", argv[i]);
			return EXIT_USAGE;
		} else {
			break;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[i];
	argc -= i;
	argv += i;
	/* -j and --pin-path may also follow the command, as with ip and bpftool. */
	for (i = 1; i < argc; i++) {
		int drop = 0;

		if (!strcmp(argv[i], "-j") || !strcmp(argv[i], "--json")) {
			c.json = true;
			drop = 1;
		} else if (!strcmp(argv[i], "--pin-path")) {
			if (i + 1 >= argc || !*argv[i + 1])
				return pin_path_missing();
			c.pin_path = argv[i + 1];
			drop = 2;
		}
		if (drop) {
			memmove(&argv[i], &argv[i + drop], (argc - i - drop + 1) * sizeof(*argv));
			argc -= drop;
			i--;
		}
	}
	ferry_log_level = FERRY_LOG_WARN;
	libbpf_set_print(NULL);

	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
		if (!strcmp(cmd, commands[k].name))
			return commands[k].run(&c, argc, argv);
	fprintf(stderr, "ferryctl: unknown command '%s' (see --help)\n", cmd);
	return EXIT_USAGE;
}
