package main

import (
	"errors"
	"fmt"
	"os"

	"peer/conf"
	"peer/conf/srs"
)

type confCmd struct {
	Check     confCheckCmd     `cmd:"" help:"Check a peer config file; every problem is reported as FILE:LINE."`
	Import    confImportCmd    `cmd:"" help:"Print the peer config equivalent to an SRS config file; notes and warnings go to stderr."`
	Reference confReferenceCmd `cmd:"" help:"Print every setting with its default, environment variable and meaning (Markdown)."`
}

type confReferenceCmd struct{}

func (confReferenceCmd) Run() error { fmt.Print(conf.Reference()); return nil }

type confCheckCmd struct {
	File string `arg:"" help:"The peer config file (YAML)." type:"existingfile"`
}

func (c *confCheckCmd) Run() error {
	f, err := conf.LoadFile(c.File)
	var errs conf.FileErrors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintln(os.Stderr, e)
		}
		return fmt.Errorf("%s: %d problem(s)", c.File, len(errs))
	}
	if err != nil {
		return err
	}
	fmt.Printf("%s: ok, %d setting(s), %d app(s)\n", c.File, len(f.Set()), len(f.Apps()))
	return nil
}

type confImportCmd struct {
	File string `arg:"" help:"The SRS config file (srs.conf)." type:"existingfile"`
}

func (c *confImportCmd) Run() error {
	in, err := os.Open(c.File)
	if err != nil {
		return err
	}
	defer in.Close()
	res, err := srs.Import(in)
	if err != nil {
		return fmt.Errorf("%s: %w", c.File, err)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(os.Stderr, "%s:%d: note: %s\n", c.File, n.Line, n.Msg)
	}
	for _, n := range res.Warnings {
		fmt.Fprintf(os.Stderr, "%s:%d: warning: %s\n", c.File, n.Line, n.Msg)
	}
	fmt.Print(res.YAML(c.File))
	return nil
}
