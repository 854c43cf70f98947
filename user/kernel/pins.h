/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The maps ferry pins under one bpffs directory: ONE list (enum ferry_map_id,
 * ferry_map_names) and one opener. The data plane (dataplane.c), the snapshot
 * reader (snapshot.c) and, through struct ferry_dp, sync.c all name maps by
 * these ids; a new pinned map is an id here plus its SEC(".maps") in bpf/.
 * Per-predictor inner tables (PIN/tables/PREDICTOR_ID) are sync.c's own.
 */
#ifndef FERRY_PINS_H
#define FERRY_PINS_H

#include <stddef.h>

#include <linux/bpf.h> /* struct bpf_spin_lock in ferry_maps.h */
#include "ferry_maps.h"

enum ferry_map_id {
	FERRY_M_CONFIG,
	FERRY_M_SERVICES,
	FERRY_M_TABLES,
	FERRY_M_BACKENDS,
	FERRY_M_FLOWS,
	FERRY_M_RFLOWS,
	FERRY_M_STATS,
	FERRY_M_SVC_STATS,
	FERRY_M_COUNTERS,
	FERRY_M_LATENCY,
	FERRY_M_TRACE,
	FERRY_M_TX_PORTS,
	FERRY_M_SVC_META,
	FERRY_M_PRED_META,
	FERRY_M_LINKS,
	FERRY_M_SELECT,
	FERRY_M_L7,
	FERRY_M_EFLOWS,
	FERRY_M_ERFLOWS,
	FERRY_M_VIP_BITS, /* optional: pins of an earlier release of this ABI lack it */
	FERRY_M_BE_BITS, /* optional, as FERRY_M_VIP_BITS */
	FERRY_M_COUNT,
};

/* Map names as the BPF objects define them, which are also their pin names. */
extern const char *const ferry_map_names[FERRY_M_COUNT];

/* Writes "PIN_PATH/NAME" to buf. Returns 0 or -ENAMETOOLONG. */
int ferry_pin__path(char *buf, size_t len, const char *pin_path, const char *name);

/*
 * Opens the pinned map id under pin_path. Returns an fd, or a negative errno
 * (-ENOENT when the pin does not exist). The pin's path is left in path for
 * the caller's message; nothing is logged here, since only the caller knows
 * what the user was doing.
 */
int ferry_pin__open(const char *pin_path, enum ferry_map_id id, char *path, size_t len);

/*
 * PIN/ferry_svc_names: a deployment's name ("namespace/name", zero-padded to
 * FERRY_NAME_LEN) -> the ids of its services. Kept by ferryd's sync for
 * ferryctl, which resolves a name with one lookup instead of reading every
 * ferry_svc_meta entry; no program reads it, and ferryctl falls back to that
 * read when the map or the name is missing (an older ferryd). A deployment
 * with more services than ids has nids FERRY_SVC_NAME_MANY.
 *
 * The entry of the empty name (an all-zero key) dates the index: ids[0] and
 * ids[1] are the low and high halves of ferry_config.generation after the
 * sync that last wrote it. ferryctl trusts the index only when that is
 * ferry_config's generation now: every ferryd moves the generation at every
 * sync, one that does not keep the index (a downgrade) included.
 */
#define FERRY_MAP_SVC_NAMES "ferry_svc_names"
#define FERRY_SVC_NAME_IDS 15
#define FERRY_SVC_NAME_MANY 0xffffffffU

struct ferry_svc_name {
	__u32 nids;
	__u32 ids[FERRY_SVC_NAME_IDS];
};

#endif /* FERRY_PINS_H */
