// SPDX-License-Identifier: GPL-2.0-only
/*
 * ferryctl flows: the connection table, with what the kernel knows of each
 * flow's requests (ferry_l7: protocol, streams in flight, requests served)
 * when the data plane has that map; and --flush to forget flow state.
 */
#include "ferryctl.h"
#include "kernel/flow_flush.h"

/* ------------------------------------------------------------- --flush */

/*
 * Forgets flow state: everything, or one SERVICE's. Connections go on: their
 * next packet is picked up mid-stream where the consistent hash points.
 */
static int flush_flows(struct ctl *c, const char *service)
{
	struct ferry_flow_flush_result res;
	struct ferry_vip *vips = NULL;
	struct ferry_snapshot *snap = NULL;
	size_t nvips = 0, total = 0, i;
	json_t *root, *maps;
	__u32 *ids = NULL;
	int n, err, rc = EXIT_FAIL;

	if (service) {
		snap = read_snapshot(c);
		if (!snap)
			return EXIT_FAIL;
		ids = calloc(FERRY_MAX_SERVICES, sizeof(*ids));
		vips = calloc(FERRY_MAX_SERVICES, sizeof(*vips));
		if (!ids || !vips)
			goto out_free;
		n = match_services(snap, service, ids, FERRY_MAX_SERVICES);
		if (n < 0) {
			rc = n == -ENOENT ? EXIT_NOT_FOUND : EXIT_USAGE;
			goto out_free;
		}
		for (i = 0; i < snap->nservices; i++)
			for (int k = 0; k < n; k++)
				if (snap->services[i].id == ids[k])
					vips[nvips++] = snap->services[i].vip;
	}
	err = ferry_flows__flush(c->pin_path, vips, nvips, &res);
	maps = json_object();
	for (i = 0; i < res.nmaps; i++) {
		if (!res.maps[i].present)
			continue;
		json_object_set_new(maps, res.maps[i].name,
				    json_integer((json_int_t)res.maps[i].deleted));
		total += res.maps[i].deleted;
	}
	if (c->json) {
		root = json_pack("{s:s?, s:o, s:I}", "service", service, "deleted", maps, "total",
				 (json_int_t)total);
		print_json(root);
	} else {
		printf("flushed %zu flow entries%s%s:", total, service ? " of " : "",
		       service ? service : "");
		for (i = 0; i < res.nmaps; i++)
			if (res.maps[i].present)
				printf(" %s %zu", res.maps[i].name, res.maps[i].deleted);
		printf("\nopen connections continue where the hash points (mid-stream pickup)\n");
		json_decref(maps);
	}
	if (err) {
		fprintf(stderr, "ferryctl flows --flush: %s%s\n", strerror(-err),
			err == -EPROTO ? " (a flow map's layout is not this ferryctl's: use the "
					 "ferryctl of the running ferryd)" :
					 "");
		goto out_free;
	}
	rc = EXIT_OK;
out_free:
	free(ids);
	free(vips);
	ferry_snapshot__free(snap);
	return rc;
}

static const char *l7_proto_name(__u8 proto)
{
	switch (proto) {
	case FERRY_L7_HTTP1:
		return "http1";
	case FERRY_L7_H2C:
		return "h2c";
	default:
		return "unknown";
	}
}

/*
 * ferry_l7 by its pin, or -1: a data plane without the HTTP tracker has none.
 * Only the head of its value is a contract (ferry_l7_head); *value_size is
 * the whole value, for the lookup buffer.
 */
static int open_l7(const char *pin_path, __u32 *value_size)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	char path[PATH_MAX];
	int fd;

	if (ferry_pin__path(path, sizeof(path), pin_path, FERRY_MAP_L7))
		return -1;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -1;
	if (bpf_obj_get_info_by_fd(fd, &info, &len) ||
	    info.key_size != sizeof(struct ferry_flow_key) ||
	    info.value_size < sizeof(struct ferry_l7_head)) {
		close(fd);
		return -1;
	}
	*value_size = info.value_size;
	return fd;
}

/* --------------------------------------------------------------- flows */

int cmd_flows(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = { { "service", required_argument, NULL, 's' },
					      { "backend", required_argument, NULL, 'b' },
					      { "flush", no_argument, NULL, 'F' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	struct ferry_vip svc = {};
	__u8 be_family = 0;
	__be32 be_addr[4] = {};
	__be16 be_port = 0;
	bool want_svc = false, want_be = false, flush = false;
	struct ferry_flow_key key, next, *prev = NULL;
	struct ferry_dp *dp;
	json_t *arr;
	__u64 now = now_mono_ns();
	__u32 l7_size = 0;
	void *l7_value = NULL;
	int opt, l7_fd;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "s:b:h", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			if (ferry_endpoint__parse(optarg, false, &svc.family, svc.addr,
						  &svc.port)) {
				fprintf(stderr,
					"ferryctl flows: --service %s: expected ADDR:PORT\n",
					optarg);
				return EXIT_USAGE;
			}
			want_svc = true;
			break;
		case 'b':
			if (ferry_endpoint__parse(optarg, true, &be_family, be_addr, &be_port)) {
				fprintf(stderr,
					"ferryctl flows: --backend %s: expected ADDR or ADDR:PORT\n",
					optarg);
				return EXIT_USAGE;
			}
			want_be = true;
			break;
		case 'F':
			flush = true;
			break;
		case 'h':
			printf("Usage: ferryctl flows [--service VIP] [--backend ADDR[:PORT]] [-j]\n"
			       "       ferryctl flows --flush [SERVICE] [-j]\n"
			       "Lists the connection table: client, VIP, backend, age, idle time,\n"
			       "packets and bytes each way, state (open, closing, or embryonic: a\n"
			       "handshake or mid-stream pickup not yet confirmed); and, where the\n"
			       "kernel tracks HTTP (ferry_l7), the protocol (http1, h2c), the\n"
			       "requests or streams in flight and the requests served (- without it).\n"
			       "\n"
			       "--flush forgets flow state: every flow, or SERVICE's (a VIP ADDR:PORT\n"
			       "or a deployment namespace/name). Open connections keep working: their\n"
			       "next packet is picked up mid-stream and goes where the consistent\n"
			       "hash points, the same backend unless the table or the hash seed\n"
			       "changed since. So it is the way to force rehashing: after a weight\n"
			       "change or a new --hash-seed-file, flushed connections follow the\n"
			       "new table (and those that move are reset by their new backend).\n");
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	}
	if (flush) {
		if (want_svc || want_be || argc - optind > 1) {
			fprintf(stderr, "ferryctl flows --flush takes one SERVICE argument, not "
					"--service or --backend (see --help)\n");
			return EXIT_USAGE;
		}
		return flush_flows(c, optind < argc ? argv[optind] : NULL);
	}
	if (optind < argc) {
		fprintf(stderr, "ferryctl flows: unexpected argument '%s' (see --help)\n",
			argv[optind]);
		return EXIT_USAGE;
	}
	dp = open_maps(c);
	if (!dp)
		return EXIT_FAIL;
	arr = json_array();
	l7_fd = open_l7(c->pin_path, &l7_size);
	if (l7_fd >= 0 && !(l7_value = calloc(1, l7_size))) {
		close(l7_fd);
		l7_fd = -1;
	}
	if (!c->json)
		printf("%-24s %-24s %-24s %8s %8s %10s %10s %-7s %-7s %5s %8s\n", "CLIENT", "VIP",
		       "BACKEND", "AGE", "IDLE", "PKTS>", "PKTS<", "STATE", "PROTO", "INFL",
		       "REQS");
	/* Confirmed flows, then embryonic ones (docs/datapath.md, "Flow lifecycle"). */
	for (int kind = 0; kind < 2; kind++) {
		int ffd = dp->map_fds[kind ? FERRY_M_EFLOWS : FERRY_M_FLOWS];
		int rfd = dp->map_fds[kind ? FERRY_M_ERFLOWS : FERRY_M_RFLOWS];

		prev = NULL;
		while (!bpf_map_get_next_key(ffd, prev, &next)) {
			struct ferry_flow flow;
			struct ferry_rflow rflow = {};
			struct ferry_flow_key rkey;
			char cl[FERRY_ADDR_STRLEN], vip[FERRY_ADDR_STRLEN], be[FERRY_ADDR_STRLEN];
			char infl[16] = "-", reqs[24] = "-";
			const struct ferry_l7_head *l7 = NULL;
			const char *proto = "-", *state;
			double age, idle;

			key = next;
			prev = &key;
			if (bpf_map_lookup_elem(ffd, &key, &flow))
				continue;
			if (want_svc && (svc.family != key.family || svc.port != key.dport ||
					 memcmp(svc.addr, key.daddr, 16)))
				continue;
			if (want_be && (be_family != flow.family ||
					(be_port && be_port != flow.backend_port) ||
					memcmp(be_addr, flow.backend_addr, 16)))
				continue;
			ferry_flow__reverse_key(&rkey, &key, &flow);
			bpf_map_lookup_elem(rfd, &rkey, &rflow);
			state = flow.flags & FERRY_FLOW_F_CLOSING ? "closing" :
				kind				  ? "embryonic" :
								    "open";
			ferry_addr__format(key.saddr, key.sport, key.family, cl, sizeof(cl));
			ferry_addr__format(key.daddr, key.dport, key.family, vip, sizeof(vip));
			ferry_addr__format(flow.backend_addr, flow.backend_port, flow.family, be,
					   sizeof(be));
			/* A new connection's first payload has not yet reset an older one's state. */
			if (l7_fd >= 0 && !(flow.flags & FERRY_FLOW_F_L7_FRESH) &&
			    !bpf_map_lookup_elem(l7_fd, &key, l7_value)) {
				l7 = l7_value;
				proto = l7->flags & FERRY_L7_F_UNSYNC ? "unsync" :
									l7_proto_name(l7->protocol);
				snprintf(infl, sizeof(infl), "%u", l7->inflight);
				snprintf(reqs, sizeof(reqs), "%llu",
					 (unsigned long long)l7->requests);
			}
			age = flow.created_ns && now > flow.created_ns ?
				      (now - flow.created_ns) / 1e9 :
				      0;
			idle = flow.last_ns && now > flow.last_ns ? (now - flow.last_ns) / 1e9 : 0;
			if (c->json) {
				json_t *o = json_pack(
					"{s:s, s:s, s:s, s:s, s:f, s:f, s:I, s:I, s:I, s:I, s:i, s:s}",
					"client", cl, "vip", vip, "backend", be, "protocol",
					key.proto == IPPROTO_UDP ? "udp" : "tcp", "age_s", age,
					"idle_s", idle, "packets_forward", (json_int_t)flow.packets,
					"bytes_forward", (json_int_t)flow.bytes, "packets_reply",
					(json_int_t)rflow.packets, "bytes_reply",
					(json_int_t)rflow.bytes, "backend_id", (int)flow.backend_id,
					"state", state);

				/* null: the kernel has no request view of this flow (no ferry_l7, or no entry). */
				if (o)
					json_object_update_new(
						o, l7 ? json_pack("{s:s, s:b, s:i, s:I}",
								  "l7_protocol",
								  l7_proto_name(l7->protocol),
								  "l7_unsync",
								  !!(l7->flags & FERRY_L7_F_UNSYNC),
								  "streams_inflight",
								  (int)l7->inflight, "requests",
								  (json_int_t)l7->requests) :
							json_pack("{s:n, s:n, s:n, s:n}",
								  "l7_protocol", "l7_unsync",
								  "streams_inflight", "requests"));
				json_array_append_new(arr, o);
			} else {
				printf("%-24s %-24s %-24s %7.1fs %7.1fs %10llu %10llu %-7s %-7s %5s %8s\n",
				       cl, vip, be, age, idle, (unsigned long long)flow.packets,
				       (unsigned long long)rflow.packets, state, proto, infl, reqs);
			}
		}
	}
	if (l7_fd >= 0)
		close(l7_fd);
	free(l7_value);
	if (c->json)
		print_json(arr);
	else
		json_decref(arr);
	ferry_dp__close(dp);
	return EXIT_OK;
}
