// SPDX-License-Identifier: GPL-2.0-only
/*
 * The deployment-name index, PIN/ferry_svc_names (pins.h): rewritten, at the
 * end of a sync, for the names whose services were written or deleted.
 */
#include <stddef.h>
#include <bpf/btf.h>

#include "kernel/sync_internal.h"

/*
 * The index's BTF, so that bpftool prints a name as a string and the value's
 * fields by name: char[FERRY_NAME_LEN] -> struct ferry_svc_name. Returns a BTF
 * fd, or a negative errno (the map is then created without BTF).
 */
static int names_btf(__u32 *key_type, __u32 *value_type)
{
	struct btf *btf = btf__new_empty();
	int chr, u32, ids, fd = -ENOMEM;

	if (!btf)
		return -ENOMEM;
	chr = btf__add_int(btf, "char", 1, BTF_INT_CHAR);
	u32 = btf__add_int(btf, "__u32", 4, 0);
	if (chr < 0 || u32 < 0)
		goto out_free;
	*key_type = btf__add_array(btf, u32, chr, FERRY_NAME_LEN);
	ids = btf__add_array(btf, u32, u32, FERRY_SVC_NAME_IDS);
	*value_type = btf__add_struct(btf, "ferry_svc_name", sizeof(struct ferry_svc_name));
	if ((int)*key_type < 0 || ids < 0 || (int)*value_type < 0 ||
	    btf__add_field(btf, "nids", u32, 0, 0) ||
	    btf__add_field(btf, "ids", ids, offsetof(struct ferry_svc_name, ids) * 8, 0))
		goto out_free;
	fd = btf__load_into_kernel(btf) ? -errno : dup(btf__fd(btf));
out_free:
	btf__free(btf);
	return fd;
}

/* The index, created and pinned on first use (a data plane of an older ferryd has none). */
static int names_fd(struct ferry_sync *s)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
	char path[PATH_MAX];
	int fd, err, btf_fd;

	if (s->names_fd >= 0)
		return s->names_fd;
	err = ferry_pin__path(path, sizeof(path), s->dp->pin_path, FERRY_MAP_SVC_NAMES);
	if (err)
		return err;
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		struct bpf_map_info info = {};
		__u32 len = sizeof(info);

		/* Another layout (another release): replaced, and every name written. */
		if (bpf_obj_get_info_by_fd(fd, &info, &len) || info.key_size != FERRY_NAME_LEN ||
		    info.value_size != sizeof(struct ferry_svc_name)) {
			close(fd);
			unlink(path);
			fd = -1;
			s->names_all = true;
		}
	}
	if (fd < 0) {
		btf_fd = names_btf(&opts.btf_key_type_id, &opts.btf_value_type_id);
		opts.btf_fd = btf_fd >= 0 ? btf_fd : 0;
		if (btf_fd < 0)
			opts.btf_key_type_id = opts.btf_value_type_id = 0;
		fd = bpf_map_create(BPF_MAP_TYPE_HASH, FERRY_MAP_SVC_NAMES, FERRY_NAME_LEN,
				    sizeof(struct ferry_svc_name), FERRY_MAX_SERVICES, &opts);
		err = -errno;
		if (btf_fd >= 0)
			close(btf_fd); /* the map holds its own reference */
		if (fd < 0)
			return err;
		if (bpf_obj_pin(fd, path)) {
			err = -errno;
			close(fd);
			return err;
		}
	}
	s->names_fd = fd;
	return fd;
}

/* The map's key: the name, zero-padded (a meta's name may fill its field). */
static void name_key(char key[FERRY_NAME_LEN], const char *name)
{
	memset(key, 0, FERRY_NAME_LEN);
	memcpy(key, name, strnlen(name, FERRY_NAME_LEN - 1));
}

void names_touch(struct ferry_sync *s, const char *name)
{
	size_t n = s->names_touched.live;
	char key[FERRY_NAME_LEN];

	name_key(key, name);
	if (idmap_get(&s->names_touched, key))
		return;
	if (n == s->names_touched_cap) {
		size_t cap = n ? n * 2 : 64;
		char(*keys)[FERRY_NAME_LEN] = realloc(s->names_touched_keys, cap * sizeof(*keys));

		if (!keys) {
			s->names_all = true; /* the next sync writes every name */
			return;
		}
		s->names_touched_keys = keys;
		s->names_touched_cap = cap;
	}
	if (idmap_put(&s->names_touched, key, (__u32)n + 1)) {
		s->names_all = true;
		return;
	}
	memcpy(s->names_touched_keys[n], key, sizeof(key));
}

/*
 * An index that may be missing names must not be read: it is unpinned (ferryctl
 * then reads ferry_svc_meta) and the next sync builds it again, every name.
 */
static int names_drop(struct ferry_sync *s, int err)
{
	char path[PATH_MAX];

	if (!ferry_pin__path(path, sizeof(path), s->dp->pin_path, FERRY_MAP_SVC_NAMES))
		unlink(path);
	if (s->names_fd >= 0)
		close(s->names_fd);
	s->names_fd = -1;
	s->names_all = true;
	return err;
}

/*
 * One pass over the services collects the ids of every touched name; names
 * with services are written in one batch, the others deleted.
 */
int sync_names(struct ferry_sync *s)
{
	struct ferry_svc_name *vals;
	struct wqueue q;
	int fd, err = 0;
	__u32 id, done;
	size_t n, i;

	if (!s->names_touched.live && !s->names_all)
		return 0;
	fd = names_fd(s); /* may find another layout: names_all */
	if (fd < 0)
		return names_drop(s, fd);
	if (s->names_all) {
		s->names_all = false;
		for (id = 1; id < s->svc_top; id++)
			if (s->svcs[id].used)
				names_touch(s, s->svcs[id].meta.deployment);
	}
	n = s->names_touched.live;
	if (!n)
		return 0;
	vals = calloc(n, sizeof(*vals));
	if (!vals)
		return names_drop(s, -ENOMEM);
	for (id = 1; id < s->svc_top; id++) {
		const char *name = s->svcs[id].meta.deployment;
		char key[FERRY_NAME_LEN];
		struct ferry_svc_name *v;
		__u32 at = 0;

		if (!s->svcs[id].used)
			continue;
		if (n <= 4) { /* an edit: a compare or four beat hashing every name */
			for (i = 0; i < n && !at; i++)
				if (!strncmp(name, s->names_touched_keys[i], FERRY_NAME_LEN - 1))
					at = (__u32)i + 1;
		} else {
			name_key(key, name);
			at = idmap_get(&s->names_touched, key);
		}
		if (!at)
			continue;
		v = &vals[at - 1];
		if (v->nids < FERRY_SVC_NAME_IDS)
			v->ids[v->nids++] = id;
		else
			v->nids = FERRY_SVC_NAME_MANY;
	}
	wqueue_init(&q, FERRY_NAME_LEN, sizeof(*vals));
	for (i = 0; i < n && !err; i++) {
		if (vals[i].nids)
			err = wqueue_put(&q, s->names_touched_keys[i], &vals[i]);
		else if (bpf_map_delete_elem(fd, s->names_touched_keys[i]) && errno != ENOENT)
			err = -errno;
	}
	done = err ? 0 : wqueue_flush(&q, fd, BPF_ANY, &err);
	if (!err && done < q.n)
		err = -EIO;
	wqueue_free(&q);
	free(vals);
	if (err)
		return names_drop(s, err);
	/* Emptied whole, in place (no allocation to fail): deletions would leave tombstones. */
	memset(s->names_touched.state, 0, s->names_touched.cap);
	s->names_touched.used = s->names_touched.live = 0;
	return 0;
}

int names_mark(struct ferry_sync *s, __u64 generation)
{
	struct ferry_svc_name v = { .ids = { (__u32)generation, (__u32)(generation >> 32) } };
	char key[FERRY_NAME_LEN] = {};
	int fd = names_fd(s);

	if (fd < 0)
		return names_drop(s, fd);
	if (bpf_map_update_elem(fd, key, &v, BPF_ANY))
		return names_drop(s, -errno);
	return 0;
}
