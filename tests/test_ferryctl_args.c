// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests for ferryctl's command lines: every numeric option parsed
 * strictly (whole string, range, no NaN or inf) as a usage error (exit 2)
 * that names the option and the value, a predictor named twice in weights
 * refused, --pin-path without a value said so; and that top without pins
 * exits 1.
 * The commands run against a pin path where nothing is pinned, so a line
 * that parses stops with exit 1 at the maps and one that does not with 2
 * before them; nothing is attached, unprivileged. ferryctl's command
 * sources are included whole (as fuzz/ferryctl_args.c does), main renamed.
 */
#include "../tools/ferryctl/common.c"
#include "../tools/ferryctl/canary.c"
#include "../tools/ferryctl/drain.c"
#include "../tools/ferryctl/flows.c"
#include "../tools/ferryctl/latency.c"
#include "../tools/ferryctl/reset.c"
#include "../tools/ferryctl/services.c"
#include "../tools/ferryctl/status.c"
#include "../tools/ferryctl/top.c"
#include "../tools/ferryctl/trace.c"
#include "../tools/ferryctl/weights.c"
#define main ferryctl_main
#include "../tools/ferryctl/main.c"
#undef main

#include <sys/wait.h>

#include "testing.h"

#define SUITE "ferryctl_args"
#define NO_PINS "/nonexistent/ferry-args-test"
#define MAX_ARGS 16

static char err_text[4096];

/*
 * Runs one command (words split on spaces, argv[0] the command) with
 * ferryctl's context in a child, as ferryctl runs one command per process
 * (getopt's state is per process) and so that a hang is a failure (10 s);
 * returns its exit code, its stderr in err_text.
 */
static int run_cmd(int (*cmd)(struct ctl *, int, char **), const char *line)
{
	char buf[512], *argv[MAX_ARGS + 1] = {}, *tok, *save;
	FILE *f = tmpfile();
	int argc = 0, status;
	size_t len;
	pid_t pid;

	snprintf(buf, sizeof(buf), "%s", line);
	for (tok = strtok_r(buf, " ", &save); tok && argc < MAX_ARGS;
	     tok = strtok_r(NULL, " ", &save))
		argv[argc++] = tok;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		struct ctl c = { .pin_path = NO_PINS };

		dup2(fileno(f), STDERR_FILENO);
		alarm(10);
		_exit(cmd ? cmd(&c, argc, argv) : ferryctl_main(argc, argv));
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		status = -1;
	rewind(f);
	len = fread(err_text, 1, sizeof(err_text) - 1, f);
	err_text[len] = '\0';
	fclose(f);
	if (WIFSIGNALED(status))
		fprintf(stderr, "    '%s' killed by signal %d (a hang, if 14)\n", line,
			WTERMSIG(status));
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A usage error (2) whose message holds every one of want (NULL-terminated). */
static bool usage_error(int (*cmd)(struct ctl *, int, char **), const char *line, ...)
{
	const char *want;
	va_list ap;
	int rc = run_cmd(cmd, line);

	if (!ASSERT_EQ(rc, EXIT_USAGE, line))
		return false;
	va_start(ap, line);
	while ((want = va_arg(ap, const char *)))
		if (!ASSERT_STRSTR(err_text, want, line))
			break;
	va_end(ap);
	return !test_state.cur_failed;
}

static void test_top_numbers(void)
{
	usage_error(cmd_top, "top --iterations abc", "--iterations abc", "from 1 to", NULL);
	usage_error(cmd_top, "top --iterations -3", "--iterations -3", NULL);
	usage_error(cmd_top, "top --iterations 0", "--iterations 0", NULL);
	usage_error(cmd_top, "top --iterations 1.5", "--iterations 1.5", NULL);
	usage_error(cmd_top, "top --iterations 5x", "--iterations 5x", NULL);
	usage_error(cmd_top, "top --iterations 99999999999999999999", "--iterations", NULL);
	usage_error(cmd_top, "top --iterations 1 --interval nan", "--interval nan",
		    "from 0.1 to 3600", NULL);
	usage_error(cmd_top, "top --iterations 1 --interval inf", "--interval inf", NULL);
	usage_error(cmd_top, "top --iterations 1 --interval 1e9", "--interval 1e9", NULL);
	usage_error(cmd_top, "top --interval abc", "--interval abc", NULL);
	usage_error(cmd_top, "top --interval 0.01", "--interval 0.01", NULL);
	usage_error(cmd_top, "top --interval 0x10", "--interval 0x10", NULL);
	usage_error(cmd_top, "top --interval -1", "--interval -1", NULL);
}

/* Lines that parse get as far as the pins: none here, so exit 1 (the docs' "could not"). */
static void test_top_no_pins(void)
{
	ASSERT_EQ(run_cmd(cmd_top, "top --iterations 1"), EXIT_FAIL, "top without pins");
	ASSERT_EQ(run_cmd(cmd_top, "top --iterations 1000000 --interval 0.1"), EXIT_FAIL,
		  "top at its bounds, without pins");
	ASSERT_EQ(run_cmd(cmd_top, "top --interval 3600 --iterations 2"), EXIT_FAIL,
		  "top at its bounds, without pins");
}

static void test_trace_numbers(void)
{
	usage_error(cmd_trace, "trace --count abc", "--count abc", "from 1 to", NULL);
	usage_error(cmd_trace, "trace --count -5", "--count -5", NULL);
	usage_error(cmd_trace, "trace --count 0", "--count 0", NULL);
	usage_error(cmd_trace, "trace --count 5abc", "--count 5abc", NULL);
	usage_error(cmd_trace, "trace --every 4294967297", "--every 4294967297",
		    "from 1 to 4294967295", NULL);
	usage_error(cmd_trace, "trace --every 0", "--every 0", NULL);
	usage_error(cmd_trace, "trace --every nan", "--every nan", NULL);
	usage_error(cmd_trace, "trace --every 10junk", "--every 10junk", NULL);
	ASSERT_EQ(run_cmd(cmd_trace, "trace --count 5 --every 4294967295"), EXIT_FAIL,
		  "trace at its bounds, without pins");
}

static void test_weights_twice(void)
{
	usage_error(cmd_weights, "weights 198.18.100.10:8000 main=100 main=0", "main=100", "main=0",
		    "named twice", NULL);
	usage_error(cmd_weights, "weights 198.18.100.10:8000 main=60 main=40", "main", "twice",
		    NULL);
	usage_error(cmd_weights, "weights 198.18.100.10:8000 main=50 canary=0 main=50", "main",
		    "twice", NULL);
	usage_error(cmd_weights, "weights 198.18.100.10:8000 main=0x32 canary=50", "main=0x32",
		    NULL);
	usage_error(cmd_weights, "weights 198.18.100.10:8000 main=nan canary=100", "main=nan",
		    NULL);
	ASSERT_EQ(run_cmd(cmd_weights, "weights 198.18.100.10:8000 main=60 canary=40"), EXIT_FAIL,
		  "distinct predictors, without pins");
}

static void test_pin_path_value(void)
{
	usage_error(NULL, "ferryctl --pin-path", "--pin-path needs a value", NULL);
	usage_error(NULL, "ferryctl --pin-path=", "--pin-path needs a value", NULL);
	usage_error(NULL, "ferryctl status --pin-path", "--pin-path needs a value", NULL);
}

int main(int argc, char **argv)
{
	test__main_init(argc, argv);
	RUN_TEST(SUITE, test_top_numbers);
	RUN_TEST(SUITE, test_top_no_pins);
	RUN_TEST(SUITE, test_trace_numbers);
	RUN_TEST(SUITE, test_weights_twice);
	RUN_TEST(SUITE, test_pin_path_value);
	return test__summary();
}
