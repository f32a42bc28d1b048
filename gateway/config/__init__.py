"""All of langgraph.json: `file.load_config` reads it whole (graphs, env and dependencies, auth,
http, store); each section's parser is a module of its own, so that a process that needs one
section (the bridge reads `http`) loads nothing of the others."""
