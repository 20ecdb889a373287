"""Reviews: the human-in-the-loop queue (routing of uncertain predictions, decisions, claims, the
review policy and its SLA, queue health and threshold advice)."""
