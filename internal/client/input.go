package client

import (
	"bufio"
	"errors"
	"io"
)

// lineOrEOF is a line of input, or the error that ended the input.
type lineOrEOF struct {
	line string
	err  error
}

// readInput sends the lines of input to lines until input ends or stop is
// closed. It is owned by Run; it ends when Run returns or input ends.
func readInput(input LineSource, lines chan<- lineOrEOF, stop <-chan struct{}) {
	for {
		line, err := input.ReadLine()
		if err != nil && line == "" {
			select {
			case lines <- lineOrEOF{err: err}:
			case <-stop:
			}
			return
		}
		select {
		case lines <- lineOrEOF{line: line}:
		case <-stop:
			return
		}
	}
}

// MaxLine is the longest line of input the client takes, in bytes: no
// valid command is longer (a message's text is at most 65,536 bytes; 1,024
// names take at most 132 KiB).
const MaxLine = 1 << 20

// tooLongLine stands for a line longer than MaxLine: a single byte that
// no command starts with, so that it parses as incorrect input.
const tooLongLine = "\x00"

// lineReader reads lines of any length from r, keeping at most MaxLine
// bytes of one; a longer line is returned as a single invalid byte so that
// it parses as incorrect input.
type lineReader struct {
	br *bufio.Reader
}

// newLineReader returns a lineReader reading r.
func newLineReader(r io.Reader) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10)}
}

// ReadLine implements LineSource.
func (lr *lineReader) ReadLine() (string, error) {
	var line []byte
	tooLong := false
	for {
		chunk, err := lr.br.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(chunk) > MaxLine {
				tooLong, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if tooLong {
			return tooLongLine, nil
		}
		if err != nil && len(line) > 0 {
			return string(line), nil
		}
		return string(line), err
	}
}

// handle acts on one line of input. It returns the upload the next lines
// must wait for, if the line started one, and true for quit.
func (c *client) handle(line string) (*upload, bool) {
	cmd, err := ParseCommand(line)
	if err != nil {
		// cancel is a command only while a file is being sent; otherwise
		// it is input like any other that matches no command.
		if isCancel(line) && c.cancelUploads() {
			return nil, false
		}
		c.out.print(Event{Kind: EventInputError})
		// The contract's line on stdout, and on stderr what was wrong.
		var ie *InputError
		switch {
		case isCancel(line):
			c.log.printf("client: no file is being sent to cancel")
		case errors.As(err, &ie):
			c.log.printf("client: %s", ie.Hint)
		}
		return nil, false
	}
	switch cmd.Kind {
	case Msg:
		c.sendMessage(cmd.Names, cmd.Text)
	case List:
		c.requestList()
	case File:
		return c.sendFile(cmd.Names, cmd.Path), false
	case Help:
		c.out.print(Event{Kind: EventHelp})
	case Quit:
		return nil, true
	}
	return nil, false
}

// HelpText is what the help command prints.
const HelpText = `Commands:
  msg <N> <user1> ... <userN> <message>   send a message to N users
      e.g. msg 2 alice bob Hello, both of you!
  list                                    list the users online, sorted
      e.g. list
  file <N> <user1> ... <userN> <path>     send a file to N users
      e.g. file 1 bob ./notes/report.pdf
  cancel                                  stop the files being sent
      e.g. cancel
  help                                    print this help
      e.g. help
  quit                                    leave the chat (end of input does too)
      e.g. quit`
