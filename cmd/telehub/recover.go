package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/telehub/telehub/storage"
)

// recoverUsage introduces the flags of telehub recover.
const recoverUsage = `usage: telehub recover --from DAMAGED.db --to NEW.db

Copies every readable event, latest state and device record (with its last
seq) of a damaged data file into a new file, and says what it could not
save. The damaged file is not changed; NEW.db must not exist. Stop the hub
first; start it again on the new file once the report suits you.
`

// recoverData is telehub recover: it exits 0 when the new file was
// written, even when parts of the old one were lost (the report says
// which), 1 when it could not be written, 2 on bad flags.
func recoverData(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("telehub recover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, recoverUsage)
		fs.PrintDefaults()
	}
	from := fs.String("from", "", "the damaged data file (read only)")
	to := fs.String("to", "", "the new data file to write (must not exist)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *from == "" || *to == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	rep, err := storage.Recover(*from, *to)
	if err != nil {
		fmt.Fprintln(stderr, "telehub recover:", err)
		return 1
	}
	printRecovery(stdout, *to, rep)
	return 0
}

// printRecovery writes what Recover saved and what it could not.
func printRecovery(w io.Writer, to string, rep storage.RecoverReport) {
	fmt.Fprintf(w, "wrote %s\n", to)
	fmt.Fprintf(w, "saved: %d events (%d records), %d device records, %d latest states, %d other keys\n",
		rep.Events, rep.Records, rep.Devices, rep.States, rep.Other)
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
			"a device's last seq may be older than the lost one, so a resend may be stored twice); %d event records dropped for differing copies\n",
			s.Records, s.Devices, s.Conflicts)
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
