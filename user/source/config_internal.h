/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The manifest store (config.h): validates SeldonDeployment, EndpointSlice and
 * Service objects (SeldonDeployments the way Seldon's admission webhook does),
 * then by ferry's own rules,
 * keeps the last good version of every object, and maps what is in force to
 * a struct ferry_model. docs/configuration.md is the user's view of this file.
 *
 * Validation runs in two stages. Rules about one object alone run when the
 * object comes in (__load_dir, __put), so a bad object never replaces a good
 * one. Rules that need other objects (a VIP claimed twice, a VIP whose family
 * no EndpointSlice serves) run in __build, which falls back to the version of
 * a deployment that the previous build used.
 *
 * This header is private to user/source/config_*.c: the validated object
 * types and the helpers the rule files share. One file per concern:
 * helpers, vip, sdep, slice, service, object, store, build.
 */
#ifndef FERRY_CONFIG_INTERNAL_H
#define FERRY_CONFIG_INTERNAL_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "addr.h"
#include "fnv.h"
#include "source/annotations.h"
#include "log.h"
#include "source/config.h"
#include "source/manifest.h"

#define ANN_VIP "ferry.io/vip"
#define ANN_AFFINITY "ferry.io/affinity"
#define ANN_LATENCY_SAMPLE "ferry.io/latency-sample"
#define ANN_PROTOCOL "ferry.io/protocol"
#define ANN_REBALANCE "ferry.io/rebalance"
#define ANN_REBALANCE_WINDOW "ferry.io/rebalance-window"
/* Canary analysis (docs/canary.md). */
#define ANN_CANARY "ferry.io/canary"
#define ANN_CANARY_PREDICTOR "ferry.io/canary-predictor"
#define ANN_BASELINE_PREDICTOR "ferry.io/baseline-predictor"
#define ANN_CANARY_STEPS "ferry.io/canary-steps"
#define ANN_CANARY_INTERVAL "ferry.io/canary-interval"
#define ANN_CANARY_MAX_ERROR_RATE "ferry.io/canary-max-error-rate"
#define ANN_CANARY_MAX_ERROR_INCREASE "ferry.io/canary-max-error-increase"
#define ANN_CANARY_MAX_LATENCY_RATIO "ferry.io/canary-max-latency-ratio"
#define ANN_CANARY_MIN_REQUESTS "ferry.io/canary-min-requests"
#define ANN_CANARY_FAILURES "ferry.io/canary-failures"
#define ANN_CANARY_SIGNIFICANCE "ferry.io/canary-significance"
#define ANN_CANARY_MIN_EFFECT "ferry.io/canary-min-effect"
#define ANN_SVC_NAME "seldon.io/svc-name"
#define LABEL_SERVICE_NAME "kubernetes.io/service-name"
#define LABEL_SERVICE_PROXY_NAME "service.kubernetes.io/service-proxy-name"
/* ferry.io/vip: service/NAME takes the addresses and ports of Service NAME. */
#define VIP_SERVICE_PREFIX "service/"

#define KIND_SDEP "SeldonDeployment"
#define KIND_SLICE "EndpointSlice"
#define KIND_SERVICE "Service"

/* Kubernetes names: 253 characters at most (DNS subdomain). */
#define K8S_NAME_LEN 256

enum obj_kind {
	OBJ_SDEP = 1,
	OBJ_SLICE,
	OBJ_SERVICE,
};

struct sd_predictor {
	char name[FERRY_PRED_NAME_LEN];
	__u32 weight; /* ppm */
	bool shadow;
	char service[K8S_NAME_LEN]; /* EndpointSlices labelled with this service name */
};

struct sd_vip {
	struct ferry_vip vip;
	char text[64];
	/*
	 * A VIP taken from a Service (ferry.io/vip: service/NAME); service is
	 * empty for a literal ADDR:PORT. The Service port's name and targetPort
	 * choose the predictors' endpoint port (pick_port in config_build.c).
	 */
	char service[K8S_NAME_LEN];
	char port_name[K8S_NAME_LEN];
	char target_name[K8S_NAME_LEN]; /* a named targetPort */
	__u16 target_port; /* a numbered targetPort (the port itself when unset) */
	__u32 flags; /* FERRY_SVC_F_HASH_SRC_ADDR from sessionAffinity: ClientIP */
};

/* A service/NAME entry of ferry.io/vip. */
struct sd_svc_ref {
	char name[K8S_NAME_LEN];
};

/* A validated SeldonDeployment; shared (refcounted) between an entry and its last build. */
struct sdep {
	int refcnt;
	char ns[K8S_NAME_LEN];
	char key[FERRY_NAME_LEN]; /* "namespace/name" */
	struct sd_vip *vips;
	size_t nvips;
	struct sd_svc_ref *svcs; /* service/NAME entries, resolved at each build */
	size_t nsvcs;
	bool expanded; /* vips include those of svcs (a build's copy) */
	__u32 flags;
	__u32 sample_every;
	bool rebalance_off; /* ferry.io/rebalance: off */
	__u64 rebalance_window_ns; /* ferry.io/rebalance-window */
	struct sd_predictor *preds;
	size_t npreds;
	bool has_shadow;
	/* ferry.io/canary-*; canary and baseline are resolved in parse_sdep when not named */
	struct ferry_canary_config canary;
};

struct sl_port {
	char name[K8S_NAME_LEN];
	__u16 port;
	__u8 proto;
};

struct sl_endpoint {
	__be32 addr[4];
	__u8 state;
};

struct slice {
	char service[K8S_NAME_LEN];
	__u8 family;
	struct sl_port *ports;
	size_t nports;
	struct sl_endpoint *eps;
	size_t neps;
};

struct svc_port {
	char name[K8S_NAME_LEN];
	__u16 port;
	__u8 proto;
	__u16 target_port; /* 0 when targetPort is a name */
	char target_name[K8S_NAME_LEN];
};

struct svc_ip {
	__u8 family;
	__be32 addr[4];
};

/* A Kubernetes Service (v1): only what a service/NAME VIP needs. */
struct k8s_svc {
	char type[32]; /* ClusterIP, NodePort, LoadBalancer, ExternalName */
	bool headless; /* clusterIP: None */
	bool client_ip; /* sessionAffinity: ClientIP */
	bool proxy_label; /* has service.kubernetes.io/service-proxy-name */
	struct svc_ip *ips; /* spec.clusterIPs, else spec.clusterIP */
	size_t nips;
	struct svc_port *ports; /* TCP and UDP ports of spec.ports */
	size_t nports;
};

struct entry {
	enum obj_kind kind;
	char ns[K8S_NAME_LEN];
	char name[K8S_NAME_LEN];
	char key[2 * K8S_NAME_LEN + 32]; /* entry_key(): "Kind/namespace/name" */
	bool from_file;
	char source[256]; /* file path, or the origin given to __put */
	struct ferry_manifest *mf; /* NULL for objects from __put */
	/*
	 * The object as read; for a file's object NULL once the store shed the
	 * trees (entry_obj() finds it again from mf, doc and item).
	 */
	json_t *obj;
	size_t doc, item; /* mf's document, and its item when a List (ENTRY_DOC: none) */
	struct sdep *sd;
	struct slice *sl;
	struct k8s_svc *svc;
	struct sdep *built; /* the version the last __build put in force */
};

struct stored_error {
	struct ferry_config_error e;
	char key[2 * K8S_NAME_LEN + 32]; /* object key, for __put errors */
};

struct error_list {
	struct stored_error *v;
	size_t n, cap;
};

struct vip_owner {
	struct ferry_vip vip;
	char key[FERRY_NAME_LEN];
};

struct str_set {
	char **v;
	size_t n;
};

/*
 * What an edit's scans of the whole store compare, one per entry, in the
 * entries' order (store->sums): at 1,000 deployments an edit scanned 3,000
 * entries of 1.4 KB from cold memory, 0.3 ms for one lookup by key; these
 * are read in order and an entry is read only when its hash matches.
 */
struct entry_sum {
	__u64 key_hash; /* ferry_fnv1a_str(key) */
	__u64 source_hash; /* ferry_fnv1a_str(source) */
	/* ferry_fnv1a_str() of what note_dirty() names: a deployment's, a slice's service's, a Service's "ns/name" */
	__u64 ref_hash;
	enum obj_kind kind;
	bool from_file;
};

struct ferry_config_store {
	struct entry **entries;
	size_t nentries;
	/*
	 * sums[i] for entries[i]; NULL when not kept up (after __put or
	 * __delete, which make every build a full one): the scans read the
	 * entries then.
	 */
	struct entry_sum *sums;
	struct error_list load_errs, put_errs, build_errs;
	struct vip_owner *owners; /* VIP -> deployment, as of the last build */
	size_t nowners;
	/* What has been logged, so that each condition is logged once per change. */
	struct str_set noted_novip, noted_shadow, noted_redist;
	/* Services: named but missing, lacking the proxy label, a family without endpoints. */
	struct str_set noted_waitsvc, noted_nolabel, noted_family;
	/*
	 * Parsed files by path, with the stat that identifies their content:
	 * a sync after one edit re-parses one file, not the whole directory.
	 */
	struct parsed_file *parsed;
	size_t nparsed, parsed_cap;
	json_t *parsed_index; /* path -> index in parsed: a lookup per file, not a scan */
	unsigned int load_gen;
	/*
	 * What changed since the last build, for __build_update: every object
	 * (dirty_all, after __load_dir, __put, __delete), or the keys named here
	 * (after __load_files): deployments "ns/name", slices' services and
	 * Services "ns/name". built: a build has run (its owners and notes hold).
	 */
	bool dirty_all, built;
	struct str_set dirty_deps, dirty_refs;
	/* The last load saw an object defined in two files: which wins depends on all files. */
	bool load_dup;
	size_t napi; /* entries from __put (not from files) */
	/* Seldon's rules: seldon-config's servers (NULL: the Helm chart's), see __set_seldon. */
	const struct ferry_seldon_servers *seldon_servers;
	bool seldon_cluster_judged;
};

struct parsed_file {
	char *path;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
	struct ferry_manifest *mf;
	unsigned int seen; /* load_gen of the last load that found the file */
	bool clean; /* its last validation raised no error: unchanged, it is not validated again */
	bool hit; /* this load found it unchanged */
};

/* Validation context: where the object came from, for errors. */
struct vctx {
	struct error_list *errs;
	const struct ferry_manifest *mf;
	const char *file;
	const char *errkey;
	char object[320];
	int nerrs;
	const struct ferry_seldon_servers *seldon_servers;
	bool seldon_cluster_judged; /* the object passed the cluster's own webhook */
};

#define ENTRY_DOC ((size_t)-1)

/* config_helpers.c */
json_t *entry_obj(const struct entry *e);
int errs_push(struct error_list *l, const struct ferry_config_error *e, const char *key);
void errs_clear(struct error_list *l);
void errs_drop_key(struct error_list *l, const char *key);
const char *json_type_name(const json_t *v);
json_t *get_object(struct vctx *c, json_t *parent, const char *key, const char *field);
const char *get_string(struct vctx *c, json_t *parent, const char *key, const char *field,
		       bool *bad);
/* One entry of a Kubernetes port list, as read by read_k8s_port(). */
struct k8s_port {
	const char *name; /* NULL when absent */
	__u16 port;
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
};
int read_k8s_port(struct vctx *c, json_t *p, const char *prefix, size_t i, bool number_optional,
		  struct k8s_port *out);
int str_set_add(struct str_set *s, const char *v);
bool str_set_has(const struct str_set *s, const char *v);
void str_set_free(struct str_set *s);
void sdep_put(struct sdep *sd);
struct sdep *sdep_get(struct sdep *sd);
void slice_free(struct slice *sl);
void k8s_svc_free(struct k8s_svc *svc);
void entry_free(struct entry *e);
const char *kind_name(enum obj_kind kind);
void entry_key(enum obj_kind kind, const char *ns, const char *name, char *buf, size_t len);

/* config_vip.c */
int vip_cmp(const struct ferry_vip *a, const struct ferry_vip *b);

/* config_sdep.c */
int parse_sdep(struct vctx *c, json_t *obj, const char *ns, struct sdep **out);

/* config_slice.c */
int parse_slice(struct vctx *c, json_t *obj, struct slice **out);

/* config_service.c */
int parse_service(struct vctx *c, json_t *obj, struct k8s_svc **out);

/* config_annotations.c: warns of each ferry.io/ key of ann (at where) ferry does not read. */
void warn_unknown_annotations(struct vctx *c, json_t *ann, const char *where);

/* config_object.c */
int object_parse(struct vctx *c, json_t *obj, const char *kind, const char *api_version,
		 struct entry **out, char *key, size_t keylen);
struct entry *find_entry(struct entry **v, size_t n, const char *key, bool want_file,
			 bool any_origin);
int entries_push(struct entry ***v, size_t *n, struct entry *e);
void entry_sum(const struct entry *e, struct entry_sum *s);
/* n is the count before the push, as for entries_push(); -ENOMEM */
int sums_push(struct entry_sum **v, size_t n, const struct entry_sum *s);

/*
 * verr is static inline here, not exported: libc declares a verr() of its own
 * in <err.h>.
 */
static inline void verr(struct vctx *c, const json_t *parent, const char *key, const json_t *node,
			const char *field, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/*
 * Records an error at a value: by parent and key when the value is a member
 * (or missing: then the parent's position), else by the node itself.
 */
static inline void verr(struct vctx *c, const json_t *parent, const char *key, const json_t *node,
			const char *field, const char *fmt, ...)
{
	struct ferry_config_error e = {};
	va_list ap;

	snprintf(e.file, sizeof(e.file), "%s", c->file);
	snprintf(e.object, sizeof(e.object), "%s", c->object);
	snprintf(e.field, sizeof(e.field), "%s", field ? field : "");
	if (!ferry_manifest__pos(c->mf, parent, key, node, &e.line, &e.column) &&
	    !(node && ferry_manifest__pos(c->mf, NULL, NULL, node, &e.line, &e.column)) &&
	    !(parent && ferry_manifest__pos(c->mf, NULL, NULL, parent, &e.line, &e.column)))
		e.line = e.column = 0;
	va_start(ap, fmt);
	vsnprintf(e.message, sizeof(e.message), fmt, ap);
	va_end(ap);
	c->nerrs++;
	if (errs_push(c->errs, &e, c->errkey))
		pr_err("out of memory recording a configuration error");
}

#endif /* FERRY_CONFIG_INTERNAL_H */
