// Package jsonx writes JSON strings by hand for telehub's hot paths (event
// data at ingest, device answers, stream control messages), byte for byte
// as encoding/json would, without reflection or allocation.
//
// # Concurrency
//
// Its functions are pure and safe for concurrent use.
package jsonx
