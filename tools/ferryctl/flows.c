// SPDX-License-Identifier: GPL-2.0-only
/*
 * ferryctl flows: the connection table.
 */
#include "ferryctl.h"

/* --------------------------------------------------------------- flows */

int cmd_flows(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = { { "service", required_argument, NULL, 's' },
					      { "backend", required_argument, NULL, 'b' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	struct ferry_vip svc = {};
	__u8 be_family = 0;
	__be32 be_addr[4] = {};
	__be16 be_port = 0;
	bool want_svc = false, want_be = false;
	struct ferry_flow_key key, next, *prev = NULL;
	struct ferry_dp *dp;
	json_t *arr;
	__u64 now = now_mono_ns();
	int opt;

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
		case 'h':
			printf("Usage: ferryctl flows [--service VIP] [--backend ADDR[:PORT]] [-j]\n"
			       "Lists the connection table: client, VIP, backend, age, idle time,\n"
			       "packets and bytes each way, state (open, closing, or embryonic: a\n"
			       "handshake or mid-stream pickup not yet confirmed).\n");
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	}
	dp = open_maps(c);
	if (!dp)
		return EXIT_FAIL;
	arr = json_array();
	if (!c->json)
		printf("%-24s %-24s %-24s %8s %8s %10s %10s %s\n", "CLIENT", "VIP", "BACKEND",
		       "AGE", "IDLE", "PKTS>", "PKTS<", "STATE");
	/* Confirmed flows, then embryonic ones (docs/datapath.md, "Flow lifecycle"). */
	for (int kind = 0; kind < 2; kind++) {
		int ffd = dp->map_fds[kind ? FERRY_M_EFLOWS : FERRY_M_FLOWS];
		int rfd = dp->map_fds[kind ? FERRY_M_ERFLOWS : FERRY_M_RFLOWS];

		prev = NULL;
		while (!bpf_map_get_next_key(ffd, prev, &next)) {
			struct ferry_flow flow;
			const char *state;
			struct ferry_rflow rflow = {};
			struct ferry_flow_key rkey;
			char cl[FERRY_ADDR_STRLEN], vip[FERRY_ADDR_STRLEN], be[FERRY_ADDR_STRLEN];
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
			age = flow.created_ns && now > flow.created_ns ?
				      (now - flow.created_ns) / 1e9 :
				      0;
			idle = flow.last_ns && now > flow.last_ns ? (now - flow.last_ns) / 1e9 : 0;
			if (c->json)
				json_array_append_new(
					arr,
					json_pack(
						"{s:s, s:s, s:s, s:s, s:f, s:f, s:I, s:I, s:I, s:I, s:i, s:s}",
						"client", cl, "vip", vip, "backend", be, "protocol",
						key.proto == IPPROTO_UDP ? "udp" : "tcp", "age_s",
						age, "idle_s", idle, "packets_forward",
						(json_int_t)flow.packets, "bytes_forward",
						(json_int_t)flow.bytes, "packets_reply",
						(json_int_t)rflow.packets, "bytes_reply",
						(json_int_t)rflow.bytes, "backend_id",
						(int)flow.backend_id, "state", state));
			else
				printf("%-24s %-24s %-24s %7.1fs %7.1fs %10llu %10llu %s\n", cl,
				       vip, be, age, idle, (unsigned long long)flow.packets,
				       (unsigned long long)rflow.packets, state);
		}
	}
	if (c->json)
		print_json(arr);
	else
		json_decref(arr);
	ferry_dp__close(dp);
	return EXIT_OK;
}
