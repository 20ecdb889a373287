"""Monitoring's writes, one module per verb family (Zulip's `actions/`): `config` (per-deployment
settings), `snapshots` (compute and schedule them), `alerts` (fire, resolve, notify, acknowledge),
`feedback` (ground truth), `retrain` (challenger vs champion, promotion through the gate)."""
