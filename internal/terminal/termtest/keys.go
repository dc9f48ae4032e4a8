package termtest

// Keys as an xterm-like terminal sends them, for tests that type into a
// terminal program.
const (
	Up        = "\x1b[A"
	Down      = "\x1b[B"
	Right     = "\x1b[C"
	Left      = "\x1b[D"
	Esc       = "\x1b"
	AltB      = "\x1bb"
	AltF      = "\x1bf"
	CtrlA     = "\x01"
	CtrlC     = "\x03"
	CtrlD     = "\x04"
	CtrlE     = "\x05"
	CtrlG     = "\x07"
	CtrlK     = "\x0b"
	CtrlL     = "\x0c"
	CtrlR     = "\x12"
	CtrlU     = "\x15"
	CtrlW     = "\x17"
	Backspace = "\x7f"
	Enter     = "\r"
)
