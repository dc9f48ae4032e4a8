// Package protocol implements the chat wire format of PROTOCOL.md: the
// `<type> SP <length> SP <payload>` framing and the rules for each message's
// payload. Framing (Reader, AppendHeader) is kept apart from decoding the
// payloads (ParseJoin, ParseSend, ...), as net/textproto does.
package protocol

// Type is a message type of PROTOCOL.md section 3.
type Type uint8

// The message types. Unknown stands for a well-formed type token that is
// none of the others.
const (
	Unknown Type = iota
	Join
	RequestUsersList
	ResponseUsersList
	SendMessage
	ForwardMessage
	SendFile
	ForwardFile
	Disconnect
	ErrUnknownMessage
	ErrServerFull
	ErrUsernameUnavailable
	// Extension types (docs/PROTOCOL.md, "Extensions"): never sent to a
	// peer that did not ask for them.
	ExtHello
	FileBegin
	FileChunk
	FileEnd
	FileAbort
	FileReady
	FileAck
	FileResult
	NotOnline
	Presence
	Online
	TryAgain
	JoinOK
	Session
	Resume
	Resumed
	ResumeFailed
	Received
	Cursor
	Ping
	Pong
	// NumTypes is the number of types, Unknown included.
	NumTypes
)

var typeNames = [NumTypes]string{
	Unknown:                "unknown",
	Join:                   "join",
	RequestUsersList:       "request_users_list",
	ResponseUsersList:      "response_users_list",
	SendMessage:            "send_message",
	ForwardMessage:         "forward_message",
	SendFile:               "send_file",
	ForwardFile:            "forward_file",
	Disconnect:             "disconnect",
	ErrUnknownMessage:      "err_unknown_message",
	ErrServerFull:          "err_server_full",
	ErrUsernameUnavailable: "err_username_unavailable",
	ExtHello:               "ext_hello",
	FileBegin:              "file_begin",
	FileChunk:              "file_chunk",
	FileEnd:                "file_end",
	FileAbort:              "file_abort",
	FileReady:              "file_ready",
	FileAck:                "file_ack",
	FileResult:             "file_result",
	NotOnline:              "not_online",
	Presence:               "presence",
	Online:                 "online",
	TryAgain:               "try_again",
	JoinOK:                 "join_ok",
	Session:                "session",
	Resume:                 "resume",
	Resumed:                "resumed",
	ResumeFailed:           "resume_failed",
	Received:               "received",
	Cursor:                 "cursor",
	Ping:                   "ping",
	Pong:                   "pong",
}

// String returns the type's name as it appears on the wire.
func (t Type) String() string {
	if t < NumTypes {
		return typeNames[t]
	}
	return "invalid"
}

// LookupType returns the Type whose wire name is name, or Unknown.
func LookupType(name []byte) Type {
	for t := Join; t < NumTypes; t++ {
		if typeNames[t] == string(name) {
			return t
		}
	}
	return Unknown
}

// Empty reports whether messages of type t always have an empty payload
// (the handout's format 2).
func (t Type) Empty() bool {
	switch t {
	case RequestUsersList, ErrUnknownMessage, ErrServerFull, ErrUsernameUnavailable, ResumeFailed, Ping, Pong:
		return true
	}
	return false
}

// Limits from PROTOCOL.md section 3.
const (
	// MaxUsernameRunes is the most code points a username may have.
	MaxUsernameRunes = 32
	// MaxUsernameBytes is the most bytes a valid username can take (32 code
	// points of at most 4 bytes each).
	MaxUsernameBytes = 4 * MaxUsernameRunes
	// MaxRecipients is the largest N of a send_message or send_file list.
	MaxRecipients = 1024
	// MaxTextBytes is the largest text of a message.
	MaxTextBytes = 65536
	// MaxFilenameBytes is the longest file base name.
	MaxFilenameBytes = 200
	// MaxJoinPayload is the largest payload of join and disconnect.
	MaxJoinPayload = 128
	// MaxListBytes is the longest recipient list of a send_* message:
	// "1024" and 1024 names of MaxUsernameBytes, each after a space.
	MaxListBytes = 4 + MaxRecipients*(1+MaxUsernameBytes)
	// DefaultMaxFileSize is the default largest file content: 1 GiB.
	DefaultMaxFileSize = 1 << 30
	// maxTypeLen is the longest type token a header may have.
	maxTypeLen = 32
	// maxLengthDigits is the most digits a length may have. A length too
	// large for an int64 reads as math.MaxInt64: larger than any frame
	// may be, so it is refused as too large for its type (a join's as
	// the contract says, err_username_unavailable), not as malformed.
	maxLengthDigits = 64
	// maxCountDigits is the most digits of a list's count.
	maxCountDigits = 10
	// senderListBytes is the longest list of a forward: "1 <sender>".
	senderListBytes = 2 + MaxUsernameBytes
)

// Direction says which side sends a frame.
type Direction uint8

// The two directions.
const (
	// ToServer is a frame a client sends.
	ToServer Direction = iota
	// ToClient is a frame the server sends.
	ToClient
)

// Limits holds the configurable limits that bound payload lengths. Its
// MaxPayload is the one table of how large each frame may be.
type Limits struct {
	// MaxFileSize is the largest file content accepted, in bytes.
	MaxFileSize int64
	// MaxUsers is the most names a response_users_list may carry
	// (ToClient only; 0 means DefaultMaxListUsers).
	MaxUsers int
}

// DefaultMaxListUsers is the most names a client accepts in one
// response_users_list unless told otherwise: far more than a cluster of
// servers can hold, yet a bound on the memory a hostile server can claim.
const DefaultMaxListUsers = 1 << 17

// MaxPayload returns the largest payload a frame of type t may declare
// when it travels in direction d. A header declaring more is refused
// before any payload is read. Types never sent in direction d return -1.
func (l Limits) MaxPayload(d Direction, t Type) int64 {
	if d == ToServer {
		switch t {
		case Join, Disconnect:
			return MaxJoinPayload
		case RequestUsersList:
			return 0
		case SendMessage:
			return MaxListBytes + 1 + MaxTextBytes
		case SendFile:
			return MaxListBytes + 1 + MaxFilenameBytes + 1 + l.MaxFileSize
		case ExtHello:
			return MaxExtHello
		case FileBegin:
			return maxIDDigits + 1 + MaxListBytes + 1 + MaxFilenameBytes + 1 + maxIDDigits
		case FileChunk:
			return maxIDDigits + 1 + MaxUploadChunk
		case FileEnd, FileAbort:
			return maxIDDigits
		case Resume:
			return maxResume
		case Received:
			return maxIDDigits
		case Ping, Pong:
			return 0
		}
		return -1
	}
	switch t {
	case ResponseUsersList:
		users := int64(l.MaxUsers)
		if users <= 0 {
			users = DefaultMaxListUsers
		}
		return maxCountDigits + users*(1+MaxUsernameBytes)
	case ForwardMessage:
		return senderListBytes + 1 + MaxTextBytes
	case ForwardFile:
		return senderListBytes + 1 + MaxFilenameBytes + 1 + l.MaxFileSize
	case ErrUnknownMessage, ErrServerFull, ErrUsernameUnavailable:
		return 0
	case ExtHello:
		return MaxExtHello
	case FileBegin:
		return maxIDDigits + 1 + MaxUsernameBytes + 1 + MaxFilenameBytes + 1 + maxIDDigits
	case FileChunk:
		return maxIDDigits + 1 + MaxChunkData
	case FileEnd, FileAbort:
		return maxIDDigits
	case FileReady:
		return maxIDDigits + 1 + maxIDDigits + 1 + MaxListBytes
	case FileAck:
		return maxIDDigits + 1 + maxIDDigits
	case FileResult:
		return maxIDDigits + 1 + MaxListBytes
	case NotOnline:
		return MaxListBytes
	case Presence:
		return maxPresence
	case Online:
		return MaxListBytes
	case TryAgain:
		return maxTryAgainDigits
	case Session:
		return maxSession
	case Resumed:
		return maxResumed
	case Received:
		return maxIDDigits // the server's count of the client's frames (taken.go)
	case Cursor:
		return MaxCursor
	case JoinOK, ResumeFailed, Ping, Pong:
		return 0
	}
	return -1
}
