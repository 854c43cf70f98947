// SPDX-License-Identifier: GPL-2.0-only
/*
 * ferryd's canary runner (canary_run.h): windows from snapshots, the rollout
 * per deployment, its weights in the maps, its state file and SRE commands.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "canary/canary_run.h"
#include "log.h"
#include "status.h"

struct dep {
	char key[FERRY_NAME_LEN];
	struct ferry_canary_config cfg;
	bool configured; /* cfg came from a manifest (not only the state file) */
	bool seen;
	struct ferry_vip *vips; /* the deployment's services, as of the last sync */
	size_t nvips;
	__u64 fingerprint;
	struct ferry_canary_rollout ro;
	/* Counters at the start of the window being measured. */
	bool has_base;
	__u64 base_window;
	struct ferry_canary_counts base_canary, base_baseline;
	__u64 base_unknown;
	bool has_last;
	struct ferry_canary_node_window last;
	json_t *windows; /* the last FERRY_CANARY_HISTORY judged windows, oldest first */
	struct ferry_canary_metrics m;
};

struct ferry_canary_runner {
	struct ferry_canary_runner_opts opts;
	char state_path[PATH_MAX];
	char ctl_dir[PATH_MAX];
	struct dep **deps;
	size_t ndeps;
};

/* ---------------------------------------------------------------- paths */

static int status_based(const char *pin_path, const char *suffix, char *buf, size_t len)
{
	char base[PATH_MAX];
	size_t n;
	int err;

	err = ferry_status__path(pin_path ? pin_path : FERRY_PIN_ROOT_DEFAULT, base, sizeof(base));
	if (err)
		return err;
	n = strlen(base);
	if (n > 5 && !strcmp(base + n - 5, ".json"))
		base[n - 5] = '\0';
	if ((size_t)snprintf(buf, len, "%s%s", base, suffix) >= len)
		return -ENAMETOOLONG;
	return 0;
}

int ferry_canary__state_path(const char *pin_path, char *buf, size_t len)
{
	return status_based(pin_path, ".canary.json", buf, len);
}

int ferry_canary__ctl_dir(const char *pin_path, char *buf, size_t len)
{
	return status_based(pin_path, ".canary-ctl", buf, len);
}

/* "namespace/name" -> "namespace_name": '/' cannot be in a file name. */
static void ctl_name(const char *deployment, char *buf, size_t len)
{
	snprintf(buf, len, "%s", deployment);
	for (char *p = buf; *p; p++)
		if (*p == '/')
			*p = '_';
}

/*
 * Commands queue as one file each, DEPLOYMENT@TIME-PID, applied in name
 * order: commands given while ferryd is down all apply, in the order given.
 * One file per deployment, replaced by each command, lost all but the last:
 * an --abort then a --pause left a paused rollout on its old step, and the
 * abort's weight was undone at ferryd's start. '@' is not in Kubernetes
 * names, so one deployment's prefix is never another's.
 */
#define CTL_SEP '@'

int ferry_canary__queue_command(const char *pin_path, const char *deployment,
				enum ferry_canary_command cmd)
{
	char dir[PATH_MAX], name[FERRY_NAME_LEN], path[PATH_MAX + FERRY_NAME_LEN + 48],
		tmp[sizeof(path) + 8];
	struct timespec ts;
	FILE *f;
	int err;

	err = ferry_canary__ctl_dir(pin_path, dir, sizeof(dir));
	if (err)
		return err;
	mkdir(FERRY_STATUS_DIR, 0755);
	if (mkdir(dir, 0700) && errno != EEXIST)
		return -errno;
	ctl_name(deployment, name, sizeof(name));
	clock_gettime(CLOCK_REALTIME, &ts);
	/* Fixed width: name order is time order. */
	snprintf(path, sizeof(path), "%s/%s%c%020llu-%010d", dir, name, CTL_SEP,
		 (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec,
		 (int)getpid());
	/* A dot file until it is whole: ferryd reads no name that starts with one. */
	snprintf(tmp, sizeof(tmp), "%s/.%s%c%d.tmp", dir, name, CTL_SEP, (int)getpid());
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "%s\n", ferry_canary_command__name(cmd));
	if (fclose(f) || rename(tmp, path)) {
		err = -errno;
		unlink(tmp);
		return err;
	}
	return 0;
}

/* ------------------------------------------------------------- counting */

void ferry_canary__collect(const struct ferry_snapshot *snap, const char *deployment,
			   const char *predictor, struct ferry_canary_counts *out, __u64 *unknown)
{
	memset(out, 0, sizeof(*out));
	*unknown = 0;
	for (size_t s = 0; s < snap->nservices; s++) {
		const struct ferry_snap_service *svc = &snap->services[s];

		if (!svc->has_meta || strcmp(svc->deployment, deployment))
			continue;
		for (__u32 k = 0; k < svc->npredictors && k < FERRY_MAX_SVC_PREDICTORS; k++) {
			const struct ferry_snap_predictor *p =
				ferry_snapshot__predictor(snap, svc->predictor_ids[k]);
			struct ferry_canary_counts one = {};
			const struct ferry_hist *h;

			if (!p || strcmp(p->name, predictor))
				continue;
			for (int c = 0; c < FERRY_HTTP_CLASSES; c++)
				one.requests += p->stats.http[c];
			one.http_5xx = p->stats.http[FERRY_HTTP_5XX];
			one.resets = p->stats.resets;
			one.syn_timeouts = p->stats.syn_timeouts;
			*unknown += p->stats.http[FERRY_HTTP_UNKNOWN];
			h = ferry_snapshot__hist(snap, FERRY_HIST_PREDICTOR, FERRY_LAT_REQUEST,
						 p->id);
			if (h)
				one.latency = *h;
			ferry_canary_counts__merge(out, &one);
		}
	}
}

/* *d = cur - base; false when a counter went down (a predictor re-created): rebase. */
static bool delta(struct ferry_canary_counts *d, const struct ferry_canary_counts *cur,
		  const struct ferry_canary_counts *base)
{
	if (cur->requests < base->requests || cur->http_5xx < base->http_5xx ||
	    cur->resets < base->resets || cur->syn_timeouts < base->syn_timeouts ||
	    cur->latency.sum_ns < base->latency.sum_ns)
		return false;
	d->requests = cur->requests - base->requests;
	d->http_5xx = cur->http_5xx - base->http_5xx;
	d->resets = cur->resets - base->resets;
	d->syn_timeouts = cur->syn_timeouts - base->syn_timeouts;
	d->latency.count = cur->latency.count - base->latency.count;
	d->latency.sum_ns = cur->latency.sum_ns - base->latency.sum_ns;
	for (unsigned int i = 0; i < FERRY_HIST_BUCKETS; i++) {
		if (cur->latency.bucket[i] < base->latency.bucket[i])
			return false;
		d->latency.bucket[i] = cur->latency.bucket[i] - base->latency.bucket[i];
	}
	return true;
}

/* ---------------------------------------------------------- state file */

static json_t *num_or_null(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

/* step: the step the window was measured at; state: where the rollout went after it. */
static json_t *window_json(const struct dep *d, __u64 window, __u32 step,
			   const struct ferry_canary_judgement *j, __u64 unknown)
{
	json_t *w = json_object();

	json_object_set_new(w, "window", json_integer((json_int_t)window));
	json_object_set_new(w, "end_unix",
			    json_integer((json_int_t)((window + 1) * d->cfg.interval_s)));
	json_object_set_new(w, "verdict", json_string(ferry_canary_verdict__name(j->verdict)));
	json_object_set_new(w, "reason", json_string(ferry_canary_reason__name(j->reason)));
	json_object_set_new(w, "state", json_string(ferry_canary_state__name(d->ro.state)));
	json_object_set_new(w, "step", json_integer(step));
	json_object_set_new(w, "canary_weight",
			    d->ro.has_weight ? json_real(d->ro.weight / 1e4) : json_null());
	json_object_set_new(w, "canary_requests", json_integer((json_int_t)j->canary_requests));
	json_object_set_new(w, "baseline_requests", json_integer((json_int_t)j->baseline_requests));
	json_object_set_new(w, "canary_error_rate", json_real(j->canary_error_rate));
	json_object_set_new(w, "baseline_error_rate", json_real(j->baseline_error_rate));
	json_object_set_new(w, "canary_p50_ms", num_or_null(j->canary_p50_ms));
	json_object_set_new(w, "baseline_p50_ms", num_or_null(j->baseline_p50_ms));
	json_object_set_new(w, "tail_quantile", j->tail_q > 0 ? json_real(j->tail_q) : json_null());
	json_object_set_new(w, "canary_tail_ms", num_or_null(j->canary_tail_ms));
	json_object_set_new(w, "baseline_tail_ms", num_or_null(j->baseline_tail_ms));
	json_object_set_new(w, "p50_ratio", num_or_null(j->p50_ratio));
	json_object_set_new(w, "tail_ratio", num_or_null(j->tail_ratio));
	json_object_set_new(w, "u_test_p",
			    j->mwu.n1 && j->mwu.n2 ? json_real(j->mwu.p) : json_null());
	json_object_set_new(w, "u_test_z",
			    j->mwu.n1 && j->mwu.n2 ? json_real(j->mwu.z) : json_null());
	json_object_set_new(w, "canary_no_http_status", json_integer((json_int_t)unknown));
	json_object_set_new(w, "baseline_judged", json_boolean(j->baseline_judged));
	return w;
}

static void write_state(const struct ferry_canary_runner *r)
{
	char tmp[PATH_MAX + 8];
	json_t *root, *deps;

	if (!r->state_path[0])
		return;
	root = json_object();
	deps = json_object();
	json_object_set_new(root, "deployments", deps);
	for (size_t i = 0; i < r->ndeps; i++) {
		const struct dep *d = r->deps[i];
		char fp[32];
		json_t *o, *steps = json_array();

		snprintf(fp, sizeof(fp), "%016llx", (unsigned long long)d->fingerprint);
		for (__u32 k = 0; k < d->cfg.nsteps; k++)
			json_array_append_new(steps, json_real(d->cfg.steps[k] / 1e4));
		o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:b, s:f, s:i, s:o}",
			      "fingerprint", fp, "canary", d->cfg.canary, "baseline",
			      d->cfg.baseline, "state", ferry_canary_state__name(d->ro.state),
			      "paused_from",
			      d->ro.paused_from ? ferry_canary_state__name(d->ro.paused_from) : "",
			      "step", (int)d->ro.step, "nsteps", (int)d->cfg.nsteps, "failures",
			      (int)d->ro.consecutive_failures, "has_weight", d->ro.has_weight,
			      "weight", d->ro.weight / 1e4, "interval_s", (int)d->cfg.interval_s,
			      "steps", steps);
		if (!o)
			continue;
		json_object_set_new(o, "failures_to_rollback", json_integer(d->cfg.failures));
		json_object_set_new(o, "min_requests", json_integer(d->cfg.min_requests));
		json_object_set(o, "windows", d->windows);
		json_object_set_new(deps, d->key, o);
	}
	mkdir(FERRY_STATUS_DIR, 0755);
	snprintf(tmp, sizeof(tmp), "%s.tmp", r->state_path);
	if (json_dump_file(root, tmp, JSON_INDENT(1)) || rename(tmp, r->state_path))
		pr_warn("canary: cannot write %s: %s; a restart would start the rollouts over",
			r->state_path, strerror(errno));
	json_decref(root);
}

static struct dep *dep_new(struct ferry_canary_runner *r, const char *key)
{
	struct dep *d, **v;

	v = realloc(r->deps, (r->ndeps + 1) * sizeof(*v));
	if (!v)
		return NULL;
	r->deps = v;
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	snprintf(d->key, sizeof(d->key), "%s", key);
	snprintf(d->m.deployment, sizeof(d->m.deployment), "%s", key);
	d->windows = json_array();
	r->deps[r->ndeps++] = d;
	return d;
}

static void dep_free(struct dep *d)
{
	if (!d)
		return;
	free(d->vips);
	json_decref(d->windows);
	free(d);
}

static struct dep *dep_find(const struct ferry_canary_runner *r, const char *key)
{
	for (size_t i = 0; i < r->ndeps; i++)
		if (!strcmp(r->deps[i]->key, key))
			return r->deps[i];
	return NULL;
}

/* What a restarted ferryd finds again: the rollout of each deployment, by fingerprint. */
static void load_state(struct ferry_canary_runner *r)
{
	json_t *root, *deps, *o;
	const char *key;

	root = json_load_file(r->state_path, 0, NULL);
	deps = json_object_get(root, "deployments");
	json_object_foreach(deps, key, o) {
		const char *fp = json_string_value(json_object_get(o, "fingerprint"));
		const char *st = json_string_value(json_object_get(o, "state"));
		const char *pf = json_string_value(json_object_get(o, "paused_from"));
		struct dep *d;

		if (!fp || !st)
			continue;
		d = dep_new(r, key);
		if (!d)
			break;
		d->fingerprint = strtoull(fp, NULL, 16);
		if (ferry_canary_state__parse(st, &d->ro.state))
			d->ro.state = FERRY_CANARY_S_PROGRESSING;
		if (pf && *pf)
			ferry_canary_state__parse(pf, &d->ro.paused_from);
		d->ro.step = (__u32)json_integer_value(json_object_get(o, "step"));
		d->ro.consecutive_failures =
			(__u32)json_integer_value(json_object_get(o, "failures"));
		d->ro.has_weight = json_is_true(json_object_get(o, "has_weight"));
		d->ro.weight = (__u32)lround(json_number_value(json_object_get(o, "weight")) * 1e4);
		if (json_is_array(json_object_get(o, "windows"))) {
			json_decref(d->windows);
			d->windows = json_incref(json_object_get(o, "windows"));
		}
		d->m.state = d->ro.state;
		d->m.step = d->ro.step;
	}
	json_decref(root);
}

struct ferry_canary_runner *ferry_canary_runner__new(const struct ferry_canary_runner_opts *opts)
{
	struct ferry_canary_runner *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->opts = *opts;
	if (ferry_canary__state_path(opts->pin_path, r->state_path, sizeof(r->state_path)) ||
	    ferry_canary__ctl_dir(opts->pin_path, r->ctl_dir, sizeof(r->ctl_dir))) {
		free(r);
		errno = ENAMETOOLONG;
		return NULL;
	}
	if (opts->fresh)
		unlink(r->state_path);
	else
		load_state(r);
	return r;
}

void ferry_canary_runner__free(struct ferry_canary_runner *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->ndeps; i++)
		dep_free(r->deps[i]);
	free(r->deps);
	free(r);
}

/* ---------------------------------------------------------------- weights */

static void apply_weights(struct dep *d, struct ferry_sync *sync)
{
	for (size_t i = 0; i < d->nvips; i++) {
		int err = ferry_sync__canary(sync, &d->vips[i], d->cfg.canary, d->ro.has_weight,
					     d->ro.weight);

		if (err && err != -ENOENT)
			pr_warn("canary %s: cannot set the canary's weight: %s", d->key,
				strerror(-err));
	}
}

static void clear_weights(struct dep *d, struct ferry_sync *sync)
{
	for (size_t i = 0; i < d->nvips; i++)
		ferry_sync__canary(sync, &d->vips[i], NULL, false, 0);
}

static const char *event_reason(enum ferry_canary_state s)
{
	switch (s) {
	case FERRY_CANARY_S_PROGRESSING:
		return "CanaryStep";
	case FERRY_CANARY_S_HOLDING:
		return "CanaryHolding";
	case FERRY_CANARY_S_PROMOTED:
		return "CanaryPromoted";
	case FERRY_CANARY_S_ROLLED_BACK:
		return "CanaryRolledBack";
	case FERRY_CANARY_S_PAUSED:
		return "CanaryPaused";
	case FERRY_CANARY_S_INCONCLUSIVE:
		return "CanaryInconclusive";
	}
	return "Canary";
}

/* Logs and reports a transition: from, to, and why (a window's figures or a command). */
static void transition_report(struct ferry_canary_runner *r, struct dep *d,
			      const struct ferry_canary_rollout *before, const char *why,
			      bool report)
{
	char msg[1024], weight[32];
	bool warn = d->ro.state == FERRY_CANARY_S_ROLLED_BACK;

	if (d->ro.has_weight)
		snprintf(weight, sizeof(weight), "%.2f%%", d->ro.weight / 1e4);
	else
		snprintf(weight, sizeof(weight), "the manifest's split");
	snprintf(msg, sizeof(msg), "canary %s: %s step %u/%u -> %s step %u/%u, canary %s at %s: %s",
		 d->cfg.canary, ferry_canary_state__name(before->state), before->step,
		 d->cfg.nsteps, ferry_canary_state__name(d->ro.state), d->ro.step, d->cfg.nsteps,
		 d->cfg.canary, weight, why);
	if (warn)
		pr_warn("%s: %s", d->key, msg);
	else
		pr_info("%s: %s", d->key, msg);
	if (report && r->opts.on_transition)
		r->opts.on_transition(r->opts.ctx, d->key, warn, event_reason(d->ro.state), msg);
	d->m.state = d->ro.state;
	d->m.step = d->ro.step;
}

/* In cluster mode only the deciding node posts Events: one per transition, not one per node. */
static void transition(struct ferry_canary_runner *r, struct dep *d,
		       const struct ferry_canary_rollout *before, const char *why)
{
	transition_report(r, d, before, why,
			  !r->opts.may_decide || r->opts.may_decide(r->opts.cluster_ctx));
}

void ferry_canary_runner__sync(struct ferry_canary_runner *r, struct ferry_sync *sync,
			       const struct ferry_model *model)
{
	bool changed = false;

	for (size_t i = 0; i < r->ndeps; i++) {
		r->deps[i]->seen = false;
		r->deps[i]->nvips = 0;
	}
	for (size_t s = 0; s < model->nservices; s++) {
		const struct ferry_model_service *svc = &model->services[s];
		struct ferry_vip *v;
		struct dep *d;

		if (!svc->canary.enabled) {
			/* Off (maybe while ferryd was down): no canary weight of ours stays. */
			ferry_sync__canary(sync, &svc->vip, NULL, false, 0);
			continue;
		}
		d = dep_find(r, svc->deployment) ?: dep_new(r, svc->deployment);
		if (!d)
			continue;
		v = realloc(d->vips, (d->nvips + 1) * sizeof(*v));
		if (!v)
			continue;
		d->vips = v;
		d->vips[d->nvips++] = svc->vip;
		if (d->seen)
			continue;
		d->seen = true;
		if (!d->configured || memcmp(&d->cfg, &svc->canary, sizeof(d->cfg)))
			changed = true;
		d->cfg = svc->canary;
		d->configured = true;
		if (d->fingerprint != svc->canary.fingerprint || !d->ro.state) {
			struct ferry_canary_rollout before = d->ro;

			d->fingerprint = svc->canary.fingerprint;
			ferry_canary_rollout__start(&d->ro, &d->cfg);
			d->has_base = false;
			json_array_clear(d->windows);
			transition(r, d, &before, "a new rollout (the manifest's canary changed)");
			changed = true;
		}
	}
	for (size_t i = 0; i < r->ndeps;) {
		struct dep *d = r->deps[i];

		if (d->seen) {
			apply_weights(d, sync);
			i++;
			continue;
		}
		/* Analysis turned off or the deployment gone: the manifest's split again. */
		if (d->configured)
			pr_info("%s: canary analysis off: the manifest's split applies", d->key);
		clear_weights(d, sync);
		dep_free(d);
		r->deps[i] = r->deps[--r->ndeps];
		changed = true;
	}
	if (changed)
		write_state(r);
}

/* ---------------------------------------------------------------- commands */

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One queued command file: its command, the file removed. */
static enum ferry_canary_command take_command(const struct ferry_canary_runner *r,
					      const struct dep *d, const char *file)
{
	char path[PATH_MAX + 256], word[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", r->ctl_dir, file);
	f = fopen(path, "r");
	if (!f)
		return FERRY_CANARY_CMD_NONE;
	if (fscanf(f, "%31s", word) != 1)
		word[0] = '\0';
	fclose(f);
	unlink(path);
	for (int c = FERRY_CANARY_CMD_PAUSE; c <= FERRY_CANARY_CMD_PROMOTE; c++)
		if (!strcmp(word, ferry_canary_command__name(c)))
			return c;
	pr_warn("%s: unknown canary command \"%s\" in %s: ignored", d->key, word, path);
	return FERRY_CANARY_CMD_NONE;
}

/*
 * The deployment's queued commands, oldest first, at most max: the file an
 * older ferryctl wrote (DEPLOYMENT alone, sorts first), then DEPLOYMENT@...
 * by name. The rest wait for the next tick. Returns how many.
 */
static size_t read_commands(const struct ferry_canary_runner *r, const struct dep *d,
			    enum ferry_canary_command *out, size_t max)
{
	char name[FERRY_NAME_LEN], **files = NULL, **grown;
	size_t n = 0, cap = 0, len, got = 0;
	struct dirent *e;
	DIR *dir;

	dir = opendir(r->ctl_dir);
	if (!dir)
		return 0;
	ctl_name(d->key, name, sizeof(name));
	len = strlen(name);
	while ((e = readdir(dir))) {
		if (strncmp(e->d_name, name, len) || (e->d_name[len] && e->d_name[len] != CTL_SEP))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 8;
			grown = realloc(files, cap * sizeof(*files));
			if (!grown)
				break;
			files = grown;
		}
		files[n] = strdup(e->d_name);
		if (files[n])
			n++;
	}
	closedir(dir);
	if (n) /* files is NULL when none: qsort's pointer is declared nonnull */
		qsort(files, n, sizeof(*files), cmp_names);
	for (size_t i = 0; i < n; i++) {
		if (got < max) {
			out[got] = take_command(r, d, files[i]);
			if (out[got] != FERRY_CANARY_CMD_NONE)
				got++;
		}
		free(files[i]);
	}
	free(files);
	return got;
}

static void run_commands(struct ferry_canary_runner *r, struct ferry_sync *sync)
{
	for (size_t i = 0; i < r->ndeps; i++) {
		struct dep *d = r->deps[i];
		enum ferry_canary_command cmds[16];
		struct ferry_canary_rollout before;
		char why[64];
		size_t n;

		if (!d->configured)
			continue;
		n = read_commands(r, d, cmds, sizeof(cmds) / sizeof(cmds[0]));
		for (size_t k = 0; k < n; k++) {
			before = d->ro;
			d->m.commands[cmds[k]]++;
			if (!ferry_canary_rollout__command(&d->ro, &d->cfg, cmds[k])) {
				pr_info("%s: canary command %s: nothing to do in state %s", d->key,
					ferry_canary_command__name(cmds[k]),
					ferry_canary_state__name(d->ro.state));
				continue;
			}
			/* A window that straddles a command would mix two splits. */
			d->has_base = false;
			snprintf(why, sizeof(why), "ferryctl canary --%s",
				 ferry_canary_command__name(cmds[k]));
			apply_weights(d, sync);
			transition(r, d, &before, why);
			write_state(r);
		}
	}
}

/* ------------------------------------------------------------------ windows */

static void judge_window(struct ferry_canary_runner *r, struct dep *d, struct ferry_sync *sync)
{
	struct ferry_canary_node_window merged = d->last;
	struct ferry_canary_rollout before = d->ro;
	struct ferry_canary_judgement j;
	char figures[768];
	json_t *w;

	if (r->opts.gather && r->opts.gather(r->opts.cluster_ctx, d->key, d->last.window, &merged))
		pr_warn("%s: canary: could not gather every node's window; judging what arrived",
			d->key);
	ferry_canary__judge(&d->cfg, &merged.canary, &merged.baseline, &j);
	d->m.decisions[j.verdict][j.reason]++;
	ferry_canary_judgement__format(&j, figures, sizeof(figures));
	if (ferry_canary_rollout__window(&d->ro, &d->cfg, &j)) {
		apply_weights(d, sync);
		transition(r, d, &before, figures);
	} else {
		pr_info("%s: canary %s: window %s; %s step %u/%u (%u failed in a row)", d->key,
			d->cfg.canary, figures, ferry_canary_state__name(d->ro.state), d->ro.step,
			d->cfg.nsteps, d->ro.consecutive_failures);
	}
	w = window_json(d, d->last.window, before.step, &j, merged.http_unknown);
	json_array_append_new(d->windows, w);
	while (json_array_size(d->windows) > FERRY_CANARY_HISTORY)
		json_array_remove(d->windows, 0);
	write_state(r);
}

void ferry_canary_runner__tick(struct ferry_canary_runner *r, struct ferry_sync *sync, time_t now)
{
	struct ferry_snapshot *snap = NULL;

	run_commands(r, sync);
	for (size_t i = 0; i < r->ndeps; i++) {
		struct dep *d = r->deps[i];
		struct ferry_canary_counts cur_c, cur_b;
		__u64 w, unknown, unknown_b;

		if (!d->configured || !d->cfg.interval_s)
			continue;
		w = (__u64)now / d->cfg.interval_s;
		if (d->has_base && w <= d->base_window)
			continue;
		if (!snap) {
			snap = ferry_snapshot__read(r->opts.pin_path);
			if (!snap) {
				pr_warn("canary: cannot read the maps: %s", strerror(errno));
				return;
			}
		}
		ferry_canary__collect(snap, d->key, d->cfg.canary, &cur_c, &unknown);
		ferry_canary__collect(snap, d->key, d->cfg.baseline, &cur_b, &unknown_b);
		if (d->has_base && delta(&d->last.canary, &cur_c, &d->base_canary) &&
		    delta(&d->last.baseline, &cur_b, &d->base_baseline) &&
		    unknown >= d->base_unknown) {
			snprintf(d->last.deployment, sizeof(d->last.deployment), "%s", d->key);
			d->last.window = w - 1;
			d->last.http_unknown = unknown - d->base_unknown;
			d->has_last = true;
			if (ferry_canary_rollout__analysing(&d->ro) &&
			    (!r->opts.may_decide || r->opts.may_decide(r->opts.cluster_ctx)))
				judge_window(r, d, sync);
		}
		d->has_base = true;
		d->base_window = w;
		d->base_canary = cur_c;
		d->base_baseline = cur_b;
		d->base_unknown = unknown;
	}
	ferry_snapshot__free(snap);
}

size_t ferry_canary_runner__metrics(const struct ferry_canary_runner *r,
				    struct ferry_canary_metrics **out)
{
	*out = NULL;
	if (!r || !r->ndeps)
		return 0;
	*out = calloc(r->ndeps, sizeof(**out));
	if (!*out)
		return 0;
	for (size_t i = 0; i < r->ndeps; i++)
		(*out)[i] = r->deps[i]->m;
	return r->ndeps;
}

int ferry_canary_runner__last_window(const struct ferry_canary_runner *r, const char *deployment,
				     struct ferry_canary_node_window *out)
{
	const struct dep *d = dep_find(r, deployment);

	if (!d || !d->has_last)
		return -ENOENT;
	*out = d->last;
	return 0;
}

size_t ferry_canary_runner__decisions(const struct ferry_canary_runner *r,
				      struct ferry_canary_decision **out)
{
	size_t n = 0;

	*out = calloc(r->ndeps ? r->ndeps : 1, sizeof(**out));
	if (!*out)
		return 0;
	for (size_t i = 0; i < r->ndeps; i++) {
		const struct dep *d = r->deps[i];

		if (!d->configured)
			continue;
		snprintf((*out)[n].deployment, sizeof((*out)[n].deployment), "%s", d->key);
		(*out)[n].fingerprint = d->fingerprint;
		(*out)[n].ro = d->ro;
		n++;
	}
	return n;
}

bool ferry_canary_runner__apply_decision(struct ferry_canary_runner *r, struct ferry_sync *sync,
					 const struct ferry_canary_decision *decided)
{
	struct dep *d = dep_find(r, decided->deployment);
	struct ferry_canary_rollout before;

	if (!d || !d->configured || d->fingerprint != decided->fingerprint)
		return false;
	before = d->ro;
	if (before.state == decided->ro.state && before.step == decided->ro.step &&
	    before.has_weight == decided->ro.has_weight && before.weight == decided->ro.weight) {
		d->ro.consecutive_failures = decided->ro.consecutive_failures;
		return false;
	}
	d->ro = decided->ro;
	apply_weights(d, sync);
	/* The deciding node posts the Event; the others only log. */
	transition_report(r, d, &before, "the deciding node's published decision", false);
	write_state(r);
	return true;
}

/* ------------------------------------------------------------------ JSON */

static json_t *counts_json(const struct ferry_canary_counts *c)
{
	json_t *buckets = json_object();
	char idx[16];

	for (unsigned int i = 0; i < FERRY_HIST_BUCKETS; i++) {
		if (!c->latency.bucket[i])
			continue;
		snprintf(idx, sizeof(idx), "%u", i);
		json_object_set_new(buckets, idx, json_integer((json_int_t)c->latency.bucket[i]));
	}
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "requests", (json_int_t)c->requests,
			 "http_5xx", (json_int_t)c->http_5xx, "resets", (json_int_t)c->resets,
			 "syn_timeouts", (json_int_t)c->syn_timeouts, "latency_count",
			 (json_int_t)c->latency.count, "latency_sum_ns",
			 (json_int_t)c->latency.sum_ns, "buckets", buckets);
}

static int counts_parse(json_t *o, struct ferry_canary_counts *c)
{
	const char *k;
	json_t *v;

	if (!json_is_object(o))
		return -EINVAL;
	memset(c, 0, sizeof(*c));
	c->requests = (__u64)json_integer_value(json_object_get(o, "requests"));
	c->http_5xx = (__u64)json_integer_value(json_object_get(o, "http_5xx"));
	c->resets = (__u64)json_integer_value(json_object_get(o, "resets"));
	c->syn_timeouts = (__u64)json_integer_value(json_object_get(o, "syn_timeouts"));
	c->latency.count = (__u64)json_integer_value(json_object_get(o, "latency_count"));
	c->latency.sum_ns = (__u64)json_integer_value(json_object_get(o, "latency_sum_ns"));
	json_object_foreach(json_object_get(o, "buckets"), k, v) {
		char *end;
		unsigned long i = strtoul(k, &end, 10);

		if (*end || i >= FERRY_HIST_BUCKETS || json_integer_value(v) < 0)
			return -EINVAL;
		c->latency.bucket[i] = (__u64)json_integer_value(v);
	}
	return 0;
}

char *ferry_canary_node_window__json(const struct ferry_canary_node_window *w)
{
	json_t *o = json_pack("{s:s, s:I, s:o, s:o, s:I}", "deployment", w->deployment, "window",
			      (json_int_t)w->window, "canary", counts_json(&w->canary), "baseline",
			      counts_json(&w->baseline), "http_unknown",
			      (json_int_t)w->http_unknown);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	return text;
}

int ferry_canary_node_window__parse(const char *text, struct ferry_canary_node_window *w)
{
	json_t *o = json_loads(text, 0, NULL);
	int err = -EINVAL;

	memset(w, 0, sizeof(*w));
	if (!json_is_object(o) || !json_is_string(json_object_get(o, "deployment")))
		goto out;
	snprintf(w->deployment, sizeof(w->deployment), "%s",
		 json_string_value(json_object_get(o, "deployment")));
	w->window = (__u64)json_integer_value(json_object_get(o, "window"));
	w->http_unknown = (__u64)json_integer_value(json_object_get(o, "http_unknown"));
	err = counts_parse(json_object_get(o, "canary"), &w->canary);
	err = err ?: counts_parse(json_object_get(o, "baseline"), &w->baseline);
out:
	json_decref(o);
	return err;
}

json_t *ferry_canary_decision__json(const struct ferry_canary_decision *d)
{
	char fp[32];

	snprintf(fp, sizeof(fp), "%016llx", (unsigned long long)d->fingerprint);
	return json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:b, s:I}", "deployment", d->deployment,
			 "fingerprint", fp, "state", ferry_canary_state__name(d->ro.state),
			 "paused_from",
			 d->ro.paused_from ? ferry_canary_state__name(d->ro.paused_from) : "",
			 "step", (int)d->ro.step, "failures", (int)d->ro.consecutive_failures,
			 "has_weight", d->ro.has_weight, "weight_ppm", (json_int_t)d->ro.weight);
}

int ferry_canary_decision__parse(json_t *o, struct ferry_canary_decision *d)
{
	const char *dep = json_string_value(json_object_get(o, "deployment"));
	const char *fp = json_string_value(json_object_get(o, "fingerprint"));
	const char *st = json_string_value(json_object_get(o, "state"));
	const char *pf = json_string_value(json_object_get(o, "paused_from"));
	json_int_t w = json_integer_value(json_object_get(o, "weight_ppm"));

	memset(d, 0, sizeof(*d));
	if (!dep || !fp || !st || ferry_canary_state__parse(st, &d->ro.state) || w < 0 ||
	    w > FERRY_WEIGHT_ONE)
		return -EINVAL;
	snprintf(d->deployment, sizeof(d->deployment), "%s", dep);
	d->fingerprint = strtoull(fp, NULL, 16);
	if (pf && *pf && ferry_canary_state__parse(pf, &d->ro.paused_from))
		return -EINVAL;
	d->ro.step = (__u32)json_integer_value(json_object_get(o, "step"));
	d->ro.consecutive_failures = (__u32)json_integer_value(json_object_get(o, "failures"));
	d->ro.has_weight = json_is_true(json_object_get(o, "has_weight"));
	d->ro.weight = (__u32)w;
	return 0;
}
