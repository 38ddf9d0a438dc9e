package cluster

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/tools/ident"
)

// lostClaimTTL is how long the claim on a lost node's events lasts (s).
const lostClaimTTL = 3600

// ClaimLost reports whether this node is the one survivor that posts the
// webhook events of the clients of node, which the cluster declared gone:
// the first survivor to create <prefix>/gone-events/<node> in etcd. While
// etcd does not answer nobody claims (the events are not posted).
func (c *Cluster) ClaimLost(ctx context.Context, node ident.NodeID) bool {
	ctx, cancel := context.WithTimeout(ctx, c.o.EtcdTimeout)
	defer cancel()
	g, err := c.cli.Grant(ctx, lostClaimTTL)
	if err != nil {
		c.log.Warn("webhook events of a lost node: etcd does not answer; not posted", zap.Stringer("node", node), zap.Error(err))
		return false
	}
	key := c.prefix + "/gone-events/" + node.String()
	resp, err := c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, c.self.String(), clientv3.WithLease(g.ID))).
		Commit()
	if err != nil {
		c.log.Warn("webhook events of a lost node: etcd does not answer; not posted", zap.Stringer("node", node), zap.Error(err))
		return false
	}
	if !resp.Succeeded {
		// Another survivor posts them; the lease is not needed.
		rctx, rcancel := context.WithTimeout(context.Background(), c.o.EtcdTimeout)
		_, _ = c.cli.Revoke(rctx, g.ID)
		rcancel()
	}
	return resp.Succeeded
}
