package store_test

import (
	"testing"

	"github.com/moongate/moongate/gateway/store"
	"github.com/moongate/moongate/gateway/store/storetest"
)

func TestLocalKeepsTheGuarantees(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.KV { return store.New(0).Local() })
}
