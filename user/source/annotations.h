/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ferry's manifest annotations (ferry.io/...), as a table. A new annotation
 * is one entry in config_annotations.c: its name, a parser that validates the
 * value and writes it into the deployment (struct sdep, then the model in
 * config_build.c), and the Values and Effect columns of docs/configuration.md's
 * annotation table, which tests/test_annotations.c keeps in step.
 */
#ifndef FERRY_ANNOTATIONS_H
#define FERRY_ANNOTATIONS_H

#include <stddef.h>
#include <jansson.h>

struct vctx;
struct sdep;

struct ferry_annotation {
	const char *name; /* e.g. "ferry.io/affinity" */
	const char *values; /* docs/configuration.md's Values column, verbatim */
	const char *effect; /* its Effect column, verbatim */
	/*
	 * Validates value (found at where, named field in errors) and stores it
	 * in sd. Returns 0, -EINVAL after recording the error, or -ENOMEM.
	 */
	int (*parse)(struct vctx *c, const char *value, json_t *where, const char *field,
		     struct sdep *sd);
};

extern const struct ferry_annotation ferry_annotations[];
extern const size_t ferry_nannotations;

#endif /* FERRY_ANNOTATIONS_H */
