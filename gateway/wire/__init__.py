"""The protobuf API's messages to and from what the rest speaks: the core's records and events
(convert), the thread protocol (protocol), event names (events), and the Agent Server's JSON
(agent_json). Read by the gRPC edge and by the bridge; imports shared and the generated stubs
only, so that the bridge loads no run core."""
