package cluster_test

import (
	"testing"

	"github.com/moongate/moongate/gateway/cluster"
	"github.com/moongate/moongate/gateway/cluster/clustertest"
	"github.com/moongate/moongate/gateway/store"
	"github.com/moongate/moongate/gateway/store/storetest"
)

// The Redis store keeps the guarantees the in-process store keeps: the
// same checks, on the real server.
func TestStoreKeepsTheGuarantees(t *testing.T) {
	rdb := clustertest.Redis(t)
	storetest.Run(t, func(t *testing.T) store.KV {
		return cluster.NewStore(rdb, clustertest.Prefix(t, rdb))
	})
}

// Two stores on one prefix (two nodes) see one store.
func TestStoreIsSharedByNodes(t *testing.T) {
	rdb := clustertest.Redis(t)
	prefix := clustertest.Prefix(t, rdb)
	a, b := cluster.NewStore(rdb, prefix), cluster.NewStore(clustertest.Redis(t), prefix)
	ctx := t.Context()
	if ok, err := a.Add(ctx, "nick:ann", "c1", 0, "c1"); !ok || err != nil {
		t.Fatalf("add on a: %v %v", ok, err)
	}
	if ok, _ := b.Add(ctx, "nick:ann", "c2", 0, "c2"); ok {
		t.Fatal("b took a nick a holds")
	}
	if n, _ := b.ReleaseOwner(ctx, "c1"); n != 1 {
		t.Fatalf("b released %d of c1's keys, want 1", n)
	}
	if ok, _ := a.Add(ctx, "nick:ann", "c2", 0, "c2"); !ok {
		t.Fatal("the released nick cannot be taken")
	}
}
