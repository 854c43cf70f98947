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
static bool service_by_name(const char *service)
{
	return strchr(service, '/') && service[0] != '[';
}

int match_services(const struct ferry_snapshot *snap, const char *service, __u32 *ids, size_t max)
{
	struct ferry_vip want = {};
	bool by_name = service_by_name(service);
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

static int cmp_id(const void *a, const void *b)
{
	__u32 x = *(const __u32 *)a, y = *(const __u32 *)b;

	return x < y ? -1 : x > y;
}

/* A service entry as the snapshot lists it, with metadata: its id, or 0. */
static __u32 listed_service(int svc_fd, int meta_fd, const struct ferry_vip *vip)
{
	struct ferry_svc_meta meta;
	struct ferry_service svc;

	if (bpf_map_lookup_elem(svc_fd, vip, &svc) || (svc.flags & FERRY_SVC_F_ADDR_MARKER) ||
	    (!vip->port && !vip->proto) || bpf_map_lookup_elem(meta_fd, &svc.id, &meta) ||
	    memcmp(&meta.vip, vip, sizeof(*vip)))
		return 0;
	return svc.id;
}

/*
 * The services of deployment name from ferryd's name index (pins.h): one
 * lookup, then each id checked against its own entries. 0 when the index
 * cannot settle it (no index, an older ferryd; an index not dated with the
 * generation in force; the name not in it; a deployment with more services
 * than the index holds; an id that does not check out): the caller then
 * reads ferry_svc_meta.
 */
static int match_by_index(const struct ferry_dp *dp, const char *name, __u32 *ids, size_t max)
{
	int svc_fd = dp->map_fds[FERRY_M_SERVICES], meta_fd = dp->map_fds[FERRY_M_SVC_META];
	char path[PATH_MAX], key[FERRY_NAME_LEN] = {};
	struct ferry_config cfg;
	struct ferry_svc_name v;
	int fd, n = 0;
	__u32 i;

	if (strlen(name) >= sizeof(key) ||
	    ferry_pin__path(path, sizeof(path), dp->pin_path, FERRY_MAP_SVC_NAMES))
		return 0;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return 0;
	/* Dated by the generation of the sync that wrote it: not the one in force, not trusted. */
	if (ferry_dp__config_read(dp, &cfg) || bpf_map_lookup_elem(fd, key, &v) ||
	    ((__u64)v.ids[1] << 32 | v.ids[0]) != cfg.generation)
		goto out_close;
	memcpy(key, name, strlen(name));
	if (bpf_map_lookup_elem(fd, key, &v) || !v.nids || v.nids > FERRY_SVC_NAME_IDS ||
	    v.nids > max)
		goto out_close;
	for (i = 0; i < v.nids; i++) {
		struct ferry_svc_meta meta;

		if (bpf_map_lookup_elem(meta_fd, &v.ids[i], &meta) ||
		    strncmp(meta.deployment, name, sizeof(meta.deployment)) ||
		    listed_service(svc_fd, meta_fd, &meta.vip) != v.ids[i]) {
			n = 0;
			goto out_close;
		}
		ids[n++] = v.ids[i];
	}
out_close:
	close(fd);
	return n;
}

/* The services of deployment name: one pass over ferry_svc_meta in batches. */
static int match_deployment(int svc_fd, int meta_fd, const char *name, __u32 *ids, size_t max)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	/* Small batches: a fresh process pays a page fault per 4 KB of buffer. */
	const __u32 chunk = 256;
	struct ferry_svc_meta *metas;
	__u32 *keys, batch = 0, cnt, i;
	bool first = true;
	size_t n = 0;
	int err = 0;

	keys = calloc(chunk, sizeof(*keys));
	metas = calloc(chunk, sizeof(*metas));
	if (!keys || !metas) {
		err = -ENOMEM;
		goto out_free;
	}
	while (!err) {
		cnt = chunk;
		if (bpf_map_lookup_batch(meta_fd, first ? NULL : &batch, &batch, keys, metas, &cnt,
					 &opts))
			err = -errno; /* -ENOENT: the end of the map, cnt entries still valid */
		first = false;
		for (i = 0; i < cnt; i++) {
			if (strncmp(metas[i].deployment, name, sizeof(metas[i].deployment)) ||
			    listed_service(svc_fd, meta_fd, &metas[i].vip) != keys[i])
				continue;
			if (n == max) { /* the snapshot keeps the lowest ids: let it choose */
				err = -E2BIG;
				break;
			}
			ids[n++] = keys[i];
		}
	}
	if (err == -ENOENT)
		err = n ? 0 : -ENOENT;
out_free:
	free(keys);
	free(metas);
	return err ?: (int)n;
}

/*
 * match_services() without a snapshot, on dp's maps (FERRY_M_SERVICES,
 * FERRY_M_SVC_META and FERRY_M_CONFIG open): a VIP is looked up directly (TCP
 * and UDP, the protocols a VIP has), a deployment through ferryd's name index
 * or one pass over the small ferry_svc_meta; only services with their VIP
 * entry and metadata count, ids in ascending order as the snapshot lists
 * them. Prints nothing: any failure (-EINVAL bad SERVICE, -ENOENT no match, a
 * map error) is the caller's cue to take the snapshot path, whose messages
 * and exit codes are the documented ones.
 */
int match_services_meta(const struct ferry_dp *dp, const char *service, __u32 *ids, size_t max)
{
	static const __u8 protos[] = { IPPROTO_TCP, IPPROTO_UDP };
	int meta_fd = dp->map_fds[FERRY_M_SVC_META], svc_fd = dp->map_fds[FERRY_M_SERVICES];
	struct ferry_vip want = {};
	int n = 0;
	size_t i;

	if (!service_by_name(service) &&
	    ferry_endpoint__parse(service, false, &want.family, want.addr, &want.port))
		return -EINVAL;
	if (service_by_name(service)) {
		n = match_by_index(dp, service, ids, max);
		if (!n)
			n = match_deployment(svc_fd, meta_fd, service, ids, max);
	} else {
		for (i = 0; i < sizeof(protos) && n >= 0 && (size_t)n < max; i++) {
			struct ferry_service svc;

			want.proto = protos[i];
			if (bpf_map_lookup_elem(svc_fd, &want, &svc))
				continue;
			ids[n] = listed_service(svc_fd, meta_fd, &want);
			/* An entry without metadata: the snapshot path knows what to say. */
			n = ids[n] ? n + 1 : -ENOENT;
		}
		n = n ?: -ENOENT;
	}
	if (n > 0)
		qsort(ids, n, sizeof(*ids), cmp_id);
	return n;
}

/* ------------------------------------------------------- numeric options */

/*
 * A decimal number that is the whole of text: no sign-less hex ("0x10"),
 * no leading space, no "nan" or "inf" (strtod takes all three, and a
 * prefix, which is how "abc" became 0 and "4294967297" a truncated 1).
 * Ranges are the callers'. Returns 0 or -EINVAL.
 */
int strict_double(const char *text, double *out)
{
	char *end;

	if (!*text || strspn(text, "0123456789.eE+-") != strlen(text))
		return -EINVAL;
	errno = 0;
	*out = strtod(text, &end);
	if (*end || errno || !isfinite(*out))
		return -EINVAL;
	return 0;
}

/*
 * A command's numeric option: the whole value, a number from min to max
 * (whole with integer). A bad one is a usage error that names the command,
 * the option, the value and the range; returns 0 or -EINVAL.
 */
static int option_number(const char *cmd, const char *opt, const char *text, double min, double max,
			 bool integer, double *out)
{
	double v;

	if (strict_double(text, &v) || (integer && v != floor(v)) || v < min || v > max) {
		fprintf(stderr, "ferryctl %s: %s %s: expected a %s from %.15g to %.15g\n", cmd, opt,
			text, integer ? "whole number" : "number", min, max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

int option_long(const char *cmd, const char *opt, const char *text, long min, long max, long *out)
{
	double v;
	int err;

	/* Bounds of 2^53 and less: a double holds every whole number in them exactly. */
	err = option_number(cmd, opt, text, min, max, true, &v);
	if (!err)
		*out = (long)v;
	return err;
}

int option_double(const char *cmd, const char *opt, const char *text, double min, double max,
		  double *out)
{
	return option_number(cmd, opt, text, min, max, false, out);
}

/* The pinned maps under --pin-path; ferryctl never loads a program. */
struct ferry_dp *open_maps(const struct ctl *c)
{
	return open_some_maps(c, 0);
}

/* Only the maps in mask (a bit per enum ferry_map_id; 0: all); the others' fds are -1. */
struct ferry_dp *open_some_maps(const struct ctl *c, __u64 mask)
{
	return ferry_dp__open(&(struct ferry_dp_opts){
		.pin_path = c->pin_path, .maps_only = true, .maps = mask });
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

bool ferryd_alive(const struct ferry_config *cfg, double *age)
{
	*age = cfg->heartbeat_unix_ns ? now_unix() - cfg->heartbeat_unix_ns / 1e9 : -1;
	return cfg->ferryd_pid && !kill(cfg->ferryd_pid, 0) && *age >= 0 && *age < 5;
}
