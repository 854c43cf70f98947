// SPDX-License-Identifier: GPL-2.0-only
/*
 * The HTTP endpoint of the Prometheus exporter (metrics.h): /metrics from a
 * produce callback, /healthz and /readyz, on libmicrohttpd.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "log.h"
#include "telemetry/metrics.h"

/* ---------------------------------------------------------------- server */

struct ferry_metrics_server {
	struct MHD_Daemon *daemon;
	ferry_metrics_produce_fn produce;
	void *ctx;
	int port;
	volatile bool ready; /* /readyz: the first sync of every source is done */
	/* /canary/window: set once before requests can ask for it */
	ferry_metrics_window_fn window;
	void *window_ctx;
};

void ferry_metrics__set_window_handler(struct ferry_metrics_server *srv, ferry_metrics_window_fn fn,
				       void *ctx)
{
	if (!srv)
		return;
	srv->window_ctx = ctx;
	__atomic_store_n(&srv->window, fn, __ATOMIC_RELEASE);
}

void ferry_metrics__set_ready(struct ferry_metrics_server *srv, bool ready)
{
	/* Read by the HTTP server's thread (TSan found the plain store racing). */
	if (srv)
		__atomic_store_n(&srv->ready, ready, __ATOMIC_RELEASE);
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status, const char *type,
			     void *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, body, mode);
	if (!resp) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* ------------------------------------------------------- negotiation */

/* Copies [b, e) trimmed of blanks into buf, lower-cased. */
static void trimmed(const char *b, const char *e, char *buf, size_t len)
{
	size_t n = 0;

	while (b < e && (*b == ' ' || *b == '\t'))
		b++;
	while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	for (; b < e && n + 1 < len; b++)
		buf[n++] = (char)tolower((unsigned char)*b);
	buf[n] = '\0';
}

/*
 * One media range of an Accept header, "type/sub; k=v; q=0.5": *q (1 by
 * default) and whether it is the delimited MetricFamily protobuf or a text
 * type that the text exposition satisfies.
 */
static void media_range(const char *b, const char *e, double *q, bool *pb, bool *text)
{
	char item[128], type[128] = "";
	bool proto_ok = false, delimited = false;
	const char *semi;

	*q = 1;
	for (bool first = true; b < e; first = false, b = semi + 1) {
		semi = memchr(b, ';', (size_t)(e - b));
		if (!semi)
			semi = e;
		trimmed(b, semi, item, sizeof(item));
		if (first)
			snprintf(type, sizeof(type), "%s", item);
		else if (!strncmp(item, "q=", 2))
			*q = strtod(item + 2, NULL);
		else if (!strcmp(item, "proto=io.prometheus.client.metricfamily"))
			proto_ok = true;
		else if (!strcmp(item, "encoding=delimited"))
			delimited = true;
	}
	*pb = !strcmp(type, "application/vnd.google.protobuf") && proto_ok && delimited;
	*text = !strcmp(type, "text/plain") || !strcmp(type, "text/*") || !strcmp(type, "*/*");
}

enum ferry_metrics_format ferry_metrics__negotiate(const char *accept)
{
	double best_pb = 0, best_text = 0;
	const char *b, *comma;

	if (!accept)
		return FERRY_METRICS_TEXT;
	for (b = accept; *b; b = *comma ? comma + 1 : comma) {
		double q;
		bool pb, text;

		comma = strchr(b, ',');
		if (!comma)
			comma = b + strlen(b);
		media_range(b, comma, &q, &pb, &text);
		if (pb && q > best_pb)
			best_pb = q;
		if (text && q > best_text)
			best_text = q;
	}
	return best_pb > 0 && best_pb >= best_text ? FERRY_METRICS_PROTOBUF : FERRY_METRICS_TEXT;
}

static enum MHD_Result handle_request(void *cls, struct MHD_Connection *conn, const char *url,
				      const char *method, const char *version,
				      const char *upload_data, size_t *upload_data_size,
				      void **req_cls)
{
	struct ferry_metrics_server *srv = cls;
	static const char text[] = "text/plain; charset=utf-8";
	enum ferry_metrics_format format;
	char *body = NULL;
	size_t len = 0;
	int err;

	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, text, "method not allowed\n", 19,
			     MHD_RESPMEM_PERSISTENT);
	if (!strcmp(url, "/healthz"))
		return reply(conn, MHD_HTTP_OK, text, "ok\n", 3, MHD_RESPMEM_PERSISTENT);
	if (!strcmp(url, "/readyz"))
		return __atomic_load_n(&srv->ready, __ATOMIC_ACQUIRE) ?
			       reply(conn, MHD_HTTP_OK, text, "ready\n", 6,
				     MHD_RESPMEM_PERSISTENT) :
			       reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, text, "not synced yet\n",
				     15, MHD_RESPMEM_PERSISTENT);
	if (!strcmp(url, "/canary/window")) {
		ferry_metrics_window_fn fn = __atomic_load_n(&srv->window, __ATOMIC_ACQUIRE);
		const char *dep =
			MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "deployment");

		if (!fn || !dep)
			return reply(conn, MHD_HTTP_NOT_FOUND, text, "no canary window\n", 17,
				     MHD_RESPMEM_PERSISTENT);
		err = fn(srv->window_ctx, dep, &body, &len);
		if (err)
			return reply(conn, MHD_HTTP_NOT_FOUND, text, "no canary window\n", 17,
				     MHD_RESPMEM_PERSISTENT);
		return reply(conn, MHD_HTTP_OK, "application/json", body, len,
			     MHD_RESPMEM_MUST_FREE);
	}
	if (strcmp(url, "/metrics"))
		return reply(conn, MHD_HTTP_NOT_FOUND, text, "not found: try /metrics\n", 24,
			     MHD_RESPMEM_PERSISTENT);
	format = ferry_metrics__negotiate(
		MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT));
	err = srv->produce(srv->ctx, format, &body, &len);
	if (err == -EAGAIN) {
		/* The producer is not ready yet (ferryd binds before it attaches): no warning. */
		free(body);
		return reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, text, "starting\n", 9,
			     MHD_RESPMEM_PERSISTENT);
	}
	if (err) {
		free(body);
		pr_warn("/metrics: cannot read ferry's maps: %s", strerror(-err));
		return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, text,
			     "cannot read ferry's maps; see ferryd's log\n", 43,
			     MHD_RESPMEM_PERSISTENT);
	}
	return reply(conn, MHD_HTTP_OK,
		     format == FERRY_METRICS_PROTOBUF ? FERRY_METRICS_PROTOBUF_TYPE :
							"text/plain; version=0.0.4; charset=utf-8",
		     body, len, MHD_RESPMEM_MUST_FREE);
}

#define ADDR_HINT "expected HOST:PORT such as 127.0.0.1:9090, [::1]:9090 or :9090"

/*
 * Splits addr into host and port for getaddrinfo (hints gets the family and
 * flags the form asks for). On a bad form: -EINVAL and a message naming
 * --metrics-addr in err.
 */
static int split_addr(const char *addr, char *host, size_t hostlen, const char **port_out,
		      struct addrinfo *hints, char *err, size_t errlen)
{
	const char *port_str, *colon;
	unsigned long port;
	char *end;

	if (!addr || !*addr) {
		snprintf(err, errlen, "--metrics-addr: empty address; " ADDR_HINT);
		return -EINVAL;
	}
	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');
		unsigned char v6[16];

		if (!close || close[1] != ':' || (size_t)(close - addr - 1) >= hostlen) {
			snprintf(err, errlen, "--metrics-addr %s: bad IPv6 literal; " ADDR_HINT,
				 addr);
			return -EINVAL;
		}
		snprintf(host, hostlen, "%.*s", (int)(close - addr - 1), addr + 1);
		if (inet_pton(AF_INET6, host, v6) != 1) {
			snprintf(err, errlen,
				 "--metrics-addr %s: \"%s\" is not an IPv6 address; " ADDR_HINT,
				 addr, host);
			return -EINVAL;
		}
		port_str = close + 2;
		hints->ai_flags |= AI_NUMERICHOST;
		hints->ai_family = AF_INET6;
	} else {
		colon = strrchr(addr, ':');
		if (!colon || (size_t)(colon - addr) >= hostlen) {
			snprintf(err, errlen, "--metrics-addr %s: no port; " ADDR_HINT, addr);
			return -EINVAL;
		}
		snprintf(host, hostlen, "%.*s", (int)(colon - addr), addr);
		if (strchr(host, ':')) {
			snprintf(err, errlen,
				 "--metrics-addr %s: IPv6 addresses need brackets; " ADDR_HINT,
				 addr);
			return -EINVAL;
		}
		port_str = colon + 1;
	}
	errno = 0;
	port = strtoul(port_str, &end, 10);
	if (!*port_str || *end || errno || port > 65535 || port_str[0] == '-' ||
	    port_str[0] == '+' || port_str[0] == ' ') {
		snprintf(err, errlen,
			 "--metrics-addr %s: port \"%s\" is not a number in 0..65535; " ADDR_HINT,
			 addr, port_str);
		return -EINVAL;
	}
	if (!host[0]) {
		/* ":PORT": every address, IPv6 and IPv4 alike */
		snprintf(host, hostlen, "::");
		hints->ai_family = AF_INET6;
		hints->ai_flags |= AI_NUMERICHOST;
	}
	*port_out = port_str;
	return 0;
}

int ferry_metrics__check_addr(const char *addr, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai = NULL;
	const char *port_str;
	char host[256];
	int rc;

	rc = split_addr(addr, host, sizeof(host), &port_str, &hints, err, errlen);
	if (rc)
		return rc;
	/* ":PORT" falls back to IPv4 at bind time on hosts without IPv6: nothing to resolve. */
	if (!strcmp(host, "::"))
		return 0;
	rc = getaddrinfo(host, port_str, &hints, &ai);
	if (rc) {
		snprintf(err, errlen, "--metrics-addr %s: cannot resolve \"%s\": %s; " ADDR_HINT,
			 addr, host, gai_strerror(rc));
		return -EINVAL;
	}
	freeaddrinfo(ai);
	return 0;
}

/* Parses addr into a bound, listening socket. */
static int listen_on(const char *addr, int *fd_out, int *family_out)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai = NULL;
	char host[256], msg[512];
	const char *port_str;
	int fd = -1, one = 1, zero = 0, err;

	err = split_addr(addr, host, sizeof(host), &port_str, &hints, msg, sizeof(msg));
	if (err) {
		pr_err("%s", msg);
		return err;
	}
retry_v4:
	err = getaddrinfo(host, port_str, &hints, &ai);
	if (err) {
		pr_err("--metrics-addr %s: cannot resolve \"%s\": %s; " ADDR_HINT, addr, host,
		       gai_strerror(err));
		return -EINVAL;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 && errno == EAFNOSUPPORT && !strcmp(host, "::")) {
		/* ":PORT" on a host without IPv6: every IPv4 address instead */
		freeaddrinfo(ai);
		ai = NULL;
		snprintf(host, sizeof(host), "0.0.0.0");
		hints.ai_family = AF_INET;
		goto retry_v4;
	}
	if (fd < 0) {
		err = -errno;
		pr_err("--metrics-addr %s: cannot create a socket: %s", addr, strerror(-err));
		goto out_free_ai;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET6 && !strcmp(host, "::"))
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 64)) {
		err = -errno;
		pr_err("--metrics-addr %s: cannot listen: %s (choose a free port or a local "
		       "address)",
		       addr, strerror(-err));
		goto out_close;
	}
	*fd_out = fd;
	*family_out = ai->ai_family;
	freeaddrinfo(ai);
	return 0;

out_close:
	close(fd);
out_free_ai:
	freeaddrinfo(ai);
	return err;
}

struct ferry_metrics_server *ferry_metrics__serve(const char *addr, ferry_metrics_produce_fn fn,
						  void *ctx)
{
	struct ferry_metrics_server *srv;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	int fd = -1, family = 0, err;

	srv = calloc(1, sizeof(*srv));
	if (!srv) {
		errno = ENOMEM;
		return NULL;
	}
	srv->produce = fn;
	srv->ctx = ctx;
	err = listen_on(addr, &fd, &family);
	if (err)
		goto err_free;
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen)) {
		err = -errno;
		goto err_close;
	}
	srv->port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
					       ((struct sockaddr_in *)&ss)->sin_port);
	if (family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* MHD owns fd from here and closes it in MHD_stop_daemon */
	srv->daemon = MHD_start_daemon(flags, 0, NULL, NULL, handle_request, srv,
				       MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_TIMEOUT,
				       (unsigned int)10, MHD_OPTION_END);
	if (!srv->daemon) {
		err = -EIO;
		pr_err("--metrics-addr %s: cannot start the HTTP server", addr);
		goto err_close;
	}
	return srv;

err_close:
	close(fd);
err_free:
	free(srv);
	errno = -err;
	return NULL;
}

int ferry_metrics__port(const struct ferry_metrics_server *srv)
{
	return srv ? srv->port : -1;
}

void ferry_metrics__stop(struct ferry_metrics_server *srv)
{
	if (!srv)
		return;
	MHD_stop_daemon(srv->daemon);
	free(srv);
}
