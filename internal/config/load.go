package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Env looks up an environment variable, as os.LookupEnv does: a variable
// that is set counts even when it is empty.
type Env func(name string) (string, bool)

// ErrHelp is returned by Parse and Load when -h or --help was asked for.
var ErrHelp = flag.ErrHelp

// ErrUsage is wrapped by every error about the command line itself: an
// unknown flag, a flag without its value, a value that does not parse.
var ErrUsage = errors.New("bad command line")

// CommandLine is a parsed command line: the flags given and the positional
// arguments found among them.
type CommandLine struct {
	// Args are the positional arguments, in order, wherever they stood
	// among the flags (everything after "--" is one).
	Args []string

	file  string    // --config
	given []setting // flags in the order given
}

type setting struct {
	opt   option
	value string
}

// Parse parses the flags of args (without the program name). Positional
// arguments may stand anywhere among the flags: they are returned in Args.
// Each value is checked as it is parsed; errors wrap ErrUsage, or are
// ErrHelp for -h and --help.
func Parse(args []string) (CommandLine, error) {
	var cl CommandLine
	fs, valueErr := cl.flagSet()
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return cl, ErrHelp
			}
			if *valueErr != nil {
				return cl, *valueErr
			}
			return cl, usageError(err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return cl, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			cl.Args = append(cl.Args, rest...)
			return cl, nil
		}
		cl.Args = append(cl.Args, rest[0])
		args = rest[1:]
	}
}

// flagSet returns the flag set that records into cl; the error a value
// was refused with is left in *valueErr.
func (cl *CommandLine) flagSet() (*flag.FlagSet, *error) {
	fs := flag.NewFlagSet("telehub", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	valueErr := new(error)
	fs.Func("config", "", func(s string) error {
		cl.file = s
		return nil
	})
	var scratch Config
	for _, o := range options {
		record := func(s string) error {
			if err := o.set(&scratch, s); err != nil {
				*valueErr = fmt.Errorf("%w: --%s: %w", ErrUsage, o.name, err)
				return err
			}
			cl.given = append(cl.given, setting{o, s})
			return nil
		}
		if o.isBool() {
			fs.BoolFunc(o.name, "", record)
		} else {
			fs.Func(o.name, "", record)
		}
	}
	return fs, valueErr
}

// usageError rewrites the flag package's messages in the --flag form.
func usageError(err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		return fmt.Errorf("%w: unknown flag -%s (telehub --help lists the flags)", ErrUsage, strings.TrimLeft(name, "-"))
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		return fmt.Errorf("%w: -%s needs a value (--%[2]s=value or --%[2]s value)", ErrUsage, strings.TrimLeft(name, "-"))
	}
	return fmt.Errorf("%w: %s", ErrUsage, msg)
}

// TakesValue reports whether the flag name (without dashes) is one of
// telehub's flags that take a value, so that a caller scanning a command
// line knows the next argument is that value.
func TakesValue(name string) bool {
	if name == "config" {
		return true
	}
	o, ok := optionByName(name)
	return ok && !o.isBool()
}

// Load builds the configuration from args (without the program name), the
// environment and the YAML file named by --config or TELEHUB_CONFIG, and
// validates it. Precedence: flags > environment > file > defaults. A
// positional argument is an error. For -h and --help it writes the flags
// to out and returns ErrHelp.
func Load(args []string, env Env, out io.Writer) (Config, error) {
	cl, err := Parse(args)
	if errors.Is(err, ErrHelp) {
		PrintFlags(out)
		return Config{}, err
	}
	if err != nil {
		return Config{}, err
	}
	if len(cl.Args) > 0 {
		return Config{}, fmt.Errorf("%w: unexpected argument %q", ErrUsage, cl.Args[0])
	}
	return cl.Config(env)
}

// Config builds and validates the configuration of the command line's
// flags over the environment, the YAML file and the defaults.
func (cl CommandLine) Config(env Env) (Config, error) {
	cfg := Default()
	file := cl.file
	if file == "" {
		file, _ = env("TELEHUB_CONFIG")
	}
	if file != "" {
		if err := loadFile(&cfg, file); err != nil {
			return Config{}, err
		}
	}
	if err := applyEnv(&cfg, env); err != nil {
		return Config{}, err
	}
	reset := map[string]bool{}
	for _, s := range cl.given {
		if s.opt.reset != nil && !reset[s.opt.name] {
			s.opt.reset(&cfg) // flags replace, not extend, a list from env or file
			reset[s.opt.name] = true
		}
		if err := s.opt.set(&cfg, s.value); err != nil {
			return Config{}, fmt.Errorf("--%s: %w", s.opt.name, err)
		}
	}
	return cfg, cfg.Validate()
}

// applyEnv sets every option whose TELEHUB_* variable is set. An empty
// variable counts like an empty flag: it disables an address or clears a
// list, and is an error for a number, a duration or a boolean.
func applyEnv(cfg *Config, env Env) error {
	for _, o := range options {
		v, ok := env(o.env())
		if !ok {
			continue
		}
		if v == "" && !o.emptyAllowed() {
			return fmt.Errorf("%s is set but empty: give it a value or unset it", o.env())
		}
		if o.reset != nil {
			o.reset(cfg)
		}
		if err := o.set(cfg, v); err != nil {
			return fmt.Errorf("%s: %w", o.env(), err)
		}
	}
	return nil
}
