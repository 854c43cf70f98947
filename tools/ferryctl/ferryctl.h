/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ferryctl's shared declarations: the command context, exit codes, the
 * helpers commands share (tools/ferryctl/common.c) and every command's entry
 * point. One file per command; main.c holds the command table.
 */
#ifndef FERRYCTL_H
#define FERRYCTL_H

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <linux/in.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <jansson.h>

#include "kernel/dataplane.h"
#include "telemetry/hist.h"
#include "addr.h"
#include "log.h"
#include "kernel/snapshot.h"
#include "status.h"
#include "kernel/sync.h"

/* Exit codes, documented in --help and docs/operations.md. */
#define EXIT_OK 0
#define EXIT_FAIL 1 /* the command ran and failed (kernel error, nothing attached) */
#define EXIT_USAGE 2 /* bad command line */
#define EXIT_NOT_FOUND 3 /* no such service, predictor or backend */

struct ctl {
	const char *pin_path;
	bool json;
};

/* Set by SIGINT/SIGTERM; refreshing commands (top, trace) stop on it. */
extern volatile sig_atomic_t stop_requested;

void on_stop(int sig);
int match_services(const struct ferry_snapshot *snap, const char *service, __u32 *ids, size_t max);
int match_services_meta(const struct ferry_dp *dp, const char *service, __u32 *ids, size_t max);
struct ferry_dp *open_maps(const struct ctl *c);
struct ferry_dp *open_some_maps(const struct ctl *c, __u64 mask);
struct ferry_snapshot *read_snapshot(const struct ctl *c);
double now_unix(void);
/* ferryd's pid exists and its heartbeat is under 5 s old; age: seconds, -1 without one. */
bool ferryd_alive(const struct ferry_config *cfg, double *age);
__u64 now_mono_ns(void);
void print_json(json_t *root);
int strict_double(const char *text, double *out);
int option_long(const char *cmd, const char *opt, const char *text, long min, long max, long *out);
int option_double(const char *cmd, const char *opt, const char *text, double min, double max,
		  double *out);
bool simple_args(int argc, char **argv, int max_args, const char *usage_text, int *rc);
int cmd_status(struct ctl *c, int argc, char **argv);
int cmd_services(struct ctl *c, int argc, char **argv);
int cmd_flows(struct ctl *c, int argc, char **argv);
int cmd_latency(struct ctl *c, int argc, char **argv);
int cmd_top(struct ctl *c, int argc, char **argv);
int cmd_weights(struct ctl *c, int argc, char **argv);
int cmd_canary(struct ctl *c, int argc, char **argv);
int cmd_trace(struct ctl *c, int argc, char **argv);
int cmd_reset(struct ctl *c, int argc, char **argv);
int cmd_drain_on(struct ctl *c, int argc, char **argv);
int cmd_undrain(struct ctl *c, int argc, char **argv);

#endif /* FERRYCTL_H */
