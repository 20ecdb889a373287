"""Serving: the predict path (API keys and their cache, rate limits, validation, scoring, the
prediction log and its Redis queue, refusal counts, shadow scoring)."""
