package main

import (
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/telehub/telehub/internal/auth"
	"github.com/telehub/telehub/internal/topic"
)

const tokenHelp = `
Makes a random token (32 bytes from the system's secure random source,
base64url) and prints it on the first line and its sha256: form on the second.
Put the sha256: form in the configuration, so that the file never holds the
token, and give the token itself to the client: telehub keeps only hashes, so
this is the only time the token is shown.

With --device, --watcher or --admin it then says which lines to add to the
configuration file and how the client sends the token; --quiet prints the two
lines only.

  --device ID       a device token: device_tokens, WebSocket bearer or MQTT password
  --watcher NAME    a watcher token: watcher_tokens, with the --topic filters
  --topic FILTER    a topic filter the watcher may watch within (repeatable; default #)
  --admin           the admin token: admin_token or TELEHUB_ADMIN_TOKEN
  --quiet           print the token and its sha256: line only

Tokens issued at run time through the admin API need no configuration change.`

// tokenRequest is what telehub token was asked to make.
type tokenRequest struct {
	device, watcher string
	topics          []string
	admin, quiet    bool
}

// token is telehub token [flags].
func token(c *cli, args []string) int {
	req, err := parseTokenArgs(args)
	if err != nil {
		return c.usageError("telehub token", err)
	}
	tok, hash, err := auth.NewToken(rand.Reader)
	if err != nil {
		fmt.Fprintln(c.stderr, "telehub token:", err)
		return exitFail
	}
	fmt.Fprintf(c.stdout, "%s\n%s\n", tok, hash)
	if !req.quiet {
		writeTokenUse(c.stdout, req, hash)
	}
	return exitOK
}

func parseTokenArgs(args []string) (tokenRequest, error) {
	var req tokenRequest
	fs := flag.NewFlagSet("telehub token", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&req.device, "device", "", "")
	fs.StringVar(&req.watcher, "watcher", "", "")
	fs.Func("topic", "", func(s string) error {
		req.topics = append(req.topics, s)
		return nil
	})
	fs.BoolVar(&req.admin, "admin", false, "")
	fs.BoolVar(&req.quiet, "quiet", false, "")
	if err := fs.Parse(args); err != nil {
		return req, fmt.Errorf("%w (telehub help token)", err)
	}
	if fs.NArg() > 0 {
		return req, fmt.Errorf("unexpected argument %q (telehub help token)", fs.Arg(0))
	}
	return req, req.check()
}

func (req *tokenRequest) check() error {
	kinds := 0
	for _, set := range []bool{req.device != "", req.watcher != "", req.admin} {
		if set {
			kinds++
		}
	}
	switch {
	case kinds > 1:
		return errors.New("give one of --device, --watcher and --admin")
	case len(req.topics) > 0 && req.watcher == "":
		return errors.New("--topic goes with --watcher NAME")
	case req.device != "" && topic.ValidDeviceID(req.device) != nil:
		return fmt.Errorf("device id %q: want 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit", req.device)
	case req.watcher != "" && topic.ValidDeviceID(req.watcher) != nil:
		return fmt.Errorf("watcher name %q: want 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit", req.watcher)
	}
	if req.watcher == "" {
		return nil
	}
	if len(req.topics) == 0 {
		req.topics = []string{"#"}
	}
	if _, err := auth.ParseScopes(req.topics); err != nil {
		return fmt.Errorf("--topic: %w", err)
	}
	return nil
}

// writeTokenUse says where the hash goes and how the client sends the
// token.
func writeTokenUse(w io.Writer, req tokenRequest, hash string) {
	switch {
	case req.device != "":
		fmt.Fprintf(w, "\nAdd to the configuration file (--config):\n\n  device_tokens:\n    %s: %s\n", req.device, hash)
		fmt.Fprintf(w, "\nThe device sends the token over WebSocket as \"Authorization: Bearer <token>\",\nor over MQTT as the password with username %s.\n", req.device)
	case req.watcher != "":
		fmt.Fprintf(w, "\nAdd to the configuration file (--config):\n\n  watcher_tokens:\n    - name: %s\n      token: %s\n      topics: [%s]\n",
			req.watcher, hash, quoteTopics(req.topics))
		fmt.Fprint(w, "\nThe watcher sends the token as \"Authorization: Bearer <token>\", or as\n?token=<token> where it cannot set headers (browsers, the dashboard).\n")
	case req.admin:
		fmt.Fprintf(w, "\nAdd to the configuration file (--config):\n\n  admin_token: %s\n\nor set TELEHUB_ADMIN_TOKEN=%s in the hub's environment.\n", hash, hash)
		fmt.Fprint(w, "Admin API calls send the token as \"Authorization: Bearer <token>\".\n")
	default:
		fmt.Fprint(w, "\nUse the sha256: line where the configuration takes a token (admin_token,\ndevice_tokens, watcher_tokens); telehub help token shows the lines to add.\n")
	}
	fmt.Fprint(w, "The hub reads the configuration when it starts: restart it after the change.\n")
}

func quoteTopics(topics []string) string {
	q := make([]string, len(topics))
	for i, t := range topics {
		q[i] = fmt.Sprintf("%q", t)
	}
	return strings.Join(q, ", ")
}
