package storage

import (
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// A bucket nested where the store keeps only keys and values, in any of
// its own buckets, is skipped and listed, as the store would read its name
// as a key without a value; everything else is copied.
func TestRecoverSkipsNestedBucketsInEveryStoreBucket(t *testing.T) {
	fx := filledFile(t, 300)
	nested := []struct {
		bucket, name []byte
	}{
		{bucketEvents, putID(nil, 100_000)},
		{bucketState, stateKey(nil, "dev-00", "humidity")},
		{bucketDevices, []byte("dev-new")},
		{bucketMeta, []byte("extra")},
		{bucketTopics, []byte("index")},
		{bucketDeleted, []byte("dev-gone")},
		{bucketOutbox, putID(nil, 7)},
		{bucketOrigins, []byte("hub-b\x00p-001")},
	}
	editFile(t, fx.cfg.Path, func(tx *bolt.Tx) error {
		for _, n := range nested {
			b, err := tx.CreateBucketIfNotExists(n.bucket)
			if err != nil {
				return err
			}
			inner, err := b.CreateBucket(n.name)
			if err != nil {
				return err
			}
			if err := inner.Put(putID(nil, 1), []byte("v")); err != nil {
				return err
			}
		}
		return nil
	})
	rep := recoverInto(t, fx)
	if rep.Events != fx.events || rep.Devices != fx.devices || rep.Other != 3 || len(rep.Undecodable) != len(nested) {
		t.Fatalf("report %+v, want %d events, %d devices, the 3 meta keys and the %d nested buckets listed",
			rep, fx.events, fx.devices, len(nested))
	}
	for _, n := range nested {
		if !slices.ContainsFunc(rep.Undecodable, func(u string) bool {
			return strings.HasPrefix(u, string(n.bucket)+" ") && strings.HasSuffix(u, ": a bucket, which the store never keeps there")
		}) {
			t.Errorf("the bucket nested in %s is not listed: %q", n.bucket, rep.Undecodable)
		}
	}
}
