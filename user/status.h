/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ferryd's status file: what the maps cannot say (config errors, the config
 * source, when the last sync happened and how it went). ferryd rewrites it
 * atomically after every sync; ferryctl reads it. One file per pin path, so
 * several data planes on one host (tests) do not mix.
 */
#ifndef FERRY_STATUS_H
#define FERRY_STATUS_H

#include <stddef.h>

#define FERRY_STATUS_DIR "/run/ferry"

/*
 * /run/ferry/<pin path with '/' as '_'>.json; trailing slashes dropped and
 * repeated ones counted once, so every spelling of one directory names one file.
 */
int ferry_status__path(const char *pin_path, char *buf, size_t len);

#endif /* FERRY_STATUS_H */
