package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/telehub/telehub/storage"
)

const recoverHelp = `
Copies every readable event, latest state and device record (with the last
seq, which deduplicates resends), the last session of each deleted device,
and every command to devices (checked, with its pending list and index
rebuilt from the commands) of a damaged data file into a new file, and, for
a hub in a cluster, the messages not yet forwarded to the peer hubs and the
highest ids stored of each peer's messages (which deduplicate them); new
event ids stay above every id the damaged file still names. It says what it
saved and what it could not. The damaged file is not changed; the new file
must not exist. Stop the hub first; start it on the new file (move it in
place of the old one) once the report suits you.

  --from PATH   the damaged data file, read only
  --to PATH     the new data file to write

Exits 0 when the new file was written, even when parts of the old one were
lost (the report lists them), 1 when it could not be written, 2 on a bad
command line.`

// recoverData is telehub recover --from DAMAGED.db --to NEW.db.
func recoverData(c *cli, args []string) int {
	from, to, err := parseRecoverArgs(args)
	if err != nil {
		return c.usageError("telehub recover", err)
	}
	rep, err := storage.Recover(from, to)
	if err != nil {
		fmt.Fprintln(c.stderr, "telehub recover:", err)
		return exitFail
	}
	printRecovery(c.stdout, to, rep)
	return exitOK
}

func parseRecoverArgs(args []string) (from, to string, err error) {
	fs := flag.NewFlagSet("telehub recover", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&from, "from", "", "")
	fs.StringVar(&to, "to", "", "")
	if err := fs.Parse(args); err != nil {
		return "", "", fmt.Errorf("%w (telehub help recover)", err)
	}
	switch {
	case fs.NArg() > 0:
		return "", "", fmt.Errorf("unexpected argument %q (telehub help recover)", fs.Arg(0))
	case from == "" || to == "":
		return "", "", errors.New("give the damaged file with --from and the new one with --to (telehub help recover)")
	}
	return from, to, nil
}

// printRecovery writes what Recover saved and what it could not.
func printRecovery(w io.Writer, to string, rep storage.RecoverReport) {
	fmt.Fprintf(w, "wrote %s\n", to)
	fmt.Fprintf(w, "saved: %d events (%d records), %d device records, %d latest states, %d other keys\n",
		rep.Events, rep.Records, rep.Devices, rep.States, rep.Other)
	if rep.Commands+rep.CommandKeysFixed > 0 {
		fmt.Fprintf(w, "commands: %d (%d not yet final: the hub delivers them once it starts)", rep.Commands, rep.PendingCommands)
		if rep.CommandKeysFixed > 0 {
			fmt.Fprintf(w, "; %d entries of their index, pending list or peer ids did not match the commands and were dropped or added", rep.CommandKeysFixed)
		}
		fmt.Fprintln(w)
	}
	if rep.Deleted > 0 {
		fmt.Fprintf(w, "deleted devices: the last sessions of %d, from which each goes on when written again\n", rep.Deleted)
	}
	if rep.Outbox+rep.Origins > 0 {
		fmt.Fprintf(w, "cluster: %d messages waiting to be forwarded to the peer hubs, %d origin ids of peers' devices\n",
			rep.Outbox, rep.Origins)
	}
	if rep.Identity == "" {
		fmt.Fprintln(w, "the store identity was lost: the new file gets a new one, so event ids held by watchers no longer resume")
	}
	if rep.Note != "" {
		fmt.Fprintln(w, "note:", rep.Note)
	}
	if rep.Problem != "" {
		fmt.Fprintln(w, "nothing could be read:", rep.Problem)
	}
	if s := rep.Salvaged; s.Records+s.Devices+s.Conflicts > 0 {
		fmt.Fprintf(w, "found again on pages the file no longer led to: %d event records, %d device records (the newest copy found; "+
			"a device's last seq may be older than the lost one, so a resend may be stored twice); %d event records, outbox messages or commands dropped for differing copies\n",
			s.Records, s.Devices, s.Conflicts)
	}
	if s := rep.Salvaged; s.Deleted > 0 {
		fmt.Fprintf(w, "found again for deleted devices: %d last sessions (the highest copy found; "+
			"if older than the lost one, a device written again may repeat a session)\n", s.Deleted)
	}
	if s := rep.Salvaged; s.Commands+s.CommandsFromLog > 0 {
		fmt.Fprintf(w, "found again for commands: %d command records (the copy furthest along; it may be behind the lost one), "+
			"%d commands made again from, or brought up to, their last event in the log\n", s.Commands, s.CommandsFromLog)
	}
	if s := rep.Salvaged; s.Outbox+s.Origins > 0 {
		fmt.Fprintf(w, "found again for the cluster: %d messages to forward (one forwarded already is sent again; the peers store it once), "+
			"%d origin ids (the highest copy found; if older than the lost one, a peer's message sent again may be stored twice)\n",
			s.Outbox, s.Origins)
	}
	if rep.DamageCount > 0 {
		fmt.Fprintf(w, "could not read %d damaged parts:\n", rep.DamageCount)
		for i, d := range rep.Damage {
			if i == 20 {
				fmt.Fprintf(w, "  ... and %d more\n", rep.DamageCount-i)
				break
			}
			fmt.Fprintln(w, " ", d)
		}
	}
	for i, u := range rep.Undecodable {
		if i == 20 {
			fmt.Fprintf(w, "  ... and %d more values that cannot be decoded\n", len(rep.Undecodable)-i)
			break
		}
		fmt.Fprintln(w, "  skipped, cannot be decoded:", u)
	}
}
