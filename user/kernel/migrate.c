// SPDX-License-Identifier: GPL-2.0-only
/*
 * ABI 2 -> 3 (migrate.h). ABI 3 changed the flow layouts (32-bit flags for
 * atomics, the embryonic handshake check) and split flows into embryonic and
 * confirmed maps; services, tables and backends changed too and are filled
 * by the first sync. Carried, each converted by one function below:
 * - ferry_config: hash seed and settings (the seed keeps the consistent hash
 *   pointing where it did for connections that have no flow entry);
 * - ferry_flows / ferry_rflows: every pinned flow, both halves, as a
 *   CONFIRMED flow of ABI 3: they are connections the old ferry already
 *   carried, so they must survive a SYN flood like any confirmed one;
 * - ferry_svc_meta, ferry_pred_meta (an SRE's weight overrides; pred_meta's
 *   pad became weight_canary, 0 in old pins), ferry_links: user-space
 *   metadata, copied entry by entry (a value that grew is zero-extended).
 * Everything else, including maps this file has never heard of, starts
 * empty: the old pins are moved aside and only the list below is read back.
 *
 * The old programs run on until ferryd attaches the new ones: a connection
 * opened in those few milliseconds has no entry in the new maps and is
 * picked up mid-stream (bpf/lb.bpf.h) where the unchanged hash points.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "kernel/dataplane.h"
#include "kernel/migrate.h"
#include "log.h"

/* Where the old pins wait while the new objects load; removed when done. */
#define OLD_DIR "abi-old"

/* ---------------------------------------------------- ABI 2, frozen here */

struct config_v2 {
	__u32 abi_version;
	__u32 hash_seed;
	__u32 trace_every;
	__u32 udp_timeout_s;
	__u64 generation;
	__u64 sync_unix_ns;
	__u32 ferryd_pid;
	__u32 features;
	__u64 heartbeat_unix_ns;
};
_Static_assert(sizeof(struct config_v2) == 48, "ABI 2 ferry_config");

struct flow_v2 {
	__be32 backend_addr[4];
	__be16 backend_port;
	__u8 family;
	__u8 flags;
	__u32 backend_id;
	__u32 predictor_id;
	__u32 svc_id;
	__u64 created_ns;
	__u64 last_ns;
	__u64 pending_ns;
	__u64 packets;
	__u64 bytes;
	__u64 nh_expires_ns;
	__u32 nh_ifindex;
	__u32 nh_in_ifindex;
	__u8 nh_dmac[6];
	__u8 nh_smac[6];
	__u8 pad[4];
};
_Static_assert(sizeof(struct flow_v2) == 104, "ABI 2 ferry_flow");

struct rflow_v2 {
	__be32 vip_addr[4];
	__be16 vip_port;
	__u8 family;
	__u8 flags;
	__u32 backend_id;
	struct ferry_flow_key fwd; /* unchanged in ABI 3 */
	__u64 packets;
	__u64 bytes;
	__u64 nh_expires_ns;
	__u32 nh_ifindex;
	__u32 nh_in_ifindex;
	__u8 nh_dmac[6];
	__u8 nh_smac[6];
	__u8 pad[4];
};
_Static_assert(sizeof(struct rflow_v2) == 112, "ABI 2 ferry_rflow");

/* ABI 2 flag bits (0..4) kept their meaning in ABI 3. */
#define FLOW_V2_FLAGS 0x1fU
/*
 * The flag bits a moved flow or reply flow keeps: a handshake or request in
 * flight is no longer timed, as its start was not carried.
 */
#define FLOW_V2_CARRIED  \
	(FLOW_V2_FLAGS & \
	 ~(FERRY_FLOW_F_SYN_PENDING | FERRY_FLOW_F_REQ_PENDING | FERRY_FLOW_F_RESP_SEEN))

/* --------------------------------------------------------------- moving */

struct ferry_migration {
	char old_dir[320]; /* pin paths are shorter than 224 bytes (dataplane.c) */
	int abi;
};

static int old_path(char *buf, size_t len, const char *pin_path, const char *name)
{
	int n = snprintf(buf, len, "%s/" OLD_DIR "/%s", pin_path, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* The abi_version word of the config pin at path; 0 when there is none. */
static int config_abi(const char *path)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info), key = 0, abi = 0;
	void *value;
	int fd, err;

	fd = bpf_obj_get(path);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	err = bpf_obj_get_info_by_fd(fd, &info, &len) ? -errno : 0;
	value = err || info.value_size < sizeof(abi) ? NULL : calloc(1, info.value_size);
	if (value && !bpf_map_lookup_elem(fd, &key, value))
		memcpy(&abi, value, sizeof(abi));
	else if (!err)
		err = -EPROTO;
	free(value);
	close(fd);
	return err ?: (int)abi;
}

int ferry_migrate__pinned_abi(const char *pin_path)
{
	char path[PATH_MAX];
	int abi;

	if (ferry_pin__path(path, sizeof(path), pin_path, FERRY_MAP_CONFIG))
		return -ENAMETOOLONG;
	abi = config_abi(path);
	if (abi)
		return abi;
	/* No config: perhaps a migration stopped after moving the pins aside. */
	if (old_path(path, sizeof(path), pin_path, FERRY_MAP_CONFIG))
		return -ENAMETOOLONG;
	return config_abi(path);
}

/* Moves every pin (a file) of pin_path into the old directory; links/ stays. */
static int move_pins_aside(const char *pin_path, const char *old_dir)
{
	char from[PATH_MAX], to[PATH_MAX];
	struct dirent *de;
	struct stat st;
	DIR *dir;
	int err = 0;

	if (mkdir(old_dir, 0700) && errno != EEXIST)
		return -errno;
	dir = opendir(pin_path);
	if (!dir)
		return -errno;
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.' || !strcmp(de->d_name, OLD_DIR) ||
		    !strcmp(de->d_name, "links"))
			continue;
		if (snprintf(from, sizeof(from), "%s/%s", pin_path, de->d_name) >=
			    (int)sizeof(from) ||
		    snprintf(to, sizeof(to), "%s/%s", old_dir, de->d_name) >= (int)sizeof(to) ||
		    lstat(from, &st))
			continue;
		/* Per-service tables (PIN/tables/) go with the rest: the sync rebuilds them. */
		if (rename(from, to)) {
			err = -errno;
			pr_err("%s: cannot move it to %s: %s", from, to, strerror(errno));
			break;
		}
	}
	closedir(dir);
	return err;
}

struct ferry_migration *ferry_migrate__begin(const char *pin_path, int abi)
{
	struct ferry_migration *m;
	char path[PATH_MAX];
	int err;

	if (abi != FERRY_ABI_VERSION - 1) {
		errno = EPROTO;
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->abi = abi;
	snprintf(m->old_dir, sizeof(m->old_dir), "%s/" OLD_DIR, pin_path);
	err = ferry_pin__path(path, sizeof(path), pin_path, FERRY_MAP_CONFIG);
	if (!err && !access(path, F_OK))
		err = move_pins_aside(pin_path, m->old_dir);
	if (err) {
		free(m);
		errno = -err;
		return NULL;
	}
	pr_info("%s: pins of ABI %d moved aside to %s; migrating to ABI %d", pin_path, abi,
		m->old_dir, FERRY_ABI_VERSION);
	return m;
}

/* ------------------------------------------------------------- carrying */

static int open_old(const struct ferry_migration *m, const char *name, __u32 *value_size)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	char path[PATH_MAX];
	int fd;

	if (snprintf(path, sizeof(path), "%s/%s", m->old_dir, name) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		close(fd);
		return -errno;
	}
	*value_size = info.value_size;
	return fd;
}

typedef int (*convert_fn)(const void *key, const void *old, void *out_key, void *out);

/*
 * Copies every entry of the old map name into new_fd, through convert (NULL:
 * the key as is, the value zero-extended or cut to the new size). Returns the
 * number of entries copied, or a negative errno.
 */
static long carry(const struct ferry_migration *m, const char *name, int new_fd, convert_fn convert)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info), old_size;
	void *key = NULL, *next = NULL, *old = NULL, *out = NULL, *out_key = NULL;
	long n = 0;
	int fd, err = 0;
	bool first = true;

	fd = open_old(m, name, &old_size);
	if (fd == -ENOENT)
		return 0; /* nothing of that kind was pinned */
	if (fd < 0)
		return fd;
	if (bpf_obj_get_info_by_fd(new_fd, &info, &len)) {
		err = -errno;
		goto out_close;
	}
	key = calloc(1, 256);
	next = calloc(1, 256);
	old = calloc(1, old_size);
	out = calloc(1, info.value_size);
	out_key = calloc(1, 256);
	if (!key || !next || !old || !out || !out_key) {
		err = -ENOMEM;
		goto out_free;
	}
	while (!bpf_map_get_next_key(fd, first ? NULL : key, next)) {
		first = false;
		memcpy(key, next, 256);
		if (bpf_map_lookup_elem(fd, key, old))
			continue; /* gone since: an LRU eviction by the old programs */
		memset(out, 0, info.value_size);
		if (convert) {
			if (convert(key, old, out_key, out))
				continue;
		} else {
			memcpy(out_key, key, info.key_size);
			memcpy(out, old, old_size < info.value_size ? old_size : info.value_size);
		}
		if (bpf_map_update_elem(new_fd, out_key, out, BPF_ANY)) {
			err = -errno;
			pr_warn("migration: %s: cannot copy an entry: %s", name, strerror(errno));
			break;
		}
		n++;
	}
out_free:
	free(out_key);
	free(out);
	free(old);
	free(next);
	free(key);
out_close:
	close(fd);
	return err ?: n;
}

static int convert_flow(const void *key, const void *old, void *out_key, void *out)
{
	const struct flow_v2 *o = old;
	struct ferry_flow *f = out;

	memcpy(out_key, key, sizeof(struct ferry_flow_key));
	memcpy(f->backend_addr, o->backend_addr, sizeof(f->backend_addr));
	f->backend_port = o->backend_port;
	f->family = o->family;
	f->flags = o->flags & FLOW_V2_CARRIED;
	f->backend_id = o->backend_id;
	f->predictor_id = o->predictor_id;
	f->svc_id = o->svc_id;
	f->created_ns = o->created_ns;
	f->last_ns = o->last_ns;
	f->packets = o->packets;
	f->bytes = o->bytes;
	/* The next-hop cache is left empty: the first packet looks the route up. */
	return 0;
}

static int convert_rflow(const void *key, const void *old, void *out_key, void *out)
{
	const struct rflow_v2 *o = old;
	struct ferry_rflow *r = out;

	memcpy(out_key, key, sizeof(struct ferry_flow_key));
	memcpy(r->vip_addr, o->vip_addr, sizeof(r->vip_addr));
	r->vip_port = o->vip_port;
	r->family = o->family;
	r->flags = o->flags & FLOW_V2_CARRIED;
	r->backend_id = o->backend_id;
	r->fwd = o->fwd;
	r->packets = o->packets;
	r->bytes = o->bytes;
	return 0;
}

static int carry_config(const struct ferry_migration *m, struct ferry_dp *dp)
{
	struct ferry_config cfg = {};
	struct config_v2 old;
	__u32 size, key = 0;
	int fd, err;

	fd = open_old(m, FERRY_MAP_CONFIG, &size);
	if (fd < 0)
		return fd;
	err = size == sizeof(old) && !bpf_map_lookup_elem(fd, &key, &old) ? 0 : -EPROTO;
	close(fd);
	if (err)
		return err;
	cfg.abi_version = FERRY_ABI_VERSION;
	cfg.hash_seed = old.hash_seed;
	cfg.trace_every = old.trace_every;
	cfg.udp_timeout_s = old.udp_timeout_s;
	cfg.generation = old.generation;
	cfg.new_flow_rate = FERRY_NEW_FLOW_RATE_DEFAULT;
	return ferry_dp__config_write(dp, &cfg);
}

/* Removes the old directory and the pins in it (and in its tables/). */
static void remove_old(const char *dir_path)
{
	char child[PATH_MAX];
	struct dirent *de;
	struct stat st;
	DIR *dir;

	dir = opendir(dir_path);
	if (!dir)
		return;
	while ((de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (snprintf(child, sizeof(child), "%s/%s", dir_path, de->d_name) >=
		    (int)sizeof(child))
			continue;
		if (!lstat(child, &st) && S_ISDIR(st.st_mode))
			remove_old(child);
		else
			unlink(child);
	}
	closedir(dir);
	rmdir(dir_path);
}

int ferry_migrate__finish(struct ferry_migration *m, struct ferry_dp *dp)
{
	static const struct {
		enum ferry_map_id id;
		convert_fn convert;
	} carried[] = {
		{ FERRY_M_FLOWS, convert_flow }, { FERRY_M_RFLOWS, convert_rflow },
		{ FERRY_M_SVC_META, NULL },	 { FERRY_M_PRED_META, NULL },
		{ FERRY_M_LINKS, NULL },
	};
	long n;
	int err;
	size_t i;

	err = carry_config(m, dp);
	if (err) {
		pr_err("migration: %s/%s: cannot carry the config: %s", m->old_dir,
		       FERRY_MAP_CONFIG, strerror(-err));
		goto out;
	}
	for (i = 0; i < sizeof(carried) / sizeof(carried[0]); i++) {
		const char *name = ferry_map_names[carried[i].id];

		n = carry(m, name, dp->map_fds[carried[i].id], carried[i].convert);
		if (n < 0) {
			err = n;
			pr_err("migration: %s/%s: %s", m->old_dir, name, strerror(-err));
			goto out;
		}
		pr_info("migration: %s: %ld entries carried", name, n);
	}
	remove_old(m->old_dir);
	pr_info("%s: migrated from ABI %d to %d", dp->pin_path, m->abi, FERRY_ABI_VERSION);
out:
	free(m);
	return err;
}

void ferry_migrate__abort(struct ferry_migration *m)
{
	free(m);
}
