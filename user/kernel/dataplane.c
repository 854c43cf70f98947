// SPDX-License-Identifier: GPL-2.0-only
/*
 * Loading, pinning and attaching ferry's BPF objects. The XDP object is loaded
 * first and creates (or reuses) every pinned map; the TC object then reuses
 * the same pins, so both see one set of maps.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <linux/pkt_cls.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kernel/dataplane.h"
#include "kernel/migrate.h"
#include "ferry_sock.skel.h"
#include "ferry_tc.skel.h"
#include "ferry_xdp.skel.h"
#include "log.h"

/* TC filters ferry owns: one handle, one priority per hook kind. */
#define FERRY_TC_HANDLE 0xfe77
#define FERRY_TC_PRIO_FWD 1
#define FERRY_TC_PRIO_REPLY 2

/* Linux 6.6 UAPI; Debian 12's headers (and libbpf 1.1) predate tcx. */
#define FERRY_BPF_TCX_INGRESS 46
#define FERRY_BPF_TCX_EGRESS 47

int ferry_dp__check_bpffs(const char *path)
{
	char dir[PATH_MAX];
	struct statfs st;

	/* The pin directory may not exist yet: walk up to an existing ancestor. */
	snprintf(dir, sizeof(dir), "%s", path);
	while (statfs(dir, &st)) {
		char *slash = strrchr(dir, '/');

		if (errno != ENOENT || !slash || slash == dir) {
			pr_err("--pin-path %s: cannot stat: %s", path, strerror(errno));
			return -errno;
		}
		*slash = '\0';
	}
	if ((unsigned long)st.f_type != BPF_FS_MAGIC) {
		pr_err("--pin-path %s: %s is not on a bpffs mount; mount one with "
		       "'mount -t bpf bpf /sys/fs/bpf' (note: 'ip netns exec' hides the host's "
		       "/sys/fs/bpf: use 'nsenter --net=/run/netns/NAME' instead)",
		       path, dir);
		return -ENOTSUP;
	}
	return 0;
}

/*
 * Refuses pins made by another ABI version (misreading them would misroute),
 * except the version just before this one, which ferryd migrates (*migrate
 * set to it; migrate.c). ferryctl (maps_only) never migrates.
 */
static int check_abi(const char *pin_path, bool maps_only, bool *exists, int *migrate)
{
	char path[PATH_MAX];
	int abi;

	*exists = false;
	*migrate = 0;
	abi = ferry_migrate__pinned_abi(pin_path);
	if (abi == -ENAMETOOLONG)
		return abi;
	if (ferry_pin__path(path, sizeof(path), pin_path, FERRY_MAP_CONFIG))
		return -ENAMETOOLONG;
	if (abi < 0) {
		pr_err("%s: cannot read the pinned config: %s; these pins were made by an "
		       "incompatible ferry. Run 'ferryctl reset --pin-path %s' (drops open "
		       "connections) or use another --pin-path",
		       path, strerror(-abi), pin_path);
		return abi;
	}
	*exists = abi != 0 || !access(path, F_OK);
	if (!abi || abi == FERRY_ABI_VERSION)
		return 0;
	if (abi == FERRY_ABI_VERSION - 1 && !maps_only) {
		*migrate = abi;
		return 0;
	}
	pr_err("%s: pins were made by ferry ABI version %d, this binary speaks %d. %s, or "
	       "'ferryctl reset --pin-path %s' (drops open connections), or use another "
	       "--pin-path",
	       pin_path, abi, FERRY_ABI_VERSION,
	       abi == FERRY_ABI_VERSION - 1 ? "Start this version's ferryd (it migrates them)" :
					      "Run the matching ferryd",
	       pin_path);
	return -EPROTO;
}

/*
 * libbpf_probe_bpf_helper() reports a helper the verifier refuses with
 * "program of this type cannot use helper" as supported (it only knows the
 * "unknown func" wording), and some hardened kernels refuse this one to XDP:
 * so the probe is a load of adjust_meta(ctx, 0). Only the verifier's refusal
 * (EINVAL) says no; another failure (no CAP_BPF, memlock) is the object
 * load's to report.
 */
bool ferry_dp_xdp_meta(void)
{
	const struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_2, .imm = 0 },
		{ .code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_xdp_adjust_meta },
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = XDP_PASS },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, NULL, "GPL", insns,
			       sizeof(insns) / sizeof(insns[0]), NULL);

	if (fd < 0)
		return errno != EINVAL;
	close(fd);
	return true;
}

static __u32 detect_features(void)
{
	LIBBPF_OPTS(bpf_prog_query_opts, q);
	__u32 features = 0;

	if (libbpf_probe_bpf_helper(BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_redirect_neigh, NULL) > 0)
		features |= FERRY_FEAT_REDIRECT_NEIGH;
	if (libbpf_probe_bpf_helper(BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_redirect_peer, NULL) > 0)
		features |= FERRY_FEAT_REDIRECT_PEER;
	/* A query of the tcx hook on lo attaches nothing; kernels before 6.6 reject it. */
	if (!bpf_prog_query_opts(1, FERRY_BPF_TCX_INGRESS, &q))
		features |= FERRY_FEAT_TCX;
	if (ferry_dp_xdp_meta())
		features |= FERRY_FEAT_XDP_META;
	return features;
}

/* Pins that ferryd of this ABI version made only from some release on. */
#define FERRY_M_OPTIONAL ((1ULL << FERRY_M_VIP_BITS) | (1ULL << FERRY_M_BE_BITS))

static int open_pinned_maps(struct ferry_dp *dp, __u64 only)
{
	char path[PATH_MAX];
	int i, err;

	for (i = 0; i < FERRY_M_COUNT; i++) {
		if (only && !(only & (1ULL << i)))
			continue;
		err = ferry_pin__open(dp->pin_path, i, path, sizeof(path));
		if (err == -ENAMETOOLONG)
			return err;
		/* A map an earlier release of this ABI did not pin: ferryctl reads none of them. */
		if (err == -ENOENT && (FERRY_M_OPTIONAL & (1ULL << i)))
			continue;
		if (err < 0) {
			pr_err("%s: %s (is ferryd running, and with this --pin-path?)", path,
			       strerror(-err));
			return err;
		}
		dp->map_fds[i] = err;
	}
	return 0;
}

/*
 * A pinned array that only ever gains entries at its end (ferry_counters:
 * one per reason, new reasons appended) is grown instead of refused, so a
 * rolling update that adds a counter keeps the flows and the totals: a new
 * map of the new size gets the old values and replaces the pin. Programs of
 * the previous ferry keep counting into the old map until they are replaced;
 * those few increments are lost, nothing else.
 */
static int grow_pinned_array(struct bpf_map *map, int old_fd, const struct bpf_map_info *old,
			     const char *path)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = bpf_map__map_flags(map));
	bool percpu = old->type == BPF_MAP_TYPE_PERCPU_ARRAY;
	size_t len = percpu ? (size_t)libbpf_num_possible_cpus() * ((old->value_size + 7) & ~7U) :
			      old->value_size;
	void *value = calloc(1, len);
	int fd, err = 0;

	if (!value)
		return -ENOMEM;
	fd = bpf_map_create(old->type, bpf_map__name(map), old->key_size, old->value_size,
			    bpf_map__max_entries(map), &opts);
	if (fd < 0) {
		err = -errno;
		goto out_free;
	}
	for (__u32 key = 0; key < old->max_entries; key++) {
		if (bpf_map_lookup_elem(old_fd, &key, value) ||
		    bpf_map_update_elem(fd, &key, value, BPF_ANY)) {
			err = -errno;
			goto out_close;
		}
	}
	/* Unlink, then pin: bpffs has no rename-over for pins. */
	if (unlink(path) || bpf_obj_pin(fd, path)) {
		err = -errno;
		goto out_close;
	}
	pr_info("%s: grown from %u to %u entries, values kept", path, old->max_entries,
		bpf_map__max_entries(map));
	err = bpf_map__reuse_fd(map, fd);
out_close:
	close(fd);
out_free:
	free(value);
	return err;
}

/*
 * Points every map of obj at its pin when the pin exists, after checking it
 * has the shape this binary expects. libbpf's own pin reuse compares map
 * flags too, and the kernel adds BPF_F_RDONLY_PROG to devmaps by itself, so a
 * pinned devmap would never match; doing it here also gives a clear error.
 */
static int reuse_pins(struct ferry_dp *dp, struct bpf_object *obj)
{
	struct bpf_map *map;
	int err;

	bpf_object__for_each_map(map, obj) {
		struct bpf_map_info info = {};
		__u32 len = sizeof(info);
		char path[PATH_MAX];
		int fd;

		if (!strncmp(bpf_map__name(map), ".", 1) || strchr(bpf_map__name(map), '.'))
			continue; /* .rodata/.bss: private to the object */
		err = ferry_pin__path(path, sizeof(path), dp->pin_path, bpf_map__name(map));
		if (err)
			return err;
		fd = bpf_obj_get(path);
		if (fd < 0) {
			if (errno == ENOENT)
				continue; /* libbpf creates and pins it */
			err = -errno;
			pr_err("%s: %s", path, strerror(errno));
			return err;
		}
		if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
			err = -errno;
			close(fd);
			return err;
		}
		if (!strcmp(bpf_map__name(map), FERRY_MAP_COUNTERS) &&
		    info.type == bpf_map__type(map) && info.key_size == bpf_map__key_size(map) &&
		    info.value_size == bpf_map__value_size(map) &&
		    info.max_entries < bpf_map__max_entries(map)) {
			err = grow_pinned_array(map, fd, &info, path);
			close(fd);
			if (err) {
				pr_err("%s: cannot grow it to %u entries: %s", path,
				       bpf_map__max_entries(map), strerror(-err));
				return err;
			}
			bpf_map__set_pin_path(map, NULL);
			continue;
		}
		if (info.type != bpf_map__type(map) || info.key_size != bpf_map__key_size(map) ||
		    info.value_size != bpf_map__value_size(map) ||
		    info.max_entries != bpf_map__max_entries(map)) {
			pr_err("%s: pinned map has type %u, key %u B, value %u B, %u entries; this "
			       "ferry expects %u, %u B, %u B, %u. It was made by another ferry "
			       "version: run 'ferryctl reset --pin-path %s' (drops open "
			       "connections) or use another --pin-path",
			       path, info.type, info.key_size, info.value_size, info.max_entries,
			       bpf_map__type(map), bpf_map__key_size(map), bpf_map__value_size(map),
			       bpf_map__max_entries(map), dp->pin_path);
			close(fd);
			return -EPROTO;
		}
		err = bpf_map__reuse_fd(map, fd);
		close(fd);
		if (err)
			return err;
		/* Already pinned: keep libbpf from checking and pinning it again. */
		bpf_map__set_pin_path(map, NULL);
	}
	return 0;
}

/* SO_NETNS_COOKIE (Linux 5.14); 0 makes the socket hooks act in every namespace. */
static __u64 netns_cookie(void)
{
	__u64 cookie = 0;
	socklen_t len = sizeof(cookie);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return 0;
	if (getsockopt(fd, SOL_SOCKET, 71 /* SO_NETNS_COOKIE */, &cookie, &len))
		cookie = 0;
	close(fd);
	return cookie;
}

static int load_objects(struct ferry_dp *dp)
{
	LIBBPF_OPTS(bpf_object_open_opts, open_opts, .pin_root_path = dp->pin_path);
	int i, err;

	dp->xdp = ferry_xdp__open_opts(&open_opts);
	if (!dp->xdp) {
		err = -errno;
		pr_err("cannot open the XDP object: %s", strerror(errno));
		return err;
	}
	dp->xdp->rodata->ferry_xdp_meta = !!(dp->features & FERRY_FEAT_XDP_META);
	if (!dp->xdp->rodata->ferry_xdp_meta)
		pr_warn("this kernel refuses bpf_xdp_adjust_meta to XDP programs: XDP hands "
			"packets it cannot redirect to the stack, which routes them "
			"(FIB_STACK), instead of to ferry's TC program");
	err = reuse_pins(dp, dp->xdp->obj);
	if (err)
		return err;
	err = ferry_xdp__load(dp->xdp);
	if (err) {
		pr_err("cannot load the XDP object with pins in %s: %s%s", dp->pin_path,
		       strerror(-err),
		       dp->created ? "" :
				     " (a pinned map may have an incompatible size or type: "
				     "'ferryctl reset' removes it, dropping open connections)");
		return err;
	}
	dp->tc = ferry_tc__open_opts(&open_opts);
	if (!dp->tc) {
		err = -errno;
		pr_err("cannot open the TC object: %s", strerror(errno));
		return err;
	}
	/* Forward and reply filters may share an interface's ingress: "not mine" lets the next run. */
	dp->tc->rodata->ferry_tc_pass = TC_ACT_UNSPEC;
	dp->tc->rodata->ferry_pod_path = dp->pod_path;
	dp->tc->rodata->ferry_pods = dp->pods;
	err = reuse_pins(dp, dp->tc->obj);
	if (err)
		return err;
	err = ferry_tc__load(dp->tc);
	if (err) {
		pr_err("cannot load the TC object with pins in %s: %s", dp->pin_path,
		       strerror(-err));
		return err;
	}
	dp->sock = ferry_sock__open_opts(&open_opts);
	if (!dp->sock) {
		err = -errno;
		pr_err("cannot open the socket-hook object: %s", strerror(errno));
		return err;
	}
	dp->sock->rodata->ferry_netns_cookie = netns_cookie();
	err = reuse_pins(dp, dp->sock->obj);
	err = err ?: ferry_sock__load(dp->sock);
	if (err) {
		/* Only host-network balancing needs it: the packet path works without. */
		pr_warn("cannot load the socket-hook object (%s): host-network clients will not "
			"be balanced",
			strerror(-err));
		ferry_sock__destroy(dp->sock);
		dp->sock = NULL;
	}
	for (i = 0; i < FERRY_M_COUNT; i++) {
		int fd = bpf_object__find_map_fd_by_name(dp->xdp->obj, ferry_map_names[i]);

		if (fd < 0) {
			pr_err("the XDP object has no map %s", ferry_map_names[i]);
			return -ENOENT;
		}
		dp->map_fds[i] = dup(fd);
		if (dp->map_fds[i] < 0)
			return -errno;
	}
	return 0;
}

int ferry_dp__config_read(const struct ferry_dp *dp, struct ferry_config *cfg)
{
	__u32 key = 0;

	return bpf_map_lookup_elem(dp->map_fds[FERRY_M_CONFIG], &key, cfg) ? -errno : 0;
}

int ferry_dp__config_write(struct ferry_dp *dp, const struct ferry_config *cfg)
{
	__u32 key = 0;

	return bpf_map_update_elem(dp->map_fds[FERRY_M_CONFIG], &key, cfg, BPF_ANY) ? -errno : 0;
}

int ferry_dp__set_hash_seed(struct ferry_dp *dp, __u32 seed, __u32 *previous)
{
	struct ferry_config cfg;
	int err;

	err = ferry_dp__config_read(dp, &cfg);
	if (err)
		return err;
	if (previous)
		*previous = cfg.hash_seed;
	if (cfg.hash_seed == seed)
		return 0;
	cfg.hash_seed = seed;
	return ferry_dp__config_write(dp, &cfg);
}

static int init_config(struct ferry_dp *dp)
{
	struct ferry_config cfg;
	int err;

	err = ferry_dp__config_read(dp, &cfg);
	if (err)
		return err;
	if (cfg.abi_version != FERRY_ABI_VERSION) {
		memset(&cfg, 0, sizeof(cfg));
		cfg.abi_version = FERRY_ABI_VERSION;
		/*
		 * A secret seed, so clients cannot aim connections at one backend.
		 * Random here: ferryd replaces it with the cluster's seed
		 * (ferry_dp__set_hash_seed) when it has one.
		 */
		if (getrandom(&cfg.hash_seed, sizeof(cfg.hash_seed), 0) != sizeof(cfg.hash_seed))
			cfg.hash_seed = (__u32)getpid() * 2654435761u;
		cfg.udp_timeout_s = 60;
		cfg.new_flow_rate = FERRY_NEW_FLOW_RATE_DEFAULT;
	}
	cfg.features = dp->features;
	return ferry_dp__config_write(dp, &cfg);
}

struct ferry_dp *ferry_dp__open(const struct ferry_dp_opts *opts)
{
	const char *pin = opts && opts->pin_path ? opts->pin_path : FERRY_PIN_ROOT_DEFAULT;
	struct ferry_migration *migration = NULL;
	struct ferry_dp *dp;
	bool exists;
	int i, err, migrate;

	if (strlen(pin) >= sizeof(dp->pin_path) - 32 || strchr(pin, '.')) {
		pr_err("--pin-path %s: must be shorter than %zu characters and contain no dots "
		       "(bpffs rejects them)",
		       pin, sizeof(dp->pin_path) - 32);
		errno = EINVAL;
		return NULL;
	}
	dp = calloc(1, sizeof(*dp));
	if (!dp)
		return NULL;
	for (i = 0; i < FERRY_M_COUNT; i++)
		dp->map_fds[i] = -1;
	snprintf(dp->pin_path, sizeof(dp->pin_path), "%s", pin);
	dp->pod_path = opts ? opts->pod_path : FERRY_POD_PATH_STACK;
	dp->pods = opts && opts->pods;

	err = ferry_dp__check_bpffs(pin);
	if (err)
		goto err_free;
	err = check_abi(pin, opts && opts->maps_only, &exists, &migrate);
	if (err)
		goto err_free;
	dp->created = !exists;
	if (migrate) {
		migration = ferry_migrate__begin(pin, migrate);
		if (!migration) {
			err = -errno;
			pr_err("%s: cannot start the migration from ABI %d: %s", pin, migrate,
			       strerror(errno));
			goto err_free;
		}
		dp->created = true; /* the maps are new; what is carried is copied in */
	}

	if (opts && opts->maps_only) {
		if (!exists) {
			pr_err("no ferry data plane at %s (is ferryd running, and with this "
			       "--pin-path?)",
			       pin);
			err = -ENOENT;
			goto err_free;
		}
		err = open_pinned_maps(dp, opts->maps);
		if (err)
			goto err_close;
		return dp;
	}

	if (mkdir(pin, 0700) && errno != EEXIST) {
		err = -errno;
		pr_err("--pin-path %s: cannot create: %s", pin, strerror(errno));
		goto err_free;
	}
	dp->features = detect_features();
	err = load_objects(dp);
	if (err)
		goto err_migration;
	/* Before anything is attached; a failure leaves the helper's clock, logged. */
	if (!ferry_clock__sync(&dp->clock, dp->xdp, dp->tc)) {
		dp->features |= FERRY_FEAT_JIFFIES;
		pr_info("flow clock: jiffies, %llu ns per tick (HZ %llu)",
			(unsigned long long)dp->clock.tick_ns,
			(unsigned long long)((1000000000ULL + dp->clock.tick_ns / 2) /
					     dp->clock.tick_ns));
	}
	if (migration) {
		err = ferry_migrate__finish(migration, dp);
		migration = NULL;
		if (err)
			goto err_close;
	}
	err = init_config(dp);
	if (err) {
		pr_err("cannot initialise %s/%s: %s", pin, FERRY_MAP_CONFIG, strerror(-err));
		goto err_close;
	}
	return dp;

err_migration:
	ferry_migrate__abort(migration);
err_close:
	ferry_dp__close(dp);
	errno = -err;
	return NULL;
err_free:
	free(dp);
	errno = -err;
	return NULL;
}

int ferry_dp__clock_sync(struct ferry_dp *dp)
{
	if (!dp->xdp)
		return -EINVAL;
	return ferry_clock__sync(&dp->clock, dp->xdp, dp->tc);
}

void ferry_dp__close(struct ferry_dp *dp)
{
	int i;

	if (!dp)
		return;
	for (i = 0; i < FERRY_M_COUNT; i++)
		if (dp->map_fds[i] >= 0)
			close(dp->map_fds[i]);
	ferry_sock__destroy(dp->sock);
	ferry_tc__destroy(dp->tc);
	ferry_xdp__destroy(dp->xdp);
	free(dp);
}

/*
 * True when prog_id is one of ferry's programs (by name), so it may be
 * replaced. BPF_PROG_GET_FD_BY_ID wants CAP_SYS_ADMIN, which the DaemonSet
 * does not grant (BPF, NET_ADMIN, PERFMON only): there, @recorded, ferry's
 * own record in the pinned links map that it attached this hook, decides.
 * Without it a new ferryd pod refuses the interfaces the old one attached.
 */
static bool prog_is_ferry(__u32 prog_id, bool recorded)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	bool ours = false;
	int fd;

	fd = bpf_prog_get_fd_by_id(prog_id);
	if (fd < 0)
		return errno == EPERM && recorded;
	if (!bpf_obj_get_info_by_fd(fd, &info, &len))
		ours = !strncmp(info.name, "ferry_", 6);
	close(fd);
	return ours;
}

/*
 * A cgroup hook holds at most 64 programs (the kernel's BPF_CGROUP_MAX_PROGS):
 * every one is looked at. Ferry's own may sit behind other instances' (other
 * namespaces, or ones whose namespace is gone): looking at the first few only
 * missed them, and each restart then added a program instead of swapping
 * its own, until the hook was full (E2BIG).
 */
#define CGROUP_MAX_PROGS 64

/* Ids of ferry's programs attached to a cgroup hook, by program name prefix. */
static int cgroup_ferry_progs(int cg_fd, enum bpf_attach_type type, __u32 *ids, __u32 max)
{
	__u32 all[CGROUP_MAX_PROGS], n = CGROUP_MAX_PROGS, i, k = 0;

	if (bpf_prog_query(cg_fd, type, 0, NULL, all, &n))
		return -errno;
	for (i = 0; i < n && k < max; i++)
		if (prog_is_ferry(all[i], false))
			ids[k++] = all[i];
	return k;
}

/* True when the hook program was loaded for this network namespace (its .rodata says so). */
static bool prog_for_this_netns(int prog_fd)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info), map_ids[8], i;
	__u64 mine = netns_cookie();
	bool match = false;

	info.nr_map_ids = 8;
	info.map_ids = (__u64)(unsigned long)map_ids;
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len))
		return false;
	for (i = 0; i < info.nr_map_ids && i < 8 && !match; i++) {
		const size_t at = offsetof(struct ferry_sock__rodata, ferry_netns_cookie);
		struct bpf_map_info minfo = {};
		__u32 mlen = sizeof(minfo), key = 0;
		int fd = bpf_map_get_fd_by_id(map_ids[i]);
		__u8 *value;

		if (fd < 0)
			continue;
		/*
		 * The whole .rodata (the cookie, then the constant tables the
		 * program reads: over 1 KB): a fixed small buffer skipped it, no
		 * hook was ever this namespace's, and every restart added one.
		 */
		if (!bpf_obj_get_info_by_fd(fd, &minfo, &mlen) && strstr(minfo.name, "rodata") &&
		    minfo.value_size >= at + sizeof(mine) && minfo.value_size <= (1U << 20) &&
		    (value = calloc(1, minfo.value_size))) {
			if (!bpf_map_lookup_elem(fd, &key, value))
				match = !memcmp(value + at, &mine, sizeof(mine));
			free(value);
		}
		close(fd);
	}
	return match;
}

static int attach_cgroup_prog(int cg_fd, struct bpf_program *prog, enum bpf_attach_type type)
{
	LIBBPF_OPTS(bpf_prog_attach_opts, opts, .flags = BPF_F_ALLOW_MULTI);
	__u32 old[CGROUP_MAX_PROGS];
	int n, old_fd, err;

	n = cgroup_ferry_progs(cg_fd, type, old, CGROUP_MAX_PROGS);
	for (int i = 0; i < n; i++) {
		/* An atomic swap of this namespace's hook: never a moment without one. */
		old_fd = bpf_prog_get_fd_by_id(old[i]);
		if (old_fd >= 0 && !prog_for_this_netns(old_fd)) {
			close(old_fd);
			continue;
		}
		if (old_fd >= 0) {
			opts.flags |= BPF_F_REPLACE;
			opts.replace_prog_fd = old_fd;
		}
		err = bpf_prog_attach_opts(bpf_program__fd(prog), cg_fd, type, &opts);
		if (old_fd >= 0)
			close(old_fd);
		return err ? -errno : 0;
	}
	return bpf_prog_attach_opts(bpf_program__fd(prog), cg_fd, type, &opts) ? -errno : 0;
}

const char *ferry_dp__cgroup2_root(void)
{
	static const char *const candidates[] = { "/sys/fs/cgroup", "/sys/fs/cgroup/unified" };
	struct statfs st;
	size_t i;

	for (i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++)
		if (!statfs(candidates[i], &st) && (unsigned long)st.f_type == CGROUP2_SUPER_MAGIC)
			return candidates[i];
	return NULL;
}

int ferry_dp__attach_cgroup(struct ferry_dp *dp, const char *cgroup_path)
{
	struct ferry_link link = { .ifname = "cgroup", .hooks = FERRY_LINK_SOCK };
	__u32 key = 0;
	int cg_fd, err;

	if (!dp->sock)
		return -EOPNOTSUPP;
	if (!cgroup_path)
		cgroup_path = ferry_dp__cgroup2_root();
	if (!cgroup_path) {
		pr_err("--host-clients: no cgroup v2 hierarchy mounted (looked at /sys/fs/cgroup "
		       "and /sys/fs/cgroup/unified); mount one or give --host-clients=PATH");
		return -ENOENT;
	}
	cg_fd = open(cgroup_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg_fd < 0) {
		err = -errno;
		pr_err("--host-clients: %s: %s (a cgroup v2 directory is needed)", cgroup_path,
		       strerror(errno));
		return err;
	}
	err = attach_cgroup_prog(cg_fd, dp->sock->progs.ferry_connect4, BPF_CGROUP_INET4_CONNECT);
	err = err   ?:
		      attach_cgroup_prog(cg_fd, dp->sock->progs.ferry_connect6,
					 BPF_CGROUP_INET6_CONNECT);
	close(cg_fd);
	if (err) {
		pr_err("--host-clients: cannot attach connect() hooks to %s: %s", cgroup_path,
		       strerror(-err));
		return err;
	}
	/* Key 0 is no interface: it records the cgroup hooks for status and reset. */
	return bpf_map_update_elem(dp->map_fds[FERRY_M_LINKS], &key, &link, BPF_ANY) ? -errno : 0;
}

static void detach_cgroup(void)
{
	static const enum bpf_attach_type types[] = { BPF_CGROUP_INET4_CONNECT,
						      BPF_CGROUP_INET6_CONNECT };
	const char *root = ferry_dp__cgroup2_root();
	int cg_fd = root ? open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	__u32 ids[CGROUP_MAX_PROGS];
	size_t t;
	int n, i;

	if (cg_fd < 0)
		return;
	for (t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		n = cgroup_ferry_progs(cg_fd, types[t], ids, CGROUP_MAX_PROGS);
		for (i = 0; i < n; i++) {
			int fd = bpf_prog_get_fd_by_id(ids[i]);

			if (fd < 0)
				continue;
			/* Other ferry instances (other namespaces) keep their hooks. */
			if (prog_for_this_netns(fd))
				bpf_prog_detach2(fd, cg_fd, types[t]);
			close(fd);
		}
	}
	close(cg_fd);
}

/* Sets hooks (and clears clear_hooks), and the reason bits in reason_mask, of ifindex's record. */
static int update_link(struct ferry_dp *dp, int ifindex, __u32 hooks, __u32 clear_hooks,
		       __u32 reason_mask, __u32 reason)
{
	struct ferry_link link = {};
	__u32 key = ifindex;

	bpf_map_lookup_elem(dp->map_fds[FERRY_M_LINKS], &key, &link);
	if (!if_indextoname(ifindex, link.ifname))
		snprintf(link.ifname, sizeof(link.ifname), "if%d", ifindex);
	link.hooks = (link.hooks & ~clear_hooks) | hooks;
	link.reason = (link.reason & ~reason_mask) | (reason & reason_mask);
	return bpf_map_update_elem(dp->map_fds[FERRY_M_LINKS], &key, &link, BPF_ANY) ? -errno : 0;
}

static int record_link(struct ferry_dp *dp, int ifindex, __u32 hooks)
{
	return update_link(dp, ifindex, hooks, 0, 0, 0);
}

int ferry_dp__link_reason(struct ferry_dp *dp, int ifindex, __u32 why)
{
	return update_link(dp, ifindex, 0, 0, 0xff, why);
}

int ferry_dp__mark_pod(struct ferry_dp *dp, int ifindex)
{
	return update_link(dp, ifindex, FERRY_LINK_POD, 0, 0xff, FERRY_LINK_WHY_POD);
}

static int attach_xdp(struct ferry_dp *dp, int ifindex, const char *ifname)
{
	int prog_fd = bpf_program__fd(dp->xdp->progs.ferry_xdp_fwd);
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	struct ferry_link link = {};
	__u32 key = ifindex;
	bool recorded;
	int err;

	recorded = !bpf_map_lookup_elem(dp->map_fds[FERRY_M_LINKS], &key, &link) &&
		   (link.hooks & (FERRY_LINK_XDP_NATIVE | FERRY_LINK_XDP_GENERIC));
	if (!bpf_xdp_query(ifindex, 0, &q) && q.prog_id && !prog_is_ferry(q.prog_id, recorded)) {
		pr_err("--iface %s: XDP program id %u is attached and is not ferry's; detach it "
		       "('ip link set dev %s xdp off') or choose another interface",
		       ifname, q.prog_id, ifname);
		return -EBUSY;
	}
	/* Native mode first; a mode switch needs the old program gone first. */
	if (q.prog_id && q.attach_mode == XDP_ATTACHED_SKB)
		bpf_xdp_detach(ifindex, XDP_FLAGS_SKB_MODE, NULL);
	err = bpf_xdp_attach(ifindex, prog_fd, XDP_FLAGS_DRV_MODE, NULL);
	if (!err)
		return record_link(dp, ifindex, FERRY_LINK_XDP_NATIVE);
	pr_warn("--iface %s: native XDP failed (%s); using generic XDP, which is slower", ifname,
		strerror(-err));
	err = bpf_xdp_attach(ifindex, prog_fd, XDP_FLAGS_SKB_MODE, NULL);
	if (err) {
		pr_err("--iface %s: cannot attach XDP: %s", ifname, strerror(-err));
		return err;
	}
	return record_link(dp, ifindex, FERRY_LINK_XDP_GENERIC);
}

/*
 * tcx (Linux 6.6+): a bpf_link per hook, pinned under PIN/links so that it
 * outlives ferryd; a restart swaps the program inside the link atomically.
 * Programs on one tcx hook run in attach order; ferry's return "not mine"
 * (TC_ACT_UNSPEC, tcx's NEXT) lets the next one run.
 */
static int attach_tcx(struct ferry_dp *dp, int ifindex, const char *ifname,
		      struct bpf_program *prog, bool ingress, __u32 bit)
{
	char dir[sizeof(dp->pin_path) + 8], path[PATH_MAX];
	int link_fd, err;

	snprintf(dir, sizeof(dir), "%s/links", dp->pin_path);
	if (mkdir(dir, 0700) && errno != EEXIST)
		return -errno;
	snprintf(path, sizeof(path), "%s/tcx-%d-%s", dir, ifindex, bpf_program__name(prog));
	link_fd = bpf_obj_get(path);
	if (link_fd >= 0) {
		err = bpf_link_update(link_fd, bpf_program__fd(prog), NULL) ? -errno : 0;
		close(link_fd);
		if (!err)
			return record_link(dp, ifindex, bit | FERRY_LINK_TCX);
		/* The interface went away under the link (ifindex reused): start over. */
		unlink(path);
	}
	link_fd = bpf_link_create(bpf_program__fd(prog), ifindex,
				  ingress ? FERRY_BPF_TCX_INGRESS : FERRY_BPF_TCX_EGRESS, NULL);
	if (link_fd < 0) {
		err = -errno;
		pr_err("%s: cannot attach %s with tcx: %s", ifname, bpf_program__name(prog),
		       strerror(errno));
		return err;
	}
	err = bpf_obj_pin(link_fd, path) ? -errno : 0;
	close(link_fd);
	if (err) {
		pr_err("%s: cannot pin the tcx link at %s: %s", ifname, path, strerror(-err));
		return err;
	}
	return record_link(dp, ifindex, bit | FERRY_LINK_TCX);
}

static int attach_tc(struct ferry_dp *dp, int ifindex, const char *ifname, enum ferry_hook hook)
{
	LIBBPF_OPTS(bpf_tc_hook, tc_hook, .ifindex = ifindex);
	LIBBPF_OPTS(bpf_tc_opts, tc_opts, .handle = FERRY_TC_HANDLE, .flags = BPF_TC_F_REPLACE);
	struct bpf_program *prog;
	__u32 bit;
	int err;

	switch (hook) {
	case FERRY_HOOK_TC_FWD:
		prog = dp->tc->progs.ferry_tc_fwd;
		tc_hook.attach_point = BPF_TC_INGRESS;
		tc_opts.priority = FERRY_TC_PRIO_FWD;
		bit = FERRY_LINK_TC_FWD;
		break;
	case FERRY_HOOK_TC_REPLY_IN:
		prog = dp->tc->progs.ferry_tc_reply_in;
		tc_hook.attach_point = BPF_TC_INGRESS;
		tc_opts.priority = FERRY_TC_PRIO_REPLY;
		bit = FERRY_LINK_TC_REPLY_IN;
		break;
	case FERRY_HOOK_TC_REPLY_EG:
		prog = dp->tc->progs.ferry_tc_reply_eg;
		tc_hook.attach_point = BPF_TC_EGRESS;
		tc_opts.priority = FERRY_TC_PRIO_REPLY;
		bit = FERRY_LINK_TC_REPLY_EG;
		break;
	default:
		return -EINVAL;
	}
	tc_opts.prog_fd = bpf_program__fd(prog);
	if (dp->features & FERRY_FEAT_TCX)
		return attach_tcx(dp, ifindex, ifname, prog, tc_hook.attach_point == BPF_TC_INGRESS,
				  bit);
	err = bpf_tc_hook_create(&tc_hook);
	if (!err)
		bit |= FERRY_LINK_CLSACT_OWNED;
	else if (err != -EEXIST) {
		pr_err("%s: cannot create the clsact qdisc: %s", ifname, strerror(-err));
		return err;
	}
	err = bpf_tc_attach(&tc_hook, &tc_opts);
	if (err) {
		pr_err("%s: cannot attach TC program %s: %s", ifname, bpf_program__name(prog),
		       strerror(-err));
		return err;
	}
	return record_link(dp, ifindex, bit);
}

int ferry_dp__add_tx_port(struct ferry_dp *dp, int ifindex, __u32 why)
{
	__u32 key = ifindex, val = ifindex;

	if (bpf_map_update_elem(dp->map_fds[FERRY_M_TX_PORTS], &key, &val, BPF_ANY))
		return -errno;
	return update_link(dp, ifindex, FERRY_LINK_TX_PORT, 0, 0xff00, why << 8);
}

int ferry_dp__del_tx_port(struct ferry_dp *dp, int ifindex)
{
	struct ferry_link link;
	__u32 key = ifindex;
	int err = 0;

	if (bpf_map_delete_elem(dp->map_fds[FERRY_M_TX_PORTS], &key) && errno != ENOENT)
		err = -errno;
	if (bpf_map_lookup_elem(dp->map_fds[FERRY_M_LINKS], &key, &link))
		return err;
	/* A record that only said "tx port" goes with it. */
	if ((link.hooks & ~FERRY_LINK_TX_PORT) == 0) {
		bpf_map_delete_elem(dp->map_fds[FERRY_M_LINKS], &key);
		return err;
	}
	return update_link(dp, ifindex, 0, FERRY_LINK_TX_PORT, 0xff00, 0) ?: err;
}

int ferry_dp__clear_tx_ports(struct ferry_dp *dp)
{
	__u32 key, next;
	int err = 0;

	/* Deleting while walking: always restart from the first key. */
	while (!bpf_map_get_next_key(dp->map_fds[FERRY_M_TX_PORTS], NULL, &next)) {
		key = next;
		err = ferry_dp__del_tx_port(dp, key);
		if (err)
			return err;
	}
	return 0;
}

bool ferry_dp__is_tx_port(struct ferry_dp *dp, int ifindex, __u32 *why)
{
	struct ferry_link link;
	__u32 key = ifindex, val;

	if (bpf_map_lookup_elem(dp->map_fds[FERRY_M_TX_PORTS], &key, &val))
		return false;
	if (why)
		*why = bpf_map_lookup_elem(dp->map_fds[FERRY_M_LINKS], &key, &link) ?
			       FERRY_TX_WHY_NONE :
			       (link.reason >> 8) & 0xff;
	return true;
}

int ferry_dp__detach_xdp(struct ferry_dp *dp, int ifindex)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	struct ferry_link link = {};
	__u32 key = ifindex;
	bool recorded;
	int err;

	recorded = !bpf_map_lookup_elem(dp->map_fds[FERRY_M_LINKS], &key, &link) &&
		   (link.hooks & (FERRY_LINK_XDP_NATIVE | FERRY_LINK_XDP_GENERIC));
	if (bpf_xdp_query(ifindex, 0, &q) || !q.prog_id || !prog_is_ferry(q.prog_id, recorded))
		return recorded ?
			       update_link(dp, ifindex, 0,
					   FERRY_LINK_XDP_NATIVE | FERRY_LINK_XDP_GENERIC, 0, 0) :
			       0;
	err = bpf_xdp_detach(
		ifindex,
		q.attach_mode == XDP_ATTACHED_SKB ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE, NULL);
	if (err)
		return err;
	return update_link(dp, ifindex, 0, FERRY_LINK_XDP_NATIVE | FERRY_LINK_XDP_GENERIC, 0, 0);
}

int ferry_dp__attach(struct ferry_dp *dp, int ifindex, enum ferry_hook hook)
{
	char ifname[IF_NAMESIZE] = "";

	if (!dp->xdp || !dp->tc)
		return -EINVAL;
	if (!if_indextoname(ifindex, ifname))
		return -ENODEV;
	if (hook == FERRY_HOOK_XDP_FWD)
		return attach_xdp(dp, ifindex, ifname);
	return attach_tc(dp, ifindex, ifname, hook);
}

static void detach_link(int ifindex, const struct ferry_link *link)
{
	LIBBPF_OPTS(bpf_tc_hook, tc_hook, .ifindex = ifindex);
	LIBBPF_OPTS(bpf_tc_opts, tc_opts, .handle = FERRY_TC_HANDLE);
	LIBBPF_OPTS(bpf_xdp_query_opts, q);

	if (!bpf_xdp_query(ifindex, 0, &q) && q.prog_id &&
	    prog_is_ferry(q.prog_id,
			  link->hooks & (FERRY_LINK_XDP_NATIVE | FERRY_LINK_XDP_GENERIC)))
		bpf_xdp_detach(ifindex,
			       q.attach_mode == XDP_ATTACHED_SKB ? XDP_FLAGS_SKB_MODE :
								   XDP_FLAGS_DRV_MODE,
			       NULL);
	if (link->hooks & (FERRY_LINK_TC_FWD | FERRY_LINK_TC_REPLY_IN)) {
		tc_hook.attach_point = BPF_TC_INGRESS;
		tc_opts.priority = FERRY_TC_PRIO_FWD;
		bpf_tc_detach(&tc_hook, &tc_opts);
		tc_opts.priority = FERRY_TC_PRIO_REPLY;
		bpf_tc_detach(&tc_hook, &tc_opts);
	}
	if (link->hooks & FERRY_LINK_TC_REPLY_EG) {
		tc_hook.attach_point = BPF_TC_EGRESS;
		tc_opts.priority = FERRY_TC_PRIO_REPLY;
		bpf_tc_detach(&tc_hook, &tc_opts);
	}
	/* Destroying clsact removes every filter on it: only a qdisc ferry created. */
	if (link->hooks & FERRY_LINK_CLSACT_OWNED) {
		tc_hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
		bpf_tc_hook_destroy(&tc_hook);
	}
}

static int remove_tree(const char *path)
{
	struct dirent *de;
	DIR *dir;
	int err = 0;

	dir = opendir(path);
	if (!dir)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(dir))) {
		char child[PATH_MAX];
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(child, sizeof(child), "%s/%s", path, de->d_name);
		if (!lstat(child, &st) && S_ISDIR(st.st_mode))
			err = remove_tree(child) ?: err;
		else if (unlink(child))
			err = -errno;
	}
	closedir(dir);
	if (rmdir(path))
		err = -errno;
	return err;
}

int ferry_dp__reset(const char *pin_path)
{
	struct ferry_link link;
	char path[PATH_MAX];
	__u32 key, next;
	int fd;

	fd = ferry_pin__open(pin_path, FERRY_M_LINKS, path, sizeof(path));
	if (fd == -ENAMETOOLONG)
		return fd;
	if (fd >= 0) {
		void *prev = NULL;

		while (!bpf_map_get_next_key(fd, prev, &next)) {
			key = next;
			prev = &key;
			if (bpf_map_lookup_elem(fd, &key, &link))
				continue;
			if (link.hooks & FERRY_LINK_SOCK)
				detach_cgroup();
			else if (!(link.hooks & FERRY_LINK_TCX))
				detach_link(key, &link);
			else
				detach_link(key, &(struct ferry_link){
							 .hooks = link.hooks &
								  (FERRY_LINK_XDP_NATIVE |
								   FERRY_LINK_XDP_GENERIC) });
			/* tcx links go with their pins, removed below. */
		}
		close(fd);
	}
	return remove_tree(pin_path);
}
