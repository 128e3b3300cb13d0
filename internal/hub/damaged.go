package hub

import "fmt"

// damagedFile is the error of a hub whose data file at path is damaged:
// what storage found, and the way out.
func damagedFile(err error, path string) error {
	to := path + ".recovered"
	return fmt.Errorf("%w. The hub does not start on a damaged file: run `telehub recover --from %s --to %s` "+
		"to copy what is readable into a new file, read its report, then move %s to %s", err, path, to, to, path)
}
