// Package storage owns telehub's durable state: one bbolt file holding the
// event log, the latest state of every device metric, the device records
// (first and last seen, transport, presence session, metrics) with the seq
// epoch used for deduplication (last stored seq, boot and device time, and
// the counts of duplicates and epoch changes), and the store identity that
// event ids carry (see IDCodec).
//
// # Writing
//
// A Store implements the bridge's Store interface. Submit only enqueues; a
// single writer goroutine owned by the Store is the only bbolt writer. It
// takes the first queued write, then whatever else is queued (up to
// Config.MaxBatch) without waiting, and commits them in one transaction
// (group commit): bbolt writes the changed pages and fsyncs them, then
// writes its meta page and fsyncs again, so that the meta page never
// reaches the disk before the pages it points to. Inside that transaction it drops writes whose
// device seq was already stored in its epoch (see MaxSeqGap and
// bridge.Write), appends events under consecutive ids, updates latest state and
// device records, and trims retention in bounded steps. The event log keeps
// one record per write, under the id of its first event; retention still
// counts events, and cuts the oldest record when only part of it must go. After a successful
// commit it publishes the new last id, calls Config.Synced, calls
// Config.OnCommit with the batch's records in id order, then calls each
// write's Done: nothing of a batch leaves the hub before its fsync. After a failed
// commit every write of the batch gets the error in its Done and nothing of
// it is kept, in the file or in memory.
//
// # Full disk and damaged files
//
// A commit that fails because the file cannot grow (full disk or quota,
// Config.MaxBytes) gives its writes ErrFull; WriteErr reports the failure
// until a commit succeeds, and the writer probes for space on its trim tick
// so that it recovers without a write. Failures are logged at a rate limit.
//
// Open first reads the whole file with plain reads (Check): bbolt trusts
// the file and crashes the process on a damaged one. An empty, cut-short
// or damaged file is refused with a *DamageError (ErrDamaged); Recover
// copies what is readable into a new file.
//
// # Lifecycle
//
// Open is the start: it loads the file and starts the writer goroutine, so
// that a Store is usable as soon as Open returns; there is no separate
// Start. Close is the stop: it drains the queue, stops the writer and
// closes the file, and returns the error of that close (the hub returns it
// from its Shutdown). A Store is opened once and closed once.
//
// # Reading after an id
//
// ResumePoint and ReadAfter are the one way to read the log from an event
// id: they tell a foreign or expired id, an id beyond the newest event,
// and retention that overtakes a read, apart from the events themselves
// with a *GapError naming the oldest retained id. The REST API and the
// stream replay both use them.
//
// # Concurrency
//
// Submit, LastID, OldestID, WriteErr, Scan, Latest, Devices, ScanDevices,
// Device, DeleteDevice and Close are safe to call from any goroutine. Reads
// run in short read-only transactions beside the writer; Scan and Latest
// look at a bounded window per call so that they never hold one long.
// DeleteDevice runs on the writer goroutine, after the writes queued before
// it. Synced, OnCommit and every Write.Done run on the writer
// goroutine, one at a time, in commit order.
//
// # Caveats
//
// Synced, OnCommit and Done must not block, and must not call Submit or Close: the
// writer goroutine would wait on itself. Close waits for every queued write
// to be committed and acknowledged.
package storage
