/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A configuration error: where (file, line, column, object, field) and what.
 * Its own header so that the manifest reader, below the config store, can
 * report syntax errors without knowing the store.
 */
#ifndef FERRY_CONFIG_ERROR_H
#define FERRY_CONFIG_ERROR_H

#include <stddef.h>

struct ferry_config_error {
	char file[256]; /* the manifest file, or "kubernetes" */
	int line; /* 1-based; 0 when the parser cannot tell */
	int column; /* 1-based; 0 when the parser cannot tell */
	char object[320]; /* "Kind namespace/name", or "" when not known */
	char field[256]; /* field path, e.g. "spec.predictors[1].traffic", or "" */
	char message[512]; /* what was expected and how to fix it */
};

/* Formats an error as one line: "FILE:LINE:COL: OBJECT: FIELD: MESSAGE". */
void ferry_config_error__format(const struct ferry_config_error *err, char *buf, size_t len);

#endif /* FERRY_CONFIG_ERROR_H */
