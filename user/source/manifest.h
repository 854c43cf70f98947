/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Manifest files to json_t, with positions. YAML (libyaml) and JSON (jansson)
 * both end up as jansson values so that one validation path serves both; a
 * side table remembers where every value came from (line and column), so
 * that validation errors can point at the text the user has to change.
 *
 * Internal to the config layer (user/source/config_*.c).
 */
#ifndef FERRY_MANIFEST_H
#define FERRY_MANIFEST_H

#include <stdbool.h>
#include <sys/stat.h>
#include <stddef.h>
#include <jansson.h>

#include "source/config_error.h"

struct ferry_manifest;

/*
 * Parses buf (len bytes) as JSON when json is true, else as a YAML stream of
 * one or more documents. name names the input in errors. Returns NULL and
 * fills *err (file, line, column, message) when the text does not parse;
 * errno is then EINVAL (syntax) or ENOMEM.
 */
struct ferry_manifest *ferry_manifest__parse(const char *buf, size_t len, const char *name,
					     bool json, struct ferry_config_error *err);
/* Reads and parses a file; JSON when the name ends in .json. */
struct ferry_manifest *ferry_manifest__load(const char *path, struct ferry_config_error *err);
/*
 * The same for a file the caller opened and fstat()ed as st (fd stays
 * open): one path lookup per file where the caller needs the stat anyway.
 */
struct ferry_manifest *ferry_manifest__load_fd(int fd, const char *path, const struct stat *st,
					       struct ferry_config_error *err);

/* Manifests are shared by every object taken from them: reference counted. */
struct ferry_manifest *ferry_manifest__get(struct ferry_manifest *mf);
void ferry_manifest__put(struct ferry_manifest *mf);

const char *ferry_manifest__name(const struct ferry_manifest *mf);
size_t ferry_manifest__ndocs(const struct ferry_manifest *mf);
/*
 * The i-th document; borrowed, lives as long as the manifest or until
 * ferry_manifest__shed(). NULL when out of range, or when shed documents
 * cannot be read again (out of memory).
 */
json_t *ferry_manifest__doc(const struct ferry_manifest *mf, size_t i);
/*
 * Drops the documents, kept as text: the next __doc() or __pos() reads them
 * again. For a store that keeps thousands of manifests for the rare error
 * message (a JSON tree is ~8 KB for a 600-byte SeldonDeployment). Only the
 * caller may hold documents of mf; nothing happens once positions were read
 * (they point into the trees). Returns true when dropped.
 */
bool ferry_manifest__shed(struct ferry_manifest *mf);
/*
 * How many times, in this process, shed documents were read again from their
 * text: once per file an error asked about, not per file loaded. Thread-safe.
 */
unsigned long ferry_manifest__reads_again(void);

/*
 * Where a value starts in the text (1-based line and column). Looks the value
 * up by its parent and key when key is given (true, false and null are
 * shared singletons in jansson, so only the parent and key identify them),
 * else by the node itself. Returns false when the position is not known; mf
 * may be NULL (objects from the Kubernetes API have no text).
 */
bool ferry_manifest__pos(const struct ferry_manifest *mf, const json_t *parent, const char *key,
			 const json_t *node, int *line, int *column);

#endif /* FERRY_MANIFEST_H */
