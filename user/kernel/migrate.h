/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Upgrading pins made by the previous ABI version (FERRY_ABI_VERSION - 1) in
 * place, so that a rolling update keeps open connections. The one seam is
 * ferry_dp__open: ferry_migrate__begin moves the old pins aside before the
 * new objects load (they then create every map afresh), ferry_migrate__finish
 * copies what is carried into the new maps. What is carried is listed in
 * migrate.c; every other map starts empty and the first sync fills it.
 */
#ifndef FERRY_MIGRATE_H
#define FERRY_MIGRATE_H

#include <stdbool.h>

struct ferry_dp;
struct ferry_migration;

/*
 * The ABI version of the pins under pin_path, including pins moved aside by
 * an interrupted migration: 0 when there are none. Negative errno when the
 * config pin exists and cannot be read.
 */
int ferry_migrate__pinned_abi(const char *pin_path);

/*
 * Moves the pins of an older ABI under pin_path aside (PIN/abi-old/), or
 * takes up those an interrupted migration left there. Programs attached by
 * the old ferryd keep running on the old maps, which they hold, until the
 * new ones replace them. Returns NULL and sets errno on failure.
 */
struct ferry_migration *ferry_migrate__begin(const char *pin_path, int abi);

/*
 * Copies the carried state into dp's new maps, then removes the old pins.
 * Frees m. Runs after the new objects are loaded, before ferry_config is
 * initialised (it writes ferry_config itself, keeping the hash seed).
 */
int ferry_migrate__finish(struct ferry_migration *m, struct ferry_dp *dp);

/* Frees m without finishing: the old pins stay aside for the next try. */
void ferry_migrate__abort(struct ferry_migration *m);

#endif /* FERRY_MIGRATE_H */
