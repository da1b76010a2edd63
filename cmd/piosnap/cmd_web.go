package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/piosnap/piosnap/scheduler/web"
)

func cmdWeb(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("web", "passwd [--stdin]")
	fromStdin := fs.Bool("stdin", false, "read the password from the first line of standard input (for scripts)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] != "passwd" {
		fs.Usage()
		return usageErrorf("the only web command is `piosnap web passwd`: it sets the password of the daemon's web page ([web] in the config)")
	}
	path := a.cfg.Web.PasswordFile
	var pw string
	f, isFile := a.env.Stdin.(*os.File)
	if !*fromStdin && isFile && isTerminal(f) {
		p1, err := readHidden(f, a.env.Stderr, "New password for the piosnap web page: ")
		if err != nil {
			return err
		}
		p2, err := readHidden(f, a.env.Stderr, "Again: ")
		if err != nil {
			return err
		}
		if p1 != p2 {
			return withCode(exitFailure, errors.New("the two passwords differ: nothing was changed"))
		}
		pw = p1
	} else {
		if !*fromStdin {
			return usageErrorf("standard input is not a terminal: pass --stdin to read the password from its first line")
		}
		line, err := bufio.NewReader(a.env.Stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read password: %w", err)
		}
		pw = trimNewline(line)
	}
	if strings.TrimSpace(pw) != pw {
		return usageErrorf("the password starts or ends with a space: nothing was changed")
	}
	if err := web.WritePasswordFile(path, pw); err != nil {
		return withCode(exitFailure, fmt.Errorf("%w (nothing was changed)", err))
	}
	fmt.Fprintf(a.env.Stdout, "password set in %s; it takes effect at the next login, without a restart\n", path)
	if a.cfg.Web.Listen == "" {
		fmt.Fprintf(a.env.Stdout, "note: the web application is off: set [web] listen in %s and restart piosnap\n", a.configPath)
	}
	return nil
}

// readHidden prompts on w and reads a line from the terminal f without
// echoing it.
func readHidden(f *os.File, w io.Writer, prompt string) (string, error) {
	fmt.Fprint(w, prompt)
	restore, err := noEcho(f)
	if err != nil {
		return "", fmt.Errorf("turn off echo: %w", err)
	}
	line, err := bufio.NewReader(f).ReadString('\n')
	restore()
	fmt.Fprintln(w)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	return trimNewline(line), nil
}
