package auth

import (
	"fmt"
	"slices"
	"strings"

	"github.com/telehub/telehub/internal/topic"
)

// ParseCommandScopes parses the commands scope of a watcher credential:
// at most MaxScopes device-id patterns, each a device id, "+" or "#",
// read as the topic filter commands/{pattern} under MQTT wildcard rules.
// So "pump-7" allows commanding pump-7 only, "+" and "#" every device.
// None (nil or empty) allows commanding no device. Errors wrap
// ErrBadScope.
func ParseCommandScopes(patterns []string) ([]topic.Filter, error) {
	if len(patterns) > MaxScopes {
		return nil, fmt.Errorf("%w: %d commands patterns, at most %d", ErrBadScope, len(patterns), MaxScopes)
	}
	out := make([]topic.Filter, 0, len(patterns))
	for _, p := range patterns {
		if p != topic.SingleLevel && p != topic.MultiLevel && topic.ValidDeviceID(p) != nil {
			return nil, fmt.Errorf("%w: commands pattern %.80q: a device id, \"+\" or \"#\"", ErrBadScope, p)
		}
		f, err := topic.ParseFilter(topic.CommandsRoot + p)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadScope, err)
		}
		out = append(out, f)
	}
	return out, nil
}

// checkCommandScopes checks a commands scope given as parsed filters:
// each must be one that ParseCommandScopes makes.
func checkCommandScopes(scopes []topic.Filter) error {
	if len(scopes) > MaxScopes {
		return fmt.Errorf("%w: %d commands patterns, at most %d", ErrBadScope, len(scopes), MaxScopes)
	}
	for _, f := range scopes {
		p, ok := strings.CutPrefix(f.String(), topic.CommandsRoot)
		if !ok {
			return fmt.Errorf("%w: commands filter %.80q outside %s", ErrBadScope, f.String(), topic.CommandsRoot)
		}
		if _, err := ParseCommandScopes([]string{p}); err != nil {
			return err
		}
	}
	return nil
}

// commandPatterns returns the device-id patterns of a commands scope.
func commandPatterns(scopes []topic.Filter) []string {
	out := make([]string, len(scopes))
	for i, f := range scopes {
		out[i] = strings.TrimPrefix(f.String(), topic.CommandsRoot)
	}
	return out
}

// AllowCommands reports whether a commands scope covers device: whether
// one of its filters matches commands/{device}.
func AllowCommands(scopes []topic.Filter, device string) bool {
	t := topic.Commands(device)
	return slices.ContainsFunc(scopes, func(f topic.Filter) bool { return f.Match(t) })
}

// Commands returns the commands scope of the watcher whose token this is;
// ok is false when it is no watcher's token. A watcher without a commands
// scope has an empty one. The slice is the caller's.
func (a *Auth) Commands(token string) (scopes []topic.Filter, ok bool) {
	w := a.watcherOf(token)
	if w == nil {
		return nil, false
	}
	return slices.Clone(w.commands), true
}
