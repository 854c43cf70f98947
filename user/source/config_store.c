// SPDX-License-Identifier: GPL-2.0-only
/*
 * The store: objects from files (parsed-file cache, load_dir) and from the
 * Kubernetes API (put, delete); the last good version of each object stays.
 */
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include "source/config_internal.h"

/* ----------------------------------------------------------------- store */

struct ferry_config_store *ferry_config_store__new(void)
{
	return calloc(1, sizeof(struct ferry_config_store));
}

void ferry_config_store__free(struct ferry_config_store *store)
{
	if (!store)
		return;
	for (size_t i = 0; i < store->nentries; i++)
		entry_free(store->entries[i]);
	free(store->entries);
	free(store->sums);
	free(store->load_errs.v);
	free(store->put_errs.v);
	free(store->build_errs.v);
	free(store->owners);
	str_set_free(&store->noted_novip);
	str_set_free(&store->noted_shadow);
	str_set_free(&store->noted_redist);
	str_set_free(&store->noted_waitsvc);
	str_set_free(&store->noted_nolabel);
	str_set_free(&store->noted_family);
	str_set_free(&store->dirty_deps);
	str_set_free(&store->dirty_refs);
	for (size_t i = 0; i < store->nparsed; i++) {
		free(store->parsed[i].path);
		ferry_manifest__put(store->parsed[i].mf);
	}
	free(store->parsed);
	json_decref(store->parsed_index);
	free(store);
}

static bool same_file(const struct parsed_file *pf, const struct stat *st)
{
	return pf->dev == st->st_dev && pf->ino == st->st_ino && pf->size == st->st_size &&
	       pf->mtime.tv_sec == st->st_mtim.tv_sec && pf->mtime.tv_nsec == st->st_mtim.tv_nsec &&
	       pf->ctime.tv_sec == st->st_ctim.tv_sec && pf->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

/*
 * One object of a file validated ahead: object_parse()'s result, and where
 * its errors end in the file's list (the store takes them in this order).
 */
struct preobj {
	int ret;
	struct entry *e; /* ret 1 */
	char *key; /* ret -EINVAL: the rejected object's key, when it has one */
	size_t errs_end;
};

/*
 * A file of a whole-directory load, statted, parsed and its objects
 * validated ahead (parse_ahead) by two threads: each object alone, as
 * object_parse() sees it. What needs the other objects (an object defined
 * twice) stays on one thread, in name order (load_file).
 */
struct preparsed {
	struct stat st;
	bool statted; /* st is the file's */
	int stat_errno; /* !statted: why */
	bool want; /* not in the parse cache: parse it ahead */
	bool done; /* mf, err and errnum are the parse's result */
	bool validated; /* objs and errs are the validation of mf */
	struct ferry_manifest *mf;
	struct ferry_config_error err;
	int errnum;
	struct preobj *objs;
	size_t nobjs;
	struct error_list errs; /* the file's errors, as validation met them */
};

static void preparsed_clear(struct preparsed *pp)
{
	for (size_t i = 0; i < pp->nobjs; i++) {
		if (pp->objs[i].e)
			entry_free(pp->objs[i].e);
		free(pp->objs[i].key);
	}
	free(pp->objs);
	free(pp->errs.v);
	pp->objs = NULL;
	pp->nobjs = 0;
	pp->errs = (struct error_list){};
	pp->validated = false;
}

/* The parse of path: taken from pp when it was parsed ahead, else done now. */
static struct ferry_manifest *load_one(const char *path, struct preparsed *pp,
				       struct ferry_config_error *perr)
{
	struct ferry_manifest *mf;

	if (!pp || !pp->done)
		return ferry_manifest__load(path, perr);
	mf = pp->mf;
	pp->mf = NULL;
	pp->done = false;
	if (!mf) {
		*perr = pp->err;
		errno = pp->errnum;
	}
	return mf;
}

/* The parse cache's entry for path, or NULL. */
static struct parsed_file *cache_find(struct ferry_config_store *store, const char *path)
{
	json_t *at = store->parsed_index ? json_object_get(store->parsed_index, path) : NULL;
	size_t i = at ? (size_t)json_integer_value(at) : store->nparsed;

	return i < store->nparsed && !strcmp(store->parsed[i].path, path) ? &store->parsed[i] :
									    NULL;
}

/*
 * The file's parsed manifest, from the cache when its stat is unchanged. pp:
 * the file's stat and parse, taken ahead (NULL: stat and parse now).
 */
static struct ferry_manifest *parse_cached(struct ferry_config_store *store, const char *path,
					   struct preparsed *pp, struct ferry_config_error *perr,
					   struct parsed_file **pfp)
{
	struct parsed_file *pf = NULL;
	struct ferry_manifest *mf;
	struct stat st;

	*pfp = NULL;
	if (pp && pp->statted)
		st = pp->st; /* the stat before the read: a later write is seen by the next load */
	else if (stat(path, &st))
		return load_one(path, pp, perr);
	if (!store->parsed_index)
		store->parsed_index = json_object();
	pf = cache_find(store, path);
	if (pf && same_file(pf, &st)) {
		pf->seen = store->load_gen;
		pf->hit = true;
		*pfp = pf;
		return ferry_manifest__get(pf->mf);
	}
	mf = load_one(path, pp, perr);
	if (!mf)
		return NULL;
	if (!pf) {
		if (store->nparsed == store->parsed_cap) {
			size_t cap = store->parsed_cap ? store->parsed_cap * 2 : 64;
			struct parsed_file *more = realloc(store->parsed, cap * sizeof(*more));

			if (!more)
				return mf; /* not cached: parsed again next time */
			store->parsed = more;
			store->parsed_cap = cap;
		}
		pf = &store->parsed[store->nparsed];
		memset(pf, 0, sizeof(*pf));
		pf->path = strdup(path);
		if (!pf->path || !store->parsed_index ||
		    json_object_set_new(store->parsed_index, path,
					json_integer((json_int_t)store->nparsed))) {
			free(pf->path);
			return mf;
		}
		store->nparsed++;
	}
	ferry_manifest__put(pf->mf);
	pf->mf = ferry_manifest__get(mf);
	pf->dev = st.st_dev;
	pf->ino = st.st_ino;
	pf->size = st.st_size;
	pf->mtime = st.st_mtim;
	pf->ctime = st.st_ctim;
	pf->seen = store->load_gen;
	pf->hit = false;
	pf->clean = false;
	*pfp = pf;
	return mf;
}

/* Forgets files the last load did not find (deleted, or no longer parsing). */
static void prune_parsed(struct ferry_config_store *store)
{
	size_t i, k = 0;

	for (i = 0; i < store->nparsed; i++) {
		if (store->parsed[i].seen == store->load_gen) {
			store->parsed[k++] = store->parsed[i];
			continue;
		}
		free(store->parsed[i].path);
		ferry_manifest__put(store->parsed[i].mf);
	}
	if (k != store->nparsed && store->parsed_index) {
		/* indices moved: the index is rebuilt (only when a file went away) */
		json_object_clear(store->parsed_index);
		for (i = 0; i < k; i++)
			json_object_set_new(store->parsed_index, store->parsed[i].path,
					    json_integer((json_int_t)i));
	}
	store->nparsed = k;
}

bool ferry_config__manifest_name(const char *name)
{
	size_t n = strlen(name);

	if (name[0] == '.') /* ConfigMap volumes keep ..data and friends beside the files */
		return false;
	return (n > 5 && !strcmp(name + n - 5, ".yaml")) ||
	       (n > 4 && !strcmp(name + n - 4, ".yml")) ||
	       (n > 5 && !strcmp(name + n - 5, ".json"));
}

/* Whether e is one of the store's entries (taken over by this load, not made by it). */
static bool entry_of_store(const struct ferry_config_store *store, const struct entry *e)
{
	for (size_t i = 0; e->from_file && i < store->nentries; i++)
		if (store->entries[i] == e)
			return true;
	return false;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct load_state {
	struct ferry_config_store *store;
	/* manifest pointer -> indices of the store's entries from it, when they may be reused */
	json_t *by_manifest;
	struct entry **fresh; /* file objects read by this load */
	size_t nfresh;
	json_t *index; /* entry key -> index in fresh, so that lookups stay O(1) */
	struct str_set rejected; /* keys of objects rejected by this load */
	struct str_set failed_files; /* files that did not parse */
	/* __load_files: the files read (sorted); every other file's objects stay */
	char **changed;
	__u64 *changed_hash; /* ferry_fnv1a_str() of each, once sorted */
	size_t nchanged;
	bool dup; /* __load_files met an object defined twice: a full load decides */
};

/* A source hash none of the files __load_files reads has is not changed; a match is checked. */
static bool maybe_changed(const struct load_state *ls, __u64 hash)
{
	for (size_t i = 0; i < ls->nchanged; i++)
		if (ls->changed_hash[i] == hash)
			return true;
	return false;
}

static bool is_changed(const struct load_state *ls, const char *path)
{
	for (size_t i = 0; i < ls->nchanged; i++)
		if (!strcmp(ls->changed[i], path))
			return true;
	return false;
}

/* __load_files: an object of a file not read now (it stays) with this key. */
static struct entry *kept_file_entry(const struct load_state *ls, const char *key)
{
	const struct entry_sum *sums = ls->store->sums;
	__u64 hash = ferry_fnv1a_str(key);

	for (size_t i = 0; i < ls->store->nentries; i++) {
		struct entry *e = ls->store->entries[i];

		if (sums && (!sums[i].from_file || sums[i].key_hash != hash))
			continue;
		if (e->from_file && !strcmp(e->key, key) && !is_changed(ls, e->source))
			return e;
	}
	return NULL;
}

/* The sums of entries v (store->sums); NULL when out of memory (the scans read v then). */
static struct entry_sum *sums_of(struct entry **v, size_t n)
{
	struct entry_sum *sums = malloc((n ? n : 1) * sizeof(*sums));

	for (size_t i = 0; sums && i < n; i++)
		entry_sum(v[i], &sums[i]);
	return sums;
}

static struct entry *fresh_find(const struct load_state *ls, const char *key)
{
	json_t *i = json_object_get(ls->index, key);

	return i ? ls->fresh[json_integer_value(i)] : NULL;
}

/*
 * A manifest name stat() cannot follow (err: its errno). Only a name that is
 * gone (lstat: ENOENT) is a deletion; a link that loops or points nowhere, a
 * file that cannot be read, is an error, and the file's objects stay as they
 * were: taking it for a deletion would cut its deployments' connections.
 * Returns 0 for a deletion or a recorded error, -ENOMEM.
 */
static int unreadable_file(struct load_state *ls, const char *path, int err)
{
	struct ferry_config_error e = {};
	struct stat lst;

	if (err == ENOENT && lstat(path, &lst) && errno == ENOENT)
		return 0;
	snprintf(e.file, sizeof(e.file), "%s", path);
	snprintf(e.message, sizeof(e.message),
		 "cannot read: %s%s; its objects stay as they were: fix or remove the file",
		 strerror(err),
		 err == ENOENT ? " (a symbolic link to a file that does not exist)" :
		 err == ELOOP  ? " (symbolic links that loop)" :
				 "");
	if (errs_push(&ls->store->load_errs, &e, NULL))
		return -ENOMEM;
	return str_set_add(&ls->failed_files, path);
}

/* A manifest name that is not a file (a FIFO, a directory...): said, then left alone. */
static void not_a_file(const char *path, const struct stat *st)
{
	pr_warn("%s: not a regular file (%s): skipped; a manifest must be a file or a symbolic "
		"link to one",
		path,
		S_ISFIFO(st->st_mode) ? "a FIFO" :
		S_ISDIR(st->st_mode)  ? "a directory" :
		S_ISSOCK(st->st_mode) ? "a socket" :
		S_ISCHR(st->st_mode)  ? "a character device" :
		S_ISBLK(st->st_mode)  ? "a block device" :
					"of another type");
}

/*
 * The store's half of an object read from a file, after object_parse()
 * (ret, e, key: its result; c: its context): a valid object joins this load
 * unless another defines it too.
 */
static int add_object(struct load_state *ls, struct vctx *c, struct ferry_manifest *mf, int ret,
		      struct entry *e, const char *key)
{
	struct entry *other;

	if (ret == -EINVAL && key[0])
		return str_set_add(&ls->rejected, key);
	if (ret <= 0)
		return ret == -ENOMEM ? ret : 0;
	e->from_file = true;
	e->mf = ferry_manifest__get(mf);
	other = fresh_find(ls, key);
	if (!other && ls->store->napi)
		other = find_entry(ls->store->entries, ls->store->nentries, key, false, false);
	if (!other && ls->changed)
		other = kept_file_entry(ls, key);
	if (other && ls->changed) {
		/* Which definition wins depends on every file's name: a full load says. */
		ls->dup = true;
		entry_free(e);
		return 0;
	}
	if (other) {
		ls->store->load_dup = true;
		verr(c, NULL, NULL, entry_obj(e), "",
		     "defined again: %s already defines this object; the first one is used, "
		     "delete one of them",
		     other->source);
		entry_free(e);
		return 0;
	}
	if (json_object_set_new(ls->index, key, json_integer((json_int_t)ls->nfresh)) ||
	    entries_push(&ls->fresh, &ls->nfresh, e)) {
		entry_free(e);
		return -ENOMEM;
	}
	return 0;
}

static int load_object(void *arg, struct ferry_manifest *mf, json_t *obj, size_t doc, size_t item,
		       const char *kind, const char *api_version)
{
	struct load_state *ls = arg;
	struct vctx c = { .errs = &ls->store->load_errs,
			  .mf = mf,
			  .file = ferry_manifest__name(mf),
			  .seldon_servers = ls->store->seldon_servers };
	char key[2 * K8S_NAME_LEN + 32];
	struct entry *e;
	int ret;

	ret = object_parse(&c, obj, kind, api_version, &e, key, sizeof(key));
	if (ret == 1) {
		e->doc = doc;
		e->item = item;
	}
	return add_object(ls, &c, mf, ret, e, key);
}

/* The objects of a file validated ahead, added in order, each after its own errors. */
static int add_prevalidated(struct load_state *ls, struct ferry_manifest *mf, struct preparsed *pp)
{
	struct error_list *errs = &ls->store->load_errs;
	struct vctx c = { .errs = errs, .mf = mf, .file = ferry_manifest__name(mf) };
	size_t next = 0;
	int ret = 0;

	for (size_t i = 0; i <= pp->nobjs && !ret; i++) {
		size_t end = i < pp->nobjs ? pp->objs[i].errs_end : pp->errs.n;
		struct preobj *o;
		const char *key;

		for (; next < end && !ret; next++)
			ret = errs_push(errs, &pp->errs.v[next].e, pp->errs.v[next].key);
		if (ret || i == pp->nobjs)
			break;
		o = &pp->objs[i];
		key = o->key ? o->key : "";
		if (o->ret == 1) {
			snprintf(c.object, sizeof(c.object), "%.20s %.63s/%.230s",
				 kind_name(o->e->kind), o->e->ns, o->e->name);
			key = o->e->key;
		}
		ret = add_object(ls, &c, mf, o->ret, o->e, key);
		o->e = NULL; /* the load's now, or freed */
	}
	return ret;
}

/*
 * An unchanged file whose objects all passed last time: its objects (the
 * store's entries of the same parsed manifest) are taken over as they are,
 * not validated again, unless one of them now clashes with an object read
 * earlier in this load. Returns 1 when taken over, 0 to validate.
 */
static int reuse_file(struct load_state *ls, struct ferry_manifest *mf)
{
	char ptr[32];
	json_t *idx, *v;
	size_t i;

	snprintf(ptr, sizeof(ptr), "%p", (void *)mf);
	idx = ls->by_manifest ? json_object_get(ls->by_manifest, ptr) : NULL;
	if (!idx)
		return 0;
	json_array_foreach(idx, i, v)
		if (fresh_find(ls, ls->store->entries[json_integer_value(v)]->key))
			return 0;
	json_array_foreach(idx, i, v) {
		struct entry *e = ls->store->entries[json_integer_value(v)];

		if (json_object_set_new(ls->index, e->key, json_integer((json_int_t)ls->nfresh)) ||
		    entries_push(&ls->fresh, &ls->nfresh, e))
			return -ENOMEM;
	}
	return 1;
}

/* One object of a file: obj is item item (ENTRY_DOC: none) of document doc of mf. */
typedef int (*object_fn)(void *arg, struct ferry_manifest *mf, json_t *obj, size_t doc, size_t item,
			 const char *kind, const char *api_version);

/* Calls fn for each object of mf: each document, or each item of a List; stops at an error. */
static int walk_objects(struct ferry_manifest *mf, const char *path, struct error_list *errs,
			object_fn fn, void *arg)
{
	int ret = 0;

	for (size_t d = 0; d < ferry_manifest__ndocs(mf) && !ret; d++) {
		json_t *doc = ferry_manifest__doc(mf, d), *items;
		const char *kind = json_string_value(json_object_get(doc, "kind"));
		const char *apiv = json_string_value(json_object_get(doc, "apiVersion"));
		size_t klen = kind ? strlen(kind) : 0;

		if (!json_is_object(doc)) {
			struct vctx c = { .errs = errs, .mf = mf, .file = path };

			verr(&c, NULL, NULL, doc, "",
			     "expected a Kubernetes object (a mapping with apiVersion and kind), "
			     "found %s",
			     json_type_name(doc));
			continue;
		}
		items = json_object_get(doc, "items");
		if (klen >= 4 && !strcmp(kind + klen - 4, "List") && items &&
		    !json_is_null(items) && !json_is_array(items)) {
			/* Skipped, the list's objects would be missing without a word. */
			struct vctx c = { .errs = errs, .mf = mf, .file = path };

			verr(&c, doc, "items", items, "items",
			     "expected a list of objects in this %s, found %s: write items as a "
			     "list (items: [...] or one \"- \" entry per object)",
			     kind, json_type_name(items));
			continue;
		}
		if (klen >= 4 && !strcmp(kind + klen - 4, "List") && json_is_array(items)) {
			/* kubectl get -o yaml: kind List; typed lists (FooList) may omit item kinds. */
			char item_kind[128] = "";

			if (klen > 4 && klen - 4 < sizeof(item_kind))
				snprintf(item_kind, sizeof(item_kind), "%.*s", (int)(klen - 4),
					 kind);
			for (size_t i = 0; i < json_array_size(items) && !ret; i++) {
				json_t *item = json_array_get(items, i);
				const char *ik = json_string_value(json_object_get(item, "kind"));
				const char *ia =
					json_string_value(json_object_get(item, "apiVersion"));

				if (!json_is_object(item))
					continue;
				ret = fn(arg, mf, item, d, i, ik ? ik : item_kind, ia ? ia : apiv);
			}
			continue;
		}
		ret = fn(arg, mf, doc, d, ENTRY_DOC, kind, apiv);
	}
	return ret;
}

static int load_file(struct load_state *ls, const char *path, struct preparsed *pp)
{
	struct ferry_config_error perr;
	struct parsed_file *pf = NULL;
	struct ferry_manifest *mf;
	size_t nerrs = ls->store->load_errs.n;
	int ret = 0;

	mf = parse_cached(ls->store, path, pp, &perr, &pf);
	if (mf && pf && pf->hit && pf->clean) {
		ret = reuse_file(ls, mf);
		if (ret) {
			ferry_manifest__put(mf);
			return ret < 0 ? ret : 0;
		}
	}
	if (!mf) {
		if (errno == ENOMEM)
			return -ENOMEM;
		if (errs_push(&ls->store->load_errs, &perr, NULL))
			return -ENOMEM;
		return str_set_add(&ls->failed_files, path);
	}
	if (!ferry_manifest__ndocs(mf)) {
		/*
		 * An empty file is a write in progress ('kubectl get -o yaml > f'
		 * truncates first): keep what the file held until it has content or
		 * is deleted, rather than delete its deployments and their flows.
		 */
		pr_info("%s: empty; keeping its objects as they were until it is written or removed",
			path);
		ferry_manifest__put(mf);
		return str_set_add(&ls->failed_files, path);
	}
	if (pp && pp->validated) {
		ret = add_prevalidated(ls, mf, pp);
		preparsed_clear(pp);
	} else
		ret = walk_objects(mf, path, &ls->store->load_errs, load_object, ls);
	if (pf && !ret)
		pf->clean = ls->store->load_errs.n == nerrs;
	ferry_manifest__put(mf);
	return ret;
}

struct parse_job {
	struct ferry_config_store *store; /* read only while the threads run */
	char **names;
	struct preparsed *pre;
	size_t n;
	size_t next; /* the next file to take, shared by both threads */
	bool cold; /* the parse cache is empty: no file can be unchanged */
};

struct prevalidate {
	struct preparsed *pp;
	const struct ferry_seldon_servers *seldon_servers;
};

/* object_fn of a worker: object_parse() alone, its result kept for load_file. */
static int prevalidate(void *arg, struct ferry_manifest *mf, json_t *obj, size_t doc, size_t item,
		       const char *kind, const char *api_version)
{
	struct prevalidate *pv = arg;
	struct preparsed *pp = pv->pp;
	struct vctx c = { .errs = &pp->errs,
			  .mf = mf,
			  .file = ferry_manifest__name(mf),
			  .seldon_servers = pv->seldon_servers };
	char key[2 * K8S_NAME_LEN + 32];
	struct preobj *o;

	if (!(pp->nobjs & (pp->nobjs - 1))) {
		o = realloc(pp->objs, (pp->nobjs ? 2 * pp->nobjs : 1) * sizeof(*o));
		if (!o)
			return -ENOMEM;
		pp->objs = o;
	}
	o = &pp->objs[pp->nobjs++];
	*o = (struct preobj){};
	o->ret = object_parse(&c, obj, kind, api_version, &o->e, key, sizeof(key));
	o->errs_end = pp->errs.n;
	if (o->ret == 1) {
		o->e->doc = doc;
		o->e->item = item;
	}
	if (o->ret == -EINVAL && key[0] && !(o->key = strdup(key)))
		o->ret = -ENOMEM;
	return o->ret == -ENOMEM ? -ENOMEM : 0;
}

/* Stat, and for a file not in the cache parse and validate: all but the store's part. */
static void parse_some(struct parse_job *j)
{
	for (;;) {
		size_t i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
		struct prevalidate pv;
		struct parsed_file *pf;
		struct preparsed *pp;
		int fd;

		if (i >= j->n)
			return;
		pp = &j->pre[i];
		/*
		 * Nothing cached (a first load): open and fstat, one path lookup, not
		 * two. O_NONBLOCK: opening a FIFO would otherwise wait for a writer,
		 * for ever (it is no manifest: the fstat skips it).
		 */
		fd = j->cold ? open(j->names[i], O_RDONLY | O_CLOEXEC | O_NONBLOCK) : -1;
		if (fd >= 0)
			pp->statted = !fstat(fd, &pp->st);
		else
			pp->statted = !stat(j->names[i], &pp->st);
		pp->stat_errno = pp->statted ? 0 : errno;
		if (!pp->statted || !S_ISREG(pp->st.st_mode) || !pp->st.st_size) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		pf = fd >= 0 ? NULL : cache_find(j->store, j->names[i]);
		pp->want = !pf || !same_file(pf, &pp->st);
		if (!pp->want)
			continue;
		if (fd >= 0) {
			pp->mf = ferry_manifest__load_fd(fd, j->names[i], &pp->st, &pp->err);
			pp->errnum = pp->mf ? 0 : errno;
			close(fd);
		} else {
			pp->mf = ferry_manifest__load(j->names[i], &pp->err);
			pp->errnum = pp->mf ? 0 : errno;
		}
		pp->done = true;
		if (!pp->mf || !ferry_manifest__ndocs(pp->mf))
			continue;
		pv = (struct prevalidate){ pp, j->store->seldon_servers };
		/* Out of memory: validated again on the store's thread, which says so. */
		if (walk_objects(pp->mf, j->names[i], &pp->errs, prevalidate, &pv)) {
			preparsed_clear(pp);
			continue;
		}
		pp->validated = true;
		/*
		 * The trees are wanted again only for an error of a later build
		 * (entry_obj() reads them again): at 10,000 deployments they are
		 * 240 MB of ferryd's 430.
		 */
		for (size_t k = 0; k < pp->nobjs; k++) {
			if (!pp->objs[k].e)
				continue;
			json_decref(pp->objs[k].e->obj);
			pp->objs[k].e->obj = NULL;
		}
		ferry_manifest__shed(pp->mf);
	}
}

static void *parse_worker(void *arg)
{
	parse_some(arg);
	return NULL;
}

/* Fewer files than this: a thread is not worth starting. */
#define PARSE_AHEAD_MIN 64

/*
 * A whole-directory load stats every file and parses and validates every
 * one not in the cache (a first load: 30,000 files for 10,000 deployments)
 * on two threads: that touches only the file, its own new manifest and
 * entries, and reads the cache and the Seldon settings, which nothing
 * changes meanwhile; so the threads share nothing but the counter of the
 * next file. Adding the objects to the store stays on this thread, in name
 * order (load_file), so the outcome is the one-thread outcome, errors in
 * the same order.
 */
static void parse_ahead(struct ferry_config_store *store, char **names, struct preparsed *pre,
			size_t n)
{
	struct parse_job job = {
		.store = store, .names = names, .pre = pre, .n = n, .cold = !store->nparsed
	};
	pthread_t worker;
	bool started;

	started = n >= PARSE_AHEAD_MIN && !pthread_create(&worker, NULL, parse_worker, &job);
	parse_some(&job);
	if (started)
		pthread_join(worker, NULL);
}

/*
 * Long on purpose: one directory pass (scan, sort, parse, replace, prune) whose
 * steps share the load state and its error list.
 */
int ferry_config_store__load_dir(struct ferry_config_store *store, const char *dir)
{
	struct load_state ls = { .store = store };
	struct entry **keep = NULL;
	size_t nkeep = 0, nnames = 0;
	bool *moved = NULL, *reused = NULL;
	struct preparsed *pre = NULL;
	char **names = NULL;
	struct dirent *de;
	DIR *d;
	int ret = 0;

	errs_clear(&store->load_errs);
	d = opendir(dir);
	if (!d)
		return -errno;
	store->load_gen++;
	store->load_dup = false;
	store->dirty_all = true;
	ls.index = json_object();
	if (!ls.index) {
		closedir(d);
		return -ENOMEM;
	}
	/*
	 * Objects of unchanged files may be taken over without validation; only
	 * in a store of files alone, where no API object can clash with them.
	 */
	ls.by_manifest = json_object();
	for (size_t i = 0; ls.by_manifest && i < store->nentries; i++) {
		struct entry *e = store->entries[i];
		char ptr[32];
		json_t *a;

		if (!e->from_file || !e->mf) {
			json_decref(ls.by_manifest);
			ls.by_manifest = NULL;
			break;
		}
		snprintf(ptr, sizeof(ptr), "%p", (void *)e->mf);
		a = json_object_get(ls.by_manifest, ptr);
		if (!a) {
			a = json_array();
			if (!a || json_object_set_new(ls.by_manifest, ptr, a)) {
				json_decref(ls.by_manifest);
				ls.by_manifest = NULL;
				break;
			}
		}
		json_array_append_new(a, json_integer((json_int_t)i));
	}
	while ((de = readdir(d))) {
		char **nn;

		if (!ferry_config__manifest_name(de->d_name))
			continue;
		nn = realloc(names, (nnames + 1) * sizeof(*nn));
		if (!nn) {
			ret = -ENOMEM;
			break;
		}
		names = nn;
		if (asprintf(&names[nnames], "%s/%s", dir, de->d_name) < 0) {
			ret = -ENOMEM;
			break;
		}
		nnames++;
	}
	closedir(d);
	if (ret)
		goto out_free_names;
	if (nnames)
		qsort(names, nnames, sizeof(*names), cmp_str);
	pre = calloc(nnames + 1, sizeof(*pre));
	if (!pre) {
		ret = -ENOMEM;
		goto out_free_names;
	}
	/* The index's hash seed is set here, before a second thread makes JSON values. */
	if (!store->parsed_index)
		store->parsed_index = json_object();
	parse_ahead(store, names, pre, nnames);

	for (size_t i = 0; i < nnames; i++) {
		const struct stat *st = &pre[i].st;

		if (!pre[i].statted) {
			ret = unreadable_file(&ls, names[i], pre[i].stat_errno);
			if (ret)
				goto out_free_fresh;
			continue;
		}
		if (!S_ISREG(st->st_mode)) {
			not_a_file(names[i], st);
			continue;
		}
		if (!st->st_size) {
			/* A write in progress: see load_file(). */
			pr_info("%s: empty; keeping its objects as they were until it is written "
				"or removed",
				names[i]);
			ret = str_set_add(&ls.failed_files, names[i]);
			if (ret)
				goto out_free_fresh;
			continue;
		}
		ret = load_file(&ls, names[i], &pre[i]);
		if (ret)
			goto out_free_fresh;
	}

	/*
	 * The new set: API objects, every file object read now, and the old
	 * version of each object that was rejected now or whose file did not
	 * parse (the last good version stays in force). Objects of files that
	 * are gone are dropped. Built aside so that ENOMEM leaves the store as
	 * it was.
	 */
	moved = calloc(store->nentries + 1, sizeof(*moved));
	reused = calloc(store->nentries + 1, sizeof(*reused));
	if (!moved || !reused)
		goto err_nomem;
	for (size_t i = 0; i < store->nentries; i++) {
		struct entry *old = store->entries[i];
		struct entry *fresh;

		if (!old->from_file) {
			moved[i] = true;
			continue;
		}
		fresh = fresh_find(&ls, old->key);
		if (fresh == old) {
			reused[i] = true; /* taken over: in fresh already, not freed */
			continue;
		}
		if (fresh) {
			fresh->built = sdep_get(old->built);
			continue;
		}
		if (str_set_has(&ls.rejected, old->key) ||
		    str_set_has(&ls.failed_files, old->source)) {
			pr_warn("%s: %s %s/%s: keeping the last good version", old->source,
				kind_name(old->kind), old->ns, old->name);
			moved[i] = true;
		}
	}
	for (size_t i = 0; i < store->nentries; i++)
		if (moved[i] && entries_push(&keep, &nkeep, store->entries[i]))
			goto err_nomem;
	for (size_t i = 0; i < ls.nfresh; i++)
		if (entries_push(&keep, &nkeep, ls.fresh[i]))
			goto err_nomem;
	for (size_t i = 0; i < store->nentries; i++)
		if (!moved[i] && !reused[i])
			entry_free(store->entries[i]);
	free(store->entries);
	store->entries = keep;
	store->nentries = nkeep;
	free(store->sums);
	store->sums = sums_of(keep, nkeep);
	ls.nfresh = 0; /* now owned by the store */
	free(reused);
	reused = NULL;
	keep = NULL;
	ret = (int)store->load_errs.n;
	goto out_free_fresh;

err_nomem:
	ret = -ENOMEM;
out_free_fresh:
	free(moved);
	free(keep);
	/* On failure taken-over entries are still the store's: only this load's own go. */
	for (size_t i = 0; i < ls.nfresh; i++)
		if (!entry_of_store(store, ls.fresh[i]))
			entry_free(ls.fresh[i]);
	free(reused);
	free(ls.fresh);
	json_decref(ls.index);
	json_decref(ls.by_manifest);
	str_set_free(&ls.rejected);
	str_set_free(&ls.failed_files);
out_free_names:
	for (size_t i = 0; pre && i < nnames; i++) {
		/* parsed ahead, not reached (an error stopped us) */
		ferry_manifest__put(pre[i].mf);
		preparsed_clear(&pre[i]);
	}
	free(pre);
	for (size_t i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	if (ret >= 0)
		prune_parsed(store);
	return ret;
}

/* Records the keys a change of e touches, for __build_update (struct ferry_config_store). */
static int note_dirty(struct ferry_config_store *store, const struct entry *e)
{
	char ref[2 * K8S_NAME_LEN + 2];

	if (e->kind == OBJ_SDEP)
		return str_set_has(&store->dirty_deps, e->sd->key) ?
			       0 :
			       str_set_add(&store->dirty_deps, e->sd->key);
	snprintf(ref, sizeof(ref), "%s/%s", e->ns, e->kind == OBJ_SLICE ? e->sl->service : e->name);
	return str_set_has(&store->dirty_refs, ref) ? 0 : str_set_add(&store->dirty_refs, ref);
}

static int errs_copy(struct error_list *to, const struct error_list *from)
{
	memset(to, 0, sizeof(*to));
	if (!from->n)
		return 0;
	to->v = malloc(from->n * sizeof(*to->v));
	if (!to->v)
		return -ENOMEM;
	memcpy(to->v, from->v, from->n * sizeof(*to->v));
	to->n = to->cap = from->n;
	return 0;
}

static void errs_drop_file(struct error_list *l, const char *path)
{
	size_t j = 0;

	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].e.file, path))
			l->v[j++] = l->v[i];
	l->n = j;
}

/* The sorted, distinct paths of the manifest names in names; -EAGAIN for a name that may stand for many. */
static int changed_paths(struct load_state *ls, const char *dir, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char *path;

		if (strchr(names[i], '/') || (names[i][0] == '.' && names[i][1] == '.'))
			return -EAGAIN; /* ConfigMap's ..data swap replaces every file at once */
		if (!ferry_config__manifest_name(names[i]))
			continue; /* an editor's or a writer's temporary file */
		if (asprintf(&path, "%s/%s", dir, names[i]) < 0)
			return -ENOMEM;
		if (is_changed(ls, path)) {
			free(path);
			continue;
		}
		if (!(ls->nchanged & (ls->nchanged - 1))) {
			char **more = realloc(ls->changed, (ls->nchanged ? 2 * ls->nchanged : 1) *
								   sizeof(*more));

			if (!more) {
				free(path);
				return -ENOMEM;
			}
			ls->changed = more;
		}
		ls->changed[ls->nchanged++] = path;
	}
	if (ls->nchanged)
		qsort(ls->changed, ls->nchanged, sizeof(*ls->changed), cmp_str);
	ls->changed_hash = calloc(ls->nchanged + 1, sizeof(*ls->changed_hash));
	if (!ls->changed_hash)
		return -ENOMEM;
	for (size_t i = 0; i < ls->nchanged; i++)
		ls->changed_hash[i] = ferry_fnv1a_str(ls->changed[i]);
	return 0;
}

/*
 * Long on purpose: the incremental twin of __load_dir (read the changed
 * files, then replace their objects in one step), kept beside it so that
 * both keep the same rules.
 */
int ferry_config_store__load_files(struct ferry_config_store *store, const char *dir,
				   const char *const *names, size_t n)
{
	struct load_state ls = { .store = store };
	struct error_list saved = {};
	struct entry **keep = NULL, **gone = NULL;
	struct entry_sum *sums = NULL;
	size_t nkeep = 0, ngone = 0;
	bool sums_ok = true, had_sums;
	int ret;

	/* API objects: a clash with one is judged by a full load. */
	if (!store->load_gen || store->load_dup || store->napi)
		return -EAGAIN;
	ret = changed_paths(&ls, dir, names, n);
	if (!ret && !ls.nchanged)
		ret = (int)store->load_errs.n;
	if (ret || !ls.nchanged)
		goto out_free_paths;
	ls.index = json_object();
	if (!ls.index || errs_copy(&saved, &store->load_errs)) {
		ret = -ENOMEM;
		goto out_free_paths;
	}
	for (size_t i = 0; i < ls.nchanged; i++)
		errs_drop_file(&store->load_errs, ls.changed[i]);

	for (size_t i = 0; i < ls.nchanged && !ret; i++) {
		const char *path = ls.changed[i];
		struct stat st;

		if (stat(path, &st)) {
			/* deleted or renamed away: its objects go; unreadable: they stay */
			ret = unreadable_file(&ls, path, errno);
			continue;
		}
		if (!S_ISREG(st.st_mode)) {
			not_a_file(path, &st);
			continue;
		}
		if (!st.st_size) {
			pr_info("%s: empty; keeping its objects as they were until it is written "
				"or removed",
				path);
			ret = str_set_add(&ls.failed_files, path);
			continue;
		}
		ret = load_file(&ls, path, NULL);
		if (!ret && ls.dup)
			ret = -EAGAIN;
	}
	if (ret)
		goto err_restore;

	/*
	 * The new set, built aside (ENOMEM leaves the store as it was); see
	 * __load_dir. Its sums too, from the old ones: no kept entry is read.
	 */
	for (size_t i = 0; i < store->nentries; i++) {
		struct entry *old = store->entries[i];
		bool stays = false;

		if ((store->sums && !maybe_changed(&ls, store->sums[i].source_hash)) ||
		    !is_changed(&ls, old->source)) {
			stays = true;
			ret = entries_push(&keep, &nkeep, old);
		} else if (!fresh_find(&ls, old->key) &&
			   (str_set_has(&ls.rejected, old->key) ||
			    str_set_has(&ls.failed_files, old->source))) {
			pr_warn("%s: %s %s/%s: keeping the last good version", old->source,
				kind_name(old->kind), old->ns, old->name);
			stays = true;
			ret = entries_push(&keep, &nkeep, old);
		} else {
			ret = entries_push(&gone, &ngone, old);
		}
		if (!ret && stays && store->sums && sums_ok &&
		    sums_push(&sums, nkeep - 1, &store->sums[i]))
			sums_ok = false;
		if (ret)
			goto err_restore;
	}
	for (size_t i = 0; i < ls.nfresh; i++) {
		struct entry_sum sum;

		if ((ret = entries_push(&keep, &nkeep, ls.fresh[i])))
			goto err_restore;
		entry_sum(ls.fresh[i], &sum);
		if (store->sums && sums_ok && sums_push(&sums, nkeep - 1, &sum))
			sums_ok = false;
	}

	/* Committed: from here nothing fails but the dirty notes, which then say "all". */
	for (size_t i = 0; i < ngone; i++) {
		struct entry *fresh = fresh_find(&ls, gone[i]->key);

		if (fresh)
			fresh->built = sdep_get(gone[i]->built);
		if (note_dirty(store, gone[i]))
			store->dirty_all = true;
		entry_free(gone[i]);
	}
	for (size_t i = 0; i < ls.nfresh; i++)
		if (note_dirty(store, ls.fresh[i]))
			store->dirty_all = true;
	free(store->entries);
	store->entries = keep;
	store->nentries = nkeep;
	keep = NULL;
	had_sums = store->sums;
	free(store->sums);
	store->sums = had_sums && sums_ok ? sums : NULL;
	if (!store->sums)
		free(sums);
	sums = NULL;
	ls.nfresh = 0;
	/* Files that are gone leave the parse cache (looked up by its index, not walked). */
	for (size_t i = 0; i < ls.nchanged; i++) {
		json_t *at = store->parsed_index ?
				     json_object_get(store->parsed_index, ls.changed[i]) :
				     NULL;
		size_t k = at ? (size_t)json_integer_value(at) : store->nparsed;
		struct stat st;

		if (k < store->nparsed && (stat(ls.changed[i], &st) || !S_ISREG(st.st_mode)))
			store->parsed[k].seen = store->load_gen - 1;
	}
	prune_parsed(store);
	free(saved.v);
	ret = (int)store->load_errs.n;
	goto out_free_fresh;

err_restore:
	free(store->load_errs.v);
	store->load_errs = saved;
out_free_fresh:
	free(keep);
	free(gone);
	free(sums);
	for (size_t i = 0; i < ls.nfresh; i++)
		entry_free(ls.fresh[i]);
	free(ls.fresh);
	json_decref(ls.index);
	str_set_free(&ls.rejected);
	str_set_free(&ls.failed_files);
out_free_paths:
	for (size_t i = 0; i < ls.nchanged; i++)
		free(ls.changed[i]);
	free(ls.changed);
	free(ls.changed_hash);
	return ret;
}

void ferry_config_store__set_seldon(struct ferry_config_store *store,
				    const struct ferry_seldon_servers *servers, bool cluster_judged)
{
	store->seldon_servers = servers;
	store->seldon_cluster_judged = cluster_judged;
}

int ferry_config_store__put(struct ferry_config_store *store, json_t *object, const char *origin)
{
	const char *kind = json_string_value(json_object_get(object, "kind"));
	const char *apiv = json_string_value(json_object_get(object, "apiVersion"));
	/* The object's key is known only after parsing: errors go to a scratch list first. */
	struct error_list scratch = {};
	struct vctx c = { .errs = &scratch,
			  .file = origin ? origin : "kubernetes",
			  .seldon_servers = store->seldon_servers,
			  .seldon_cluster_judged = store->seldon_cluster_judged };
	char key[2 * K8S_NAME_LEN + 32];
	struct entry *e = NULL;
	int ret;

	if (!json_is_object(object))
		return -EINVAL;
	store->dirty_all = true;
	free(store->sums); /* API objects: every build is a full one (see struct entry_sum) */
	store->sums = NULL;
	errs_drop_key(&store->put_errs, ""); /* errors of objects that had no name */
	ret = object_parse(&c, object, kind, apiv, &e, key, sizeof(key));
	if (key[0])
		errs_drop_key(&store->put_errs, key);
	for (size_t i = 0; i < scratch.n; i++) {
		if (errs_push(&store->put_errs, &scratch.v[i].e, key)) {
			ret = -ENOMEM;
			break;
		}
	}
	free(scratch.v);
	if (ret <= 0) {
		entry_free(e);
		return ret;
	}
	for (size_t i = 0; i < store->nentries; i++) {
		struct entry *old = store->entries[i];

		if (strcmp(old->key, key))
			continue;
		e->built = sdep_get(old->built);
		if (old->from_file)
			store->napi++;
		entry_free(old);
		store->entries[i] = e;
		return 0;
	}
	ret = entries_push(&store->entries, &store->nentries, e);
	if (ret)
		entry_free(e);
	else
		store->napi++;
	return ret;
}

int ferry_config_store__delete(struct ferry_config_store *store, const char *kind,
			       const char *namespace, const char *name)
{
	char key[2 * K8S_NAME_LEN + 32];
	enum obj_kind k;

	if (!strcmp(kind, KIND_SDEP))
		k = OBJ_SDEP;
	else if (!strcmp(kind, KIND_SLICE))
		k = OBJ_SLICE;
	else if (!strcmp(kind, KIND_SERVICE))
		k = OBJ_SERVICE;
	else
		return -ENOENT;
	entry_key(k, namespace && *namespace ? namespace : "default", name, key, sizeof(key));
	store->dirty_all = true;
	free(store->sums);
	store->sums = NULL;
	errs_drop_key(&store->put_errs, key);
	for (size_t i = 0; i < store->nentries; i++) {
		struct entry *e = store->entries[i];

		if (e->from_file || strcmp(e->key, key))
			continue;
		entry_free(e);
		memmove(&store->entries[i], &store->entries[i + 1],
			(store->nentries - i - 1) * sizeof(*store->entries));
		store->nentries--;
		store->napi--;
		return 0;
	}
	return -ENOENT;
}

size_t ferry_config_store__nerrors(const struct ferry_config_store *store)
{
	return store->load_errs.n + store->put_errs.n + store->build_errs.n;
}

const struct ferry_config_error *ferry_config_store__error(const struct ferry_config_store *store,
							   size_t i)
{
	if (i < store->load_errs.n)
		return &store->load_errs.v[i].e;
	i -= store->load_errs.n;
	if (i < store->put_errs.n)
		return &store->put_errs.v[i].e;
	i -= store->put_errs.n;
	if (i < store->build_errs.n)
		return &store->build_errs.v[i].e;
	return NULL;
}

size_t ferry_config_store__nwaiting(const struct ferry_config_store *store)
{
	return store->noted_waitsvc.n;
}

int ferry_config_store__waiting(const struct ferry_config_store *store, size_t i, char *deployment,
				size_t dlen, char *service, size_t slen)
{
	const char *note, *bar;

	if (i >= store->noted_waitsvc.n)
		return -ENOENT;
	note = store->noted_waitsvc.v[i]; /* "deployment|service", config_build.c */
	bar = strchr(note, '|');
	if (!bar)
		return -ENOENT;
	snprintf(deployment, dlen, "%.*s", (int)(bar - note), note);
	snprintf(service, slen, "%s", bar + 1);
	return 0;
}
