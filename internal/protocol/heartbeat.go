package protocol

// FeatureHeartbeat is the feature under which either side of a
// connection may send ping, which the other answers with pong, so that a
// connection whose peer vanished without a FIN or a RST (a network gone,
// a NAT that forgot it, a peer that stopped reading) is seen in seconds
// rather than when TCP gives up, minutes later (docs/PROTOCOL.md,
// "heartbeat"; issue 22). Neither frame has a payload, and neither is
// counted for a resume.
const FeatureHeartbeat = "heartbeat"

// The two heartbeat frames, whole: "ping 0 " and "pong 0 ".
var (
	PingFrame = AppendEmpty(nil, Ping)
	PongFrame = AppendEmpty(nil, Pong)
)
