// SPDX-License-Identifier: GPL-2.0-only
/*
 * grpc_client: the gRPC client of vmtests/scenarios/grpc.sh, on Debian's gRPC
 * C core (libgrpc). Unary calls to /ferry.Model/Predict multiplexed on a few
 * channels, each channel its own TCP connection (its own subchannel pool:
 * without one, gRPC shares a connection among the channels to a target), with
 * --streams threads per channel making --calls calls each. A call is timed
 * from just before it is created; the answer
 * names the predictor that served it. A call is measured as the kernel
 * measures a request: to the arrival of the response's headers ("p50",
 * "p99"); its whole duration, to the trailers, is reported too ("call_p50",
 * "call_p99").
 *
 * Why C: the kernel is held to 5% of what the client measures, at p99 too.
 * The Python client (grpcio) added 1-2 ms to its own tail on a 2-core machine
 * (threads queueing for the interpreter lock after their answer arrived, on
 * top of grpcio's ~0.4 ms a call), which no load balancer can see. Here the
 * calling thread polls its own completion queue: the client's overhead is
 * tens of microseconds.
 *
 * Prints JSON: {"predictors": {name: {"n", "timed", "p50", "p99",
 * "call_p50", "call_p99", "channels"}}, "calls": N, "errors": N}; "n" counts a channel's first call
 * (which also waits for the TCP and HTTP/2 handshakes, which the kernel does
 * not count in a request): counted, not timed.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#define MAX_CHANNELS 64
#define MAX_PREDS 8
#define NAME_LEN 64

struct channel {
	grpc_channel *ch;
	char pred[NAME_LEN];
	int run;
};

struct stream {
	struct channel *c;
	int calls;
	double *lat; /* to the response headers */
	double *call; /* to the end of the call */
	char (*pred)[NAME_LEN];
	int n;
	int errors;
	pthread_t thread;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * One unary call on @ch, its answer (the predictor's name) in @pred, the time
 * the response's headers arrived in @headers_at: 0 or -EIO. Two batches, so
 * that the headers complete on their own: the kernel times a request to the
 * response headers, and a call ends only with the trailers, which a server
 * may send later (with grpcio they came about 30 us after the headers).
 */
static int unary(grpc_channel *ch, grpc_completion_queue *cq, char *pred, double *headers_at)
{
	gpr_timespec deadline =
		gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_seconds(10, GPR_TIMESPAN));
	grpc_slice method = grpc_slice_from_static_string("/ferry.Model/Predict");
	grpc_slice req = grpc_slice_from_static_string("x");
	grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&req, 1);
	grpc_byte_buffer *recv = NULL;
	grpc_metadata_array initial, trailing;
	grpc_status_code status = GRPC_STATUS_UNKNOWN;
	grpc_slice details = grpc_empty_slice();
	grpc_op ops[6] = {};
	grpc_event ev;
	grpc_call *call;
	int err = -EIO, ok;

	grpc_metadata_array_init(&initial);
	grpc_metadata_array_init(&trailing);
	call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL,
					deadline, NULL);
	if (!call)
		goto out_buffers;
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &recv;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &trailing;
	ops[5].data.recv_status_on_client.status = &status;
	ops[5].data.recv_status_on_client.status_details = &details;
	if (grpc_call_start_batch(call, ops, 4, &ops[0], NULL) != GRPC_CALL_OK)
		goto out_call;
	if (grpc_call_start_batch(call, ops + 4, 2, &ops[4], NULL) != GRPC_CALL_OK) {
		grpc_call_cancel(call, NULL);
		grpc_completion_queue_pluck(cq, &ops[0], gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		goto out_call;
	}
	ev = grpc_completion_queue_pluck(cq, &ops[0], gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	*headers_at = now_s();
	ok = ev.type == GRPC_OP_COMPLETE && ev.success;
	ev = grpc_completion_queue_pluck(cq, &ops[4], gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	if (!ok || ev.type != GRPC_OP_COMPLETE || !ev.success || status != GRPC_STATUS_OK || !recv)
		goto out_call;

	grpc_byte_buffer_reader rd;
	if (grpc_byte_buffer_reader_init(&rd, recv)) {
		grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
		size_t len = GRPC_SLICE_LENGTH(s) < NAME_LEN - 1 ? GRPC_SLICE_LENGTH(s) :
								   NAME_LEN - 1;

		memcpy(pred, GRPC_SLICE_START_PTR(s), len);
		pred[len] = '\0';
		grpc_slice_unref(s);
		grpc_byte_buffer_reader_destroy(&rd);
		err = 0;
	}
out_call:
	grpc_call_unref(call);
out_buffers:
	if (recv)
		grpc_byte_buffer_destroy(recv);
	grpc_byte_buffer_destroy(send);
	grpc_slice_unref(details);
	grpc_metadata_array_destroy(&initial);
	grpc_metadata_array_destroy(&trailing);
	return err;
}

static void *stream_run(void *arg)
{
	struct stream *s = arg;
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);

	for (int i = 0; i < s->calls; i++) {
		double t0 = now_s(), headers_at;

		if (unary(s->c->ch, cq, s->pred[s->n], &headers_at)) {
			s->errors++;
			continue;
		}
		s->call[s->n] = now_s() - t0;
		s->lat[s->n++] = headers_at - t0;
	}
	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_destroy(cq);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* As the Python clients compute it: the sample at rank floor(q * n). */
static double pct(const double *v, int n, double q)
{
	int i = (int)(q * n);

	return v[i < n - 1 ? i : n - 1];
}

static void usage(FILE *f)
{
	fprintf(f, "usage: grpc_client --target HOST:PORT [--channels N] [--streams N] "
		   "[--calls N] [--max-channels N] [--dump FILE]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "target", required_argument, NULL, 't' },
		{ "channels", required_argument, NULL, 'c' },
		{ "streams", required_argument, NULL, 's' },
		{ "calls", required_argument, NULL, 'n' },
		{ "max-channels", required_argument, NULL, 'm' },
		{ "dump", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	int want = 4, streams = 3, calls = 100, max = 16, nch = 0, o;
	const char *target = NULL, *dump = NULL;
	struct channel ch[MAX_CHANNELS] = {};
	char preds[MAX_PREDS][NAME_LEN];
	int npreds = 0, owners[MAX_PREDS] = {}, running = 0;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 't':
			target = optarg;
			break;
		case 'c':
			want = atoi(optarg);
			break;
		case 's':
			streams = atoi(optarg);
			break;
		case 'n':
			calls = atoi(optarg);
			break;
		case 'm':
			max = atoi(optarg);
			break;
		case 'd':
			dump = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!target || want < 1 || streams < 1 || calls < 1 || max < want || max > MAX_CHANNELS) {
		usage(stderr);
		fprintf(stderr,
			"grpc_client: --target is required; 1 <= --channels <= "
			"--max-channels <= %d\n",
			MAX_CHANNELS);
		return 2;
	}

	grpc_init();
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	grpc_arg arg = { .type = GRPC_ARG_INTEGER,
			 .key = (char *)"grpc.use_local_subchannel_pool",
			 .value.integer = 1 };
	grpc_channel_args args = { .num_args = 1, .args = &arg };
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);

	/* Channels until both predictors have one (connections are split by hash). */
	while (nch < max) {
		struct channel *c = &ch[nch];
		int p;

		c->ch = grpc_channel_create(target, creds, &args);
		double headers_at;

		if (unary(c->ch, cq, c->pred, &headers_at)) {
			fprintf(stderr, "grpc_client: the first call on channel %d to %s failed\n",
				nch, target);
			return 1;
		}
		nch++;
		for (p = 0; p < npreds && strcmp(preds[p], c->pred); p++)
			;
		if (p == npreds && npreds < MAX_PREDS)
			strcpy(preds[npreds++], c->pred);
		if (p < MAX_PREDS)
			owners[p]++;
		if (nch >= want && npreds >= 2)
			break;
	}
	/*
	 * The calls run on --channels of them, the first of each predictor
	 * included; the others (a long run of one predictor) only made their
	 * first call, so the machine is not loaded by more channels than asked.
	 */
	for (int p = 0; p < npreds; p++)
		for (int i = 0; i < nch; i++)
			if (!strcmp(ch[i].pred, preds[p])) {
				running += !ch[i].run;
				ch[i].run = 1;
				break;
			}
	for (int i = 0; i < nch && running < want; i++) {
		running += !ch[i].run;
		ch[i].run = 1;
	}

	struct stream *st = calloc((size_t)running * streams, sizeof(*st));
	int ns = 0;

	if (!st)
		return 1;
	for (int i = 0; i < nch; i++) {
		if (!ch[i].run)
			continue;
		for (int k = 0; k < streams; k++, ns++) {
			st[ns].c = &ch[i];
			st[ns].calls = calls;
			st[ns].lat = calloc(calls, sizeof(double));
			st[ns].call = calloc(calls, sizeof(double));
			st[ns].pred = calloc(calls, NAME_LEN);
			if (!st[ns].lat || !st[ns].call || !st[ns].pred)
				return 1;
		}
	}
	for (int i = 0; i < ns; i++)
		pthread_create(&st[i].thread, NULL, stream_run, &st[i]);
	for (int i = 0; i < ns; i++)
		pthread_join(st[i].thread, NULL);

	int errors = 0, timed_all = 0;
	FILE *df = NULL;

	/* --dump: every timed call, "PREDICTOR SECONDS" (to the response headers) */
	if (dump && !(df = fopen(dump, "w"))) {
		fprintf(stderr, "grpc_client: --dump %s: %s\n", dump, strerror(errno));
		return 1;
	}
	for (int i = 0; df && i < ns; i++)
		for (int k = 0; k < st[i].n; k++)
			fprintf(df, "%s %.9f\n", st[i].pred[k], st[i].lat[k]);
	if (df && fclose(df)) {
		fprintf(stderr, "grpc_client: --dump %s: %s\n", dump, strerror(errno));
		return 1;
	}
	double *v = calloc((size_t)ns * calls, sizeof(double));
	double *w = calloc((size_t)ns * calls, sizeof(double));

	if (!v || !w)
		return 1;
	for (int i = 0; i < ns; i++)
		errors += st[i].errors;
	printf("{\"predictors\": {");
	for (int p = 0; p < npreds; p++) {
		int n = 0, chans = 0;

		for (int i = 0; i < ns; i++)
			for (int k = 0; k < st[i].n; k++)
				if (!strcmp(st[i].pred[k], preds[p])) {
					w[n] = st[i].call[k];
					v[n++] = st[i].lat[k];
				}
		for (int i = 0; i < nch; i++)
			chans += ch[i].run && !strcmp(ch[i].pred, preds[p]);
		timed_all += n;
		qsort(v, n, sizeof(*v), cmp_double);
		qsort(w, n, sizeof(*w), cmp_double);
		printf("%s\"%s\": {\"n\": %d, \"timed\": %d, ", p ? ", " : "", preds[p],
		       n + owners[p], n);
		if (n)
			printf("\"p50\": %.9f, \"p99\": %.9f, \"call_p50\": %.9f, "
			       "\"call_p99\": %.9f, ",
			       pct(v, n, 0.5), pct(v, n, 0.99), pct(w, n, 0.5), pct(w, n, 0.99));
		else
			printf("\"p50\": null, \"p99\": null, \"call_p50\": null, "
			       "\"call_p99\": null, ");
		printf("\"channels\": %d}", chans);
	}
	printf("}, \"calls\": %d, \"errors\": %d}\n", timed_all + nch, errors);

	for (int i = 0; i < nch; i++)
		grpc_channel_destroy(ch[i].ch);
	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_destroy(cq);
	grpc_channel_credentials_release(creds);
	grpc_shutdown();
	return 0;
}
