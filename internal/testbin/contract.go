package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ClientCommands returns the commands of the client's input table in
// section 5 of docs/PROTOCOL.md, each with its format as the contract
// writes it ("msg <N> <user1> ... <userN> <message>", "list", ...), in the
// table's order. Rows without a literal command (end of input, anything
// else) are left out. It fails if the table cannot be found or holds no
// command.
func ClientCommands() ([]string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("finding the go command: %w", err)
	}
	root, err := moduleRoot(goBin)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(root, "docs", "PROTOCOL.md")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cmds, err := parseClientCommands(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cmds, nil
}

// parseClientCommands reads the first cell of each row of the table headed
// `| input | action |` in section 5 of the contract.
func parseClientCommands(doc string) ([]string, error) {
	_, sec, ok := strings.Cut(doc, "\n## 5. ")
	if !ok {
		return nil, fmt.Errorf("no section 5")
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	_, table, ok := strings.Cut(sec, "\n| input | action |\n")
	if !ok {
		return nil, fmt.Errorf("no `| input | action |` table in section 5")
	}
	var cmds []string
	for i, row := range strings.Split(table, "\n") {
		if !strings.HasPrefix(row, "|") {
			break
		}
		if i == 0 { // the | --- | --- | line
			continue
		}
		cell, _, _ := strings.Cut(strings.TrimPrefix(row, "|"), "|")
		cell = strings.TrimSpace(cell)
		if len(cell) < 2 || cell[0] != '`' || cell[len(cell)-1] != '`' {
			continue
		}
		cmds = append(cmds, cell[1:len(cell)-1])
	}
	if len(cmds) == 0 {
		return nil, fmt.Errorf("no command in the input table of section 5")
	}
	return cmds, nil
}

// MissingFromHelp returns the commands of ClientCommands that help does not
// name with their format: each must begin a line of help (after leading
// blanks), followed by the end of the line or a blank.
func MissingFromHelp(help string) ([]string, error) {
	cmds, err := ClientCommands()
	if err != nil {
		return nil, err
	}
	return missingFromHelp(cmds, help), nil
}

func missingFromHelp(cmds []string, help string) []string {
	var missing []string
	for _, cmd := range cmds {
		named := false
		for line := range strings.Lines(help) {
			rest, ok := strings.CutPrefix(strings.TrimSpace(line), cmd)
			if ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
				named = true
				break
			}
		}
		if !named {
			missing = append(missing, cmd)
		}
	}
	return missing
}
