// SPDX-License-Identifier: GPL-2.0-only
/*
 * Manifest files to json_t with a position side table (see manifest.h).
 *
 * YAML is read through libyaml's event API rather than its document API:
 * only events say whether a scalar was plain or quoted and whether it had an
 * explicit tag, which is what typing scalars the way kubectl does needs
 * (unquoted 90 is an integer, "90" a string).
 *
 * JSON is decoded by jansson. jansson keeps no positions, so the same text is
 * also run through the YAML reader (JSON is valid YAML flow syntax) in a
 * "mirror" mode that walks jansson's tree alongside and records positions for
 * jansson's nodes. When that second pass fails, the values are still good and
 * errors simply say line 0.
 *
 * Positions are wanted only for an error, and most files have none: the
 * manifest keeps its text, and the first position asked for runs the mirror
 * pass over it (YAML documents too: the pass meets the same nodes in the
 * same order). A full sync of 10,000 deployments skips 30,000 position
 * tables (a node and a key copy per value). For the same reason the store
 * sheds a validated file's trees (ferry_manifest__shed): they are read
 * again from the text when an error needs them, before any position is.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "log.h"
#include "source/manifest.h"

/* Deeper than any Kubernetes object; stops stack exhaustion on hostile input. */
#define MANIFEST_MAX_DEPTH 128
/* Larger than any sane manifest directory entry. */
#define MANIFEST_MAX_BYTES (64u << 20)

struct manifest_pos {
	const json_t *node;
	const json_t *parent;
	char *key; /* NULL for array elements and documents */
	int line, column;
};

struct ferry_manifest {
	int refcnt;
	char name[256];
	json_t *docs; /* array of documents; NULL when shed (ferry_manifest__shed) */
	size_t ndocs_shed; /* how many there were */
	struct manifest_pos *pos;
	size_t npos, cap;
	char *text; /* the input, until the positions are read from it */
	size_t len;
	bool json;
};

struct yaml_reader {
	yaml_parser_t parser;
	struct ferry_manifest *mf;
	struct ferry_config_error *err;
	json_t *anchors; /* anchor name -> value */
	bool mirror; /* record positions for the mirror tree, build nothing */
};

static void set_err(struct ferry_config_error *err, const char *name, int line, int column,
		    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void set_err(struct ferry_config_error *err, const char *name, int line, int column,
		    const char *fmt, ...)
{
	va_list ap;

	memset(err, 0, sizeof(*err));
	snprintf(err->file, sizeof(err->file), "%s", name);
	err->line = line;
	err->column = column;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

static int pos_add(struct ferry_manifest *mf, const json_t *node, const json_t *parent,
		   const char *key, const yaml_mark_t *mark)
{
	struct manifest_pos *p;

	if (mf->npos == mf->cap) {
		size_t cap = mf->cap ? mf->cap * 2 : 64;

		p = realloc(mf->pos, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		mf->pos = p;
		mf->cap = cap;
	}
	p = &mf->pos[mf->npos];
	p->node = node;
	p->parent = parent;
	p->key = NULL;
	if (key) {
		p->key = strdup(key);
		if (!p->key)
			return -ENOMEM;
	}
	p->line = (int)mark->line + 1;
	p->column = (int)mark->column + 1;
	mf->npos++;
	return 0;
}

static void positions_read(struct ferry_manifest *mf);

bool ferry_manifest__pos(const struct ferry_manifest *mf, const json_t *parent, const char *key,
			 const json_t *node, int *line, int *column)
{
	if (!mf)
		return false;
	/* Not a visible change: the table is a cache of the text's positions. */
	positions_read((struct ferry_manifest *)mf);
	/* Newest first (duplicate keys are refused when the file is read). */
	for (size_t i = mf->npos; i-- > 0;) {
		const struct manifest_pos *p = &mf->pos[i];
		bool hit;

		if (key)
			hit = p->parent == parent && p->key && !strcmp(p->key, key);
		else
			hit = node && p->node == node;
		if (hit) {
			*line = p->line;
			*column = p->column;
			return true;
		}
	}
	return false;
}

static bool all_digits(const char *s, int base)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		if (base == 16 ? !strchr("0123456789abcdefABCDEF", *s) :
		    base == 8  ? !strchr("01234567", *s) :
				 !strchr("0123456789", *s))
			return false;
	}
	return true;
}

/* Integers the YAML 1.1 way (what kubectl's YAML reader accepts): decimal, 0x hex, 0 octal. */
static bool scalar_int(const char *s, json_int_t *out)
{
	const char *d = s;
	int base = 10;
	long long v;
	char *end;

	if (*d == '-' || *d == '+')
		d++;
	if (d[0] == '0' && (d[1] == 'x' || d[1] == 'X')) {
		base = 16;
		if (!all_digits(d + 2, 16))
			return false;
	} else if (d[0] == '0' && d[1]) {
		base = 8;
		if (!all_digits(d + 1, 8))
			return false;
	} else if (!all_digits(d, 10)) {
		return false;
	}
	errno = 0;
	v = strtoll(s, &end, base);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

static bool scalar_real(const char *s, double *out)
{
	bool digit = false;
	char *end;

	if (!strcmp(s, ".inf") || !strcmp(s, ".Inf") || !strcmp(s, ".INF") || !strcmp(s, "+.inf")) {
		*out = INFINITY;
		return true;
	}
	if (!strcmp(s, "-.inf") || !strcmp(s, "-.Inf") || !strcmp(s, "-.INF")) {
		*out = -INFINITY;
		return true;
	}
	for (const char *c = s; *c; c++) {
		if (*c >= '0' && *c <= '9')
			digit = true;
		else if (!strchr("+-.eE", *c))
			return false;
	}
	if (!digit)
		return false;
	errno = 0;
	*out = strtod(s, &end);
	return !errno && !*end;
}

/*
 * Types a scalar: quoted or explicitly !!str-tagged scalars are strings;
 * plain ones become null, bool, integer or real when they read as such
 * (YAML 1.1 core forms, as kubectl writes them), else strings.
 */
static json_t *scalar_to_json(const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;
	const char *tag = (const char *)ev->data.scalar.tag;
	json_int_t i;
	double r;

	if (tag && strcmp(tag, "!") != 0) {
		if (!strcmp(tag, YAML_STR_TAG))
			return json_string(s);
		if (!strcmp(tag, YAML_INT_TAG) && scalar_int(s, &i))
			return json_integer(i);
		if (!strcmp(tag, YAML_FLOAT_TAG) && scalar_real(s, &r))
			return json_real(r);
		if (!strcmp(tag, YAML_BOOL_TAG) && (!strcmp(s, "true") || !strcmp(s, "false")))
			return json_boolean(!strcmp(s, "true"));
		if (!strcmp(tag, YAML_NULL_TAG))
			return json_null();
	}
	if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || tag)
		return json_string(s);
	if (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	    !strcmp(s, "NULL"))
		return json_null();
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
		return json_true();
	if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
		return json_false();
	if (scalar_int(s, &i))
		return json_integer(i);
	if (scalar_real(s, &r) && isfinite(r))
		return json_real(r);
	return json_string(s);
}

static int reader_next(struct yaml_reader *r, yaml_event_t *ev)
{
	if (!yaml_parser_parse(&r->parser, ev)) {
		const yaml_mark_t *m = &r->parser.problem_mark;

		if (!r->mirror)
			set_err(r->err, r->mf->name, (int)m->line + 1, (int)m->column + 1,
				"YAML syntax error: %s%s%s; fix the syntax at this position",
				r->parser.problem ? r->parser.problem : "cannot parse",
				r->parser.context ? " " : "",
				r->parser.context ? r->parser.context : "");
		return -EINVAL;
	}
	return 0;
}

static int reader_fail(struct yaml_reader *r, const yaml_mark_t *m, const char *msg)
{
	if (!r->mirror)
		set_err(r->err, r->mf->name, (int)m->line + 1, (int)m->column + 1, "%s", msg);
	return -EINVAL;
}

static int read_node(struct yaml_reader *r, yaml_event_t *ev, const json_t *mirror, int depth,
		     json_t **out);
static int read_yaml(struct ferry_manifest *mf, const char *buf, size_t len, const json_t *mirror,
		     struct ferry_config_error *err);
static int read_json(struct ferry_manifest *mf, const char *buf, size_t len,
		     struct ferry_config_error *err);

static unsigned long reads_again;

unsigned long ferry_manifest__reads_again(void)
{
	return __atomic_load_n(&reads_again, __ATOMIC_RELAXED);
}

/* Shed documents read again from the text: the same text gives the same trees. */
static int docs_again(struct ferry_manifest *mf)
{
	struct ferry_config_error ignored;
	int err;

	if (mf->docs)
		return 0;
	__atomic_fetch_add(&reads_again, 1, __ATOMIC_RELAXED);
	mf->docs = json_array();
	if (!mf->docs)
		return -ENOMEM;
	err = mf->json ? read_json(mf, mf->text, mf->len, &ignored) :
			 read_yaml(mf, mf->text, mf->len, NULL, &ignored);
	if (err) {
		json_decref(mf->docs);
		mf->docs = NULL;
	}
	return err;
}

/* The position table, built from the text on first use (see the top of this file). */
static void positions_read(struct ferry_manifest *mf)
{
	struct ferry_config_error ignored;
	int err;

	if (!mf->text || docs_again(mf))
		return;
	/* A JSON file is one document (the root); a YAML stream is mirrored document by document. */
	err = read_yaml(mf, mf->text, mf->len, mf->json ? json_array_get(mf->docs, 0) : mf->docs,
			&ignored);
	if (err) {
		for (size_t i = 0; i < mf->npos; i++)
			free(mf->pos[i].key);
		mf->npos = 0;
		pr_debug("%s: no line numbers for this file (libyaml cannot read it again)",
			 mf->name);
	}
	free(mf->text);
	mf->text = NULL;
}

static int read_sequence(struct yaml_reader *r, const json_t *mirror, int depth, json_t *arr)
{
	size_t idx = 0;
	yaml_event_t ev;
	int err;

	for (;;) {
		const json_t *mchild = NULL;
		json_t *child = NULL;
		yaml_mark_t mark;

		err = reader_next(r, &ev);
		if (err)
			return err;
		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			return 0;
		}
		mark = ev.start_mark;
		if (mirror && json_is_array(mirror))
			mchild = json_array_get(mirror, idx);
		err = read_node(r, &ev, mchild, depth + 1, &child);
		if (err)
			return err;
		if (r->mirror) {
			if (mchild && pos_add(r->mf, mchild, mirror, NULL, &mark))
				return -ENOMEM;
		} else {
			if (json_array_append_new(arr, child))
				return -ENOMEM;
		}
		idx++;
	}
}

static int read_mapping(struct yaml_reader *r, const json_t *mirror, int depth, json_t *obj)
{
	yaml_event_t ev;
	int err;

	for (;;) {
		const json_t *mchild = NULL;
		json_t *child = NULL;
		yaml_mark_t mark, key_mark;
		char *key;

		err = reader_next(r, &ev);
		if (err)
			return err;
		if (ev.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&ev);
			return 0;
		}
		if (ev.type != YAML_SCALAR_EVENT) {
			err = reader_fail(
				r, &ev.start_mark,
				"a mapping key must be a plain string: Kubernetes objects "
				"have no complex keys");
			yaml_event_delete(&ev);
			return err;
		}
		key = strdup((const char *)ev.data.scalar.value);
		key_mark = ev.start_mark;
		yaml_event_delete(&ev);
		if (!key)
			return -ENOMEM;
		/*
		 * YAML says a key is unique in its mapping, and the API server refuses
		 * a duplicate: keeping the last would apply a value the writer may not
		 * have meant (traffic: 50 ... traffic: 90).
		 */
		if (!r->mirror && json_object_get(obj, key)) {
			char msg[512];

			snprintf(
				msg, sizeof(msg),
				"duplicate key \"%.200s\": this mapping has it already; remove one "
				"of them (the API server refuses duplicate keys)",
				key);
			err = reader_fail(r, &key_mark, msg);
			goto out_free_key;
		}
		err = reader_next(r, &ev);
		if (err)
			goto out_free_key;
		mark = ev.start_mark;
		if (mirror && json_is_object(mirror))
			mchild = json_object_get(mirror, key);
		err = read_node(r, &ev, mchild, depth + 1, &child);
		if (err)
			goto out_free_key;
		if (r->mirror) {
			if (mchild && pos_add(r->mf, mchild, mirror, key, &mark))
				err = -ENOMEM;
		} else {
			if (json_object_set_new(obj, key, child))
				err = -ENOMEM;
		}
out_free_key:
		free(key);
		if (err)
			return err;
	}
}

/* Reads the node that starts with *ev (consumed); *out is NULL in mirror mode. */
static int read_node(struct yaml_reader *r, yaml_event_t *ev, const json_t *mirror, int depth,
		     json_t **out)
{
	const char *anchor = NULL;
	json_t *node = NULL;
	int err = 0;

	*out = NULL;
	if (depth > MANIFEST_MAX_DEPTH) {
		err = reader_fail(r, &ev->start_mark, "nesting too deep for a Kubernetes object");
		goto out_delete_event;
	}
	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		node = json_object_get(r->anchors, (const char *)ev->data.alias.anchor);
		if (!node) {
			err = reader_fail(r, &ev->start_mark,
					  "alias to an unknown anchor: define the anchor (&name) "
					  "before its alias (*name)");
			goto out_delete_event;
		}
		*out = r->mirror ? NULL : json_incref(node);
		goto out_delete_event;
	case YAML_SCALAR_EVENT:
		anchor = (const char *)ev->data.scalar.anchor;
		node = r->mirror ? json_null() : scalar_to_json(ev);
		if (!node)
			err = -ENOMEM;
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = (const char *)ev->data.sequence_start.anchor;
		node = json_array();
		if (!node) {
			err = -ENOMEM;
			break;
		}
		err = read_sequence(r, mirror, depth, node);
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = (const char *)ev->data.mapping_start.anchor;
		node = json_object();
		if (!node) {
			err = -ENOMEM;
			break;
		}
		err = read_mapping(r, mirror, depth, node);
		break;
	default:
		err = reader_fail(r, &ev->start_mark, "unexpected YAML event");
		break;
	}
	if (!err && anchor && json_object_set(r->anchors, anchor, node))
		err = -ENOMEM;
	if (err || r->mirror)
		json_decref(node);
	else
		*out = node;
out_delete_event:
	yaml_event_delete(ev);
	return err;
}

/*
 * Reads a YAML stream: every non-empty document is appended to mf->docs.
 * With mirror, builds nothing and records positions for mirror's nodes
 * instead: mirror is mf->docs itself (a YAML stream, one element per
 * non-empty document) or, for a JSON file, its one root value.
 */
static int read_yaml(struct ferry_manifest *mf, const char *buf, size_t len, const json_t *mirror,
		     struct ferry_config_error *err)
{
	struct yaml_reader r = { .mf = mf, .err = err, .mirror = mirror != NULL };
	bool stream = mirror == mf->docs;
	size_t ndoc = 0;
	yaml_event_t ev;
	int ret;

	if (!yaml_parser_initialize(&r.parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&r.parser, (const unsigned char *)buf, len);
	r.anchors = json_object();
	if (!r.anchors) {
		ret = -ENOMEM;
		goto out_delete_parser;
	}
	for (;;) {
		json_t *doc = NULL;
		yaml_mark_t mark;

		ret = reader_next(&r, &ev);
		if (ret)
			break;
		if (ev.type == YAML_STREAM_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		if (ev.type != YAML_DOCUMENT_START_EVENT) {
			/* STREAM_START and DOCUMENT_END carry nothing. */
			yaml_event_delete(&ev);
			continue;
		}
		yaml_event_delete(&ev);
		json_object_clear(r.anchors); /* anchors do not cross documents */
		ret = reader_next(&r, &ev);
		if (ret)
			break;
		mark = ev.start_mark;
		if (stream) {
			/* The document this one became; an empty one became none. */
			const json_t *mdoc = json_array_get(mirror, ndoc);
			json_t *v = ev.type == YAML_SCALAR_EVENT ? scalar_to_json(&ev) : NULL;
			bool empty = v && json_is_null(v);

			json_decref(v);
			ret = read_node(&r, &ev, empty ? NULL : mdoc, 0, &doc);
			if (ret)
				break;
			if (!empty && mdoc && (ndoc++, pos_add(mf, mdoc, NULL, NULL, &mark))) {
				ret = -ENOMEM;
				break;
			}
			continue;
		}
		ret = read_node(&r, &ev, mirror, 0, &doc);
		if (ret)
			break;
		if (r.mirror) {
			if (ndoc++ == 0 && pos_add(mf, mirror, NULL, NULL, &mark)) {
				ret = -ENOMEM;
				break;
			}
			continue;
		}
		if (json_is_null(doc)) {
			json_decref(doc); /* "---" followed by nothing, or a comment-only file */
			continue;
		}
		if (json_array_append_new(mf->docs, doc)) {
			ret = -ENOMEM;
			break;
		}
	}
	json_decref(r.anchors);
out_delete_parser:
	yaml_parser_delete(&r.parser);
	if (ret == -ENOMEM && !r.mirror)
		set_err(err, mf->name, 0, 0, "out of memory");
	return ret;
}

static int read_json(struct ferry_manifest *mf, const char *buf, size_t len,
		     struct ferry_config_error *err)
{
	json_error_t jerr;
	json_t *doc;

	/* A UTF-8 byte order mark (Windows editors write one): kubectl skips it, so do we. */
	if (len >= 3 && !memcmp(buf, "\xef\xbb\xbf", 3)) {
		buf += 3;
		len -= 3;
	}
	/* Duplicate keys: refused as in YAML (read_mapping). */
	doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc && !strncmp(jerr.text, "duplicate object key", 20)) {
		/* jansson's text is "duplicate object key near '\"KEY\"'": say it the YAML way */
		const char *near = strstr(jerr.text, "near '");

		set_err(err, mf->name, jerr.line > 0 ? jerr.line : 0,
			jerr.column > 0 ? jerr.column : 0,
			"duplicate key %.*s: this object has it already; remove one of them (the "
			"API server refuses duplicate keys)",
			near ? (int)strlen(near + 6) - 1 : 0, near ? near + 6 : "");
		return -EINVAL;
	}
	if (!doc) {
		set_err(err, mf->name, jerr.line > 0 ? jerr.line : 0,
			jerr.column > 0 ? jerr.column : 0,
			"JSON syntax error: %s; fix the syntax at this position", jerr.text);
		return -EINVAL;
	}
	if (json_array_append_new(mf->docs, doc)) {
		set_err(err, mf->name, 0, 0, "out of memory");
		return -ENOMEM;
	}
	/* Positions are a bonus: a text jansson takes but libyaml does not just has none. */
	return 0;
}

struct ferry_manifest *ferry_manifest__parse(const char *buf, size_t len, const char *name,
					     bool json, struct ferry_config_error *err)
{
	struct ferry_manifest *mf;
	int ret;

	mf = calloc(1, sizeof(*mf));
	if (!mf)
		goto err_nomem;
	mf->refcnt = 1;
	snprintf(mf->name, sizeof(mf->name), "%s", name);
	mf->docs = json_array();
	if (!mf->docs) {
		free(mf);
		goto err_nomem;
	}
	ret = json ? read_json(mf, buf, len, err) : read_yaml(mf, buf, len, NULL, err);
	if (ret) {
		ferry_manifest__put(mf);
		errno = -ret;
		return NULL;
	}
	mf->json = json;
	mf->text = malloc(len + 1);
	if (mf->text) { /* without it, errors say line 0 */
		memcpy(mf->text, buf, len);
		mf->text[len] = '\0';
		mf->len = len;
	}
	return mf;

err_nomem:
	set_err(err, name, 0, 0, "out of memory");
	errno = ENOMEM;
	return NULL;
}

struct ferry_manifest *ferry_manifest__load(const char *path, struct ferry_config_error *err)
{
	struct ferry_manifest *mf;
	struct stat st;
	int fd, saved;

	/* O_NONBLOCK: a FIFO put in place of the file must not block the reader (refused below). */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st)) {
		saved = errno;
		set_err(err, path, 0, 0, "cannot read: %s", strerror(saved));
		if (fd >= 0)
			close(fd);
		errno = saved;
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		set_err(err, path, 0, 0,
			"not a regular file: a manifest must be a file or a symbolic link to one");
		close(fd);
		errno = EINVAL;
		return NULL;
	}
	mf = ferry_manifest__load_fd(fd, path, &st, err);
	saved = errno;
	close(fd);
	errno = saved;
	return mf;
}

struct ferry_manifest *ferry_manifest__load_fd(int fd, const char *path, const struct stat *st,
					       struct ferry_config_error *err)
{
	struct ferry_manifest *mf = NULL;
	size_t len = 0, n;
	char *buf;
	int saved;
	bool json;

	if ((size_t)st->st_size > MANIFEST_MAX_BYTES) {
		set_err(err, path, 0, 0, "file is %lld bytes; the limit is %u: split it",
			(long long)st->st_size, MANIFEST_MAX_BYTES);
		errno = EFBIG;
		return NULL;
	}
	buf = malloc((size_t)st->st_size + 1);
	if (!buf) {
		set_err(err, path, 0, 0, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	while (len < (size_t)st->st_size) {
		ssize_t got = read(fd, buf + len, (size_t)st->st_size - len);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			/* EIO and friends: half a file parsed would drop the objects of the rest */
			saved = errno;
			set_err(err, path, 0, 0, "cannot read: %s; fix or remove the file",
				strerror(saved));
			free(buf);
			errno = saved;
			return NULL;
		}
		if (!got)
			break;
		len += (size_t)got;
	}
	buf[len] = '\0';
	n = strlen(path);
	json = n >= 5 && !strcmp(path + n - 5, ".json");
	mf = ferry_manifest__parse(buf, len, path, json, err);
	saved = errno;
	free(buf);
	errno = saved;
	return mf;
}

struct ferry_manifest *ferry_manifest__get(struct ferry_manifest *mf)
{
	if (mf)
		mf->refcnt++;
	return mf;
}

void ferry_manifest__put(struct ferry_manifest *mf)
{
	if (!mf || --mf->refcnt > 0)
		return;
	for (size_t i = 0; i < mf->npos; i++)
		free(mf->pos[i].key);
	free(mf->pos);
	free(mf->text);
	json_decref(mf->docs);
	free(mf);
}

const char *ferry_manifest__name(const struct ferry_manifest *mf)
{
	return mf->name;
}

size_t ferry_manifest__ndocs(const struct ferry_manifest *mf)
{
	return mf->docs ? json_array_size(mf->docs) : mf->ndocs_shed;
}

json_t *ferry_manifest__doc(const struct ferry_manifest *mf, size_t i)
{
	/* Not a visible change: shed documents come back as they were. */
	if (docs_again((struct ferry_manifest *)mf))
		return NULL;
	return json_array_get(mf->docs, i);
}

bool ferry_manifest__shed(struct ferry_manifest *mf)
{
	if (!mf->docs || !mf->text || mf->npos)
		return false;
	mf->ndocs_shed = json_array_size(mf->docs);
	json_decref(mf->docs);
	mf->docs = NULL;
	return true;
}
