"""The private hub: the registry served over HTTP to unmodified Hugging Face clients, a JSON
management API, pull-through from an upstream hub into quarantine, and the background jobs
behind them. ``mlgate serve`` starts it; see docs/hub.md."""
