// SPDX-License-Identifier: GPL-2.0-only
/*
 * Control-plane probes for `make bench`, reading ferry's pinned maps.
 *
 *   ctl_probe watch --pin-path P --deployment NS/NAME --dir D --file F.yaml
 *                   --variant A.yaml --variant B.yaml [--count N] [--gap-ms MS]
 *     N times: copies the next variant into D (temp file + rename, the way
 *     kubectl-driven tooling replaces a manifest), timestamps the rename, and
 *     polls the service's entry in the pinned ferry_selectors until its
 *     generation moves: the moment the kernel's data plane sees the new
 *     weights (one locked write; no table is built for a weight change).
 *     Also notes when ferry_svc_meta's table_generation moves, if it moves
 *     by then (only a table swap moves it), how long the rename itself took
 *     (the file system's part: "rename_" quantiles) and the latency from the
 *     rename's return, the file written ("written_"). Prints them as JSON.
 *
 *   ctl_probe weights --pin-path P --deployment NS/NAME --ferryctl PATH
 *                     --split A --split B [--count N] [--gap-ms MS] [--child-cpu N]
 *     N times: runs `ferryctl --pin-path P weights NS/NAME SPLIT` with the
 *     next split (e.g. "main=80 canary=20", words split on spaces) and polls
 *     ferry_selectors the same way, from just before the fork: the override
 *     as an operator sees it, process start included. Also times ferryctl's
 *     exit. After each, unpolled: a change back to the other split timed to
 *     ferryctl's exit, then `ferryctl --help` (fork to exit), the floor, a
 *     ferryctl that does nothing; "above_floor" is the first minus the second.
 *     Clears the override at the end.
 *
 *   ctl_probe memory --pin-path P
 *     Sums the kernel memory (fdinfo "memlock", what bpftool reports) of
 *     every map pinned under P, the per-service inner tables included.
 *
 * Polling sleeps POLL_NS between lookups: the resolution is far finer than
 * what is measured. Not finer: on this VM a 20 us poller slowed every process
 * on the other core by a third (ferryctl --help 5.3 ms polled, 3.7 ms not).
 */
#include <dirent.h>
#include <sched.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <jansson.h>
#include <linux/types.h>

#include <linux/bpf.h> /* struct bpf_spin_lock in ferry_maps.h */
#include "ferry_maps.h"

#define POLL_NS 100000 /* 0.1 ms */

#define MAX_COUNT 10000

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int open_pin(const char *dir, const char *name)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = bpf_obj_get(path);
	if (fd < 0)
		fprintf(stderr, "ctl_probe: %s: %s (is ferryd running with this --pin-path?)\n",
			path, strerror(errno));
	return fd;
}

static long long fd_memlock(int fd)
{
	char path[64], line[256];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "memlock: %lld", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* Adds up the memlock of every map pinned in dir; *n counts them. */
static long long dir_memlock(const char *dir, int *n)
{
	long long total = 0, v;
	struct dirent *de;
	DIR *d = opendir(dir);
	int fd;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || de->d_type == DT_DIR)
			continue;
		fd = open_pin(dir, de->d_name);
		if (fd < 0)
			continue;
		v = fd_memlock(fd);
		close(fd);
		if (v < 0)
			continue; /* a pinned program or link, not a map */
		total += v;
		(*n)++;
	}
	closedir(d);
	return total;
}

static int cmd_memory(const char *pin)
{
	char tables_dir[4096];
	long long total, tables;
	int nmaps = 0, ntables = 0;

	total = dir_memlock(pin, &nmaps);
	if (total < 0) {
		fprintf(stderr, "ctl_probe: --pin-path %s: %s\n", pin, strerror(-total));
		return 1;
	}
	/* ferryd pins each service's inner lookup table under tables/ID. */
	snprintf(tables_dir, sizeof(tables_dir), "%s/tables", pin);
	tables = dir_memlock(tables_dir, &ntables);
	if (tables < 0)
		tables = 0;
	printf("{\"maps\":%d,\"memlock_bytes\":%lld,\"inner_tables\":%d,"
	       "\"inner_table_bytes\":%lld}\n",
	       nmaps + ntables, total + tables, ntables, tables);
	return 0;
}

static int find_service(int meta_fd, const char *deployment, __u32 *id)
{
	struct ferry_svc_meta meta;
	__u32 key, next;
	int err;

	for (err = bpf_map_get_next_key(meta_fd, NULL, &next); !err;
	     err = bpf_map_get_next_key(meta_fd, &key, &next)) {
		key = next;
		if (bpf_map_lookup_elem(meta_fd, &key, &meta))
			continue;
		if (!strncmp(meta.deployment, deployment, sizeof(meta.deployment))) {
			*id = key;
			return 0;
		}
	}
	return -ENOENT;
}

static int copy_file(const char *from, const char *to)
{
	char buf[65536];
	ssize_t n;
	int in = open(from, O_RDONLY | O_CLOEXEC), out, err = 0;

	if (in < 0)
		return -errno;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0) {
		err = -errno;
		goto out_in;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, n) != n) {
			err = -EIO;
			break;
		}
	close(out);
out_in:
	close(in);
	return err;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double pct(const double *sorted, int n, double p)
{
	int i = (int)(p / 100.0 * n + 0.5) - 1;

	if (i < 0)
		i = 0;
	if (i >= n)
		i = n - 1;
	return sorted[i];
}

/* Sorts v[n] and puts PREFIXp50_ms and PREFIXp99_ms (and with max PREFIXmax_ms) into out. */
static void put_quantiles(json_t *out, const char *prefix, double *v, int n, bool max)
{
	char key[32];

	if (!n) /* v may be NULL: no qsort(NULL, 0) */
		return;
	qsort(v, n, sizeof(*v), cmp_double);
	snprintf(key, sizeof(key), "%sp50_ms", prefix);
	json_object_set_new(out, key, json_real(pct(v, n, 50)));
	snprintf(key, sizeof(key), "%sp99_ms", prefix);
	json_object_set_new(out, key, json_real(pct(v, n, 99)));
	if (max) {
		snprintf(key, sizeof(key), "%smax_ms", prefix);
		json_object_set_new(out, key, json_real(v[n - 1]));
	}
}

/* The head of both probes' reports: every sample (in order), the counts, then the latencies. */
static json_t *report_new(double *lat, int count, int done, int timeouts)
{
	json_t *out = json_object(), *arr = json_array();

	for (int i = 0; i < done; i++)
		json_array_append_new(arr, json_real(lat[i]));
	json_object_set_new(out, "samples_ms", arr);
	json_object_set_new(out, "changes", json_integer(count));
	json_object_set_new(out, "observed", json_integer(done));
	json_object_set_new(out, "timeouts", json_integer(timeouts));
	put_quantiles(out, "", lat, done, true);
	return out;
}

static int cmd_watch(const char *pin, const char *deployment, const char *dir, const char *file,
		     const char *variants[2], int count, int gap_ms)
{
	double *lat = calloc(count, sizeof(double)), *gen_lat = calloc(count, sizeof(double));
	double *ren_lat = calloc(count, sizeof(double)), *wr_lat = calloc(count, sizeof(double));
	char tmp[4096], dst[4096];
	int tables_fd, meta_fd, i, done = 0, ngen = 0, timeouts = 0, rc = 1;
	json_t *out;
	__u32 id;

	/* The weights live in the predictor stage: a weight change is its generation moving. */
	tables_fd = open_pin(pin, FERRY_MAP_SELECT);
	meta_fd = open_pin(pin, FERRY_MAP_SVC_META);
	if (!lat || !gen_lat || !ren_lat || !wr_lat || tables_fd < 0 || meta_fd < 0)
		goto out_close;
	if (find_service(meta_fd, deployment, &id)) {
		fprintf(stderr, "ctl_probe: --deployment %s: no such service in %s/%s\n",
			deployment, pin, FERRY_MAP_SVC_META);
		goto out_close;
	}
	snprintf(tmp, sizeof(tmp), "%s/.%s.fx-tmp", dir, file);
	snprintf(dst, sizeof(dst), "%s/%s", dir, file);

	for (i = 0; i < count; i++) {
		struct ferry_svc_meta meta;
		__u32 inner0 = 0, inner = 0;
		__u64 gen0 = 0;
		double t0, t_table = -1, t_gen = -1, deadline;
		struct timespec pause = { 0, POLL_NS };

		struct ferry_select sel;

		if (!bpf_map_lookup_elem_flags(tables_fd, &id, &sel, BPF_F_LOCK))
			inner0 = sel.generation;
		if (!bpf_map_lookup_elem(meta_fd, &id, &meta))
			gen0 = meta.table_generation;
		if (copy_file(variants[(i + 1) % 2], tmp)) {
			fprintf(stderr, "ctl_probe: cannot write %s: %s\n", tmp, strerror(errno));
			goto out_close;
		}
		t0 = now_ms();
		if (rename(tmp, dst)) {
			fprintf(stderr, "ctl_probe: rename %s -> %s: %s\n", tmp, dst,
				strerror(errno));
			goto out_close;
		}
		ren_lat[i] = now_ms() - t0;
		deadline = t0 + 5000;
		while (t_table < 0 && now_ms() < deadline) {
			if (t_table < 0 &&
			    !bpf_map_lookup_elem_flags(tables_fd, &id, &sel, BPF_F_LOCK) &&
			    (inner = sel.generation) != inner0)
				t_table = now_ms();
			if (t_gen < 0 && !bpf_map_lookup_elem(meta_fd, &id, &meta) &&
			    meta.table_generation != gen0)
				t_gen = now_ms();
			nanosleep(&pause, NULL);
		}
		if (t_table < 0) {
			timeouts++;
		} else {
			wr_lat[done] = t_table - t0 - ren_lat[i];
			lat[done++] = t_table - t0;
			if (t_gen >= 0)
				gen_lat[ngen++] = t_gen - t0;
		}
		usleep(gap_ms * 1000);
	}

	out = report_new(lat, count, done, timeouts);
	json_object_set_new(out, "meta_changes", json_integer(ngen));
	/* only a table swap moves it: not a weight change */
	put_quantiles(out, "meta_", gen_lat, ngen, false);
	put_quantiles(out, "rename_", ren_lat, count, true);
	put_quantiles(out, "written_", wr_lat, done, true);
	json_dumpf(out, stdout, JSON_COMPACT);
	putchar('\n');
	json_decref(out);
	rc = timeouts ? 1 : 0;
out_close:
	if (tables_fd >= 0)
		close(tables_fd);
	if (meta_fd >= 0)
		close(meta_fd);
	free(lat);
	free(gen_lat);
	free(ren_lat);
	free(wr_lat);
	return rc;
}

/* --child-cpu: where ferryctl runs (ferryd's core), away from this poller's; -1: anywhere. */
static int child_cpu = -1;

/* Runs ferryctl with args (NULL-terminated); returns its pid, or -1. */
static pid_t spawn(char *const *args)
{
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (child_cpu >= 0) {
			cpu_set_t set;

			CPU_ZERO(&set);
			CPU_SET(child_cpu, &set);
			sched_setaffinity(0, sizeof(set), &set);
		}
		if (null >= 0)
			dup2(null, STDOUT_FILENO);
		execv(args[0], args);
		_exit(127);
	}
	return pid;
}

/* Runs args to its exit; returns the time from before the fork, in ms. */
static double spawn_wait(char *const *args)
{
	double t0 = now_ms();
	int status;
	pid_t pid = spawn(args);

	if (pid > 0)
		waitpid(pid, &status, 0);
	return now_ms() - t0;
}

static int split_words(char *text, char **words, int max)
{
	int n = 0;

	for (char *w = strtok(text, " "); w && n < max; w = strtok(NULL, " "))
		words[n++] = w;
	return n;
}

static int cmd_weights(const char *pin, const char *deployment, const char *ferryctl,
		       const char *splits[2], int count, int gap_ms)
{
	double *lat = calloc(count, sizeof(double)), *exit_lat = calloc(count, sizeof(double));
	double *floor_lat = calloc(count, sizeof(double)), *above = calloc(count, sizeof(double));
	/* The floor: a ferryctl that does nothing, fork to exit. */
	char *help[] = { (char *)ferryctl, "--help", NULL };
	int sel_fd, meta_fd, i, done = 0, timeouts = 0, failed = 0, rc = 1;
	json_t *out;
	__u32 id;

	sel_fd = open_pin(pin, FERRY_MAP_SELECT);
	meta_fd = open_pin(pin, FERRY_MAP_SVC_META);
	if (!lat || !exit_lat || !floor_lat || !above || sel_fd < 0 || meta_fd < 0)
		goto out_close;
	if (find_service(meta_fd, deployment, &id)) {
		fprintf(stderr, "ctl_probe: --deployment %s: no such service in %s/%s\n",
			deployment, pin, FERRY_MAP_SVC_META);
		goto out_close;
	}
	for (i = 0; i < count; i++) {
		char text[256], *args[32] = { (char *)ferryctl, "--pin-path", (char *)pin,
					      "weights", (char *)deployment };
		struct timespec pause = { 0, POLL_NS };
		struct ferry_select sel;
		double t0, t_sel = -1, deadline, quiet;
		__u32 gen0 = 0;
		int status;
		pid_t pid;

		/* Polled change to splits[0], quiet change back to splits[1]: both are changes. */
		snprintf(text, sizeof(text), "%s", splits[0]);
		split_words(text, args + 5, 25);
		if (!bpf_map_lookup_elem_flags(sel_fd, &id, &sel, BPF_F_LOCK))
			gen0 = sel.generation;
		t0 = now_ms();
		pid = spawn(args);
		if (pid < 0) {
			perror("ctl_probe: fork");
			goto out_close;
		}
		deadline = t0 + 5000;
		while (t_sel < 0 && now_ms() < deadline) {
			if (!bpf_map_lookup_elem_flags(sel_fd, &id, &sel, BPF_F_LOCK) &&
			    sel.generation != gen0)
				t_sel = now_ms();
			else
				nanosleep(&pause, NULL);
		}
		waitpid(pid, &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			failed++;
		if (t_sel < 0) {
			timeouts++;
			usleep(gap_ms * 1000);
			continue;
		}
		lat[done] = t_sel - t0;
		exit_lat[done] = now_ms() - t0;
		usleep(gap_ms * 1000);
		/*
		 * Unpolled, a 20 us poller on the other core slows every process on this
		 * VM by milliseconds: ferryctl's own time is the quiet change's exit minus
		 * the quiet floor's (an upper bound: the write comes before the exit).
		 */
		snprintf(text, sizeof(text), "%s", splits[1]);
		split_words(text, args + 5, 25);
		quiet = spawn_wait(args);
		usleep(gap_ms * 1000);
		floor_lat[done] = spawn_wait(help);
		above[done] = quiet - floor_lat[done];
		done++;
		usleep(gap_ms * 1000);
	}
	{
		char *args[] = { (char *)ferryctl,   "--pin-path", (char *)pin, "weights",
				 (char *)deployment, "--clear",	   NULL };
		int status;
		pid_t pid = spawn(args);

		if (pid > 0)
			waitpid(pid, &status, 0);
	}
	out = report_new(lat, count, done, timeouts);
	json_object_set_new(out, "ferryctl_failed", json_integer(failed));
	put_quantiles(out, "exit_", exit_lat, done, false);
	put_quantiles(out, "floor_", floor_lat, done, false);
	put_quantiles(out, "above_floor_", above, done, false);
	json_dumpf(out, stdout, JSON_COMPACT);
	putchar('\n');
	json_decref(out);
	rc = timeouts || failed ? 1 : 0;
out_close:
	if (sel_fd >= 0)
		close(sel_fd);
	if (meta_fd >= 0)
		close(meta_fd);
	free(lat);
	free(exit_lat);
	free(floor_lat);
	free(above);
	return rc;
}

static void usage(void)
{
	fprintf(stderr,
		"Usage: ctl_probe watch --pin-path P --deployment NS/NAME --dir D --file F\n"
		"                       --variant A --variant B [--count N] [--gap-ms MS]\n"
		"       ctl_probe weights --pin-path P --deployment NS/NAME --ferryctl PATH\n"
		"                         --split A --split B [--count N] [--gap-ms MS]\n"
		"                         [--child-cpu N]\n"
		"       ctl_probe memory --pin-path P\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = { { "pin-path", required_argument, NULL, 'p' },
						  { "deployment", required_argument, NULL, 'n' },
						  { "dir", required_argument, NULL, 'd' },
						  { "file", required_argument, NULL, 'f' },
						  { "variant", required_argument, NULL, 'v' },
						  { "count", required_argument, NULL, 'c' },
						  { "gap-ms", required_argument, NULL, 'g' },
						  { "ferryctl", required_argument, NULL, 'x' },
						  { "split", required_argument, NULL, 's' },
						  { "child-cpu", required_argument, NULL, 'u' },
						  {} };
	const char *pin = NULL, *deployment = NULL, *dir = NULL, *file = NULL, *variants[2] = {};
	const char *ferryctl = NULL, *splits[2] = {};
	int count = 100, gap_ms = 50, nvar = 0, nsplit = 0, c;

	if (argc < 2) {
		usage();
		return 2;
	}
	optind = 2;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			pin = optarg;
			break;
		case 'n':
			deployment = optarg;
			break;
		case 'd':
			dir = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case 'v':
			if (nvar < 2)
				variants[nvar++] = optarg;
			break;
		case 'c':
			count = atoi(optarg);
			break;
		case 'g':
			gap_ms = atoi(optarg);
			break;
		case 'x':
			ferryctl = optarg;
			break;
		case 's':
			if (nsplit < 2)
				splits[nsplit++] = optarg;
			break;
		case 'u':
			child_cpu = atoi(optarg);
			break;
		default:
			usage();
			return 2;
		}
	}
	if (!pin) {
		usage();
		return 2;
	}
	if (!strcmp(argv[1], "memory"))
		return cmd_memory(pin);
	if (!strcmp(argv[1], "weights")) {
		if (!deployment || !ferryctl || nsplit != 2 || count < 1 || count > MAX_COUNT) {
			usage();
			return 2;
		}
		return cmd_weights(pin, deployment, ferryctl, splits, count, gap_ms);
	}
	if (strcmp(argv[1], "watch") || !deployment || !dir || !file || nvar != 2 || count < 1 ||
	    count > MAX_COUNT) {
		usage();
		fprintf(stderr,
			"ctl_probe watch: --deployment, --dir, --file and two --variant "
			"are required; --count is 1..%d\n",
			MAX_COUNT);
		return 2;
	}
	return cmd_watch(pin, deployment, dir, file, variants, count, gap_ms);
}
