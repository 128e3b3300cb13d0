package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/topic"
	"github.com/telehub/telehub/storage"
)

// Request is a command an operator asks for.
type Request struct {
	Name   string
	Params json.RawMessage // a JSON object, or empty
	TTL    time.Duration   // 0: DefaultTTL
}

// validate checks r and returns its params compacted (nil when none).
func (r *Request) validate() (json.RawMessage, error) {
	if err := topic.ValidMetric(r.Name); err != nil {
		return nil, fmt.Errorf("%w: name: %w", ErrInvalid, err)
	}
	if r.TTL < 0 || r.TTL > MaxTTL || (r.TTL != 0 && r.TTL < MinTTL) {
		return nil, fmt.Errorf("%w: ttl %s: must be between %s and %s", ErrInvalid, r.TTL, MinTTL, MaxTTL)
	}
	p := bytes.TrimSpace(r.Params)
	if len(p) == 0 || bytes.Equal(p, []byte("null")) {
		return nil, nil
	}
	if p[0] != '{' {
		return nil, fmt.Errorf("%w: params: must be a JSON object", ErrInvalid)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, p); err != nil {
		return nil, fmt.Errorf("%w: params: %w", ErrInvalid, err)
	}
	if buf.Len() > MaxParams {
		return nil, fmt.Errorf("%w: params: %d bytes is over the limit of %d", ErrInvalid, buf.Len(), MaxParams)
	}
	return buf.Bytes(), nil
}

// Create stores a new command for dev and returns it once it is durably
// stored; it then goes to the device at once when the device is
// reachable. storage.ErrTooManyCommands when dev has too many pending.
func (s *Service) Create(ctx context.Context, dev string, r Request) (bridge.Command, error) {
	if err := topic.ValidDeviceID(dev); err != nil {
		return bridge.Command{}, fmt.Errorf("%w: device: %w", ErrInvalid, err)
	}
	params, err := r.validate()
	if err != nil {
		return bridge.Command{}, err
	}
	ttl := r.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	now := s.clock.Now()
	op := &bridge.CommandOp{
		Create:     &bridge.Command{Name: r.Name, Params: params, Expires: now.Add(ttl)},
		MaxPending: s.cfg.MaxPending,
		At:         now,
	}
	c, err := s.submitCreate(ctx, dev, op)
	if err != nil {
		return c, err
	}
	s.dispatch(dev, false)
	return c, nil
}

// submitCreate stores op. The new command joins the memory on the store's
// writer goroutine, so the device's queue follows the commit (id) order.
func (s *Service) submitCreate(ctx context.Context, dev string, op *bridge.CommandOp) (bridge.Command, error) {
	res := make(chan bridge.Result, 1)
	w := &bridge.Write{Device: dev, Command: op, Done: func(r bridge.Result) {
		if r.Err == nil {
			s.remember(op.Out)
		}
		s.committed(op, r)
		res <- r
	}}
	if err := s.store.Submit(w); err != nil {
		return bridge.Command{}, fmt.Errorf("submit command: %w", err)
	}
	// The answer waits for the commit even when ctx ends: the command
	// exists once committed, and the caller must not be told otherwise.
	r := <-res
	if r.Err != nil {
		return bridge.Command{}, r.Err
	}
	return op.Out, nil
}

// Get returns the stored command id.
func (s *Service) Get(id string) (bridge.Command, error) { return s.store.Command(id) }

// List returns dev's commands, newest first, only in state when it is set.
func (s *Service) List(dev string, state bridge.CommandState, limit int) ([]bridge.Command, error) {
	return s.store.DeviceCommands(dev, state, limit)
}

// Wait returns the command id once it is final, or as it stands when ctx
// ends or EndWaits is called first.
func (s *Service) Wait(ctx context.Context, id string) (bridge.Command, error) {
	ch := make(chan bridge.Command, 1)
	s.mu.Lock()
	_, pending := s.byID[id]
	_, finishing := s.finishing[id]
	if pending = pending || finishing; pending {
		s.waiters[id] = append(s.waiters[id], ch)
	}
	s.mu.Unlock()
	if !pending {
		return s.store.Command(id)
	}
	select {
	case c := <-ch:
		return c, nil
	case <-ctx.Done():
	case <-s.waitsEnd:
	}
	s.dropWaiter(id, ch)
	return s.store.Command(id)
}

// EndWaits ends every Wait under way, and every later one at once, with
// the command as it stands. The hub calls it when it starts to shut down,
// so that no request waiting for a command holds the shutdown up.
func (s *Service) EndWaits(context.Context) error {
	s.endWaitsOnce.Do(func() { close(s.waitsEnd) })
	return nil
}

func (s *Service) dropWaiter(id string, ch chan bridge.Command) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws := s.waiters[id]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(s.waiters, id)
	} else {
		s.waiters[id] = ws
	}
}

// Cancel cancels the command id before it was delivered: it returns the
// canceled command, storage.ErrCommandState once delivered or final,
// storage.ErrCommandNotFound for an unknown id.
func (s *Service) Cancel(ctx context.Context, id string) (bridge.Command, error) {
	s.mu.Lock()
	e := s.byID[id]
	if e == nil || !bridge.CanMove(e.cmd.State, bridge.CommandCanceled) {
		s.mu.Unlock()
		c, err := s.store.Command(id)
		if err != nil {
			return c, err
		}
		return c, fmt.Errorf("command %s is %s: %w", id, c.State, storage.ErrCommandState)
	}
	s.forget(e)
	dev := e.cmd.Device
	s.mu.Unlock()
	return s.submit(ctx, dev, &bridge.CommandOp{ID: id, To: bridge.CommandCanceled, At: s.clock.Now()})
}

// Connected sends dev every command it has not confirmed, in creation
// order: the transports call it when a device connects (over MQTT, when it
// subscribes to its commands).
func (s *Service) Connected(dev string) { s.dispatch(dev, true) }

// dispatch sends dev's commands in creation order: those still queued, and
// with resend those sent but not confirmed too.
func (s *Service) dispatch(dev string, resend bool) {
	s.mu.Lock()
	d := s.devices[dev]
	transports := s.transports
	s.mu.Unlock()
	if d == nil {
		return
	}
	d.send.Lock()
	defer d.send.Unlock()
	for _, e := range s.toSend(d, resend) {
		t := reachable(transports, dev)
		if t == nil {
			return
		}
		s.send(t, e)
	}
}

// toSend returns a snapshot of d's commands to send. s.mu is taken.
func (s *Service) toSend(d *device, resend bool) []*entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*entry
	for _, e := range d.pending {
		if e.cmd.State == bridge.CommandQueued || resend && e.cmd.State == bridge.CommandSent {
			out = append(out, e)
		}
	}
	return out
}

// reachable returns the transport that reaches dev now, nil when none.
func reachable(ts []Transport, dev string) Transport {
	for _, t := range ts {
		if t.Reachable(dev) {
			return t
		}
	}
	return nil
}

// send records e as sent (when it was queued) and hands it to t. The
// change is submitted before the frame leaves, so that the device's
// confirmation is always stored after it.
func (s *Service) send(t Transport, e *entry) {
	s.mu.Lock()
	if s.byID[e.cmd.ID] != e { // final meanwhile
		s.mu.Unlock()
		return
	}
	queued := e.cmd.State == bridge.CommandQueued
	if queued {
		e.cmd.State = bridge.CommandSent
	}
	c := e.cmd
	s.mu.Unlock()
	if queued {
		s.submitAsync(c.Device, &bridge.CommandOp{ID: c.ID, To: bridge.CommandSent, At: s.clock.Now()})
	}
	t.SendCommand(c.Device, &c)
}

// Answer errors, wire errors for the device.
func answerError(id string, err error) *bridge.Error {
	switch {
	case errors.Is(err, storage.ErrCommandNotFound):
		return bridge.Errorf("command %q: unknown command id", id)
	case errors.Is(err, storage.ErrCommandDevice):
		return bridge.Errorf("command %q: not a command of this device", id)
	}
	return &bridge.Error{Code: bridge.CodeInternal, Message: "the command answer could not be recorded"}
}

// Answer records a device's answer: a confirmation (delivered) or a
// result (succeeded or failed; delivered first when no confirmation came
// before it). dev "" is a confirmation the hub saw
// itself (an MQTT PUBACK), valid for any device. An answer for an unknown
// command or another device's command is a *bridge.Error for the device.
// A repeated answer, or one after the command ended, changes nothing; a
// result after the command expired is recorded in it.
func (s *Service) Answer(dev string, a bridge.CommandAnswer) error {
	now := s.clock.Now()
	to := bridge.CommandDelivered
	if a.IsResult {
		to = a.FinalState()
	}
	s.mu.Lock()
	e := s.byID[a.ID]
	if e != nil && dev != "" && e.cmd.Device != dev {
		s.mu.Unlock()
		return answerError(a.ID, storage.ErrCommandDevice)
	}
	if e == nil {
		s.mu.Unlock()
		return s.lateAnswer(dev, a, to, now)
	}
	owner := e.cmd.Device
	if !bridge.CanMove(e.cmd.State, to) {
		s.mu.Unlock()
		return nil // a repeated confirmation
	}
	// A result confirms receipt too, and may come first: an MQTT device
	// can publish it before the PUBACK of the command. The command then
	// goes through delivered on its way to the result's state.
	confirms := to == bridge.CommandDelivered || bridge.CanMove(e.cmd.State, bridge.CommandDelivered)
	if confirms {
		s.met.CommandDelivery.Observe(now.Sub(e.cmd.Created).Seconds())
	}
	if to == bridge.CommandDelivered {
		e.cmd.State = to
	} else {
		s.forget(e)
	}
	s.mu.Unlock()
	if confirms && to != bridge.CommandDelivered {
		s.submitAsync(owner, answerOp(bridge.CommandAnswer{ID: a.ID}, bridge.CommandDelivered, now))
	}
	s.submitAsync(owner, answerOp(a, to, now))
	return nil
}

// lateAnswer handles an answer for a command no longer pending: unknown,
// another device's, or final (a result after expiry is recorded).
func (s *Service) lateAnswer(dev string, a bridge.CommandAnswer, to bridge.CommandState, now time.Time) error {
	c, err := s.store.Command(a.ID)
	switch {
	case err != nil:
		return answerError(a.ID, err)
	case dev != "" && c.Device != dev:
		return answerError(a.ID, storage.ErrCommandDevice)
	case !c.State.Final() || a.IsResult && c.State == bridge.CommandExpired && c.Status == "":
		// Not final yet: another final change (an expiry) is on its way,
		// and the store keeps whichever commits first.
		s.submitAsync(c.Device, answerOp(a, to, now))
	}
	return nil
}

func answerOp(a bridge.CommandAnswer, to bridge.CommandState, now time.Time) *bridge.CommandOp {
	return &bridge.CommandOp{ID: a.ID, To: to, HasResult: a.IsResult, Status: a.Status,
		Result: a.Result, Message: a.Message, AnyDevice: true, At: now}
}
