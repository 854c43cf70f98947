// SPDX-License-Identifier: GPL-2.0-only
/*
 * What an interface's driver does with XDP: its kind and a veth peer's XDP
 * program (rtnetlink RTM_GETLINK, across namespaces with
 * IFLA_TARGET_NETNSID), and its xdp-features from the netdev generic
 * netlink family (Linux 6.3+), with that family's "mgmt" notifications.
 * Raw messages over libnl-3's core: the family needs two requests and one
 * group, not worth another library.
 */
#include <linux/genetlink.h>
#include <linux/if_link.h>

#include "kernel/netlink_internal.h"

/* include/uapi/linux/netdev.h (Linux 6.3); Debian 12's headers predate it. */
#define NETDEV_FAMILY_NAME "netdev"
#define NETDEV_MCGRP_MGMT "mgmt"
#define NETDEV_CMD_DEV_GET 1
#define NETDEV_CMD_DEV_ADD_NTF 2
#define NETDEV_CMD_DEV_DEL_NTF 3
#define NETDEV_CMD_DEV_CHANGE_NTF 4
#define NETDEV_A_DEV_IFINDEX 1
#define NETDEV_A_DEV_XDP_FEATURES 3
#define NETDEV_A_DEV_MAX 16

#ifndef IFLA_TARGET_NETNSID
#define IFLA_TARGET_NETNSID 46
#endif

/* ------------------------------------------------------------ rtnetlink */

struct getlink_reply {
	bool done;
	char kind[16];
	int link; /* IFLA_LINK: a veth's peer ifindex (in link_netnsid's namespace) */
	int link_netnsid; /* -1: the same namespace */
	__u8 xdp_attached; /* XDP_ATTACHED_* */
};

static int getlink_parse(struct nl_msg *msg, void *arg)
{
	struct getlink_reply *r = arg;
	struct nlmsghdr *hdr = nlmsg_hdr(msg);
	struct nlattr *tb[IFLA_MAX + 1], *sub[IFLA_INFO_MAX + 1], *xdp[IFLA_XDP_MAX + 1];

	if (hdr->nlmsg_type != RTM_NEWLINK ||
	    nlmsg_parse(hdr, sizeof(struct ifinfomsg), tb, IFLA_MAX, NULL) < 0)
		return NL_SKIP;
	r->done = true;
	if (tb[IFLA_LINKINFO] && !nla_parse_nested(sub, IFLA_INFO_MAX, tb[IFLA_LINKINFO], NULL) &&
	    sub[IFLA_INFO_KIND])
		snprintf(r->kind, sizeof(r->kind), "%s", nla_get_string(sub[IFLA_INFO_KIND]));
	if (tb[IFLA_LINK])
		r->link = (int)nla_get_u32(tb[IFLA_LINK]);
	if (tb[IFLA_LINK_NETNSID])
		r->link_netnsid = (int)nla_get_s32(tb[IFLA_LINK_NETNSID]);
	if (tb[IFLA_XDP] && !nla_parse_nested(xdp, IFLA_XDP_MAX, tb[IFLA_XDP], NULL) &&
	    xdp[IFLA_XDP_ATTACHED])
		r->xdp_attached = nla_get_u8(xdp[IFLA_XDP_ATTACHED]);
	return NL_OK;
}

/* One link, in this namespace or (netnsid >= 0) in the one netnsid names. */
static int getlink(struct ferry_nl *nl, int ifindex, int netnsid, struct getlink_reply *r)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_index = ifindex };
	struct nl_msg *msg;
	struct nl_cb *cb;
	int err;

	memset(r, 0, sizeof(*r));
	r->link_netnsid = -1;
	if (!nl->xdp_query)
		return -ENOTCONN;
	msg = nlmsg_alloc_simple(RTM_GETLINK, NLM_F_REQUEST);
	cb = nl_cb_alloc(NL_CB_DEFAULT);
	if (!msg || !cb) {
		err = -ENOMEM;
		goto out;
	}
	err = nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO);
	if (!err && netnsid >= 0)
		err = nla_put_s32(msg, IFLA_TARGET_NETNSID, netnsid);
	if (err < 0) {
		err = nlerr_to_errno(err);
		goto out;
	}
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, getlink_parse, r);
	err = nl_send_auto(nl->xdp_query, msg);
	if (err >= 0)
		err = nl_recvmsgs(nl->xdp_query, cb);
	err = err < 0 ? nlerr_to_errno(err) : r->done ? 0 : -ENODATA;
out:
	nl_cb_put(cb);
	nlmsg_free(msg);
	return err;
}

/* ------------------------------------------------------- netdev family */

struct family_reply {
	int id;
	int mgmt_grp;
};

static int family_parse(struct nl_msg *msg, void *arg)
{
	struct family_reply *r = arg;
	struct nlattr *tb[CTRL_ATTR_MAX + 1], *grp;
	int rem;

	if (nlmsg_parse(nlmsg_hdr(msg), GENL_HDRLEN, tb, CTRL_ATTR_MAX, NULL) < 0)
		return NL_SKIP;
	if (tb[CTRL_ATTR_FAMILY_ID])
		r->id = nla_get_u16(tb[CTRL_ATTR_FAMILY_ID]);
	if (!tb[CTRL_ATTR_MCAST_GROUPS])
		return NL_OK;
	nla_for_each_nested(grp, tb[CTRL_ATTR_MCAST_GROUPS], rem)
	{
		struct nlattr *g[CTRL_ATTR_MCAST_GRP_MAX + 1];

		if (nla_parse_nested(g, CTRL_ATTR_MCAST_GRP_MAX, grp, NULL) ||
		    !g[CTRL_ATTR_MCAST_GRP_NAME] || !g[CTRL_ATTR_MCAST_GRP_ID])
			continue;
		if (!strcmp(nla_get_string(g[CTRL_ATTR_MCAST_GRP_NAME]), NETDEV_MCGRP_MGMT))
			r->mgmt_grp = (int)nla_get_u32(g[CTRL_ATTR_MCAST_GRP_ID]);
	}
	return NL_OK;
}

static struct nl_msg *genl_msg(int family, int flags, __u8 cmd)
{
	struct genlmsghdr gh = { .cmd = cmd, .version = 1 };
	struct nl_msg *msg = nlmsg_alloc_simple(family, NLM_F_REQUEST | flags);

	if (msg && nlmsg_append(msg, &gh, sizeof(gh), NLMSG_ALIGNTO) < 0) {
		nlmsg_free(msg);
		return NULL;
	}
	return msg;
}

/* Sends msg (freed) on sock and runs fn on every reply; 0 or -errno. */
static int genl_exchange(struct nl_sock *sock, struct nl_msg *msg, nl_recvmsg_msg_cb_t fn,
			 void *arg)
{
	struct nl_cb *cb = nl_cb_alloc(NL_CB_DEFAULT);
	int err;

	if (!cb || !msg) {
		err = -ENOMEM;
		goto out;
	}
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, fn, arg);
	err = nl_send_auto(sock, msg);
	if (err >= 0)
		err = nl_recvmsgs(sock, cb);
	err = err < 0 ? nlerr_to_errno(err) : 0;
out:
	nl_cb_put(cb);
	nlmsg_free(msg);
	return err;
}

struct dev_reply {
	struct ferry_nl *nl;
	int ifindex;
	__u64 features;
	bool found;
	/* A dump or a notification: report every device to the callback. */
	bool notify;
};

static int dev_parse(struct nl_msg *msg, void *arg)
{
	struct dev_reply *r = arg;
	struct nlmsghdr *hdr = nlmsg_hdr(msg);
	struct genlmsghdr *gh = nlmsg_data(hdr);
	struct nlattr *tb[NETDEV_A_DEV_MAX + 1];
	__u64 features;
	int ifindex;

	if (nlmsg_parse(hdr, GENL_HDRLEN, tb, NETDEV_A_DEV_MAX, NULL) < 0 ||
	    !tb[NETDEV_A_DEV_IFINDEX])
		return NL_SKIP;
	ifindex = (int)nla_get_u32(tb[NETDEV_A_DEV_IFINDEX]);
	features = tb[NETDEV_A_DEV_XDP_FEATURES] ? nla_get_u64(tb[NETDEV_A_DEV_XDP_FEATURES]) : 0;
	if (r->notify) {
		bool removed = gh->cmd == NETDEV_CMD_DEV_DEL_NTF;

		if (r->nl->cb.on_xdp_features)
			r->nl->cb.on_xdp_features(r->nl->ctx, ifindex, removed ? 0 : features,
						  removed);
		return NL_OK;
	}
	if (ifindex == r->ifindex) {
		r->features = features;
		r->found = true;
	}
	return NL_OK;
}

/*
 * Opens the netdev family's sockets. Its absence (Linux < 6.3) is not an
 * error: nl->xdp_features stays false and callers keep their safe defaults.
 */
int xdp_open(struct ferry_nl *nl)
{
	struct family_reply fam = { 0 };
	struct nl_msg *msg;
	int err;

	nl->xdp_query = nl_socket_alloc();
	if (!nl->xdp_query)
		return -ENOMEM;
	nl_socket_disable_auto_ack(nl->xdp_query);
	err = nl_connect(nl->xdp_query, NETLINK_ROUTE);
	if (err < 0)
		return nlerr_to_errno(err);
	nl->genl_query = nl_socket_alloc();
	if (!nl->genl_query)
		return -ENOMEM;
	nl_socket_disable_auto_ack(nl->genl_query);
	err = nl_connect(nl->genl_query, NETLINK_GENERIC);
	if (err < 0)
		return nlerr_to_errno(err);
	msg = genl_msg(GENL_ID_CTRL, 0, CTRL_CMD_GETFAMILY);
	if (msg && nla_put_string(msg, CTRL_ATTR_FAMILY_NAME, NETDEV_FAMILY_NAME) < 0) {
		nlmsg_free(msg);
		msg = NULL;
	}
	err = genl_exchange(nl->genl_query, msg, family_parse, &fam);
	if (err == -ENOENT || (!err && !fam.id))
		return 0; /* no netdev family: Linux < 6.3 */
	if (err)
		return err;
	nl->netdev_family = fam.id;
	nl->xdp_features = true;
	if (!fam.mgmt_grp)
		return 0;
	nl->genl_events = nl_socket_alloc();
	if (!nl->genl_events)
		return -ENOMEM;
	nl_socket_disable_seq_check(nl->genl_events);
	err = nl_connect(nl->genl_events, NETLINK_GENERIC);
	if (err >= 0)
		err = nl_socket_add_membership(nl->genl_events, fam.mgmt_grp);
	if (err >= 0)
		err = nl_socket_set_nonblocking(nl->genl_events);
	return err < 0 ? nlerr_to_errno(err) : 0;
}

void xdp_close(struct ferry_nl *nl)
{
	nl_socket_free(nl->xdp_query);
	nl_socket_free(nl->genl_query);
	nl_socket_free(nl->genl_events);
}

bool ferry_nl__has_xdp_features(const struct ferry_nl *nl)
{
	return nl->xdp_features;
}

int ferry_nl__xdp_dev(struct ferry_nl *nl, int ifindex, struct ferry_nl_xdp_dev *dev)
{
	struct getlink_reply self, peer;
	int err;

	memset(dev, 0, sizeof(*dev));
	err = getlink(nl, ifindex, -1, &self);
	if (err)
		return err;
	dev->veth = !strcmp(self.kind, "veth");
	if (dev->veth && self.link > 0) {
		/* The peer may live in another namespace: ask through its netnsid. */
		err = getlink(nl, self.link, self.link_netnsid, &peer);
		dev->peer_known = !err;
		dev->peer_xdp = !err && peer.xdp_attached != XDP_ATTACHED_NONE;
	}
	if (nl->xdp_features && nl->genl_query) {
		struct dev_reply r = { .nl = nl, .ifindex = ifindex };
		struct nl_msg *msg = genl_msg(nl->netdev_family, 0, NETDEV_CMD_DEV_GET);

		if (msg && nla_put_u32(msg, NETDEV_A_DEV_IFINDEX, ifindex) < 0) {
			nlmsg_free(msg);
			msg = NULL;
		}
		err = genl_exchange(nl->genl_query, msg, dev_parse, &r);
		if (err)
			return err;
		dev->features_known = r.found;
		dev->features = r.features;
	}
	return 0;
}

int ferry_nl__xdp_dump(struct ferry_nl *nl)
{
	struct dev_reply r = { .nl = nl, .notify = true };

	if (!nl->xdp_features)
		return -EOPNOTSUPP;
	return genl_exchange(nl->genl_query,
			     genl_msg(nl->netdev_family, NLM_F_DUMP, NETDEV_CMD_DEV_GET), dev_parse,
			     &r);
}

int ferry_nl__xdp_fd(const struct ferry_nl *nl)
{
	return nl->genl_events ? nl_socket_get_fd(nl->genl_events) : -1;
}

int ferry_nl__xdp_process(struct ferry_nl *nl)
{
	struct dev_reply r = { .nl = nl, .notify = true };
	struct nl_cb *cb;
	int i, n, err = 0;

	if (!nl->genl_events)
		return 0;
	cb = nl_cb_alloc(NL_CB_DEFAULT);
	if (!cb)
		return -ENOMEM;
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, dev_parse, &r);
	for (i = 0; i < PROCESS_MAX_READS; i++) {
		n = nl_recvmsgs_report(nl->genl_events, cb);
		if (n == -NLE_NOMEM) {
			/* Notifications lost: a dump says where every device stands now. */
			pr_warn("netlink: xdp-features notifications were lost; re-reading all devices");
			err = ferry_nl__xdp_dump(nl);
			continue;
		}
		if (n == -NLE_AGAIN || n == 0)
			break;
		if (n < 0) {
			/* Unreadable: a dump says where every device stands instead. */
			pr_debug(
				"netlink: reading netdev notifications: %s; re-reading all devices",
				nl_geterror(n));
			err = ferry_nl__xdp_dump(nl);
			break;
		}
	}
	nl_cb_put(cb);
	return err;
}
